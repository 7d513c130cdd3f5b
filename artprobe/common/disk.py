"""Disk space before the work: fail before writing anything when a stage will not fit.

:func:`check_free_space` is the one check every stage asks before it writes (the shard
stage, the hub-cache downloads): it compares what the work needs with what the file
system holding the output has free, and raises :class:`NotEnoughSpaceError` naming both
figures and the path. :func:`check_shard_space` is the shard stage's use of it: the
source's bytes (per file, from the manifest) not yet written as shards. (A disk that
fills up mid-write anyway is ``artprobe.common.io``'s ``DiskFullError``: the partial file is
removed and the message names the path.)
"""

from __future__ import annotations

import errno
import logging
import math
import os
import shutil
from pathlib import Path

from artprobe.common.io import DiskFullError

log = logging.getLogger(__name__)


class NotEnoughSpaceError(DiskFullError):
    """The file system holding an output has less free space than the work will need."""


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``; binary units, one decimal."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def existing_folder(path: str | os.PathLike) -> Path:
    """``path`` or its nearest existing ancestor: the folder whose file system will hold it."""
    folder = Path(os.path.abspath(path))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes (for this user) on the file system that holds (or will hold) ``path``."""
    return shutil.disk_usage(existing_folder(path)).free


def check_free_space(
    path: str | os.PathLike, needed: int, what: str, *, reclaimable: int = 0
) -> int:
    """Raise :class:`NotEnoughSpaceError` unless ``needed`` bytes fit where ``path`` is written.

    ``path`` is the file or folder the work writes (it need not exist yet: the nearest
    existing ancestor's file system is asked); ``what`` says what the work is, for the
    message (e.g. ``"the shards of huggan/wikiart"``); ``reclaimable`` counts bytes already
    taken on that file system by the same work's own partial files, which it will replace.
    Returns the free bytes found. Call it before writing anything.
    """
    free = free_bytes(path)
    if needed > free + reclaimable:
        extra = (
            f" (+{human_bytes(reclaimable)} held by its own partial files)" if reclaimable else ""
        )
        raise NotEnoughSpaceError(
            errno.ENOSPC,
            f"not enough disk space for {what}: it needs {human_bytes(needed)} "
            f"({needed:,} bytes) in {path}, and that file system has {human_bytes(free)} "
            f"({free:,} bytes) free{extra}. Nothing was written: free some space (or put "
            "the results on a larger disk) and rerun",
        )
    return free


# --------------------------------------------------------------------------- the shard stage


def source_bytes(manifest: dict, start: int = 0, stop: int | None = None) -> int | None:
    """Bytes of the source's rows [start, stop), each file's ``bytes`` (recorded by the
    manifest job) shared evenly among its rows; None for a manifest without byte sizes."""
    stop = manifest["n_rows"] if stop is None else stop
    total = 0.0
    for f in manifest["files"]:
        if "bytes" not in f:
            return None
        lo, hi = max(start, f["row_start"]), min(stop, f["row_start"] + f["rows"])
        if hi > lo:
            total += f["bytes"] * (hi - lo) / max(f["rows"], 1)
    return int(math.ceil(total))


def _finished_rows(folder: Path, manifest: dict) -> list[tuple[int, int]]:
    """[row_start, row_stop) of the finished shards of this source in ``folder``."""
    from artprobe.common.io import read_meta

    done = []
    for path in folder.glob("[!.]*.parquet"):
        try:
            meta = read_meta(path)
        except Exception:  # not a shard, or unreadable: counts as not done
            continue
        if (meta.get("source"), meta.get("revision")) == (manifest["source"], manifest["revision"]):
            done.append((int(meta["row_start"]), int(meta["row_stop"])))
    return done


def check_shard_space(manifest: dict, out_path: str | os.PathLike) -> None:
    """Before a shard job writes: the source rows that no finished shard in ``out_path``'s
    folder holds yet (this shard's and its siblings') must fit in that file system's free
    space, counting the space the siblings' partial files already hold. So the first shard
    job of a stage that cannot fit fails at once, naming both figures and the folder."""
    folder = Path(out_path).parent
    need = source_bytes(manifest)
    if need is None:
        log.warning(
            "disk check skipped: the manifest has no byte sizes (an older artprobe built it)"
        )
        return
    done = _finished_rows(folder, manifest) if folder.is_dir() else []
    need -= sum(source_bytes(manifest, lo, hi) or 0 for lo, hi in done)
    partial = sum(p.stat().st_size for p in folder.glob(".*.tmp")) if folder.is_dir() else 0
    what = f"the {manifest['n_rows']:,}-row shards of {manifest['source']} ({len(done)} finished)"
    free = check_free_space(folder, need, what, reclaimable=partial)
    log.info(
        "disk: %s need %s more in %s; %s free", what, human_bytes(need), folder, human_bytes(free)
    )
