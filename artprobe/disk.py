"""Disk space before the work: fail before writing anything when a stage will not fit.

:func:`check_free_space` is the one check every stage asks before it writes (the shard
stage, the hub-cache downloads): it compares what the work needs with what the file
system holding the output has free, and raises :class:`NotEnoughSpaceError` naming both
figures and the path. (A disk that fills up mid-write anyway is ``artprobe.io``'s
``DiskFullError``: the partial file is removed and the message names the path.)
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from artprobe.io import DiskFullError


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


def check_free_space(path: str | os.PathLike, needed: int, what: str, *, reclaimable: int = 0) -> int:
    """Raise :class:`NotEnoughSpaceError` unless ``needed`` bytes fit where ``path`` is written.

    ``path`` is the file or folder the work writes (it need not exist yet: the nearest
    existing ancestor's file system is asked); ``what`` says what the work is, for the
    message (e.g. ``"the shards of huggan/wikiart"``); ``reclaimable`` counts bytes already
    taken on that file system by the same work's own partial files, which it will replace.
    Returns the free bytes found. Call it before writing anything.
    """
    free = free_bytes(path)
    if needed > free + reclaimable:
        extra = f" (+{human_bytes(reclaimable)} held by its own partial files)" if reclaimable else ""
        raise NotEnoughSpaceError(
            errno.ENOSPC,
            f"not enough disk space for {what}: it needs {human_bytes(needed)} "
            f"({needed:,} bytes) in {path}, and that file system has {human_bytes(free)} "
            f"({free:,} bytes) free{extra}. Nothing was written: free some space (or put "
            "the results on a larger disk) and rerun",
        )
    return free
