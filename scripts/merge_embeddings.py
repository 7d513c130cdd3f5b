"""Adapter: merge one model's shard embeddings with labels and split; refuse gaps."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.stages.merge_embeddings import merge_embeddings

with to_log(snakemake.log[0]):
    merge_embeddings(
        list(snakemake.input.embeddings),
        list(snakemake.input.shards),
        snakemake.input.split,
        snakemake.output.embeddings,
        snakemake.output.failures,
        targets=snakemake.params.targets,
    )
