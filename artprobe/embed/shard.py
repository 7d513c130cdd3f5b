"""``embed_shard``: one shard's images through one model into an embeddings table, resuming
from its checkpoints; the steps it strings together live in the sibling modules."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from artprobe.device import device_name, resolve_device
from artprobe.embed.checkpoints import KEY_VERSION, Checkpoints, shard_key
from artprobe.embed.features import DEFAULT_FEATURES, feature_model
from artprobe.embed.loader import ShardImages, StreamedPieces, model_batches, piece_loader, plan_pieces
from artprobe.embed.model import load_model, n_cores, resolve_dtype
from artprobe.embed.weights import weights_file
from artprobe.embed.nvjpeg import check_nvjpeg
from artprobe.embed.preprocess import DECODE_MODES, Preprocess, build_preprocess
from artprobe.embed.rows import EmbeddedRows
from artprobe.embed.runner import CHANNELS_LAST, ModelRunner, place_model, run_batches
from artprobe.images import DEFAULT_MAX_PIXELS
from artprobe.io import json_safe, with_meta, write_parquet

log = logging.getLogger("artprobe.embed")

#: Provenance keys that must agree between the shards of one model (artprobe.embed.merge checks).
IDENTITY_KEYS = (
    "timm_name",
    "timm_version",
    "pretrained",
    "weights_fingerprint",
    "data_config",
    "decode",
    "dtype",
    "embedding_dim",
    "features",
)
#: The value of an identity key that shards written before the key existed stand for.
IDENTITY_DEFAULTS = {"features": DEFAULT_FEATURES}


def embed_shard(
    shard_path,
    out_path,
    *,
    timm_name: str,
    pretrained: bool,
    decode: str = "fast",
    precision: str = "auto",
    batch_size: int = 32,
    workers: int = 0,
    device: str = "auto",
    compile: bool = False,
    checkpoint_every: int = 10,
    progress: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    threads: int | None = None,
    weights: str | None = None,
    features: str = DEFAULT_FEATURES,
    weights_marker: str | None = None,
) -> dict:
    """Embed every image of ``shard_path`` with ``timm_name``; write ``out_path`` atomically.

    ``weights``: a local weights file (``.safetensors``, ``.pth``, ``.bin``) loaded through
    timm's own pretrained path instead of the hub's (needs ``pretrained=True``); its sha256
    goes into the provenance. ``weights_marker``: the ``weights`` stage's marker of the hub
    weights to load instead (:mod:`artprobe.weights`); their repo, commit and sha256 go into
    the provenance.
    ``features``: which of the model's features form the embedding (``pooled``, ``cls``,
    ``mean_tokens``, ``last<k>_cls[_mean]``; :mod:`artprobe.embed.features`); recorded in the
    provenance.
    ``threads``: CPU threads this job may use in all (default: the cores it may run on); on
    CPU the model gets ``threads - workers`` of them, the decoding workers one each.
    ``max_pixels``: images with more pixels are refused as decompression bombs.
    CPU results are bit-identical for the same settings and thread count, resumed or not.

    Returns stats: ``img_per_s`` (rows embedded in this run / loop seconds),
    ``steady_img_per_s`` (without the first batch's start-up), ``device``, ``dtype``,
    ``n_rows``, ``n_failed``, ``n_resumed``, ``seconds``, ``embedding_dim``.
    """
    timer = LoopTimer()
    job = _prepare(
        shard_path, timm_name, pretrained, decode, precision, batch_size, device, max_pixels, weights,
        features, weights_marker,
    )  # fmt: skip
    job.timings["prepare_s"] = time.perf_counter() - timer.t_start
    job.settings.update(batch_size=batch_size, workers=workers, compile=bool(compile))
    ckpt = Checkpoints(out_path, job.checkpoint_key())
    rows = EmbeddedRows(
        job.row_ids, ckpt.load(job.row_ids, batch_size) if checkpoint_every else [], ckpt, checkpoint_every
    )
    if rows.start:
        log.info("resuming %s after %d of %d rows from %s", Path(out_path).name, rows.start, job.n, ckpt.dir)
    images = ShardImages(None, job.prep, gpu_jpeg=decode == "nvjpeg")
    pieces, per_batch = plan_pieces(rows.start, job.n, batch_size)
    loader = piece_loader(images, StreamedPieces(shard_path, pieces), batch_size, workers, job.dev)
    with _model_threads(job.dev, workers, threads):
        timer.start_loop()
        iterator = iter(loader)  # start the workers (fork) before CUDA is initialised
        job.timings["workers_s"] = time.perf_counter() - timer.t_loop
        runner = job.runner(compile, dim=rows.resumed_dim)
        job.timings["device_s"] = time.perf_counter() - timer.t_loop - job.timings["workers_s"]
        if checkpoint_every and rows.start < job.n:
            ckpt.begin()
        job.log_start(rows.start)
        bar = job.progress_bar(rows.start, progress)
        _embed_batches(model_batches(iterator, per_batch), runner, rows, bar, timer)
        result = rows.table(runner.embedding_dim())
        provenance = job.provenance(result, runner.dim, rows.start, timer)
        write_parquet(with_meta(result, provenance), out_path)
        ckpt.cleanup()
    return job.report(out_path, provenance, rows, timer)


def _embed_batches(batches, runner: ModelRunner, rows: EmbeddedRows, bar, timer: LoopTimer) -> None:
    """Run the model over ``batches``, collecting the rows (and checkpointing them)."""
    for batch, index, host in run_batches(batches, runner):
        rows.add(batch, index, host, runner.embedding_dim())
        bar.update(len(batch["index"]))
        timer.batch_done(len(batch["index"]))
        rows.checkpoint_if_due()
    bar.close()
    timer.stop_loop()


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


@contextlib.contextmanager
def _model_threads(dev, workers: int, threads: int | None):
    """CPU: leave the decoding workers their cores. OpenMP threads that share a core with a
    busy process wait at every barrier (seen here: 2 threads 36x slower than 1)."""
    import torch

    old_threads = torch.get_num_threads()
    if dev.type == "cpu" and (workers > 0 or threads):
        torch.set_num_threads(max(1, (threads or n_cores()) - workers))
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)


def _prepare(
    shard_path, timm_name, pretrained, decode, precision, batch_size, device, max_pixels, weights=None,
    features=DEFAULT_FEATURES, weights_marker=None,
) -> _Job:  # fmt: skip
    """Check the arguments, load the model and its preprocessing, read the shard."""
    t0 = time.perf_counter()
    import timm
    import torchvision  # noqa: F401  (imported here, timed with the rest)
    from timm.data import resolve_model_data_config

    timings: dict = {"imports_s": time.perf_counter() - t0}

    if decode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    dev = resolve_device(device, setting="embed_runtime.device")
    dtype = resolve_dtype(precision, dev)
    if decode == "nvjpeg" and dev.type != "cuda":
        raise ValueError(f"decode='nvjpeg' decodes on the GPU and needs a CUDA device, got {dev}")
    t0 = time.perf_counter()
    weights, weights_ids = weights_file(weights, weights_marker)
    timings["sha256_s"] = time.perf_counter() - t0
    hub = weights_marker is not None
    model, fingerprint = load_model(timm_name, pretrained, weights=weights, from_hub=hub, timings=timings)
    data_config = resolve_model_data_config(model)
    model = feature_model(model, features, timm_name)  # the model itself for "pooled"
    prep = build_preprocess(data_config, decode, max_pixels=max_pixels)
    if decode == "nvjpeg":
        check_nvjpeg(dev)
        if prep.tensor_resize is None:
            log.warning("nvjpeg: transform of %s not recognised; decoding with PIL instead", timm_name)
    identity = {
        "timm_name": timm_name,
        "timm_version": timm.__version__,
        "pretrained": bool(pretrained),
        "weights_fingerprint": fingerprint,
        "data_config": json_safe(data_config),
        "decode": decode,
        "dtype": str(dtype).replace("torch.", ""),
        "features": features,
    }
    identity.update(weights_ids)
    return _Job(Path(shard_path), dev, dtype, model, prep, _row_ids(shard_path), identity, {"precision": precision}, timings)


def _row_ids(shard_path) -> np.ndarray:
    """The shard's row ids (its images are streamed later, one row group at a time)."""
    if "image" not in pq.read_schema(shard_path).names:
        raise ValueError(f"shard {shard_path} has no 'image' column")
    return pq.read_table(shard_path, columns=["row_id"])["row_id"].to_numpy()


@dataclass
class _Job:
    """What one ``embed_shard`` call works on, and the records it writes about it."""

    shard_path: Path
    dev: Any
    dtype: Any
    model: Any
    prep: Preprocess
    row_ids: np.ndarray  # the shard's row ids
    identity: dict  # provenance that must agree across a model's shards (IDENTITY_KEYS)
    settings: dict  # precision, batch_size, workers, compile
    timings: dict  # seconds of the fixed costs (see fixed_costs)

    @property
    def n(self) -> int:
        return len(self.row_ids)

    def fixed_costs(self, timer: LoopTimer) -> dict:
        """Seconds spent before the images: model build, weights load, fingerprint, weights
        hash, worker start, device init (model placement), first batch; ``imports_s`` torch,
        timm and torchvision (0 when already imported); ``prepare_s`` all that, the model,
        its transform and the shard's row ids, ``setup_s`` all before the loop, ``call_s`` the whole call (the job's wall time less it: imports and
        Snakemake's start)."""
        out = {k: round(v, 3) for k, v in self.timings.items()}
        out["first_batch_s"] = round(timer.first_batch_s, 3) if timer.first_batch_s is not None else None
        out["setup_s"] = round(timer.t_loop - timer.t_start, 3)
        out["call_s"] = round(time.perf_counter() - timer.t_start, 3)  # embed_shard so far, in all
        return out

    def _versions(self) -> dict:
        import torch
        import torchvision

        return {"torch_version": torch.__version__, "torchvision_version": torchvision.__version__}

    def runner(self, compile: bool, dim: int | None) -> ModelRunner:
        """The model on the device (compiled when ``compile``: then short batches are padded)."""
        return ModelRunner(
            *place_model(self.model, self.dev, compile),
            self.prep,
            self.dev,
            self.dtype,
            self.settings["batch_size"],
            pad=compile,
            channels_last=CHANNELS_LAST,
            dim=dim,
        )

    def checkpoint_key(self) -> dict:
        """Everything that could change a result: checkpoints made under another key are discarded."""
        return {
            "version": KEY_VERSION,
            **self.identity,
            **self._versions(),
            "device_type": self.dev.type,
            "batch_size": self.settings["batch_size"],
            "compile": self.settings["compile"],
            "shard": shard_key(self.shard_path, self.row_ids),
        }

    def log_start(self, start: int) -> None:
        s = self.settings
        log.info(
            "embedding %s: %d rows (%d to go) with %s on %s, %s, decode=%s, batch %d, %d workers",
            self.shard_path.name,
            self.n,
            self.n - start,
            self.identity["timm_name"],
            self.dev,
            self.identity["dtype"],
            self.identity["decode"],
            s["batch_size"],
            s["workers"],
        )

    def progress_bar(self, start: int, progress: bool):
        from tqdm.auto import tqdm

        return tqdm(
            total=self.n,
            initial=start,
            unit="img",
            desc=self.shard_path.stem,
            file=sys.stderr,
            disable=not progress,
            mininterval=1.0 if sys.stderr.isatty() else 15.0,
            smoothing=0.05,
        )

    def provenance(self, result, dim: int, start: int, timer: LoopTimer) -> dict:
        """The output's metadata: identity, run settings, where and how fast it ran."""
        n_failed = result.num_rows - int(pc.sum(result["error"].is_null()).as_py() or 0)
        img_per_s, steady = timer.rates(self.n - start)
        first = timer.first_batch_s
        return {
            **self.identity,
            "embedding_dim": dim,
            "precision": self.settings["precision"],
            **self._versions(),
            "device": str(self.dev),
            "device_name": device_name(self.dev),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "gpu_slot": os.environ.get("ARTPROBE_GPU_SLOT"),  # artprobe.embed.gpu_slots (local jobs)
            "batch_size": self.settings["batch_size"],
            "workers": self.settings["workers"],
            "compile": self.settings["compile"],
            "shard": self.shard_path.name,
            "rows": self.n,
            "failures": n_failed,
            "resumed_rows": start,
            "seconds": round(timer.seconds, 3),
            "img_per_s": round(img_per_s, 2),
            "steady_img_per_s": round(steady, 2) if steady == steady else None,
            "first_batch_s": round(first, 3) if first is not None else None,
            "fixed_costs": self.fixed_costs(timer),
        }

    def report(self, out_path, provenance: dict, rows: EmbeddedRows, timer: LoopTimer) -> dict:
        """Log the throughput; the stats ``embed_shard`` returns."""
        wall = time.perf_counter() - timer.t_start
        img_per_s, steady = timer.rates(self.n - rows.start)
        log.info(
            "%s: %d rows, %d failed, %.1f img/s (%d embedded in %.1f s; %.1f s with setup) on %s",
            Path(out_path).name,
            self.n,
            provenance["failures"],
            img_per_s,
            self.n - rows.start,
            timer.seconds,
            wall,
            provenance["device_name"],
        )
        log.info("fixed costs (s): %s", json.dumps(provenance["fixed_costs"]))
        return {
            "img_per_s": img_per_s,
            "steady_img_per_s": steady,
            "device": str(self.dev),
            "device_name": provenance["device_name"],
            "dtype": self.identity["dtype"],
            "n_rows": self.n,
            "n_failed": provenance["failures"],
            "n_failed_this_run": rows.n_failed,
            "n_resumed": rows.start,
            "seconds": timer.seconds,
            "wall_seconds": wall,
            "first_batch_s": timer.first_batch_s,
            "embedding_dim": provenance["embedding_dim"],
        }
