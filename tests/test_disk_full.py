"""A full disk while shards and embeddings are written: a clear error naming the path, no
file that looks finished (and no temp file) left, and after freeing space the rerun gives
results identical to a run that never ran out of space.

The full disk is a small tmpfs mounted by the test (needs root, as in CI and here); the
tests skip, saying why, where mounting is not permitted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from artprobe.manifest import build_manifest
from artprobe.shard import write_shard
from artprobe.embed import embed_shard
from artprobe.io import DiskFullError, read_meta
from embed_helpers import TINY, assert_same_embeddings, small_jpegs
from embed_helpers import write_shard as write_tiny_shard
from test_imagefolder import NAMES, write_images


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs; yields (mount point, fill(leave_bytes) -> filler path)."""
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs to simulate a full disk: {res.stderr.strip() or res.returncode}")

    def fill(leave: int) -> Path:
        filler = mnt / "filler"
        free = shutil.disk_usage(mnt).free
        with open(filler, "wb") as fh:
            fh.write(b"\0" * max(free - leave, 0))
        return filler

    try:
        yield mnt, fill
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def no_partial_files(folder: Path) -> list[str]:
    """Files that are neither the filler nor finished: temp files (``.name.*.tmp``)."""
    return [p.name for p in folder.rglob("*") if p.is_file() and p.name.startswith(".") and "tmp" in p.name]


def test_shard_export_on_a_full_disk(tmp_path, small_disk):
    mnt, fill = small_disk
    src = tmp_path / "collection"
    write_images(src, [f"{c}/{n}" for c in ("a", "b") for n in NAMES])
    # big enough images that one shard does not fit in the space left
    for p in sorted(src.rglob("*.png")):
        p.write_bytes(p.read_bytes() + os.urandom(60_000))  # trailing bytes: still a PNG to PIL
    build_manifest(str(src), None, ["label"], tmp_path / "manifest.json")
    reference = tmp_path / "reference.parquet"
    write_shard(tmp_path / "manifest.json", reference, row_start=0, row_stop=12, shard="00000")
    out = mnt / "shards" / "00000.parquet"
    filler = fill(leave=64_000)
    with pytest.raises(DiskFullError, match=f"no space left on device while writing {out}"):
        write_shard(tmp_path / "manifest.json", out, row_start=0, row_stop=12, shard="00000")
    assert not out.exists() and no_partial_files(mnt) == []
    filler.unlink()  # space freed: the same call now completes, identical to the reference
    write_shard(tmp_path / "manifest.json", out, row_start=0, row_stop=12, shard="00000")
    assert pq.read_table(out).equals(pq.read_table(reference)) and read_meta(out) == read_meta(reference)


def test_embedding_on_a_full_disk_resumes_after_freeing_space(tmp_path, small_disk):
    mnt, fill = small_disk
    shard = write_tiny_shard(tmp_path / "shard.parquet", small_jpegs(24, seed=3))
    reference = tmp_path / "reference.parquet"
    embed_shard(shard, reference, batch_size=4, checkpoint_every=1, **TINY)
    per_batch = os.path.getsize(reference) // 6
    out = mnt / "embeddings" / "vit" / "00000.parquet"
    filler = fill(leave=3 * max(per_batch, 4096) + 16384)  # room for a few checkpoints only
    with pytest.raises(DiskFullError, match=f"no space left on device while writing {mnt}") as err:
        embed_shard(shard, out, batch_size=4, checkpoint_every=1, **TINY)
    assert "free some space and rerun" in str(err.value).lower()
    assert not out.exists() and no_partial_files(mnt) == []
    filler.unlink()
    stats = embed_shard(shard, out, batch_size=4, checkpoint_every=1, **TINY)
    assert_same_embeddings(pq.read_table(out), pq.read_table(reference))
    assert stats["n_resumed"] > 0  # the checkpoints saved before the disk filled were kept
    assert not (out.parent / ".checkpoints").exists()
