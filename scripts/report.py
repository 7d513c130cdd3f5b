"""Adapter: build the report (tables and plots) from every fit into the rule's outputs."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.report.build import ReportInputs, build_report
from artprobe.report.compare import TABLES, StandingsFiles
from artprobe.settings import ReportSettings

inp, models = snakemake.input, snakemake.params.models
inputs = ReportInputs(
    fits=list(inp.fits),
    fewshot=list(inp.fewshot),
    embeddings=dict(zip(models, inp.embeddings)),
    failures=dict(zip(models, inp.failures)),
    manifest=inp.manifest,
    split=inp.split,
    duplicates=inp.get("duplicates") or None,
    rows=inp.rows,
    thumbnails=inp.thumbnails,
    standings=StandingsFiles(*(getattr(inp, name) for name in TABLES)),
)
with to_log(snakemake.log[0]):
    build_report(
        inputs,
        ReportSettings(**snakemake.params.report),
        dict(zip(snakemake.params.ids, snakemake.output)),
    )
