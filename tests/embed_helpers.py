"""Shared by tests/test_embed.py and tests/test_merge.py: tiny shards, their embedding, and a
bit-for-bit comparison of embedding tables."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image
from synthetic import synthetic_jpeg

from artprobe.common.io import embedding_matrix, with_meta, write_parquet
from artprobe.settings import EmbedRuntime, ModelSpec
from artprobe.stages.embed import embed_shard

TINY = dict(timm_name="test_vit", pretrained=False, precision="fp32", progress=False, threads=1)
#: the tests' model and runtime where a test does not say (no schema defaults: test values)
TEST_MODEL = dict(
    timm_name="test_vit",
    pretrained=False,
    weights=None,
    weights_marker=None,
    features="pooled",
    decode="fast",
    precision="auto",
)
TEST_RUNTIME = dict(
    device="auto",
    batch_size=32,
    workers=0,
    compile=False,
    checkpoint_every=10,
    threads=1,
    progress=True,
)


def embed(shard, out, **settings) -> dict:
    """``embed_shard`` with a :class:`ModelSpec` and an :class:`EmbedRuntime` made of
    ``settings`` (the fields of either), :data:`TEST_MODEL` and :data:`TEST_RUNTIME` for the rest."""
    model = {k: settings.pop(k) for k in list(settings) if k in TEST_MODEL}
    runtime = {**TEST_RUNTIME, **settings}  # an unknown key fails in EmbedRuntime
    return embed_shard(shard, out, ModelSpec(**{**TEST_MODEL, **model}), EmbedRuntime(**runtime))


def write_shard(path: Path, images: list, *, start: int = 0, targets=("style", "genre")) -> Path:
    n = len(images)
    cols = {
        "row_id": pa.array(np.arange(start, start + n), pa.int64()),
        "image": pa.array(images, pa.binary()),
    }
    for k, t in enumerate(targets):
        cols[t] = pa.array((np.arange(n) + k) % 3, pa.int16())
    meta = {"classes": {t: [f"{t}-{i}" for i in range(3)] for t in targets}, "shard": path.stem}
    write_parquet(with_meta(pa.table(cols), meta), path)
    return path


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def small_jpegs(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [
        synthetic_jpeg(
            int(rng.integers(120, 260)), int(rng.integers(120, 260)), seed=seed * 1000 + i
        )
        for i in range(n)
    ]


def assert_same_embeddings(a: pa.Table, b: pa.Table) -> None:
    """Row by row, bit for bit."""
    assert a["row_id"].to_pylist() == b["row_id"].to_pylist()
    assert a["error"].to_pylist() == b["error"].to_pylist()
    ea, eb = embedding_matrix(a["embedding"]), embedding_matrix(b["embedding"])
    assert np.array_equal(ea.view(np.uint32), eb.view(np.uint32))


def embed_two_shards(d: Path) -> dict:
    """Two shards (one with bad images) embedded with test_vit, and a split over their rows."""
    imgs0 = small_jpegs(11, seed=1) + [b"not an image"]
    imgs1 = small_jpegs(8, seed=2)
    imgs1[3] = imgs1[3][:200]  # truncated
    shards = [
        write_shard(d / "shards" / "s0.parquet", imgs0, start=0),
        write_shard(d / "shards" / "s1.parquet", imgs1, start=12),
    ]
    outs, stats = [], []
    for s in shards:
        out = d / "embeddings" / "vit" / s.name
        stats.append(embed(s, out, batch_size=4, checkpoint_every=1, **TINY))
        outs.append(out)
    split = d / "split.parquet"
    ids = np.arange(20)
    write_parquet(
        pa.table(
            {
                "row_id": pa.array(ids, pa.int64()),
                "split": pa.array(np.array(["train", "val", "test", "train"])[ids % 4]),
            }
        ),
        split,
    )
    return {"dir": d, "shards": shards, "outs": outs, "stats": stats, "split": split}
