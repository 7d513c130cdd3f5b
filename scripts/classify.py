"""Adapter: fit one classifier on one model's embeddings for one target."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.device import resolve_device
from artprobe.common.logs import to_log
from artprobe.config import FIT_FILES
from artprobe.settings import FitSpec, probe_runtime
from artprobe.stages.classify import run_fit

w = snakemake.wildcards
spec = FitSpec(model=w.model, target=w.target, classifier=w.classifier, **snakemake.params.fit)
runtime = probe_runtime(snakemake.config, snakemake.threads)  # never a param: no reruns
with to_log(snakemake.log[0]):
    resolve_device(runtime.device, setting="probe.device")  # no GPU: one sentence, before any load
    run_fit(
        snakemake.input[0],
        spec,
        {key: snakemake.output[key] for key in FIT_FILES},
        runtime,
        duplicates=snakemake.input.get("duplicates") or None,  # split.drop_duplicates only
    )
