"""The thumbnail stage: which paintings the report shows (artprobe.report.select) and taking
only those rows from the image_hash job's previews (artprobe.report.thumbnails,
artprobe.common.previews), never from the shards."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from synthetic import synthetic_jpeg

from artprobe.common.io import read_meta, with_meta, write_parquet
from artprobe.common.previews import SIZES, take_previews
from artprobe.report import select
from artprobe.report.thumbnails import make_thumbnails


def _embeddings(path, row_id, split, labels, X) -> str:
    table = pa.table(
        {
            "row_id": pa.array(row_id, pa.int64()),
            "split": list(split),
            "style": pa.array(labels, pa.int16()),
            "embedding": pa.FixedSizeListArray.from_arrays(
                pa.array(X.astype(np.float32).ravel()), X.shape[1]
            ),
        }
    )
    write_parquet(
        with_meta(table, {"classes": {"style": ["c0", "c1", "c2", "c3", "c4", "c5"]}}), path
    )
    return str(path)


# 18 train rows on a half circle, 10° apart (train row i at i·10°, or (17 - i)·10° for model
# "b"); the test rows sit between them, so each query's nearest train rows by cosine are
# known by hand: the smallest angle differences first.
TRAIN_DEG = np.arange(18) * 10.0
QUERY_DEG = {100: 42.0, 101: 118.0, 102: 3.0, 103: 161.0}
EXPECTED = {  # query row -> nearest train rows (model a), k = 5
    100: [4, 5, 3, 6, 2],  # 40 (2°), 50 (8°), 30 (12°), 60 (18°), 20 (22°)
    101: [12, 11, 13, 10, 14],  # 120, 110, 130, 100, 140
    102: [0, 1, 2, 3, 4],
    103: [16, 17, 15, 14, 13],  # 160, 170, 150, 140, 130
}


def _unit(deg):
    r = np.deg2rad(np.asarray(deg))
    return np.stack([np.cos(r), np.sin(r)], axis=1)


@pytest.fixture
def angles(tmp_path):
    rows = np.arange(18).tolist() + list(QUERY_DEG)
    split = ["train"] * 18 + ["test"] * len(QUERY_DEG)
    labels = [i % 3 for i in range(18)] + [0, 1, 2, 0]
    scale = 1 + np.arange(len(rows))[:, None] % 4  # lengths differ: cosine ignores them
    xa = _unit(list(TRAIN_DEG) + list(QUERY_DEG.values())) * scale
    xb = _unit(list(TRAIN_DEG[::-1]) + list(QUERY_DEG.values())) * scale
    return {
        "a": _embeddings(tmp_path / "a.parquet", rows, split, labels, xa),
        "b": _embeddings(tmp_path / "b.parquet", rows, split, labels, xb),
    }


def test_gallery_lists_the_known_nearest_train_rows(angles):
    queries = {"style": list(QUERY_DEG)}
    a = select.nearest_train(angles["a"], ["style"], queries, 5)
    b = select.nearest_train(angles["b"], ["style"], queries, 5)
    assert a["style"] == [EXPECTED[q] for q in QUERY_DEG]
    # model b has train row i at (17 - i)·10°: the same angles, other rows, same order
    assert b["style"] == [[17 - i for i in EXPECTED[q]] for q in QUERY_DEG]


def test_gallery_centring_is_the_knn_probes(angles):
    """center=True compares (x - train mean) directions, as the kNN probe does."""
    got = select.nearest_train(
        angles["a"], ["style"], {"style": list(QUERY_DEG)}, 5, select.ProbeView(center=True)
    )["style"]
    df = pq.read_table(angles["a"]).to_pandas()
    X = np.stack(df["embedding"].to_numpy())
    train = X[:18] - X[:18].mean(axis=0)
    for q, neighbours in zip(QUERY_DEG, got):
        v = X[df.row_id == q][0] - X[:18].mean(axis=0)
        cos = train @ v / np.linalg.norm(train, axis=1) / np.linalg.norm(v)
        assert neighbours == np.argsort(-cos, kind="stable")[:5].tolist()
    assert got != [EXPECTED[q] for q in QUERY_DEG]  # the centring changes the answer here


def test_gallery_neighbours_are_rows_the_knn_probe_searched(angles):
    """probe.drop_labels, min_class_count and the confirmed duplicates leave rows out of the
    kNN probe's training set (classify.usable_rows): the gallery never shows them, and its
    neighbours are the nearest among the rows that are left."""
    # train labels are i % 3: c0 on rows 0, 3, …; c1 on 1, 4, …; c2 on 2, 5, … (six each).
    # c0 is dropped by name; row 4 (c1) is a confirmed duplicate, which leaves c1 five train
    # rows, under min_class_count 6; c2 keeps its six: the probe trains on c2's rows only.
    view = select.ProbeView(
        drop_labels={"style": ["c0"]}, min_class_count={"style": 6}, drop_rows=np.array([4])
    )
    got = select.nearest_train(angles["a"], ["style"], {"style": list(QUERY_DEG)}, 5, view)
    # c2's train rows sit at 20°, 50°, 80°, 110°, 140°, 170°: nearest first, by hand
    assert got["style"] == [
        [5, 2, 8, 11, 14],  # 42°
        [11, 14, 8, 17, 5],  # 118°
        [2, 5, 8, 11, 14],  # 3°
        [17, 14, 11, 8, 5],  # 161°
    ]
    # each filter on its own changes the answer (none of them is a no-op here)
    for partial in (
        select.ProbeView(min_class_count={"style": 6}, drop_rows=np.array([4])),
        select.ProbeView(drop_labels={"style": ["c0"]}, drop_rows=np.array([4])),
        select.ProbeView(drop_labels={"style": ["c0"]}, min_class_count={"style": 6}),
    ):
        other = select.nearest_train(angles["a"], ["style"], {"style": list(QUERY_DEG)}, 5, partial)
        assert other != got


def test_same_queries_for_every_model_and_the_seed_changes_them(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    rows, split = np.arange(n), np.where(np.arange(n) % 4 == 0, "test", "train")
    labels = rng.integers(0, 6, n)
    paths = {
        m: _embeddings(tmp_path / f"{m}.parquet", rows, split, labels, rng.normal(size=(n, 8)))
        for m in "ab"
    }
    frames = {m: select._load(p, ["style"]) for m, p in paths.items()}
    q0 = select.gallery_queries(frames, "style", 12, seed=0)
    assert q0 == select.gallery_queries(frames, "style", 12, seed=0)
    assert q0 != select.gallery_queries(frames, "style", 12, seed=1)
    assert len(q0) == 12 and all(r % 4 == 0 for r in q0)  # test rows only
    assert len({labels[r] for r in q0}) == 6  # spread over every class
    assert np.bincount(labels[q0]).max() == 2  # twelve queries, six classes: two each
    near = {
        m: select.nearest_train(p, ["style"], {"style": q0}, 5)["style"] for m, p in paths.items()
    }
    assert [len(x) for x in near["a"]] == [5] * 12 and near["a"] != near["b"]
    train = set(rows[split == "train"])
    assert all(r in train for x in near["a"] + near["b"] for r in x)


def _fit(model, clf, y_true, y_pred, target="style"):
    preds = pd.DataFrame(
        {"row_id": np.arange(len(y_true)) + 10, "y_true": y_true, "y_pred": y_pred}
    )
    return {"model": model, "classifier": clf, "target": target, "predictions": preds}


def test_disagreements_equal_a_hand_computation():
    #              rows 10 11 12 13 14 15 16 17
    y_true = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    a_pred = np.array([0, 1, 2, 1, 1, 0, 0, 2])  # wrong on 13, 15, 17
    b_pred = np.array([0, 2, 0, 0, 1, 0, 1, 1])  # wrong on 11, 12, 15, 16
    fits = [_fit("a", "linear", y_true, a_pred), _fit("b", "linear", y_true, b_pred)]
    fits += [_fit(m, "linear", y_true, y_true, "genre") for m in "ab"]  # another target's fits
    d = select.disagreements(fits, "style", ("a", "linear"), ("b", "linear"), n=12, seed=0)
    assert [r["row_id"] for r in d["a_only"]] == [11, 12, 16]  # a right, b wrong
    assert [r["row_id"] for r in d["b_only"]] == [13, 17]  # b right, a wrong (15: both wrong)
    assert d["a_only"][0] == {"row_id": 11, "y_true": 1, "pred_a": 1, "pred_b": 2}
    assert (d["n_a_only"], d["n_b_only"], d["n_shared"]) == (3, 2, 8)
    capped = select.disagreements(fits, "style", ("a", "linear"), ("b", "linear"), n=2, seed=0)
    ids = [r["row_id"] for r in capped["a_only"]]
    assert len(ids) == 2 and set(ids) <= {11, 12, 16} and ids == sorted(ids)


def test_confusions_pick_the_top_pair_and_its_paintings():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([1, 1, 1, 0, 1, 0, 2, 2])  # 0 -> 1 three times, 1 -> 0 once
    c = select.confusions(_fit("a", "knn", y_true, y_pred), pairs=2, examples=4, seed=0)
    first = c["pairs"][0]
    assert (first["true"], first["pred"], first["count"], first["support"]) == (0, 1, 3, 4)
    assert first["a_as_b"] == [10, 11, 12] and first["a_right"] == [13] and first["b_right"] == [14]
    assert (c["pairs"][1]["true"], c["pairs"][1]["pred"]) == (1, 0)


def _shard_images(start: int) -> list[bytes]:
    """Row ``start + i``'s image: mostly 300 × 200 JPEGs, and among them a large JPEG (decoded
    at 1/8 scale at either size), a PNG (no reduced decode), a tall one and a broken one."""
    images = [synthetic_jpeg(300, 200, seed=start + i) for i in range(100)]
    images[1] = synthetic_jpeg(1200, 900, seed=start + 1)
    buf = io.BytesIO()
    Image.open(io.BytesIO(images[2])).save(buf, "PNG")
    images[2] = buf.getvalue()
    images[3] = synthetic_jpeg(90, 240, seed=start + 3)
    images[4] = images[4][:200]  # truncated: no preview
    return images


@pytest.fixture
def shards(tmp_path):
    """Two image shards of 100 rows (row ids 0-99 and 100-199, 10 row groups each) and the
    previews the image_hash job writes of them."""
    from artprobe.stages.image_hash import hash_shard

    paths, previews = [], []
    for i, start in enumerate((0, 100)):
        ids = np.arange(start, start + 100)
        table = pa.table(
            {
                "row_id": pa.array(ids, pa.int64()),
                "image": pa.array(_shard_images(start), pa.large_binary()),
                "style": pa.array(ids % 7, pa.int16()),
            }
        )
        paths.append(str(tmp_path / "shards" / f"{i:05d}.parquet"))
        write_parquet(with_meta(table, {"shard": f"{i:05d}"}), paths[-1], row_group_size=10)
        previews.append(str(tmp_path / "previews" / f"{i:05d}.arrow"))
        hash_shard(paths[-1], tmp_path / "hashes" / f"{i:05d}.parquet", previews[-1])
    return paths, previews


def _from_shard(data: bytes, size: int) -> tuple[bytes, int, int]:
    """A thumbnail as the thumbnail stage made it from a shard's image (before previews)."""
    from artprobe.common.images import decode_rgb

    img = decode_rgb(data, min_short_side=size // 2)
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=82, optimize=True)
    return buf.getvalue(), img.width, img.height


