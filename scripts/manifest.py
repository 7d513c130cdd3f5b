"""Adapter: resolve the source (hub download or local folder) into the manifest."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.settings import SourceSettings
from artprobe.stages.manifest import build_manifest

with to_log(snakemake.log[0]):
    build_manifest(
        SourceSettings(**snakemake.params.source), snakemake.output[0], snakemake.output.index
    )
