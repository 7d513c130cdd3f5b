"""artprobe.stages.shard: shards cover the source exactly (row ids, original bytes, class ids)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import source_of

from artprobe.common.io import read_meta
from artprobe.stages import shard as stage
from artprobe.stages.generate_demo import CLASSES
from artprobe.stages.manifest import build_manifest

TARGETS = ["genre", "style", "artist"]


def test_shard_ranges():
    r = stage.shard_ranges(81444, 2048)
    assert len(r) == 40 and r["00000"] == (0, 2048) and r["00039"] == (79872, 81444)
    assert stage.shard_ranges(5, 100) == {"00000": (0, 5)}


def test_shards_cover_source_exactly(demo_source, tmp_path):
    """Shards across file boundaries: row ids in order, original bytes, labels, class names."""
    build_manifest(source_of(demo_source, TARGETS), tmp_path / "m.json")
    source = pa.concat_tables(pq.read_table(p) for p in sorted(demo_source.glob("data/*.parquet")))
    parts = []
    for shard, (lo, hi) in stage.shard_ranges(96, 40).items():
        out = tmp_path / f"{shard}.parquet"
        stage.write_shard(
            tmp_path / "m.json",
            tmp_path / "rows.parquet",
            out,
            row_start=lo,
            row_stop=hi,
            shard=shard,
        )
        meta = read_meta(out)
        assert meta["classes"]["style"] == CLASSES["style"] and meta["shard"] == shard
        md = pq.ParquetFile(out).metadata  # written piece by piece: the embedder streams row groups
        assert (
            md.num_rows == hi - lo
            and max(md.row_group(g).num_rows for g in range(md.num_row_groups)) <= 256
        )
        parts.append(pq.read_table(out))
    shards = pa.concat_tables(parts)
    assert shards.column("row_id").to_pylist() == list(range(96))
    assert shards.column("image").to_pylist() == [
        d["bytes"] for d in source.column("image").to_pylist()
    ]
    for t in TARGETS:
        assert shards.column(t).to_pylist() == source.column(t).to_pylist()
        assert shards.schema.field(t).type == pa.int16()


def test_shards_of_a_moved_results_folder(demo_source, tmp_path):
    """The shard job reads the row index it is given (its rule's input), not a path stored in
    the manifest: a results folder moved after the manifest job still shards."""
    before, after = tmp_path / "before", tmp_path / "after"
    m = build_manifest(source_of(demo_source, TARGETS), before / "m.json")
    assert str(before) not in json.dumps(m)  # no path into the results folder
    before.rename(after)
    stage.write_shard(
        after / "m.json",
        after / "rows.parquet",
        after / "s.parquet",
        row_start=0,
        row_stop=8,
        shard="00000",
    )
    assert pq.read_table(after / "s.parquet").column("row_id").to_pylist() == list(range(8))
