"""Classify stage: run_fit on a merged-embeddings file with a known answer."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from artprobe.common.io import with_meta, write_parquet
from artprobe.settings import ProbeRuntime
from artprobe.stages.classify import FitDataError, FitSpec, fit_paths, load_fit_data, run_fit
from artprobe.stages.split import stratified_split

NAMES = ["Unknown Genre", "landscape", "portrait", "still_life"]


def merged(path, n=400, dim=16, seed=0, signal=4.0, stratified=False):
    """Merged embeddings: 4 classes, Gaussian blobs (signal>0) or pure noise (signal=0).

    The split is 70/15/15 by row order, or ``stratified`` by genre (the data stage's
    ``split.method: stratified``)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(4, size=n, p=[0.1, 0.45, 0.35, 0.1])
    y[:3] = 3
    centers = rng.normal(size=(4, dim)) * signal
    X = (centers[y] + rng.normal(size=(n, dim))).astype(np.float32)
    split = np.array(
        ["train"] * int(0.7 * n)
        + ["val"] * int(0.15 * n)
        + ["test"] * (n - int(0.7 * n) - int(0.15 * n))
    )
    if stratified:
        split = stratified_split(y, seed, 0.15, 0.15)
    t = pa.table(
        {
            "row_id": pa.array(np.arange(n) * 2, pa.int64()),
            "split": pa.array(split.tolist()),
            "genre": pa.array(y.astype(np.int16)),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), dim),
        }
    )
    write_parquet(with_meta(t, {"classes": {"genre": NAMES}}), path)
    return path


def spec_of(kind, params=None, **kw) -> FitSpec:
    """A fit of ``kind`` on the test file's genre: the test's values where ``kw`` says nothing."""
    seed = kw.pop("seed", 0)
    fields = dict(drop_labels=[], min_class_count=None, seed=seed, seeds=[seed], n_boot=100)
    return FitSpec("m", "genre", kind, kind, params or {}, **{**fields, **kw})


def fit(tmp_path, emb, kind, params=None, **kw):
    out = tmp_path / kind
    runtime = ProbeRuntime(device=kw.pop("device", "auto"), threads=kw.pop("threads", 1))
    duplicates = kw.pop("duplicates", None)
    run_fit(emb, spec_of(kind, params, **kw), fit_paths(out), runtime, duplicates)
    return out


@pytest.mark.parametrize(
    "kind,params",
    [("mlp", {"epochs": 5, "hidden": 64, "lr": 1e-3}), ("linear", {}), ("knn", {"k": 5})],
)
def test_fit_writes_outputs_with_known_answer(tmp_path, kind, params):
    emb = merged(tmp_path / "emb.parquet")
    out = fit(tmp_path, emb, kind, params)
    m = json.loads((out / "metrics.json").read_text())
    assert m["accuracy"]["value"] > 0.95
    assert m["accuracy"]["ci_low"] <= m["accuracy"]["value"] <= m["accuracy"]["ci_high"]
    assert (m["n_train"], m["n_val"], m["n_test"]) == (280, 60, 60)
    assert m["class_names"] == NAMES and m["kind"] == kind
    preds = pq.read_table(out / "predictions.parquet")
    assert preds.column_names == ["row_id", "y_true", "y_pred", "proba"]
    assert preds.num_rows == 60 and preds.schema.field("proba").type.list_size == 4
    assert all(r % 2 == 0 for r in preds.column("row_id").to_pylist())  # original row ids kept
    proba = np.array(preds.column("proba").to_pylist())
    assert np.allclose(proba.sum(1), 1, atol=1e-4)
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert (len(rows) > 0) == (kind == "mlp")
    assert "landscape" in (out / "classification_report.txt").read_text()


def test_noise_gives_chance(tmp_path):
    emb = merged(tmp_path / "emb.parquet", n=1000, signal=0.0)
    m = json.loads((fit(tmp_path, emb, "linear") / "metrics.json").read_text())
    t = pq.read_table(emb).to_pydict()
    train = [y for y, s in zip(t["genre"], t["split"], strict=True) if s == "train"]
    test = [y for y, s in zip(t["genre"], t["split"], strict=True) if s == "test"]
    chance = test.count(max(set(train), key=train.count)) / len(
        test
    )  # always guessing the majority
    assert len(test) == 150 and 0.3 < chance < 0.5
    acc = m["accuracy"]
    assert (
        acc["value"] < 0.6 and acc["ci_low"] <= chance <= acc["ci_high"]
    )  # no better than a guess


