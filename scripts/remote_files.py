"""Adapter: the hub dataset's file list at the pinned revision -> download/files.json."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.download import remote_files
from artprobe.logs import to_log

with to_log(snakemake.log[0]):
    remote_files(**snakemake.params.hub, out_path=snakemake.output[0])
