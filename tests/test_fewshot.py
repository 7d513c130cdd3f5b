"""Few-shot curves: artprobe.probes.curve (subsets, curve) and artprobe.stages.fewshot (the stage):
nested seeded subsets from train only, exact per-class counts, no val/test row ever trained
on, a curve that rises on an easy problem; the config key, the layout entries and the plot."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import validated

from artprobe.common.io import read_json, with_meta, write_parquet
from artprobe.config import resolve_params
from artprobe.probes import curve as curve_module
from artprobe.probes.curve import fewshot_curve, fewshot_subsets, normalize_shots
from artprobe.report.layout import report_files
from artprobe.settings import FewshotSettings, FewshotSpec, ProbeRuntime, fewshot_settings
from artprobe.stages import fewshot as stage
from artprobe.stages.classify import FitDataError

FAST_LINEAR = {"n_c": 3, "c_min": 0.01, "c_max": 1.0}
CPU = ProbeRuntime(device="cpu", threads=1)


def curve_spec(params, shots, trials, seed=0, model="m", target="style") -> FewshotSpec:
    """A curve of the test's ``params``, ``shots`` and ``trials`` (no row filters)."""
    return FewshotSpec(model, target, list(shots), trials, params, [], None, seed)


def test_subsets_are_nested_exact_per_class_and_seeded():
    y = np.repeat(np.arange(4), [1, 3, 7, 40])  # class 0 has 1 row, class 3 has 40
    shots = [1, 2, 5, 10, 25, "all"]
    subs = fewshot_subsets(y, shots, trial=0, seed=7)
    assert list(subs) == shots
    for k in [1, 2, 5, 10, 25]:
        counts = np.bincount(y[subs[k]], minlength=4)
        assert counts.tolist() == [min(k, n) for n in (1, 3, 7, 40)], k
        assert len(np.unique(subs[k])) == len(subs[k])
    for small, big in zip([1, 2, 5, 10], [2, 5, 10, 25]):
        assert set(subs[small]) <= set(subs[big]), (small, big)
    assert subs["all"].tolist() == list(range(len(y)))
    again = fewshot_subsets(y, shots, trial=0, seed=7)
    assert all(np.array_equal(subs[k], again[k]) for k in shots)
    other_trial, other_seed = fewshot_subsets(y, [5], 1, 7)[5], fewshot_subsets(y, [5], 0, 8)[5]
    assert not np.array_equal(subs[5], other_trial) and not np.array_equal(subs[5], other_seed)


def test_a_class_subset_does_not_depend_on_the_other_classes():
    y = np.repeat(np.arange(3), 20)
    a = fewshot_subsets(y, [3], 0, 0)[3]
    b = fewshot_subsets(y[:40], [3], 0, 0)[3]  # class 2 removed
    assert a[:6].tolist() == b.tolist()


@pytest.mark.parametrize("bad", [[0], [-1], ["ALL"], [2.5], [True], []])
def test_bad_shots_are_refused(bad):
    with pytest.raises(ValueError, match="shots"):
        normalize_shots(bad)


def test_shots_are_sorted_with_all_last():
    assert normalize_shots(["all", 10, 1, 5]) == [1, 5, 10, "all"]


def _blobs(n_per_class: int, n_classes: int = 5, dim: int = 16, seed: int = 0, noise: float = 2.0):
    centers = (
        np.random.default_rng(99).standard_normal((n_classes, dim)) * 1.5
    )  # shared by all splits
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = (centers[y] + noise * rng.standard_normal((len(y), dim))).astype(np.float32)
    return X, y


def test_curve_rises_on_an_easy_problem():
    train, val, test = _blobs(60, seed=1), _blobs(20, seed=2), _blobs(60, seed=3)
    params = resolve_params("linear", FAST_LINEAR)
    spec = curve_spec(params, [1, 2, 5, 10, 25, "all"], trials=3)
    curve = fewshot_curve(spec, (train, val, test), 5, CPU)
    acc = [s["accuracy"] for s in curve["summary"]]
    assert acc[-1] > acc[0] + 0.15, acc
    assert all(b >= a - 0.05 for a, b in zip(acc, acc[1:])), acc  # monotone up to noise
    assert curve["params"]["refit"] == "train"
    alls = [p for p in curve["points"] if p["shot"] == "all"]
    assert [p["reused"] for p in alls] == [False, True, True]  # the same subset is fitted once
    assert curve["summary"][-1]["accuracy_sd"] == 0.0 and curve["summary"][-1]["n_train"] == 300
    assert [s["n_train"] for s in curve["summary"][:3]] == [5, 10, 25]


