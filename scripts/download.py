"""Adapter: fetch one file of download/files.json into the hub cache, verify its hash."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.stages.download import download_file

with to_log(snakemake.log[0]):
    download_file(snakemake.input[0], snakemake.wildcards.file, snakemake.output[0])
