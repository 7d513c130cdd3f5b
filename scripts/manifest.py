"""Adapter: resolve the source (hub download or local folder) into the manifest."""

from artprobe.data import build_manifest
from artprobe.logs import to_log

with to_log(snakemake.log[0]):
    build_manifest(**snakemake.params.source, out_path=snakemake.output[0])