def test_drop_labels_and_rare_classes(tmp_path):
    emb = merged(tmp_path / "emb.parquet")
    d = load_fit_data(emb, "genre", drop_labels=["Unknown Genre"], min_class_count=60)
    kept = np.concatenate([d[p][1] for p in ("train", "val", "test")])
    assert 0 not in kept and 3 not in kept  # catch-all dropped, still_life has < 60 train rows
    genre = pq.read_table(emb, columns=["genre"]).column("genre").to_numpy()
    assert d["dropped"]["labels"] == {"Unknown Genre": int((genre == 0).sum())}
    assert d["dropped"]["rare_rows"] == int((genre == 3).sum())
    assert d["dropped"]["rows"] == int(np.isin(genre, [0, 3]).sum()) == len(genre) - len(kept)
    assert d["dropped"]["rare_classes"] == ["still_life"]
    with pytest.raises(FitDataError, match="'Unknown Artist' is not a class of genre"):
        load_fit_data(emb, "genre", drop_labels=["Unknown Artist"])


def test_missing_target_column(tmp_path):
    emb = merged(tmp_path / "emb.parquet")
    with pytest.raises(FitDataError, match="no column 'style'"):
        load_fit_data(emb, "style")


def test_unknown_hyperparameter_is_named(tmp_path):
    emb = merged(tmp_path / "emb.parquet")
    with pytest.raises(ValueError, match="lr_rate"):
        fit(tmp_path, emb, "mlp", {"lr_rate": 0.1})
    assert not (tmp_path / "mlp" / "metrics.json").exists()


def test_stratified_split_keeps_class_shares_in_every_split(tmp_path):
    emb = merged(tmp_path / "emb.parquet", n=600, stratified=True)
    d = load_fit_data(emb, "genre")
    y_all = np.concatenate([d[p][1] for p in ("train", "val", "test")])
    assert len(y_all) == 600
    for c in range(4):
        share = {p: (d[p][1] == c).mean() for p in ("train", "val", "test")}
        overall = (y_all == c).mean()
        for p in share:  # 90 val/test rows: within 2 rows of the overall share
            assert abs(share[p] - overall) <= 2 / 90, (c, share, overall)
    m = json.loads((fit(tmp_path, emb, "linear") / "metrics.json").read_text())
    assert (m["n_train"], m["n_val"], m["n_test"]) == (420, 90, 90)
    assert m["n_classes_train"] == 4 and m["accuracy"]["value"] > 0.95


@pytest.mark.parametrize("kind", ["linear", "knn"])
def test_run_fit_drops_labels_and_rare_classes(tmp_path, kind):
    # The classify stage as the workflow calls it, with probe.drop_labels and
    # probe.min_class_count for this target: the dropped classes never reach the fit,
    # the predictions or the test rows, and metrics.json says what was dropped.
    emb = merged(tmp_path / "emb.parquet")
    genre = pq.read_table(emb, columns=["genre"]).column("genre").to_numpy()
    out = fit(tmp_path, emb, kind, drop_labels=["Unknown Genre"], min_class_count=60)
    m = json.loads((out / "metrics.json").read_text())
    assert m["dropped"] == {
        "labels": {"Unknown Genre": int((genre == 0).sum())},
        "rare_classes": ["still_life"],
        "rare_rows": int((genre == 3).sum()),
        "rows": int(np.isin(genre, [0, 3]).sum()),
    }
    assert m["class_names"] == NAMES and m["n_classes"] == 4  # ids keep their meaning
    assert m["n_classes_train"] == 2
    assert m["n_train"] + m["n_val"] + m["n_test"] == int(np.isin(genre, [1, 2]).sum())
    preds = pq.read_table(out / "predictions.parquet")
    assert set(preds.column("y_true").to_pylist()) == {1, 2}
    assert set(preds.column("y_pred").to_pylist()) <= {1, 2}
    proba = np.array(preds.column("proba").to_pylist())
    assert proba[:, [0, 3]].max() < 1e-4  # no training row of the dropped classes
    assert m["accuracy"]["value"] > 0.95
    report = (out / "classification_report.txt").read_text()
    assert "landscape" in report and "still_life" not in report and "Unknown Genre" not in report


