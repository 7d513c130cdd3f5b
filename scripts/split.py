"""Adapter: assign every row of the manifest to train/val/test."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.logs import to_log
from artprobe.split import write_split

with to_log(snakemake.log[0]):
    write_split(
        snakemake.input[0],
        snakemake.output[0],
        index_path=snakemake.input.get("index") or None,  # the methods that read labels
        **snakemake.params.split,
    )
