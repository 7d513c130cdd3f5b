"""Split stage: the thesis-compatible split, stratified split, split.parquet."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from artprobe import data
from artprobe.split import seed_compatible_split, stratified_split, write_split
from artprobe.config import SPLITS
from artprobe.io import read_meta

TARGETS = ["genre", "style", "artist"]


@pytest.mark.parametrize("n", [10, 97, 1000, 81444])
def test_seed_compatible_split_matches_datasets(n):
    """Our split equals datasets' train_test_split twice (the thesis protocol), row for row."""
    import datasets

    ds = datasets.Dataset.from_dict({"i": np.arange(n)})
    first = ds.train_test_split(test_size=0.2, seed=2830)
    second = first["test"].train_test_split(test_size=0.5, seed=2830)
    expected = np.empty(n, dtype=object)
    expected[first["train"]["i"]] = "train"
    expected[second["train"]["i"]] = "val"
    expected[second["test"]["i"]] = "test"

    ours = seed_compatible_split(n, seed=2830, val_fraction=0.1, test_fraction=0.1)
    assert (ours == expected).all()


def test_wikiart_split_sizes():
    parts = seed_compatible_split(81444, 2830, 0.1, 0.1)
    counts = {s: int((parts == s).sum()) for s in SPLITS}
    assert counts == {"train": 65155, "val": 8144, "test": 8145}


def test_seed_changes_split():
    a = seed_compatible_split(500, 1)
    b = seed_compatible_split(500, 2)
    assert (a != b).any()


def test_stratified_split_keeps_proportions():
    rng = np.random.default_rng(0)
    labels = rng.choice(5, size=2000, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    labels[:2] = 9  # a class of two rows must not break the split
    parts = stratified_split(labels, seed=0, val_fraction=0.1, test_fraction=0.1)
    assert set(parts) == {"train", "val", "test"}
    for part, frac in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        assert abs((parts == part).mean() - frac) < 0.01
        for c in range(5):
            share = (labels[parts == part] == c).mean()
            assert abs(share - (labels == c).mean()) < 0.02


def test_split_file(demo_source, tmp_path):
    data.build_manifest(str(demo_source), None, TARGETS, tmp_path / "m.json")
    write_split(tmp_path / "m.json", tmp_path / "split.parquet", method="seed-compatible", seed=2830)
    t = pq.read_table(tmp_path / "split.parquet")
    assert t.column("row_id").to_pylist() == list(range(96))
    assert (np.array(t.column("split").to_pylist(), dtype=object) == seed_compatible_split(96)).all()
    assert read_meta(tmp_path / "split.parquet")["counts"] == {"train": 76, "val": 10, "test": 10}
    write_split(tmp_path / "m.json", tmp_path / "s2.parquet", method="stratified", seed=0, stratify_by="style")
    assert read_meta(tmp_path / "s2.parquet")["stratify_by"] == "style"
