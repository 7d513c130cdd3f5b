"""The thumbnail stage: the paintings the report shows, read once from the shards.

:func:`run_thumbnails` decides the rows (:mod:`.select`), writes them to ``rows.json`` and
reads only those rows from the image shards: per shard, only the row groups whose ``row_id``
range (from the footer's statistics) holds a selected row. Each painting becomes a small
JPEG (:data:`SIZES`: 128 px long side for the sheets, 64 px for the map) in one Parquet
table with the row's class ids, so the report job never opens a shard.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artprobe.duplicates import duplicate_rows
from artprobe.images import ImageDecodeError, decode_rgb
from artprobe.io import with_meta, write_json, write_parquet
from artprobe.report.load import load_fits
from artprobe.report.select import ProbeView, select_rows, thumbnail_rows

log = logging.getLogger(__name__)

#: long side in pixels of each thumbnail kind
SIZES = {"large": 128, "small": 64}
QUALITY = 82


def row_groups(pf: pq.ParquetFile, rows: np.ndarray) -> list[int]:
    """The row groups of ``pf`` that hold any of the sorted ``rows`` (by row_id min/max)."""
    col = pf.schema_arrow.get_field_index("row_id")
    hit = []
    for g in range(pf.num_row_groups):
        stats = pf.metadata.row_group(g).column(col).statistics
        if stats is None or not stats.has_min_max:  # no statistics: read the ids to know
            ids = pf.read_row_group(g, columns=["row_id"])["row_id"].to_numpy()
            lo, hi = (ids.min(), ids.max()) if len(ids) else (1, 0)
        else:
            lo, hi = stats.min, stats.max
        i = np.searchsorted(rows, lo)
        if i < len(rows) and rows[i] <= hi:
            hit.append(g)
    return hit


def read_shard_rows(shards: Iterable[str], rows: Iterable[int], columns: list[str]) -> pa.Table:
    """``row_id`` + ``columns`` of the given rows, reading only the row groups that hold them."""
    want = np.unique(np.asarray(list(rows), dtype=np.int64))
    parts, groups = [], 0
    for path in shards:
        pf = pq.ParquetFile(path)
        for g in row_groups(pf, want):
            t = pf.read_row_group(g, columns=["row_id", *columns])
            groups += 1
            parts.append(t.filter(pa.array(np.isin(t["row_id"].to_numpy(), want))))
    log.info("thumbnails: %d rows from %d row groups", len(want), groups)
    if not parts:
        return pa.table({"row_id": pa.array([], pa.int64())})
    return pa.concat_tables(parts)


def thumbnail(data: bytes, size: int) -> tuple[bytes, int, int]:
    """(JPEG bytes, width, height) of the image scaled to ``size`` px on its long side."""
    img = decode_rgb(data, min_short_side=size // 2)
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=QUALITY, optimize=True)
    return buf.getvalue(), img.width, img.height


def make_thumbnails(
    shards: Iterable[str], wanted: Mapping[str, list[int]], targets: list[str], out: str
) -> None:
    """Write ``out``: row_id, kind, jpeg, width, height and the class ids, one row per
    (row, kind) of ``wanted`` (``{kind: row ids}``); undecodable images are left out."""
    have = pq.read_schema(next(iter(shards))).names if shards else []
    cols = ["image", *[t for t in targets if t in have]]
    table = read_shard_rows(shards, {r for rows in wanted.values() for r in rows}, cols).to_pandas()
    table = table.set_index("row_id")
    rec = {k: [] for k in ("row_id", "kind", "jpeg", "width", "height", *cols[1:])}
    for kind, rows in wanted.items():
        for r in rows:
            if r not in table.index:
                continue
            try:
                jpeg, w, h = thumbnail(table.at[r, "image"], SIZES[kind])
            except ImageDecodeError as exc:
                log.warning("thumbnails: row %d not decodable (%s)", r, exc)
                continue
            for k, v in (
                ("row_id", r),
                ("kind", kind),
                ("jpeg", jpeg),
                ("width", w),
                ("height", h),
            ):
                rec[k].append(v)
            for t in cols[1:]:
                rec[t].append(int(table.at[r, t]))
    schema = {
        "row_id": pa.int64(),
        "kind": pa.string(),
        "jpeg": pa.binary(),
        "width": pa.int16(),
        "height": pa.int16(),
        **{t: pa.int16() for t in cols[1:]},
    }
    t = pa.table({k: pa.array(v, schema[k]) for k, v in rec.items()})
    write_parquet(with_meta(t, {"sizes": SIZES, "quality": QUALITY}), out)
    log.info(
        "thumbnails: %d written (%.1f KB of JPEG)", t.num_rows, sum(map(len, rec["jpeg"])) / 1024
    )


def run_thumbnails(
    *,
    fits: Iterable[str],
    embeddings: Mapping[str, str],
    shards: Iterable[str],
    targets: list[str],
    rows_out: str,
    thumbs_out: str,
    seed: int = 0,
    probe: Mapping | None = None,
    duplicates: str | None = None,
    map_target: str | None = None,
    settings: Mapping | None = None,
    n_boot: int | None = None,
) -> None:
    """The stage: select the rows (``rows_out``, JSON), then their thumbnails (``thumbs_out``).
    ``probe``: the kNN probe's ``center`` and config ``probe:``'s ``drop_labels`` and
    ``min_class_count``; ``duplicates``: the scan whose confirmed rows the probes leave out;
    ``n_boot``: the report's resamples (the pair shown is the verdict's)."""
    drop = None if not duplicates else duplicate_rows(duplicates)
    chosen = select_rows(
        load_fits(fits),
        embeddings,
        targets,
        seed=seed,
        probe=ProbeView(**(probe or {}), drop_rows=drop),
        map_target=map_target,
        settings=settings,
        n_boot=n_boot,
    )
    write_json(rows_out, chosen)
    make_thumbnails(list(shards), thumbnail_rows(chosen), targets, thumbs_out)
