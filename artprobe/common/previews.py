"""Previews: every row of a shard as small JPEGs at the sizes the report shows.

The ``image_hash`` job decodes every image of a shard once; from that decode it also writes
``previews/<shard>.arrow`` (:class:`PreviewWriter`): ``row_id``, the shard's class ids and,
per kind of :data:`SIZES`, the JPEG bytes, width and height (null where the image failed).
The file is Arrow IPC, uncompressed (JPEG is compressed already), so :func:`take_previews`
memory-maps it and touches only the ``row_id`` column and the rows it takes: the thumbnail
stage gathers the report's pictures from these files, never from the shards' images.

A preview is the decoded image (:func:`artprobe.common.images.decode_rgb`, JPEGs at the
smallest DCT scale keeping a short side of :data:`DECODE_SIDE`) scaled to the kind's size on
its long side by ``Image.thumbnail`` and saved as JPEG at :data:`QUALITY`.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable, Mapping

import numpy as np
import pyarrow as pa

from artprobe.common.io import atomic_path, with_meta

log = logging.getLogger(__name__)

#: long side in pixels of each kind: "large" for the painting sheets, "small" for the map
SIZES = {"large": 128, "small": 64}
QUALITY = 82
#: the short side a decode must keep for the large preview to be as sharp as its size
DECODE_SIDE = SIZES["large"] // 2


def encode(img, size: int) -> tuple[bytes, int, int]:
    """(JPEG bytes, width, height) of a decoded RGB image scaled to ``size`` px on its long
    side (``img`` is left as it was)."""
    small = img.copy()
    small.thumbnail((size, size))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=QUALITY, optimize=True)
    return buf.getvalue(), small.width, small.height


def _columns(kind: str) -> list[str]:
    return [kind, f"{kind}_width", f"{kind}_height"]


class PreviewWriter:
    """Collects the previews of one shard, image by image (:meth:`add`, None for an image
    that failed), and the shard's other columns batch by batch (:meth:`rows`)."""

    def __init__(self) -> None:
        self._cols: dict[str, list] = {c: [] for k in SIZES for c in _columns(k)}
        self._rows: list[pa.Table] = []

    def add(self, img) -> None:
        for kind, size in SIZES.items():
            jpeg, w, h = encode(img, size) if img is not None else (None, None, None)
            for col, v in zip(_columns(kind), (jpeg, w, h)):
                self._cols[col].append(v)

    def rows(self, table: pa.Table) -> None:
        """``row_id`` and the class ids of the images added since the last call."""
        self._rows.append(table)

    def write(self, path: str | os.PathLike, meta: Mapping) -> None:
        """The previews to ``path`` (Arrow IPC, atomically), ``meta`` beside sizes and quality."""
        rows = (
            pa.concat_tables(self._rows)
            if self._rows
            else pa.table({"row_id": pa.array([], pa.int64())})
        )
        cols = {
            c: pa.array(v, pa.binary() if c in SIZES else pa.int16()) for c, v in self._cols.items()
        }
        table = pa.Table.from_pydict({**{n: rows[n] for n in rows.column_names}, **cols})
        table = with_meta(table, {**meta, "sizes": SIZES, "quality": QUALITY})
        with atomic_path(path, suffix=".arrow.tmp") as tmp:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table)
        n = sum(v is not None for v in self._cols["large"])
        log.info("previews: %d of %d rows -> %s", n, table.num_rows, path)


def take_previews(
    paths: Iterable[str | os.PathLike], wanted: Mapping[str, Iterable[int]], targets: list[str]
) -> pa.Table:
    """``row_id, kind, jpeg, width, height`` and the class ids of those ``targets`` the
    previews carry, for the rows of ``wanted`` (``{kind: row ids}``): by kind in its order,
    rows ascending; rows without a preview (undecodable) are left out with a warning."""
    want = {k: np.unique(np.asarray(list(rows), dtype=np.int64)) for k, rows in wanted.items()}
    parts: dict[str, list[pa.Table]] = {k: [] for k in want}
    cols: list[str] = []
    for path in paths:
        with pa.memory_map(str(path)) as src:
            table = pa.ipc.open_file(src).read_all()
            cols = [t for t in targets if t in table.column_names]
            ids = table["row_id"].to_numpy()
            for kind, rows in want.items():
                pos = np.flatnonzero(np.isin(ids, rows))
                if len(pos):
                    picked = table.select(["row_id", *_columns(kind), *cols]).take(pos)
                    parts[kind].append(picked.rename_columns(["row_id", *_NAMES, *cols]))
    out = [_empty(cols)]
    for kind, tables in parts.items():
        if tables:
            out.append(_usable(pa.concat_tables(tables).sort_by("row_id"), kind))
    return pa.concat_tables(out).combine_chunks()


_NAMES = ["jpeg", "width", "height"]


def _usable(t: pa.Table, kind: str) -> pa.Table:
    """``t`` without its rows that have no preview, with its ``kind`` column."""
    for r in t.filter(t["jpeg"].is_null())["row_id"].to_pylist():
        log.warning("thumbnails: row %d not decodable (no preview)", r)
    t = t.filter(t["jpeg"].is_valid())
    return t.add_column(1, "kind", pa.array([kind] * t.num_rows, pa.string()))


def _empty(columns: list[str]) -> pa.Table:
    types = {"row_id": pa.int64(), "kind": pa.string(), "jpeg": pa.binary()}
    types.update({c: pa.int16() for c in ("width", "height", *columns)})
    return pa.table({c: pa.array([], t) for c, t in types.items()})
