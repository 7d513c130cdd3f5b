"""Adapter: write one image shard (row_id, original image bytes, target labels)."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.stages.shard import write_shard

with to_log(snakemake.log[0]):
    write_shard(
        snakemake.input[0],
        snakemake.input.index,
        snakemake.output[0],
        shard=snakemake.wildcards.shard,
        **snakemake.params.rows,
    )
