"""Adapter: embed one shard with one model.

Runtime knobs (batch size, workers, compile, checkpoint interval) come from
``config["embed_runtime"]``, not from params, so tuning them never re-embeds a shard. The device
is a param only where it decides the dtype (``precision: auto``; see ``model_params``).
"""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)

from artprobe.embed import embed_shard
from artprobe.embed.gpu_slots import claim_gpu
from artprobe.logs import to_log

runtime = snakemake.config["embed_runtime"]
workers = runtime["workers"]
model = {"device": runtime["device"], **snakemake.params.model}
with to_log(snakemake.log[0]):
    claim_gpu(runtime["device"])  # a local job's own GPU; torch has not started CUDA yet
    embed_shard(
        snakemake.input.shard,
        snakemake.output[0],
        **model,
        batch_size=runtime["batch_size"],
        workers=snakemake.threads if workers is None else workers,
        compile=runtime["compile"],
        checkpoint_every=runtime["checkpoint_every"],
        threads=snakemake.threads,
        weights_marker=next(iter(snakemake.input.hub_weights), None),  # the weights stage's
    )
