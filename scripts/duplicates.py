"""Adapter: val/test images within split.duplicate_distance bits of a train image."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.stages.duplicates import write_duplicates

with to_log(snakemake.log[0]):
    write_duplicates(
        snakemake.input.hashes,
        snakemake.input.split,
        snakemake.output[0],
        distance=snakemake.params.distance,
    )