def test_embedding_column_of_wrong_type_is_a_fit_data_error(tmp_path):
    t = pa.table(
        {
            "row_id": pa.array([0, 1, 2], pa.int64()),
            "split": pa.array(["train", "val", "test"]),
            "genre": pa.array([1, 2, 1], pa.int16()),
            "embedding": pa.array([[0.0, 1.0], [1.0, 0.0], [1.0]], pa.list_(pa.float32())),
        }
    )
    emb = tmp_path / "emb.parquet"
    write_parquet(with_meta(t, {"classes": {"genre": NAMES}}), emb)
    with pytest.raises(FitDataError, match="expected fixed_size_list<float32>"):
        load_fit_data(emb, "genre")


def test_missing_labels_are_left_out_of_the_fit(tmp_path):
    # id -1 (a missing label in the source) never reaches the fit, the predictions or the
    # metrics; metrics.json counts the rows so left out. With drop_labels too, rows counts both.
    emb = merged(tmp_path / "emb.parquet")
    t = pq.read_table(emb)
    genre = t.column("genre").to_numpy().copy()
    genre[5:45] = -1
    t = t.set_column(t.schema.get_field_index("genre"), "genre", pa.array(genre))
    write_parquet(with_meta(t, {"classes": {"genre": NAMES}}), emb)
    d = load_fit_data(emb, "genre")
    kept = np.concatenate([d[p][2] for p in ("train", "val", "test")])
    assert len(kept) == 360 and not set(kept.tolist()) & set(range(10, 90, 2))
    assert d["dropped"] == {"labels": {}, "rare_classes": [], "rows": 40, "missing_label_rows": 40}
    d = load_fit_data(emb, "genre", drop_labels=["Unknown Genre"])
    assert d["dropped"]["rows"] == 40 + int((genre == 0).sum())
    m = json.loads((fit(tmp_path, emb, "knn", {"k": 5}) / "metrics.json").read_text())
    assert (
        m["n_train"] + m["n_val"] + m["n_test"] == 360 and m["dropped"]["missing_label_rows"] == 40
    )
    preds = pq.read_table(tmp_path / "knn" / "predictions.parquet")
    assert (
        min(preds.column("y_true").to_pylist()) >= 0
        and min(preds.column("y_pred").to_pylist()) >= 0
    )


def test_majority_baseline_of_the_rows_fitted(tmp_path):
    # After dropping "landscape" (the majority), the baseline is the next class, scored on
    # the test rows that remain: accuracy = its test share, balanced accuracy = 1 / classes.
    emb = merged(tmp_path / "emb.parquet")
    out = fit(tmp_path, emb, "knn", {"k": 5}, drop_labels=["landscape"])
    m = json.loads((out / "metrics.json").read_text())
    d = load_fit_data(emb, "genre", drop_labels=["landscape"])
    ytr, yte = d["train"][1], d["test"][1]
    majority = np.bincount(ytr, minlength=4).argmax()
    b = m["baseline"]
    assert b["kind"] == "majority" and b["class"] == NAMES[majority] == "portrait"
    assert b["accuracy"]["value"] == pytest.approx((yte == majority).mean())
    assert b["balanced_accuracy"]["value"] == pytest.approx(1 / len(np.unique(yte)))
    share = (yte == majority).mean()  # F1 of the majority class, 0 for the others
    assert b["macro_f1"]["value"] == pytest.approx(2 * share / (1 + share) / len(np.unique(yte)))
    assert b["accuracy"]["ci_low"] <= b["accuracy"]["value"] <= b["accuracy"]["ci_high"]


def test_seeds_fit_seeded_kinds_once_per_seed(tmp_path):
    emb = merged(tmp_path / "emb.parquet", signal=1.0)
    p = {"epochs": 2, "hidden": 32, "lr": 1e-3}
    m = json.loads((fit(tmp_path, emb, "mlp", p, seeds=[0, 1, 2]) / "metrics.json").read_text())
    s = m["seeds"]
    assert s["seeds"] == [0, 1, 2] and s["fitted"] == 3 and not s["deterministic"]
    acc = [r["accuracy"] for r in s["per_seed"]]
    assert acc[0] == pytest.approx(m["accuracy"]["value"])  # the first seed is the output
    assert s["accuracy"]["mean"] == pytest.approx(np.mean(acc))
    assert s["accuracy"]["sd"] == pytest.approx(np.std(acc, ddof=1))
    lin = json.loads(
        (fit(tmp_path, emb, "linear", {"n_c": 3}, seeds=[0, 1]) / "metrics.json").read_text()
    )
    assert lin["seeds"]["fitted"] == 1 and lin["seeds"]["deterministic"]  # no seed in a linear fit
    assert lin["seeds"]["accuracy"]["sd"] == 0.0


