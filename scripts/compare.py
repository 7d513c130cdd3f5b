"""Adapter: the summary, paired comparisons and verdict of every fit, computed once."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.report.compare import TABLES, StandingsFiles, run_compare
from artprobe.settings import CompareSettings

out = snakemake.output
with to_log(snakemake.log[0]):
    run_compare(
        snakemake.input.fits,
        snakemake.params.models,
        CompareSettings(**snakemake.params.compare),
        StandingsFiles(*(getattr(out, name) for name in TABLES)),
    )
