"""The embedded demo dataset: hub layout, determinism, labels that leave a visual signal."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from artprobe.settings import DemoSettings, SourceSettings
from artprobe.sources.labels import class_names_from_schema
from artprobe.stages.generate_demo import (
    ARTBENCH_STYLES,
    CLASSES,
    DEMO_CLASSES,
    artbench_rows,
    demo_rows,
    generate_demo,
)
from artprobe.stages.manifest import build_manifest


def test_hub_layout_and_class_names(demo_source):
    files = sorted(demo_source.glob("data/*.parquet"))
    assert [f.name for f in files] == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    schema = pq.read_schema(files[0])
    assert schema.field("image").type.names == ["bytes", "path"]
    assert class_names_from_schema(schema) == CLASSES
    assert len(CLASSES["artist"]) == 129 and CLASSES["artist"][0] == "Unknown Artist"
    assert len(CLASSES["genre"]) == 11 and CLASSES["genre"][10] == "Unknown Genre"
    assert len(CLASSES["style"]) == 27


def test_deterministic(tmp_path):
    settings = DemoSettings(rows=24, files=2, seed=5, broken=2, layout="wikiart")
    a = generate_demo(tmp_path / "a", settings)
    b = generate_demo(tmp_path / "b", settings)
    assert len(a) == len(b) == 2  # the two files of each
    for fa, fb in zip(a, b, strict=True):
        assert pq.read_table(fa).equals(pq.read_table(fb))


def test_images_varied_and_some_broken():
    rows = demo_rows(60, seed=0, n_broken=2)
    sizes, broken = set(), 0
    for d in rows["image"]:
        try:
            sizes.add(Image.open(io.BytesIO(d["bytes"])).convert("RGB").size)
        except Exception:
            broken += 1
    assert broken == 2
    assert len(sizes) > 40
    for t, allowed in DEMO_CLASSES.items():
        assert set(rows[t]) <= set(allowed) and len(set(rows[t])) > 2


def thumbnail_features(images: list[dict]) -> np.ndarray:
    """Thumbnails + colour/texture statistics of decodable images (a cheap stand-in embedding)."""
    feats = []
    for d in images:
        img = Image.open(io.BytesIO(d["bytes"])).convert("RGB")
        full = np.asarray(img, np.float32) / 255
        texture = np.abs(np.diff(full, axis=1)).mean((0, 1))  # grain / strokes
        thumb = np.asarray(img.resize((8, 8)), np.float32).ravel() / 255
        feats.append(np.concatenate([thumb, full.mean((0, 1)), full.std((0, 1)), 10 * texture]))
    return np.stack(feats)


@pytest.fixture(scope="module")
def thumbnails():
    rows = demo_rows(240, seed=2, n_broken=0)
    return rows, thumbnail_features(rows["image"])


@pytest.mark.parametrize("target", ["genre", "style", "artist"])
def test_labels_leave_a_visual_signal(target, thumbnails):
    """A linear model on thumbnails + colour/texture statistics beats chance on held-out rows."""
    from sklearn.linear_model import LogisticRegression

    rows, X = thumbnails
    y = np.asarray(rows[target])
    clf = LogisticRegression(max_iter=2000).fit(X[:180], y[:180])
    acc = (clf.predict(X[180:]) == y[180:]).mean()
    chance = np.bincount(y).max() / len(y)
    assert acc > chance + 0.15, (acc, chance)


def label_source(folder) -> SourceSettings:
    """A local Parquet source with the one target ``label`` (built here, not from a config:
    the config's shape may change, this test is about the files)."""
    return SourceSettings(
        source=str(folder),
        revision=None,
        targets=["label"],
        config=None,
        splits=None,
        image_column="image",
    )


def artbench(folder, rows=120, files=3, seed=0, broken=2) -> list:
    settings = DemoSettings(rows=rows, files=files, seed=seed, broken=broken, layout="artbench")
    return generate_demo(folder, settings)


def test_artbench_layout_splits_and_class_names(tmp_path):
    files = artbench(tmp_path, rows=120, files=3, broken=2)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "data/test-00000-of-00001.parquet",
    ]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted(f.name for f in files)
    for f in files:
        schema = pq.read_schema(f)
        assert schema.names == ["image", "label"]
        assert schema.field("image").type.names == ["bytes", "path"]
        assert class_names_from_schema(schema) == {"label": ARTBENCH_STYLES}
    rows = {
        s: sum(pq.read_metadata(f).num_rows for f in files if f.name.startswith(s))
        for s in ("train", "test")
    }
    assert rows == {"train": 100, "test": 20}  # a sixth of the rows is test, as ArtBench's
    broken = 0
    for f in files:
        for d in pq.read_table(f).column("image").to_pylist():
            try:
                Image.open(io.BytesIO(d["bytes"])).convert("RGB")
            except Exception:
                broken += 1
    assert broken == 2


@pytest.mark.parametrize("files,expected", [(1, (1, 1)), (6, (5, 1)), (13, (11, 2))])
def test_artbench_files_shared_between_train_and_test(tmp_path, files, expected):
    names = [f.name for f in artbench(tmp_path, rows=60, files=files, broken=0)]
    assert (
        sum(n.startswith("train-") for n in names),
        sum(n.startswith("test-") for n in names),
    ) == expected


def test_artbench_deterministic_per_seed(tmp_path):
    a = artbench(tmp_path / "a", rows=30, files=2, seed=3)
    b = artbench(tmp_path / "b", rows=30, files=2, seed=3)
    c = artbench(tmp_path / "c", rows=30, files=2, seed=4)
    for fa, fb in zip(a, b, strict=True):
        assert pq.read_table(fa).equals(pq.read_table(fb))
    assert not pq.read_table(a[0]).equals(pq.read_table(c[0]))


def test_artbench_manifest_has_ten_classes_and_the_source_splits(tmp_path):
    artbench(tmp_path / "src", rows=120, files=3)
    manifest = build_manifest(label_source(tmp_path / "src"), tmp_path / "m.json")
    assert manifest["n_rows"] == 120
    assert manifest["classes"] == {"label": ARTBENCH_STYLES}
    assert [(f["name"], f["row_start"], f["rows"]) for f in manifest["files"]] == [
        ("data/train-00000-of-00002.parquet", 0, 50),
        ("data/train-00001-of-00002.parquet", 50, 50),
        ("data/test-00000-of-00001.parquet", 100, 20),
    ]
    labels = pq.read_table(tmp_path / "rows.parquet").column("label").to_numpy()
    assert np.bincount(labels[:100], minlength=10).tolist() == [10] * 10  # balanced, as ArtBench
    assert np.bincount(labels[100:], minlength=10).tolist() == [2] * 10


def test_artbench_labels_leave_a_visual_signal():
    """A linear model on thumbnails + colour/texture statistics beats chance on held-out rows."""
    from sklearn.linear_model import LogisticRegression

    rows = artbench_rows(200, 100, seed=2, n_broken=0)
    X, y = thumbnail_features(rows["image"]), np.asarray(rows["label"])
    clf = LogisticRegression(max_iter=2000).fit(X[:200], y[:200])
    acc = (clf.predict(X[200:]) == y[200:]).mean()
    assert acc > 0.6, acc  # chance is 10 %: balanced labels