def _merged(path, n: int = 90, n_classes: int = 3):
    """A merged-embeddings file whose first feature is the row id (to trace rows into fits)."""
    rng = np.random.default_rng(0)
    ids = np.arange(1000, 1000 + n)
    y = ids % n_classes
    split = np.array(["train", "train", "val", "test", "train"])[ids % 5]
    X = np.column_stack([ids, y * 3.0 + rng.standard_normal(n), rng.standard_normal(n)]).astype(
        np.float32
    )
    emb = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel(), pa.float32()), 3)
    table = pa.table(
        {
            "row_id": pa.array(ids, pa.int64()),
            "split": split,
            "style": pa.array(y, pa.int16()),
            "embedding": emb,
        }
    )
    write_parquet(
        with_meta(table, {"classes": {"style": [f"s{i}" for i in range(n_classes)]}}), path
    )
    return ids, split


def test_the_stage_never_trains_on_val_or_test_rows(tmp_path, monkeypatch):
    ids, split = _merged(tmp_path / "m.parquet")
    seen = []
    real_fit = curve_module.fit

    def spy(kind, params, data, *a, **kw):
        seen.append(
            (
                data.X_train[:, 0].astype(int),
                data.X_val[:, 0].astype(int),
                params["refit"] != "train",
            )
        )
        return real_fit(kind, params, data, *a, **kw)

    monkeypatch.setattr(curve_module, "fit", spy)
    spec = curve_spec(FAST_LINEAR, [1, 2, "all"], trials=2, seed=3)
    out = stage.run_fewshot(tmp_path / "m.parquet", tmp_path / "f.json", spec, CPU)
    train_ids, val_ids = set(ids[split == "train"]), set(ids[split == "val"])
    assert seen and all(
        set(tr) <= train_ids and set(va) == val_ids and not refit for tr, va, refit in seen
    )
    per_trial = [s[0] for s in seen]  # trial 0: k=1, 2, all; trial 1: k=1, 2 (all reused)
    assert [len(t) for t in per_trial] == [3, 6, len(train_ids), 3, 6]
    assert set(per_trial[0]) <= set(per_trial[1]) and set(per_trial[3]) <= set(per_trial[4])
    written = read_json(tmp_path / "f.json")
    assert written == out | {"params": written["params"]} and written["n_val"] == len(val_ids)
    assert [s["shot"] for s in written["summary"]] == [1, 2, "all"]


def _classify_linear(tmp_path, params, name="fit") -> dict:
    """The classify stage's linear fit of the merged file (its metrics and predictions paths)."""
    from artprobe.stages.classify import FitSpec, fit_paths, run_fit

    out = fit_paths(tmp_path / name)
    out["metrics"].parent.mkdir(parents=True)
    spec = FitSpec("m", "style", "lin", "linear", params, [], None, 0, [0], n_boot=0)
    run_fit(tmp_path / "m.parquet", spec, out, CPU)
    return {"metrics": str(out["metrics"]), "predictions": str(out["predictions"])}


def test_the_all_point_is_the_classify_fit_not_fitted_again(tmp_path, monkeypatch):
    ids, split = _merged(tmp_path / "m.parquet")
    n_train = int((split == "train").sum())
    fit_rows = []
    real_fit = curve_module.fit

    def spy(kind, params, data, *a, **kw):
        fit_rows.append(len(data.X_train))
        return real_fit(kind, params, data, *a, **kw)

    monkeypatch.setattr(curve_module, "fit", spy)
    spec = curve_spec(FAST_LINEAR, [1, "all"], trials=2)
    fresh = stage.run_fewshot(tmp_path / "m.parquet", tmp_path / "a.json", spec, CPU)
    assert fit_rows.count(n_train) == 1
    fit_rows.clear()

    reuse = _classify_linear(tmp_path, FAST_LINEAR)
    out = stage.run_fewshot(tmp_path / "m.parquet", tmp_path / "b.json", spec, CPU, reuse=reuse)
    assert n_train not in fit_rows and len(fit_rows) == 2  # only the two 1-shot subsets
    alls = [p for p in out["points"] if p["shot"] == "all"]
    fresh_all = next(p for p in fresh["points"] if p["shot"] == "all")
    same = ("accuracy", "balanced_accuracy", "macro_f1", "n_train", "C", "val_accuracy")
    for p in alls:
        assert {k: p[k] for k in same} == {k: fresh_all[k] for k in same}
        assert p["from_fit"] == reuse["metrics"] and p["reused"]
    assert read_json(reuse["metrics"])["accuracy"]["value"] == alls[0]["accuracy"]

    # the job reads the parse-time decision; a fit that is not the point is an error, not a
    # point fitted quietly instead
    other = _classify_linear(tmp_path, {**FAST_LINEAR, "n_c": 2}, name="other")
    with pytest.raises(FitDataError, match="not that fit .another probe or other hyper-parameters"):
        stage.run_fewshot(tmp_path / "m.parquet", tmp_path / "c.json", spec, CPU, reuse=other)
    assert not (tmp_path / "c.json").exists()


