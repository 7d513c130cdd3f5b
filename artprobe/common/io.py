"""Atomic file output and small Parquet/JSON helpers.

Every artefact the workflow writes goes through :func:`atomic_path`: the data
is written to a temporary sibling and renamed into place only once complete, so
a killed job never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import numpy as np
import pyarrow.parquet as pq

ARTPROBE_META_KEY = b"artprobe"
_UMASK = os.umask(0)
os.umask(_UMASK)


class DiskFullError(OSError):
    """No space left where an output is written; the message names the path."""


def _is_disk_full(err: OSError) -> bool:
    # pyarrow raises OSError without errno, its message carries strerror(ENOSPC)
    return err.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(err)


def _disk_full(path: Path, err: OSError) -> DiskFullError:
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    return DiskFullError(
        errno.ENOSPC,
        f"no space left on device while writing {path} ({free} in {path.parent} now, the "
        "partial file removed). "
        "Free some space and rerun: finished files are not redone",
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched; a full
    disk (ENOSPC, EDQUOT) is re-raised as :class:`DiskFullError` naming ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent
        )
        os.close(fd)
        tmp = Path(name)
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs are for sharing
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)  # first: the free space reported is then what is free
        if _is_disk_full(err) and not isinstance(err, DiskFullError):
            raise _disk_full(path, err) from err
        raise
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def with_meta(table: pa.Table, meta: dict) -> pa.Table:
    """Return ``table`` with ``meta`` stored as JSON under the ``artprobe`` schema key."""
    existing = dict(table.schema.metadata or {})
    existing[ARTPROBE_META_KEY] = json.dumps(meta, default=_json_default).encode()
    return table.replace_schema_metadata(existing)


def read_meta(path_or_schema: str | os.PathLike | pa.Schema) -> dict:
    """The ``artprobe`` metadata dict of a Parquet file (or schema); {} if absent."""
    schema = (
        path_or_schema if isinstance(path_or_schema, pa.Schema) else pq.read_schema(path_or_schema)
    )
    raw = (schema.metadata or {}).get(ARTPROBE_META_KEY)
    return json.loads(raw) if raw else {}


def write_parquet(table: pa.Table, path: str | os.PathLike, **kwargs: Any) -> None:
    """Write ``table`` to ``path`` atomically (zstd-compressed unless told otherwise)."""
    kwargs.setdefault("compression", "zstd")
    with atomic_path(path, suffix=".parquet.tmp") as tmp:
        pq.write_table(table, tmp, **kwargs)


def json_safe(obj: Any) -> Any:
    """``obj`` as plain JSON types (numpy scalars and arrays converted, anything else str)."""

    def default(o: Any) -> Any:
        try:
            return _json_default(o)
        except TypeError:
            return str(o)

    return json.loads(json.dumps(obj, default=default))


def embedding_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A ``fixed_size_list<float32>`` column as a C-contiguous float32 ``[n, D]`` matrix.

    Null rows (images that failed to decode) become rows of NaN. Every stage that reads
    embeddings (merge, classify, report) goes through this one function.
    """
    import numpy as np

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_fixed_size_list(arr.type):
        raise ValueError(f"'embedding' has type {arr.type}; expected fixed_size_list<float32>")
    dim = arr.type.list_size
    if arr.null_count == 0:
        flat = arr.flatten().to_numpy(zero_copy_only=False)
        return np.ascontiguousarray(flat.reshape(-1, dim), dtype=np.float32)
    out = np.full((len(arr), dim), np.nan, dtype=np.float32)
    valid = arr.is_valid()
    out[valid.to_numpy(zero_copy_only=False)] = (
        arr.filter(valid).flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    )
    return out
