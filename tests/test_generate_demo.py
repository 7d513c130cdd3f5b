"""The embedded demo dataset: hub layout, determinism, labels that leave a visual signal."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from artprobe.settings import DemoSettings
from artprobe.sources.labels import class_names_from_schema
from artprobe.stages.generate_demo import CLASSES, DEMO_CLASSES, demo_rows, generate_demo


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
    settings = DemoSettings(rows=24, files=2, seed=5, broken=2)
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


@pytest.fixture(scope="module")
def thumbnails():
    rows = demo_rows(240, seed=2, n_broken=0)
    feats = []
    for d in rows["image"]:
        img = Image.open(io.BytesIO(d["bytes"])).convert("RGB")
        full = np.asarray(img, np.float32) / 255
        texture = np.abs(np.diff(full, axis=1)).mean((0, 1))  # grain / strokes
        thumb = np.asarray(img.resize((8, 8)), np.float32).ravel() / 255
        feats.append(np.concatenate([thumb, full.mean((0, 1)), full.std((0, 1)), 10 * texture]))
    return rows, np.stack(feats)


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
