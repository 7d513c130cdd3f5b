"""artprobe.stages.merge_embeddings: merge_embeddings joins shard embeddings with targets and split, and refuses
(writing nothing) when the shards don't add up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from embed_helpers import embed_two_shards, write_shard

from artprobe.common.io import embedding_matrix, read_meta, with_meta, write_parquet
from artprobe.embedding import embedding_table
from artprobe.stages.merge_embeddings import MergeError, merge_embeddings


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    return embed_two_shards(tmp_path_factory.mktemp("embedded"))


def test_merge_joins_targets_and_split(embedded, tmp_path):
    out, fail = tmp_path / "vit.parquet", tmp_path / "vit.failures.parquet"
    merge_embeddings(
        embedded["outs"],
        embedded["shards"],
        embedded["split"],
        out,
        fail,
        targets=["style", "genre"],
    )
    t = pq.read_table(out)
    assert t.column_names == ["row_id", "split", "style", "genre", "embedding"]
    ids = t["row_id"].to_pylist()
    assert ids == sorted(set(range(20)) - {11, 15})
    assert t["split"].to_pylist() == [["train", "val", "test", "train"][i % 4] for i in ids]
    assert t["style"].type == pa.int16() and t["style"].to_pylist() == [
        (i - (0 if i < 12 else 12)) % 3 for i in ids
    ]
    assert t["embedding"].null_count == 0
    # the merged embedding of a row equals the shard's
    e0 = embedding_matrix(pq.read_table(embedded["outs"][0])["embedding"])
    assert np.array_equal(embedding_matrix(t["embedding"])[:11], e0[:11])
    f = pq.read_table(fail)
    assert f.column_names == ["row_id", "reason"] and f["row_id"].to_pylist() == [11, 15]
    assert f["reason"][0].as_py().startswith("not an image") and f["reason"][1].as_py().startswith(
        "truncated"
    )
    meta = read_meta(out)
    assert meta["timm_name"] == "test_vit" and meta["classes"]["style"] == [
        "style-0",
        "style-1",
        "style-2",
    ]
    assert [s["shard"] for s in meta["shards"]] == ["s0.parquet", "s1.parquet"]
    assert all(s["img_per_s"] > 0 for s in meta["shards"])


def _fake_embeddings(path: Path, row_ids, dim: int = 8, **meta) -> Path:
    n = len(row_ids)
    emb = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    prov = {
        "timm_name": "m",
        "timm_version": "1",
        "pretrained": False,
        "weights_fingerprint": "abc",
        "data_config": {},
        "decode": "fast",
        "dtype": "float32",
        "embedding_dim": dim,
        **meta,
    }
    write_parquet(
        with_meta(embedding_table(row_ids, emb, np.ones(n, bool), [None] * n), prov), path
    )
    return path


@pytest.fixture
def merge_case(tmp_path):
    shards = [write_shard(tmp_path / f"s{i}.parquet", [b"x"] * 5, start=5 * i) for i in range(2)]
    split = tmp_path / "split.parquet"
    write_parquet(
        pa.table({"row_id": pa.array(np.arange(10), pa.int64()), "split": ["train"] * 10}), split
    )
    return tmp_path, shards, split


@pytest.mark.parametrize(
    "second, message",
    [
        (dict(row_ids=[5, 6, 7, 8]), r"1 row_id\(s\) of shard s1.parquet missing: 9"),
        (dict(row_ids=[5, 6, 7, 8, 9, 9]), r"embedded more than once: 9"),
        (dict(row_ids=[5, 6, 7, 8, 9, 42]), r"not in shard s1.parquet: 42"),
        (dict(row_ids=[5, 6, 7, 8, 9], dim=16), r"embedding_dim: 8 vs 16"),
        (dict(row_ids=[5, 6, 7, 8, 9], timm_name="other"), r"timm_name: 'm' vs 'other'"),
        (dict(row_ids=[5, 6, 7, 8, 9], weights_fingerprint="zzz"), r"weights_fingerprint"),
        (dict(row_ids=[5, 6, 7, 8, 9], decode="exact"), r"decode: 'fast' vs 'exact'"),
        (dict(row_ids=[5, 6, 7, 8, 9], features="cls"), r"features: 'pooled' vs 'cls'"),
    ],
    ids=["missing", "doubled", "unknown", "dimension", "model", "weights", "decode", "features"],
)
def test_merge_refuses_inconsistent_shards_and_writes_nothing(merge_case, second, message):
    d, shards, split = merge_case
    embs = [
        _fake_embeddings(d / "e0.parquet", list(range(5))),
        _fake_embeddings(d / "e1.parquet", **second),
    ]
    out, fail = d / "m.parquet", d / "m.failures.parquet"
    with pytest.raises(MergeError, match=message) as exc:
        merge_embeddings(embs, shards, split, out, fail, targets=["style"])
    assert "e1.parquet" in str(exc.value)
    assert not out.exists() and not fail.exists()


def test_merge_refuses_rows_without_split_and_unknown_targets(merge_case):
    d, shards, split = merge_case
    embs = [
        _fake_embeddings(d / "e0.parquet", list(range(5))),
        _fake_embeddings(d / "e1.parquet", list(range(5, 10))),
    ]
    write_parquet(
        pa.table({"row_id": pa.array(np.arange(9), pa.int64()), "split": ["train"] * 9}), split
    )
    with pytest.raises(MergeError, match=r"no split .*: 9"):
        merge_embeddings(embs, shards, split, d / "m.parquet", d / "f.parquet", targets=["style"])
    with pytest.raises(MergeError, match="no target column"):
        merge_embeddings(embs, shards, split, d / "m.parquet", d / "f.parquet", targets=["nope"])
    with pytest.raises(MergeError, match="2 embedding files for 1 shards"):
        merge_embeddings(
            embs, shards[:1], split, d / "m.parquet", d / "f.parquet", targets=["style"]
        )
    assert not (d / "m.parquet").exists() and not (d / "f.parquet").exists()


def test_merging_imports_neither_torch_nor_timm():
    """The merge job (and the workflow's parse) must not pay for torch's import."""
    import subprocess
    import sys

    code = "import sys, artprobe.stages.merge_embeddings; print(sorted({'torch', 'timm'} & set(sys.modules)))"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