def _pixels(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.float64)


WANTED = {"large": [0, 1, 2, 3, 4, 7, 123], "small": [1, 2, 3, 7, 104, 199]}


def test_thumbnails_from_previews_are_those_the_shards_gave(shards, tmp_path):
    paths, previews = shards
    out = tmp_path / "thumbs.parquet"
    make_thumbnails(previews, WANTED, ["style", "genre"], str(out))
    t = pq.read_table(out).to_pandas()
    shown = {(k, r) for k, rows in WANTED.items() for r in rows if r % 100 != 4}
    assert set(zip(t.kind, t.row_id)) == shown and len(t) == len(shown)
    assert list(t.columns) == ["row_id", "kind", "jpeg", "width", "height", "style"]
    assert (t["style"] == t["row_id"] % 7).all()
    shard = pa.concat_tables(pq.read_table(p, columns=["row_id", "image"]) for p in paths)
    images = dict(zip(shard["row_id"].to_pylist(), shard["image"].to_pylist()))
    for row in t.itertuples():
        jpeg, w, h = _from_shard(images[row.row_id], SIZES[row.kind])
        assert (row.width, row.height) == (w, h) and max(w, h) == SIZES[row.kind]
        if row.kind == "large":  # the same decode, scaling and encoding: the same bytes
            assert row.jpeg == jpeg, row.row_id
        else:  # scaled from a finer decode where the reduced decodes differ: close
            diff = np.abs(_pixels(row.jpeg) - _pixels(jpeg)).mean()
            assert diff < 6, (row.row_id, diff)
    assert take_previews(previews, {"large": []}, ["style"]).num_rows == 0


