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
from conftest import source_of
from embed_helpers import TINY, assert_same_embeddings, embed, small_jpegs
from embed_helpers import write_shard as write_tiny_shard
from test_imagefolder import NAMES, _parquet_source, write_images

from artprobe.common import disk
from artprobe.common.io import DiskFullError, read_meta
from artprobe.stages.manifest import build_manifest
from artprobe.stages.shard import write_shard


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs; yields (mount point, fill(leave_bytes) -> filler path)."""
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if res.returncode:
        pytest.skip(
            f"cannot mount a tmpfs to simulate a full disk: {res.stderr.strip() or res.returncode}"
        )

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
    return [
        p.name
        for p in folder.rglob("*")
        if p.is_file() and p.name.startswith(".") and "tmp" in p.name
    ]


def first_shard(folder: Path, out: Path, rows: int) -> None:
    """Shard 00000 (rows [0, rows)) of the manifest and row index in ``folder``."""
    write_shard(
        folder / "manifest.json",
        folder / "rows.parquet",
        out,
        row_start=0,
        row_stop=rows,
        shard="00000",
    )


def test_shard_export_on_a_full_disk(tmp_path, small_disk, monkeypatch):
    """The disk fills while the shard is written (the check before it passed: another
    process wrote since), so the write itself runs out of space."""
    monkeypatch.setattr(disk, "check_shard_space", lambda *a, **k: None)
    mnt, fill = small_disk
    src = tmp_path / "collection"
    write_images(src, [f"{c}/{n}" for c in ("a", "b") for n in NAMES])
    # big enough images that one shard does not fit in the space left
    for p in sorted(src.rglob("*.png")):
        p.write_bytes(p.read_bytes() + os.urandom(60_000))  # trailing bytes: still a PNG to PIL
    build_manifest(source_of(src, ["label"]), tmp_path / "manifest.json")
    reference = tmp_path / "reference.parquet"
    first_shard(tmp_path, reference, 12)
    out = mnt / "shards" / "00000.parquet"
    filler = fill(leave=64_000)
    with pytest.raises(DiskFullError, match=f"no space left on device while writing {out}"):
        first_shard(tmp_path, out, 12)
    assert not out.exists() and no_partial_files(mnt) == []
    filler.unlink()  # space freed: the same call now completes, identical to the reference
    first_shard(tmp_path, out, 12)
    assert pq.read_table(out).equals(pq.read_table(reference)) and read_meta(out) == read_meta(
        reference
    )


def test_embedding_on_a_full_disk_resumes_after_freeing_space(tmp_path, small_disk):
    mnt, fill = small_disk
    shard = write_tiny_shard(tmp_path / "shard.parquet", small_jpegs(24, seed=3))
    reference = tmp_path / "reference.parquet"
    embed(shard, reference, batch_size=4, checkpoint_every=1, **TINY)
    per_batch = os.path.getsize(reference) // 6
    out = mnt / "embeddings" / "vit" / "00000.parquet"
    filler = fill(leave=3 * max(per_batch, 4096) + 16384)  # room for a few checkpoints only
    with pytest.raises(DiskFullError, match=f"no space left on device while writing {mnt}") as err:
        embed(shard, out, batch_size=4, checkpoint_every=1, **TINY)
    assert "free some space and rerun" in str(err.value).lower()
    assert not out.exists() and no_partial_files(mnt) == []
    filler.unlink()
    stats = embed(shard, out, batch_size=4, checkpoint_every=1, **TINY)
    assert_same_embeddings(pq.read_table(out), pq.read_table(reference))
    assert stats["n_resumed"] > 0  # the checkpoints saved before the disk filled were kept
    assert not (out.parent / ".checkpoints").exists()


def big_image_folder(tmp_path: Path) -> Path:
    """12 images, the PNGs padded to ~60 kB (trailing bytes: still PNGs to PIL): ~240 kB."""
    src = tmp_path / "collection"
    write_images(src, [f"{c}/{n}" for c in ("a", "b") for n in NAMES])
    for p in sorted(src.rglob("*.png")):
        p.write_bytes(p.read_bytes() + os.urandom(60_000))
    return src


def test_shard_stage_too_big_for_the_disk_fails_before_writing(tmp_path, small_disk):
    """A real small disk: the shard job says what it needs and what is free, and names the
    folder, before it writes a byte; with the space there, the same call completes."""
    mnt, fill = small_disk
    src = big_image_folder(tmp_path)
    manifest = build_manifest(source_of(src, ["label"]), tmp_path / "manifest.json")
    sizes = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    assert manifest["files"][0]["bytes"] == sizes  # the manifest knows the source's bytes
    out = mnt / "shards" / "00000.parquet"
    filler = fill(leave=sizes // 2)
    free = shutil.disk_usage(mnt).free
    with pytest.raises(disk.NotEnoughSpaceError) as err:
        first_shard(tmp_path, out, 6)
    message = str(err.value)
    assert f"needs {disk.human_bytes(sizes)} ({sizes:,} bytes) in {out.parent}" in message
    assert (
        f"has {disk.human_bytes(free)} ({free:,} bytes) free" in message
        and "Nothing was written" in message
    )
    assert isinstance(err.value, DiskFullError)  # what callers already catch
    assert not out.exists() and no_partial_files(mnt) == []
    filler.unlink()
    first_shard(tmp_path, out, 6)
    assert pq.read_table(out).num_rows == 6


def test_shard_space_counts_what_is_left_to_write(tmp_path, monkeypatch):
    """Finished shards are not needed again; siblings' partial files give their space back."""
    from collections import namedtuple

    src = big_image_folder(tmp_path)
    manifest = build_manifest(source_of(src, ["label"]), tmp_path / "manifest.json")
    total = manifest["files"][0]["bytes"]
    shards = tmp_path / "shards"
    first_shard(tmp_path, shards / "00000.parquet", 6)
    left = total - disk.source_bytes(manifest, 0, 6)
    assert 0 < left < total and disk.source_bytes(manifest, 6, 12) == left
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 0, left))
    disk.check_shard_space(manifest, shards / "00001.parquet")  # exactly enough: fine
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 0, left - 1000))
    with pytest.raises(
        disk.NotEnoughSpaceError,
        match=f"needs .*{left:,} bytes.* in {shards}.*{left - 1000:,} bytes",
    ):
        disk.check_shard_space(manifest, shards / "00001.parquet")
    (shards / ".00001.parquet.abc.parquet.tmp").write_bytes(
        b"\0" * 1000
    )  # a sibling's partial file
    disk.check_shard_space(manifest, shards / "00001.parquet")


