"""The thumbnail stage: the paintings the report shows, taken from the rows' previews.

:func:`run_thumbnails` decides the rows (:mod:`.select`), writes them to ``rows.json`` and
takes only those rows from the previews the image_hash job wrote per shard
(:mod:`artprobe.common.previews`: every row as a small JPEG, ``SIZES`` large for the sheets,
small for the map), into one Parquet table with the rows' class ids: neither this job nor
the report job opens a shard's images.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow.compute as pc
import pyarrow.parquet as pq

from artprobe.common.io import with_meta, write_json, write_parquet
from artprobe.common.previews import QUALITY, SIZES, take_previews
from artprobe.report.compare import read_verdict
from artprobe.report.load import load_fits
from artprobe.report.select import select_rows, thumbnail_rows
from artprobe.settings import ThumbnailSettings
from artprobe.stages.duplicates import duplicate_rows

log = logging.getLogger(__name__)


def make_thumbnails(
    shards: Iterable[str], wanted: Mapping[str, list[int]], targets: list[str], out: str
) -> None:
    """Write ``out``: row_id, kind, jpeg, width, height and the class ids, one row per
    (row, kind) of ``wanted`` (``{kind: row ids}``), taken from the image_hash job's previews
    (``shards``: one ``previews/<shard>.arrow`` per shard, :mod:`artprobe.common.previews`);
    undecodable images are left out."""
    t = take_previews(shards, wanted, targets)
    write_parquet(with_meta(t, {"sizes": SIZES, "quality": QUALITY}), out)
    jpeg = pc.sum(pc.binary_length(t["jpeg"])).as_py() or 0
    log.info("thumbnails: %d written (%.1f KB of JPEG)", t.num_rows, jpeg / 1024)


@dataclass(frozen=True)
class ThumbnailInputs:
    """The thumbnail job's input files (``shards``: the per-shard previews; ``verdict`` and
    ``mean_ranks``: the compare stage's tables)."""

    fits: list[str]
    embeddings: dict[str, str]
    shards: list[str]
    verdict: str
    mean_ranks: str
    duplicates: str | None = None


def run_thumbnails(
    inputs: ThumbnailInputs, settings: ThumbnailSettings, rows_out: str, thumbs_out: str
) -> None:
    """The stage: select the rows (``rows_out``, JSON), then their thumbnails (``thumbs_out``)."""
    drop = None if not inputs.duplicates else duplicate_rows(inputs.duplicates)
    ruling = read_verdict(inputs.verdict)
    ranks = pq.read_table(inputs.mean_ranks).to_pandas()
    chosen = select_rows(load_fits(inputs.fits), inputs.embeddings, ruling, ranks, settings, drop)
    write_json(rows_out, chosen)
    make_thumbnails(list(inputs.shards), thumbnail_rows(chosen), list(settings.targets), thumbs_out)