def test_thumbnails_never_open_the_shards(shards, tmp_path):
    paths, previews = shards
    for p in paths:  # the shards' images are gone: one missing, one unreadable
        Path(p).write_bytes(b"not parquet") if p.endswith("0.parquet") else Path(p).unlink()
    out = tmp_path / "thumbs.parquet"
    make_thumbnails(previews, WANTED, ["style"], str(out))
    assert pq.read_table(out).num_rows == 11


def test_previews_hold_every_row_and_null_where_the_image_failed(shards):
    _, previews = shards
    t = pa.ipc.open_file(pa.memory_map(previews[1])).read_all()
    assert t["row_id"].to_pylist() == list(range(100, 200))
    assert t["style"].to_pylist() == [r % 7 for r in range(100, 200)]
    assert [i for i, j in enumerate(t["large"].to_pylist()) if j is None] == [4]
    assert t["small"].null_count == 1
    assert read_meta(t.schema) == {"shard": "00001", "sizes": SIZES, "quality": 82}


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.parametrize("distance", [8, None])
def test_image_hash_runs_for_the_previews_with_or_without_the_scan(tmp_path, distance):
    """The thumbnails take the previews from image_hash jobs, so they run for every dataset;
    split.duplicate_distance null leaves out only the scan."""
    import json

    import yaml
    from conftest import copy_workflow, job_counts, snakemake

    work = copy_workflow(tmp_path / "work")
    (work / "results" / "wikiart").mkdir(parents=True)
    (work / "results" / "wikiart" / "manifest.json").write_text(json.dumps({"n_rows": 70_000}))
    (work / "results" / "wikiart" / "rows.parquet").write_bytes(b"")
    split = {"duplicate_distance": distance}  # merged into config.yaml's wikiart
    (work / "overlay.yaml").write_text(yaml.safe_dump({"datasets": {"wikiart": {"split": split}}}))
    proc = snakemake(work, "-n", "--quiet", "rules", "--configfile", "overlay.yaml")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["image_hash"] == counts["shard"] == 3 and counts["thumbnails"] == 1
    assert ("duplicates" in counts) == (distance is not None)


