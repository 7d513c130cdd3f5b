"""Adapter: embed one shard with one model.

The rule's params are only its rerun trigger (artprobe.settings.embed_params): what can change
an embedding. The model's spec and the runtime settings (batch size, workers, compile,
checkpoint interval, device) are built here from the validated config by the same builders, so
tuning the runtime never re-embeds a shard.
"""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.common.logs import to_log
from artprobe.embedding.gpu_slots import claim_gpu
from artprobe.settings import embed_runtime, model_spec
from artprobe.stages.embed import embed_shard

marker = next(iter(snakemake.input.hub_weights), None)  # the weights stage's, hub weights only
model = model_spec(snakemake.config, snakemake.wildcards.model, weights_marker=marker)
runtime = embed_runtime(snakemake.config, snakemake.threads)
with to_log(snakemake.log[0]):
    claim_gpu(runtime.device)  # a local job's own GPU; torch has not started CUDA yet
    embed_shard(snakemake.input.shard, snakemake.output[0], model, runtime)
