"""Adapter: one model's pretrained weights, pinned and checked, into the hub cache -> weights/<model>.json."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.stages.weights import fetch_weights

with to_log(snakemake.log[0]):
    fetch_weights(**snakemake.params.model, out_path=snakemake.output[0])
