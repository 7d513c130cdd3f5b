"""Adapter: generate the embedded demo dataset (hub layout) into the source folder."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.demo import generate_demo
from artprobe.logs import to_log

with to_log(snakemake.log[0]):
    demo = snakemake.params.demo
    generate_demo(
        snakemake.output[0],
        n_rows=demo["rows"],
        n_files=demo["files"],
        seed=demo["seed"],
        n_broken=demo["broken"],
    )
