"""The ``shard`` rule: cut rows [start, stop) of a source into an image shard.

A shard (``shards/<shard>.parquet``) holds ``row_id``, ``image`` (the original encoded
bytes, never decoded) and one int16 class-id column per target, taken from the manifest's
row index (``artprobe.manifest``). Shard ids and row ranges come from the manifest's row
count and ``shards.rows`` (:func:`shard_ranges`, also asked at parse time).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artprobe.io import atomic_path, read_json, with_meta
from artprobe.sources import IMAGEFOLDER, DataError, local_dir
from artprobe.sources.image_column import ImageColumnError, image_bytes

log = logging.getLogger(__name__)


def shard_ranges(n_rows: int, rows_per_shard: int) -> dict[str, tuple[int, int]]:
    """Shard id (5 digits) -> [row_start, row_stop)."""
    if rows_per_shard < 1:
        raise DataError("shards.rows must be >= 1")
    n = max(1, math.ceil(n_rows / rows_per_shard))
    return {
        f"{i:05d}": (i * rows_per_shard, min(n_rows, (i + 1) * rows_per_shard)) for i in range(n)
    }


def _iter_rows(manifest: dict, start: int, stop: int, columns: list[str]) -> Iterable[pa.Table]:
    """Yield tables holding rows [start, stop) of the source, reading only overlapping row groups."""
    folder = local_dir(manifest)
    for f in manifest["files"]:
        f_start, f_stop = f["row_start"], f["row_start"] + f["rows"]
        lo, hi = max(start, f_start), min(stop, f_stop)
        if lo >= hi:
            continue
        pf = pq.ParquetFile(folder / f["name"])
        if pf.metadata.num_rows != f["rows"]:
            raise DataError(
                f"{folder / f['name']}: has {pf.metadata.num_rows} rows, the manifest says "
                f"{f['rows']}; the source changed since the manifest was built"
            )
        offset = f_start
        for rg in range(pf.num_row_groups):
            n = pf.metadata.row_group(rg).num_rows
            g_lo, g_hi = max(lo, offset), min(hi, offset + n)
            if g_lo < g_hi:
                t = pf.read_row_group(rg, columns=columns)
                yield t.slice(g_lo - offset, g_hi - g_lo)
            offset += n


def _index_rows(manifest: dict, start: int, stop: int, shard: str) -> pa.Table:
    """Rows [start, stop) of the manifest's row index (class ids per target)."""
    path = manifest.get("index")
    if not path or not Path(path).exists():
        raise DataError(
            f"shard {shard}: the manifest has no row index ({path or 'no index field'}); it was "
            "built by an older artprobe or the file was removed: rerun the manifest job "
            "(snakemake --forcerun manifest)"
        )
    return pq.read_table(path).slice(start, stop - start)


def write_shard(
    manifest_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    row_start: int,
    row_stop: int,
    shard: str,
) -> None:
    """Write rows [row_start, row_stop) as a shard: row_id, image (original bytes), targets.

    Class ids come from the manifest's row index (-1 where the label is missing). Written
    piece by piece (one source row group at a time, in row groups of 256 rows that the
    embedder streams), so memory does not grow with the shard's size.
    """
    manifest = read_json(manifest_path)
    targets = manifest["targets"]
    meta = {
        "shard": shard,
        "row_start": row_start,
        "row_stop": row_stop,
        "source": manifest["source"],
        "revision": manifest["revision"],
        "targets": targets,
        "classes": manifest["classes"],
    }
    image_column = manifest.get("image_column", "image")
    ids = _index_rows(manifest, row_start, row_stop, shard)
    fields = [("row_id", pa.int64()), ("image", pa.large_binary())] + [
        (t, pa.int16()) for t in targets
    ]
    schema = with_meta(pa.schema(fields).empty_table(), meta).schema
    done = row_start
    with atomic_path(out_path, suffix=".parquet.tmp") as tmp:
        with pq.ParquetWriter(tmp, schema, compression="none") as writer:
            for piece in _iter_rows(manifest, row_start, row_stop, [image_column]):
                labels = ids.slice(done - row_start, piece.num_rows)
                columns = _shard_columns(piece.column(image_column), labels, done, manifest, shard)
                writer.write_table(pa.table(columns, schema=schema), row_group_size=256)
                done += piece.num_rows
            if done != row_stop:
                raise DataError(
                    f"shard {shard}: got {done - row_start} rows, expected {row_stop - row_start}"
                )
    log.info("shard %s: rows [%d, %d) written to %s", shard, row_start, row_stop, out_path)


def _shard_columns(
    images: pa.ChunkedArray, labels: pa.Table, first_row: int, manifest: dict, shard: str
) -> dict:
    """A piece of a shard: row ids from ``first_row``, the original image bytes, class ids."""
    root = (
        Path(manifest["local_dir"])
        if manifest.get("layout") == IMAGEFOLDER
        else local_dir(manifest)
    )
    try:
        data = image_bytes(images, manifest.get("image_kind", "struct"), root)
    except ImageColumnError as err:
        raise DataError(f"shard {shard}: {err}") from None
    columns = {
        "row_id": pa.array(np.arange(first_row, first_row + len(data), dtype=np.int64)),
        "image": data,
    }
    for t in manifest["targets"]:
        columns[t] = labels.column(t).cast(pa.int16())
    return columns
