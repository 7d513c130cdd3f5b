"""Adapter: choose the paintings the report shows and read their thumbnails from the shards."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.logs import to_log
from artprobe.report.thumbnails import run_thumbnails

with to_log(snakemake.log[0]):
    run_thumbnails(
        fits=snakemake.input.fits,
        embeddings=dict(zip(snakemake.params.models, snakemake.input.embeddings)),
        shards=snakemake.input.shards,
        targets=snakemake.params.targets,
        rows_out=snakemake.output.rows,
        thumbs_out=snakemake.output.thumbnails,
        duplicates=snakemake.input.get("duplicates") or None,
        **snakemake.params.select,
    )
