"""Adapter: fit one classifier on one model's embeddings for one target."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.classify import FitSpec, run_fit
from artprobe.config import FIT_FILES
from artprobe.device import resolve_device
from artprobe.logs import to_log

w = snakemake.wildcards
device = snakemake.config["probe"]["device"]
with to_log(snakemake.log[0]):
    resolve_device(device, setting="probe.device")  # no GPU: one sentence, before any load
    run_fit(
        snakemake.input[0],
        FitSpec(model=w.model, target=w.target, classifier=w.classifier, **snakemake.params.fit),
        {key: snakemake.output[key] for key in FIT_FILES},
        threads=snakemake.threads,
        device=device,
        duplicates=snakemake.input.get("duplicates") or None,  # split.drop_duplicates only
    )
