"""Adapter: embed one shard with one model.

Runtime knobs (batch size, workers, compile, device, checkpoint interval) come from
``config["embed_runtime"]``, not from params, so tuning them never re-embeds a shard.
"""

import _checkout  # noqa: F401  (the checkout's artprobe, conda env or not)
from artprobe.embed import embed_shard
from artprobe.logs import to_log

runtime = snakemake.config["embed_runtime"]
workers = runtime["workers"]
with to_log(snakemake.log[0]):
    embed_shard(
        snakemake.input[0],
        snakemake.output[0],
        **snakemake.params.model,
        batch_size=runtime["batch_size"],
        workers=snakemake.threads if workers is None else workers,
        device=runtime["device"],
        compile=runtime["compile"],
        checkpoint_every=runtime["checkpoint_every"],
        threads=snakemake.threads,
    )
