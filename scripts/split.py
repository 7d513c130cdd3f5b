"""Adapter: assign every row of the manifest to train/val/test."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.settings import dataset_entry, split_settings
from artprobe.stages.split import write_split

with to_log(snakemake.log[0]):
    write_split(
        snakemake.input[0],
        snakemake.input.get("index") or None,  # only the methods that read labels need it
        snakemake.output[0],
        # what the rule's params hold, with the group keys
        split_settings(dataset_entry(snakemake.config, snakemake.wildcards.dataset)),
    )
