"""Adapter: fit one classifier on one model's embeddings for one target."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)
from artprobe.classify import run_fit
from artprobe.device import resolve_device
from artprobe.logs import to_log

w = snakemake.wildcards
device = snakemake.config["embed_runtime"]["device"]
with to_log(snakemake.log[0]):
    resolve_device(device, setting="embed_runtime.device")  # no GPU: one sentence, before any load
    run_fit(
        snakemake.input[0],
        metrics_path=snakemake.output.metrics,
        report_path=snakemake.output.report,
        predictions_path=snakemake.output.predictions,
        history_path=snakemake.output.history,
        model=w.model,
        target=w.target,
        classifier=w.classifier,
        threads=snakemake.threads,
        device=device,
        duplicates=snakemake.input.get("duplicates") or None,  # split.drop_duplicates only
        **snakemake.params.fit,
    )
