"""What an embed job records about itself: the output's provenance (identity, run settings,
where and how fast it ran), the throughput lines of its log, the stats ``embed_shard``
returns, and the timer they read."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pyarrow.compute as pc

from artprobe.common.device import device_name

log = logging.getLogger("artprobe.embedding")


class LoopTimer:
    """Wall time of the job, of its embedding loop, and of the loop's first batch."""

    def __init__(self):
        self.t_start = time.perf_counter()
        self.t_loop = self.seconds = None
        self.first_batch_s: float | None = None
        self.first_batch_rows = 0

    def start_loop(self) -> None:
        self.t_loop = time.perf_counter()

    def batch_done(self, rows: int) -> None:
        if self.first_batch_s is None:
            self.first_batch_s = time.perf_counter() - self.t_loop
            self.first_batch_rows = rows

    def stop_loop(self) -> None:
        self.seconds = time.perf_counter() - self.t_loop

    def rates(self, processed: int) -> tuple[float, float]:
        """(img/s of the loop, img/s without the first batch's start-up; NaN when unknown)."""
        img_per_s = processed / self.seconds if self.seconds > 0 else float("nan")
        steady = float("nan")
        first = self.first_batch_s
        if first is not None and processed > self.first_batch_rows and self.seconds > first:
            steady = (processed - self.first_batch_rows) / (self.seconds - first)
        return img_per_s, steady


def versions() -> dict:
    """torch's and torchvision's versions (part of the checkpoint key and the provenance)."""
    import torch
    import torchvision

    return {"torch_version": torch.__version__, "torchvision_version": torchvision.__version__}


def fixed_costs(timings: dict, timer: LoopTimer) -> dict:
    """Seconds spent before the images: model build, weights load, fingerprint, weights
    hash, worker start, device init (model placement), first batch; ``imports_s`` torch,
    timm and torchvision (0 when already imported); ``prepare_s`` all that, the model, its
    transform and the shard's row ids, ``setup_s`` all before the loop, ``call_s`` the whole
    call (the job's wall time less it: imports and Snakemake's start)."""
    out = {k: round(v, 3) for k, v in timings.items()}
    out["first_batch_s"] = (
        round(timer.first_batch_s, 3) if timer.first_batch_s is not None else None
    )
    out["setup_s"] = round(timer.t_loop - timer.t_start, 3)
    out["call_s"] = round(time.perf_counter() - timer.t_start, 3)  # embed_shard so far, in all
    return out


def provenance(job, result, dim: int, start: int, timer: LoopTimer) -> dict:
    """The output's metadata: identity, run settings, where and how fast it ran.

    ``batch_size`` is the configured batch, ``batch_size_used`` the one the last rows were
    embedded with (smaller after CUDA out-of-memory retries, ``oom_retries`` of them)."""
    n_failed = result.num_rows - int(pc.sum(result["error"].is_null()).as_py() or 0)
    img_per_s, steady = timer.rates(job.n - start)
    first = timer.first_batch_s
    s = job.settings
    return {
        **job.identity,
        "embedding_dim": dim,
        "precision": s["precision"],
        **versions(),
        "device": str(job.dev),
        "device_name": device_name(job.dev),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpu_slot": os.environ.get(
            "ARTPROBE_GPU_SLOT"
        ),  # artprobe.embedding.gpu_slots (local jobs)
        "batch_size": s["batch_size"],
        "batch_size_used": s.get("batch_size_used", s["batch_size"]),
        "oom_retries": s.get("oom_retries", 0),
        "workers": s["workers"],
        "compile": s["compile"],
        "shard": job.shard_path.name,
        "rows": job.n,
        "failures": n_failed,
        "resumed_rows": start,
        "seconds": round(timer.seconds, 3),
        "img_per_s": round(img_per_s, 2),
        "steady_img_per_s": round(steady, 2) if steady == steady else None,
        "first_batch_s": round(first, 3) if first is not None else None,
        "fixed_costs": fixed_costs(job.timings, timer),
    }


def log_start(job, start: int) -> None:
    """The job's first log line: what it embeds, with what, where, in which batches."""
    s = job.settings
    log.info(
        "embedding %s: %d rows (%d to go) with %s on %s, %s, decode=%s, batch %d, %d workers",
        job.shard_path.name,
        job.n,
        job.n - start,
        job.identity["timm_name"],
        job.dev,
        job.identity["dtype"],
        job.identity["decode"],
        s.get("batch_size_used", s["batch_size"]),
        s["workers"],
    )


def report(
    job, out_path, prov: dict, n_resumed: int, n_failed_this_run: int, timer: LoopTimer
) -> dict:
    """Log the throughput; the stats ``embed_shard`` returns."""
    wall = time.perf_counter() - timer.t_start
    img_per_s, steady = timer.rates(job.n - n_resumed)
    log.info(
        "%s: %d rows, %d failed, %.1f img/s (%d embedded in %.1f s; %.1f s with setup) on %s",
        Path(out_path).name,
        job.n,
        prov["failures"],
        img_per_s,
        job.n - n_resumed,
        timer.seconds,
        wall,
        prov["device_name"],
    )
    if prov["oom_retries"]:
        log.info(
            "batch %d -> %d after %d CUDA out-of-memory retries (batch_size_used in the provenance)",
            prov["batch_size"],
            prov["batch_size_used"],
            prov["oom_retries"],
        )
    log.info("fixed costs (s): %s", json.dumps(prov["fixed_costs"]))
    return {
        "img_per_s": img_per_s,
        "steady_img_per_s": steady,
        "device": str(job.dev),
        "device_name": prov["device_name"],
        "dtype": job.identity["dtype"],
        "n_rows": job.n,
        "n_failed": prov["failures"],
        "n_failed_this_run": n_failed_this_run,
        "n_resumed": n_resumed,
        "seconds": timer.seconds,
        "wall_seconds": wall,
        "first_batch_s": timer.first_batch_s,
        "embedding_dim": prov["embedding_dim"],
        "batch_size_used": prov["batch_size_used"],
        "oom_retries": prov["oom_retries"],
    }
