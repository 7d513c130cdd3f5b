"""Adapter: rank every model on every dataset at once; the leaderboard's CSVs and page."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.report.overall import LeaderboardFiles, run_leaderboard
from artprobe.settings import CompareSettings

out = snakemake.output
with to_log(snakemake.log[0]):
    run_leaderboard(
        snakemake.input.fits,
        snakemake.input.verdicts,
        snakemake.params.datasets,
        CompareSettings(**snakemake.params.compare),
        LeaderboardFiles(out.table, out.mean_ranks, out.page),
    )
