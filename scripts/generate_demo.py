"""Adapter: generate the embedded demo dataset (hub layout) into the source folder."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.settings import DemoSettings
from artprobe.stages.generate_demo import generate_demo

with to_log(snakemake.log[0]):
    generate_demo(snakemake.output[0], DemoSettings(**snakemake.params.demo))
