"""The ``shard`` rule: cut rows [start, stop) of a source into an image shard.

A shard (``shards/<shard>.parquet``) holds ``row_id``, ``image`` (the original encoded
bytes, never decoded) and one int16 class-id column per target, taken from the row index
(``rows.parquet``, the manifest job's second output and an input of the shard job: the job
reads no path the manifest stores). Shard ids and row ranges come from the manifest's row
count and ``shards.rows`` (:func:`shard_ranges`, also asked at parse time).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artprobe.common import disk
from artprobe.common.io import atomic_path, read_json, with_meta
from artprobe.sources import DataError, local_dir
from artprobe.sources.image_column import ImageColumnError, image_bytes
from artprobe.stages.manifest import source_files

log = logging.getLogger(__name__)


def shard_ranges(n_rows: int, rows_per_shard: int) -> dict[str, tuple[int, int]]:
    """Shard id (5 digits) -> [row_start, row_stop)."""
    if rows_per_shard < 1:
        raise DataError("shards.rows must be >= 1")
    n = max(1, math.ceil(n_rows / rows_per_shard))
    return {
        f"{i:05d}": (i * rows_per_shard, min(n_rows, (i + 1) * rows_per_shard)) for i in range(n)
    }


def _iter_rows(files: list[Path], manifest: dict, start: int, stop: int, columns: list[str]):
    """Yield tables holding rows [start, stop) of the source (``files``: one per manifest
    entry, :func:`artprobe.stages.manifest.source_files`), reading only overlapping row groups."""
    for path, f in zip(files, manifest["files"]):
        f_start, f_stop = f["row_start"], f["row_start"] + f["rows"]
        lo, hi = max(start, f_start), min(stop, f_stop)
        if lo >= hi:
            continue
        pf = pq.ParquetFile(path)
        if pf.metadata.num_rows != f["rows"]:
            raise DataError(
                f"{path}: has {pf.metadata.num_rows} rows, the manifest says "
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


def _index_rows(index_path: str | os.PathLike, start: int, stop: int, shard: str) -> pa.Table:
    """Rows [start, stop) of the row index (class ids per target)."""
    if not Path(index_path).exists():
        raise DataError(
            f"shard {shard}: no row index {index_path}; rerun the manifest job "
            "(snakemake --forcerun manifest)"
        )
    return pq.read_table(index_path).slice(start, stop - start)


def write_shard(
    manifest_path: str | os.PathLike,
    index_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    row_start: int,
    row_stop: int,
    shard: str,
) -> None:
    """Write rows [row_start, row_stop) as a shard: row_id, image (original bytes), targets.

    Class ids come from the row index ``index_path`` (-1 where the label is missing). Written
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
    ids = _index_rows(index_path, row_start, row_stop, shard)
    files = source_files(manifest, index_path)
    disk.check_shard_space(manifest, out_path)
    fields = [("row_id", pa.int64()), ("image", pa.large_binary())] + [
        (t, pa.int16()) for t in targets
    ]
    schema = with_meta(pa.schema(fields).empty_table(), meta).schema
    done = row_start
    with atomic_path(out_path, suffix=".parquet.tmp") as tmp:
        with pq.ParquetWriter(tmp, schema, compression="none") as writer:
            for piece in _iter_rows(files, manifest, row_start, row_stop, [image_column]):
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
    """A piece of a shard: row ids from ``first_row``, the original image bytes, class ids
    (image paths are relative to the source folder)."""
    try:
        data = image_bytes(images, manifest.get("image_kind", "struct"), local_dir(manifest))
    except ImageColumnError as err:
        raise DataError(f"shard {shard}: {err}") from None
    columns = {
        "row_id": pa.array(np.arange(first_row, first_row + len(data), dtype=np.int64)),
        "image": data,
    }
    for t in manifest["targets"]:
        columns[t] = labels.column(t).cast(pa.int16())
    return columns