def test_spread_cycles_through_the_classes():
    rng = np.random.default_rng(0)
    rows = np.arange(30)
    labels = np.array([0] * 20 + [1] * 8 + [2] * 2)
    got = select.spread(rows, labels, 9, rng)
    counts = np.bincount(labels[got]).tolist()
    assert counts[2] == 2 and sorted(counts[:2]) == [3, 4]  # class 2 runs out after two
    assert len(set(got.tolist())) == 9


# ------------------------------------------------- which models the painting sections show

MANY = [f"m{i:02d}" for i in range(15)]


def _mean_ranks(ranks: dict[str, float | None], metric: str = select.RANK_METRIC) -> pd.DataFrame:
    """mean_ranks rows as the compare stage writes them (leaderboard.MEAN_COLUMNS' first
    five): each model's best probe for ``metric``; a per-probe ranking and another metric
    that order the models otherwise, which the choice must ignore."""
    rows = []
    for i, (m, r) in enumerate(ranks.items()):
        rows.append(
            {"metric": metric, "probe_mode": "best", "probe": "", "model": m, "mean_rank": r}
        )
        rows.append(
            {
                "metric": metric,
                "probe_mode": "per probe",
                "probe": "knn",
                "model": m,
                "mean_rank": float(i),
            }
        )
        rows.append(
            {
                "metric": "macro_f1",
                "probe_mode": "best",
                "probe": "",
                "model": m,
                "mean_rank": float(i),
            }
        )
    return pd.DataFrame(rows)