def _traceable(path, n=400):
    """Blobs whose first two features encode the row id as a ratio (feature 0 / feature 1 =
    id / 1000), which neither row scaling (knn's unit rows) nor a raw fit changes."""
    merged(path, n=n)
    t = pq.read_table(path)
    X = np.array(t.column("embedding").to_pylist(), np.float32)
    ids = t.column("row_id").to_numpy()
    X[:, 0], X[:, 1] = ids / 1000.0, 1.0
    emb = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1])
    t = t.set_column(t.schema.get_field_index("embedding"), "embedding", emb)
    write_parquet(with_meta(t, {"classes": {"genre": NAMES}}), path)
    return ids, np.asarray(t.column("split").to_pylist())


def _row_ids(X) -> list[int]:
    X = np.asarray(X.cpu() if hasattr(X, "cpu") else X, np.float64)
    return np.rint(1000 * X[:, 0] / X[:, 1]).astype(int).tolist()


def _ids(X) -> set[int]:
    return set(_row_ids(X))


@pytest.mark.parametrize(
    "kind,params",
    [
        ("mlp", {"epochs": 2, "hidden": 16}),
        ("linear", {"normalize": "none", "n_c": 2, "refine": 0}),
        ("linear", {"normalize": "none", "n_c": 2, "refine": 0, "refit": "train+val"}),
        ("knn", {"k": [3, 5]}),
    ],
)
def test_each_fit_records_the_rows_it_trained_on(tmp_path, monkeypatch, kind, params):
    # A spy where each kind learns from rows (mlp: the training step's matrix; linear:
    # every objective it minimises; knn: the neighbours searched for the test rows)
    # records the row ids; metrics.json must name exactly those rows.
    from artprobe.probes import knn, linear, mlp

    ids, split = _traceable(tmp_path / "emb.parquet")
    seen: set[int] = set()
    real_step, real_proba, RealSoftmax = mlp.make_step, knn.knn_proba, linear._Softmax
    real_problem = linear._problem
    rotated_ids: dict[bytes, int] = {}  # linear's centred, rotated rows -> their row ids

    def problem_spy(p, data, *a, **kw):
        prob = real_problem(p, data, *a, **kw)
        for X, rotated in ((data.X_train, prob.X), (data.X_val, prob.Xv)):
            rotated_ids.update(zip((r.tobytes() for r in rotated.cpu().numpy()), _row_ids(X)))
        return prob

    def step_spy(model, p, X, *a, **kw):
        seen.update(_ids(X))
        return real_step(model, p, X, *a, **kw)

    def proba_spy(T, *a, **kw):
        seen.update(_ids(T))
        return real_proba(T, *a, **kw)

    class SoftmaxSpy(RealSoftmax):
        def __init__(self, X, *a, **kw):
            seen.update(rotated_ids[r.tobytes()] for r in X.cpu().numpy())
            super().__init__(X, *a, **kw)

    monkeypatch.setattr(mlp, "make_step", step_spy)
    monkeypatch.setattr(knn, "knn_proba", proba_spy)
    monkeypatch.setattr(linear, "_Softmax", SoftmaxSpy)
    monkeypatch.setattr(linear, "_problem", problem_spy)
    m = json.loads(
        (
            fit(tmp_path, tmp_path / "emb.parquet", kind, params, device="cpu") / "metrics.json"
        ).read_text()
    )
    assert seen == set(ids[np.isin(split, m["trained_on"])].tolist())
    assert m["n_train_rows"] == len(seen) and m["info"]["n_train_rows"] == len(seen)
    expected = ["train", "val"] if params.get("refit") == "train+val" else ["train"]
    assert m["trained_on"] == expected  # the default: every kind on the train rows only
