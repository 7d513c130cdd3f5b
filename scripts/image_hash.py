"""Adapter: the perceptual hash of every image of one shard (for the near-duplicate scan)
and its previews (for the report's thumbnails), from one decode."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.stages.image_hash import hash_shard

with to_log(snakemake.log[0]):
    hash_shard(snakemake.input[0], snakemake.output.hashes, snakemake.output.previews)
