"""Adapter: the perceptual hash of every image of one shard (for the near-duplicate scan)."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.image_hash import hash_shard
from artprobe.logs import to_log

with to_log(snakemake.log[0]):
    hash_shard(snakemake.input[0], snakemake.output[0])