def _config(
    fewshot_cfg,
    classifiers=({"name": "lin", "kind": "linear"}, {"name": "m", "kind": "mlp"}),
    **sections,
):
    """A validated config (the schema's defaults filled) with ``probe.fewshot`` and these
    classifiers."""
    probe = {"fewshot": fewshot_cfg}
    return validated(probe=probe, classifiers=[dict(c) for c in classifiers], **sections)


def test_fewshot_settings():
    params = {"lin": resolve_params("linear", {"n_c": 4}), "m": resolve_params("mlp", {})}
    assert fewshot_settings(_config(None), params) is None
    s = fewshot_settings(_config({"trials": 2}), params)
    assert s == FewshotSettings(
        shots=[1, 2, 5, 10, 25, 100, "all"],  # the schema's
        trials=2,
        classifier="lin",
        params=params["lin"],
        reuses="lin",
    )
    with pytest.raises(
        ValueError, match=r"probe.fewshot.classifier: 'm' is not a linear classifier"
    ):
        fewshot_settings(_config({"classifier": "m"}), params)
    only_mlp = _config({}, classifiers=[{"name": "m", "kind": "mlp"}])
    assert fewshot_settings(only_mlp, params).params == resolve_params("linear", {})


def test_layout_lists_fewshot_files_only_when_on():
    off = report_files(["a", "b"], ["style"], ["lin"], {"lin": "linear"})
    on = report_files(["a", "b"], ["style"], ["lin"], {"lin": "linear"}, fewshot=True)
    added = {k: v for k, v in on.items() if k not in off}
    assert added == {
        "fewshot": "fewshot.csv",
        "fewshot.a.style": "fewshot/a.style.png",
        "fewshot.b.style": "fewshot/b.style.png",
    }


def test_fewshot_plot_and_table(tmp_path):
    from artprobe.report import plots, tables

    train, val, test = _blobs(10, seed=1), _blobs(5, seed=2), _blobs(10, seed=3)
    spec = curve_spec(resolve_params("linear", FAST_LINEAR), [1, "all"], trials=2)
    curve = fewshot_curve(spec, (train, val, test), 5, CPU)
    curve |= {"model": "a", "target": "style", "n_classes": 5}
    plots.save(plots.plot_fewshot(curve, "tab:blue"), tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 5000
    df = tables.fewshot_table([curve])
    assert df["shot"].tolist() == ["1", "all"] and df["trials"].tolist() == [2, 2]
    assert df.loc[1, "accuracy_sd"] == 0.0


@pytest.mark.parametrize("value", [None, {}, {"trials": 1, "shots": [1, "all"]}])
def test_schema_accepts_off_empty_and_partial(value):
    """A null ``probe.fewshot`` must validate (Snakemake cannot fill defaults into null)."""
    import copy
    from pathlib import Path

    import yaml
    from snakemake.utils import validate

    from artprobe.config import check_config

    root = Path(__file__).resolve().parents[1]
    config = copy.deepcopy(yaml.safe_load((root / "config.yaml").read_text()))
    config["probe"]["fewshot"] = value
    validate(config, str(root / "schemas/config.schema.yaml"))
    settings = fewshot_settings(config, check_config(config))
    assert (settings is None) == (value is None)
    if value is not None:
        assert settings.trials == value.get("trials", 3)


def test_reuse_only_where_the_classify_fit_is_the_all_point():
    params = {"lin": resolve_params("linear", {})}
    lin = [{"name": "lin", "kind": "linear"}]
    assert fewshot_settings(_config({}, lin), params).reuses == "lin"
    assert fewshot_settings(_config({"shots": [1, 5]}, lin), params).reuses is None
    refit = {"lin": resolve_params("linear", {"refit": "train+val"})}
    assert fewshot_settings(_config({}, lin), refit).reuses is None  # the fit saw val
    dropped = _config({}, lin, split={"drop_duplicates": True})  # both stages drop the same rows
    assert fewshot_settings(dropped, params).reuses == "lin"
    no_linear = _config({}, classifiers=[{"name": "m", "kind": "mlp"}])
    assert fewshot_settings(no_linear, {"m": resolve_params("mlp", {})}).reuses is None