def test_shown_models_are_the_top_by_mean_rank_plus_the_named():
    # m14 best, then m13, …: the reverse of the config order (MANY)
    ranks = _mean_ranks({m: 15.0 - i for i, m in enumerate(MANY)})
    got = select.shown_models(ranks, MANY, 3, ["m02"])
    assert got["shown"] == ["m14", "m13", "m12", "m02"]  # rank order, the named one last
    assert got["ranked"] == MANY[::-1] and got["metric"] == "balanced_accuracy"
    assert select.shown_models(ranks, MANY, 3, ["m13"])["shown"] == ["m14", "m13", "m12"]
    assert select.shown_models(ranks, MANY, 20, [])["shown"] == MANY[::-1]


def test_shown_models_ties_and_unranked_models_are_deterministic():
    # m03 and m07 tie for the best rank; m01 has no mean rank (NaN), m05 no row at all
    ranks = {m: 10.0 for m in MANY} | {"m07": 1.0, "m03": 1.0, "m09": 2.0, "m01": None}
    frame = _mean_ranks(ranks)
    frame = frame[frame.model != "m05"]
    got = select.shown_models(frame, MANY, 3, [])
    assert got["shown"] == ["m03", "m07", "m09"]  # the tie in config order
    assert got["ranked"][-2:] == ["m01", "m05"]  # no rank: last, in config order
    shuffled = frame.sample(frac=1, random_state=0)
    assert select.shown_models(shuffled, MANY, 3, [])["ranked"] == got["ranked"]


def test_shown_models_name_the_unknown_ones():
    with pytest.raises(ValueError, match=r"report.show_models names \['vit_h'\].*m00"):
        select.shown_models(_mean_ranks({m: 1.0 for m in MANY}), MANY, 3, ["m01", "vit_h"])


def test_galleries_of_fifteen_models_show_the_top_three_and_the_named(tmp_path):
    """select_rows with 15 models: the galleries hold exactly top_models + show_models
    models' neighbours, in rank order, and rows.json records the choice."""
    from artprobe.report.verdict import COLUMNS
    from artprobe.settings import ThumbnailSettings

    rng = np.random.default_rng(0)
    n = 120
    rows, split = np.arange(n), np.where(np.arange(n) % 4 == 0, "test", "train")
    labels = rng.integers(0, 6, n)
    paths = {
        m: _embeddings(tmp_path / f"{m}.parquet", rows, split, labels, rng.normal(size=(n, 8)))
        for m in MANY
    }
    settings = ThumbnailSettings(
        targets=["style"], seed=0, center=False, drop_labels={}, min_class_count={},
        map_target="style", gallery={"queries": 4, "k": 3}, disagreements=2,
        confusions={"pairs": 1, "examples": 1}, map_rows=30, map_thumbnails=10,
        top_models=3, show_models=["m00"],
    )  # fmt: skip
    ranks = _mean_ranks({m: float((7 * i) % 15) for i, m in enumerate(MANY)})  # m00, m13, m11, …
    chosen = select.select_rows([], paths, pd.DataFrame(columns=COLUMNS), ranks, settings)
    shown = ["m00", "m13", "m11"]  # m00 is among the top three already
    assert list(chosen["gallery"]["style"]["neighbours"]) == shown
    settings = dataclasses.replace(settings, show_models=["m01"])  # rank 7
    chosen = select.select_rows([], paths, pd.DataFrame(columns=COLUMNS), ranks, settings)
    assert list(chosen["gallery"]["style"]["neighbours"]) == [*shown, "m01"]
    assert chosen["models"]["shown"] == [*shown, "m01"] and len(chosen["models"]["ranked"]) == 15
    json.dumps(chosen)  # rows.json
