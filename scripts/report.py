"""Adapter: build the report folder (tables and plots) from every fit."""

from artprobe.logs import to_log
from artprobe.report import build_report

with to_log(snakemake.log[0]):
    build_report(
        **snakemake.params.report,
        manifest=snakemake.input.manifest,
        split=snakemake.input.split,
        out_dir=snakemake.params.out_dir,
    )
