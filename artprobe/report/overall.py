"""The leaderboard stage: every dataset's fits ranked at once (:mod:`.leaderboard`), so one
page says, per dataset × target, how sure each model's rank is, and across them its mean rank.

Each dataset's test rows are resampled on their own (its draws do not change when another
dataset joins), the targets of one dataset share a draw, and the mean rank averages a
model's ranks over every dataset and target on each resample. The verdicts of the datasets'
compare stages are the page's summary, one sentence per dataset × target.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from artprobe.report import html, leaderboard
from artprobe.report.compare import read_verdict
from artprobe.report.load import load_fits
from artprobe.settings import CompareSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaderboardFiles:
    """The stage's outputs: the table and the mean ranks (CSV) and the page."""

    table: str
    mean_ranks: str
    page: str


def fits_by_dataset(paths: Iterable[str], datasets: list[str]) -> dict[str, list[str]]:
    """The rule's flat list of fit files, grouped by dataset: a fit file is
    ``results/<dataset>/classify/<model>/<target>/<probe>/<file>``."""
    grouped: dict[str, list[str]] = {d: [] for d in datasets}
    for p in paths:
        name = Path(p).parts[-6]
        if name not in grouped:
            raise ValueError(f"{p}: not a fit file of the datasets {datasets}")
        grouped[name].append(p)
    return grouped


def verdicts(paths: Iterable[str], datasets: list[str]) -> pd.DataFrame:
    """The datasets' verdict tables in one, each sentence led by its dataset's name."""
    frames = []
    for name, path in zip(datasets, paths, strict=True):
        v = read_verdict(path)
        v.insert(0, "dataset", name)
        v["sentence"] = [f"{name}: {s}" for s in v["sentence"]]
        frames.append(v)
    return pd.concat(frames, ignore_index=True)


def run_leaderboard(
    fits: Iterable[str],
    verdict_files: Iterable[str],
    datasets: list[str],
    settings: CompareSettings,
    out: LeaderboardFiles,
) -> None:
    """The stage: every dataset's fits and verdict in; the leaderboard's CSVs and page out."""
    loaded = {d: load_fits(files) for d, files in fits_by_dataset(fits, datasets).items()}
    board = leaderboard.leaderboard(loaded, n_boot=settings.n_boot, seed=settings.seed)
    html.write_csv(Path(out.table), board.table)
    html.write_csv(Path(out.mean_ranks), board.mean_ranks)
    sections = html.leaderboard_sections(
        board.table, board.mean_ranks, verdicts(verdict_files, datasets)
    )
    title = f"Leaderboard: {len(loaded)} dataset(s), {board.table['model'].nunique()} models"
    html.write_html(Path(out.page), title, sections)
    log.info(
        "leaderboard: %d datasets, %d ranked rows, %d mean ranks",
        len(loaded),
        len(board.table),
        len(board.mean_ranks),
    )
