"""Data stage: manifest, shards."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from artprobe import data
from artprobe.demo import CLASSES, demo_rows
from artprobe.io import read_json, read_meta

TARGETS = ["genre", "style", "artist"]


def test_manifest(demo_source, tmp_path):
    m = data.build_manifest(str(demo_source), None, TARGETS, tmp_path / "manifest.json")
    assert m == read_json(tmp_path / "manifest.json")
    assert m["n_rows"] == 96
    assert [f["name"] for f in m["files"]] == [f"data/train-0000{i}-of-00003.parquet" for i in range(3)]
    assert [f["row_start"] for f in m["files"]] == [0, 32, 64]
    assert m["classes"] == {t: CLASSES[t] for t in TARGETS}
    assert m["revision"] == "local"


def test_manifest_errors_name_the_problem(demo_source, tmp_path):
    with pytest.raises(data.DataError, match="missing column.*'period'"):
        data.build_manifest(str(demo_source), None, ["genre", "period"], tmp_path / "m.json")
    with pytest.raises(data.DataError, match="no Parquet files"):
        data.build_manifest(str(tmp_path), None, TARGETS, tmp_path / "m.json")
    with pytest.raises(data.DataError, match="no such folder"):
        data.build_manifest(str(tmp_path / "nowhere"), None, TARGETS, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_source_kinds():
    assert not data.is_local_source("huggan/wikiart")
    assert data.is_local_source("./results/demo/source")
    assert data.is_local_source("/data/wikiart")


def test_class_names_from_dataset_card(tmp_path):
    (tmp_path / "README.md").write_text(
        "---\ndataset_info:\n  features:\n  - name: image\n    dtype: image\n"
        "  - name: genre\n    dtype:\n      class_label:\n        names:\n"
        "          '0': portrait\n          '1': landscape\n---\n# card\n"
    )
    assert data.class_names_from_readme(tmp_path) == {"genre": ["portrait", "landscape"]}


def test_shard_ranges():
    r = data.shard_ranges(81444, 2048)
    assert len(r) == 40 and r["00000"] == (0, 2048) and r["00039"] == (79872, 81444)
    assert data.shard_ranges(5, 100) == {"00000": (0, 5)}


def test_shards_cover_source_exactly(demo_source, tmp_path):
    """Shards across file boundaries: row ids in order, original bytes, labels, class names."""
    data.build_manifest(str(demo_source), None, TARGETS, tmp_path / "m.json")
    source = pa.concat_tables(pq.read_table(p) for p in sorted(demo_source.glob("data/*.parquet")))
    parts = []
    for shard, (lo, hi) in data.shard_ranges(96, 40).items():
        out = tmp_path / f"{shard}.parquet"
        data.write_shard(tmp_path / "m.json", out, row_start=lo, row_stop=hi, shard=shard)
        meta = read_meta(out)
        assert meta["classes"]["style"] == CLASSES["style"] and meta["shard"] == shard
        md = pq.ParquetFile(out).metadata  # written piece by piece: the embedder streams row groups
        assert md.num_rows == hi - lo and max(md.row_group(g).num_rows for g in range(md.num_row_groups)) <= 256
        parts.append(pq.read_table(out))
    shards = pa.concat_tables(parts)
    assert shards.column("row_id").to_pylist() == list(range(96))
    assert shards.column("image").to_pylist() == [d["bytes"] for d in source.column("image").to_pylist()]
    for t in TARGETS:
        assert shards.column(t).to_pylist() == source.column(t).to_pylist()
        assert shards.schema.field(t).type == pa.int16()


def test_shard_rejects_bad_labels(tmp_path):
    import datasets

    rows = demo_rows(8, seed=0, n_broken=0)
    rows["genre"][3] = 42  # outside the 11 genres
    feats = datasets.Features({"image": datasets.Image(), "genre": datasets.Value("int64")})
    folder = tmp_path / "src"
    (folder / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({"image": rows["image"], "genre": rows["genre"]}, features=feats).to_parquet(
        str(folder / "data" / "train-00000-of-00001.parquet")
    )
    (folder / "README.md").write_text(
        "---\ndataset_info:\n  features:\n  - name: genre\n    dtype:\n      class_label:\n"
        "        names:\n" + "".join(f"          '{i}': g{i}\n" for i in range(11)) + "---\n"
    )
    # caught by the manifest job, before any shard or embedding
    with pytest.raises(data.DataError, match=r"'genre'.*label id\(s\) \[42\].*row_id\(s\) \[3\]"):
        data.build_manifest(str(folder), None, ["genre"], tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()

