"""Adapter: one model's few-shot curve (linear probe at k images per class) for one target."""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.device import resolve_device
from artprobe.common.logs import to_log
from artprobe.settings import FewshotSpec, probe_runtime
from artprobe.stages.fewshot import run_fewshot

w = snakemake.wildcards
inp = snakemake.input
spec = FewshotSpec(model=w.model, target=w.target, **snakemake.params.fewshot)
runtime = probe_runtime(snakemake.config, snakemake.threads)  # never a param: no reruns
# the classify fit that is the curve's "all" point, where the workflow decided there is one
reuse = (
    {"metrics": inp.fit_metrics, "predictions": inp.fit_predictions}
    if "fit_metrics" in inp.keys()
    else None
)
with to_log(snakemake.log[0]):
    resolve_device(runtime.device, setting="probe.device")  # no GPU: one sentence, before any load
    run_fewshot(
        inp[0],
        snakemake.output[0],
        spec,
        runtime,
        reuse=reuse,
        duplicates=inp.get("duplicates") or None,  # split.drop_duplicates only
    )
