"""Adapter: build the report (tables and plots) from every fit into the rule's outputs."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.logs import to_log
from artprobe.report.build import build_report

with to_log(snakemake.log[0]):
    build_report(
        fits=snakemake.input.fits,
        fewshot=snakemake.input.fewshot,
        embeddings=dict(zip(snakemake.params.models, snakemake.input.embeddings)),
        failures=dict(zip(snakemake.params.models, snakemake.input.failures)),
        manifest=snakemake.input.manifest,
        split=snakemake.input.split,
        duplicates=snakemake.input.get("duplicates") or None,
        rows=snakemake.input.rows,
        thumbnails=snakemake.input.thumbnails,
        outputs=dict(zip(snakemake.params.ids, snakemake.output)),
        **snakemake.params.report,
    )
