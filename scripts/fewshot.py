"""Adapter: one model's few-shot curve (linear probe at k images per class) for one target."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.device import resolve_device
from artprobe.fewshot import run_fewshot
from artprobe.logs import to_log

w = snakemake.wildcards
inp = snakemake.input
# the classify fit that is the curve's "all" point, when there is one (rules/common.smk)
reuse = (
    {"metrics": inp.fit_metrics, "predictions": inp.fit_predictions}
    if "fit_metrics" in inp.keys()
    else None
)
device = snakemake.config["probe"]["device"]
with to_log(snakemake.log[0]):
    resolve_device(device, setting="probe.device")  # no GPU: one sentence, before any load
    run_fewshot(
        snakemake.input[0],
        snakemake.output[0],
        model=w.model,
        target=w.target,
        threads=snakemake.threads,
        device=device,
        reuse=reuse,
        duplicates=inp.get("duplicates") or None,  # split.drop_duplicates only
        **snakemake.params.fewshot,
    )
