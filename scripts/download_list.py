"""Adapter: the hub dataset's file list at the pinned revision -> download/files.json."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.stages.download_list import download_list

with to_log(snakemake.log[0]):
    download_list(**snakemake.params.hub, out_path=snakemake.output[0])