def test_check_free_space_names_both_figures_and_the_path(tmp_path, monkeypatch):
    from collections import namedtuple

    asked = []
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: asked.append(p) or usage(0, 0, 5 * 2**30))
    target = tmp_path / "not" / "yet" / "there"
    assert disk.check_free_space(target, 5 * 2**30, "the download") == 5 * 2**30
    assert asked[-1] == tmp_path  # the nearest existing folder's file system
    expected = (
        rf"the download: it needs 6.0 GiB \(6,442,450,944 bytes\) in {target}, "
        r"and that file system has 5.0 GiB \(5,368,709,120 bytes\) free"
    )
    with pytest.raises(disk.NotEnoughSpaceError, match=expected):
        disk.check_free_space(target, 6 * 2**30, "the download")


def test_manifest_bytes_of_a_parquet_source_with_image_paths(tmp_path):
    """Where the image column holds paths, the shards will hold the files: their bytes count."""
    import pyarrow as pa

    files = write_images(tmp_path / "pq", [f"images/{n}" for n in NAMES[:4]])
    src = _parquet_source(tmp_path, pa.array(list(files)), {"genre": pa.array([3, 7, 3, 7])})
    m = build_manifest(source_of(src, ["genre"]), tmp_path / "manifest.json")
    parquet = (src / "data" / "train-00000-of-00001.parquet").stat().st_size
    assert m["files"][0]["bytes"] == parquet + sum(len(b) for b in files.values())
    assert disk.source_bytes(m, 1, 3) == -(
        -m["files"][0]["bytes"] * 2 // 4
    )  # shared evenly, rounded up
