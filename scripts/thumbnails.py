"""Adapter: choose the paintings the report shows and read their thumbnails from the shards."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.report.thumbnails import ThumbnailInputs, run_thumbnails
from artprobe.settings import ThumbnailSettings

inp = snakemake.input
inputs = ThumbnailInputs(
    fits=list(inp.fits),
    embeddings=dict(zip(snakemake.params.models, inp.embeddings)),
    shards=list(inp.shards),
    verdict=inp.verdict,
    mean_ranks=inp.mean_ranks,
    duplicates=inp.get("duplicates") or None,
)
with to_log(snakemake.log[0]):
    run_thumbnails(
        inputs,
        ThumbnailSettings(**snakemake.params.select),
        snakemake.output.rows,
        snakemake.output.thumbnails,
    )
