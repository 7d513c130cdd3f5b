"""The compare stage: the summary, the paired comparisons, the verdict and the leaderboard
(:mod:`.leaderboard`: ranks with 95 % rank intervals, mean ranks), computed once.

:func:`run_compare` reads every fit and writes the three tables as Parquet
(:class:`StandingsFiles`); the thumbnails stage reads the verdict (the galleries' pair is the
verdict's) and the report stage writes its CSVs and pages from all three
(:func:`read_standings`). The verdict's ``best_probe`` is a list (the probes that share the
best value), a list column in Parquet; only the CSV joins it (:func:`verdict.csv_view`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from artprobe.common.io import write_parquet
from artprobe.report import leaderboard, tables, verdict
from artprobe.report.load import load_fits
from artprobe.settings import CompareSettings

log = logging.getLogger(__name__)

#: the compare stage's tables, in :class:`Standings`' order
TABLES = ("summary", "comparisons", "verdict", "leaderboard", "mean_ranks")


@dataclass(frozen=True)
class StandingsFiles:
    """The compare stage's outputs (Parquet): the summary, comparisons and verdict tables."""

    summary: str
    comparisons: str
    verdict: str
    leaderboard: str
    mean_ranks: str


@dataclass(frozen=True)
class Standings:
    """The summary (:func:`tables.summary_table`), the paired comparisons
    (:func:`tables.comparison_table`), the verdict (:func:`verdict.verdict_table`) and the
    leaderboard's two tables (:func:`leaderboard.leaderboard`)."""

    summary: pd.DataFrame
    comparisons: pd.DataFrame
    verdict: pd.DataFrame
    leaderboard: pd.DataFrame
    mean_ranks: pd.DataFrame


def standings(fits: list[dict], models: list[str], settings: CompareSettings) -> Standings:
    """The three tables of the loaded ``fits``; ``models`` orders the comparisons' pairs (the
    fits' models first, in the fits' order, then any other of ``models``)."""
    models = list(dict.fromkeys([f["model"] for f in fits] + list(models)))
    n_boot, seed = settings.n_boot, settings.seed
    summary = tables.summary_table(fits, n_boot=n_boot, seed=seed)
    comparisons = tables.comparison_table(fits, models, n_boot=n_boot, seed=seed)
    ruling = verdict.verdict_table(summary, comparisons)
    board = leaderboard.leaderboard(fits, n_boot=n_boot, seed=seed, ci=0.95)
    return Standings(summary, comparisons, ruling, board.table, board.mean_ranks)


def write_standings(s: Standings, out: StandingsFiles) -> None:
    for name in TABLES:
        table = pa.Table.from_pandas(getattr(s, name), preserve_index=False)
        write_parquet(table, getattr(out, name))


def read_standings(files: StandingsFiles) -> Standings:
    """The tables as :func:`standings` made them (``best_probe`` cells back to lists)."""
    frames = {n: pq.read_table(getattr(files, n)).to_pandas() for n in TABLES if n != "verdict"}
    return Standings(**frames, verdict=read_verdict(files.verdict))


def read_verdict(path: str) -> pd.DataFrame:
    """The verdict table alone (the thumbnails stage's input)."""
    ruling = pq.read_table(path).to_pandas()
    ruling["best_probe"] = [list(p) for p in ruling["best_probe"]]
    return ruling


def run_compare(
    fits: Iterable[str], models: list[str], settings: CompareSettings, out: StandingsFiles
) -> None:
    """The stage: every fit file (``fits``: the rule's flat list) in, three tables out."""
    loaded = load_fits(fits)
    s = standings(loaded, models, settings)
    write_standings(s, out)
    log.info(
        "compare: %d fits, %d comparisons, %d verdict rows, %d leaderboard rows",
        len(loaded),
        len(s.comparisons),
        len(s.verdict),
        len(s.leaderboard),
    )
    for line in s.verdict["sentence"]:
        log.info("verdict: %s", line)
