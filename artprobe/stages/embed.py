"""``embed_shard``: one shard's images through one model into an embeddings table, resuming
from its checkpoints; the steps it strings together live in :mod:`artprobe.embedding`."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from artprobe.common.device import resolve_device
from artprobe.common.images import DEFAULT_MAX_PIXELS
from artprobe.common.io import json_safe, with_meta, write_parquet
from artprobe.common.logs import progress as progress_bar
from artprobe.common.oom import free_cuda_cache, halved, is_cuda_oom, oom_summary
from artprobe.embedding.checkpoints import KEY_VERSION, Checkpoints, shard_key
from artprobe.embedding.features import feature_model
from artprobe.embedding.loader import (
    ShardImages,
    StreamedPieces,
    model_batches,
    piece_loader,
    plan_pieces,
)
from artprobe.embedding.model import load_model, resolve_dtype
from artprobe.embedding.nvjpeg import check_nvjpeg
from artprobe.embedding.preprocess import DECODE_MODES, Preprocess, build_preprocess
from artprobe.embedding.provenance import LoopTimer, log_start, provenance, report, versions
from artprobe.embedding.rows import EmbeddedRows
from artprobe.embedding.runner import CHANNELS_LAST, ModelRunner, place_model, run_batches
from artprobe.embedding.weight_loading import weights_file
from artprobe.settings import POOLED, EmbedRuntime, ModelSpec

log = logging.getLogger("artprobe.embedding")

#: Provenance keys that must agree between the shards of one model (artprobe.stages.merge_embeddings checks).
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
IDENTITY_DEFAULTS = {"features": POOLED}


def embed_shard(shard_path, out_path, model: ModelSpec, runtime: EmbedRuntime) -> dict:
    """Embed every image of ``shard_path`` with ``model``; write ``out_path`` atomically.

    ``model`` (:class:`~artprobe.settings.ModelSpec`) is everything that can change an
    embedding: the timm model, its weights (``weights``: a local ``.safetensors``/``.pth``/
    ``.bin`` file loaded through timm's own pretrained path, needs ``pretrained``; or
    ``weights_marker``: the ``weights`` stage's marker of hub weights,
    :mod:`artprobe.pretrained`; their sha256, or repo, commit and sha256, go into the
    provenance), ``features`` (``pooled``, ``cls``, ``mean_tokens``, ``last<k>_cls[_mean]``;
    :mod:`artprobe.embedding.features`), ``decode`` and ``precision``. ``runtime``
    (:class:`~artprobe.settings.EmbedRuntime`) is how the job runs: ``threads`` is the CPU
    threads it may use in all (on CPU the model gets ``threads - workers``, the decoding
    workers one each). Images with more than :data:`artprobe.common.images.DEFAULT_MAX_PIXELS`
    pixels are refused as decompression bombs.
    CPU results are bit-identical for the same settings and thread count, resumed or not.
    Out of GPU memory, the job halves its batch and goes on after its last finished batch
    (down to batch 1, then :class:`artprobe.common.oom.GPUOutOfMemoryError`); the batch it ended
    with and the retries are in the provenance (``batch_size_used``, ``oom_retries``) and
    in the checkpoint dir, so a rerun of the job starts with the smaller batch.

    Returns stats: ``img_per_s`` (rows embedded in this run / loop seconds),
    ``steady_img_per_s`` (without the first batch's start-up), ``device``, ``dtype``,
    ``n_rows``, ``n_failed``, ``n_resumed``, ``seconds``, ``embedding_dim``,
    ``batch_size_used``, ``oom_retries``.
    """
    timer = LoopTimer()
    job = _prepare(shard_path, model, runtime.batch_size, runtime.device)
    job.timings["prepare_s"] = time.perf_counter() - timer.t_start
    job.settings.update(
        batch_size=runtime.batch_size, workers=runtime.workers, compile=bool(runtime.compile)
    )
    ckpt, rows = _resume(job, out_path, runtime.checkpoint_every)
    images = ShardImages(None, job.prep, gpu_jpeg=model.decode == "nvjpeg")
    loop = _Loop(job, rows, images, timer)
    with _model_threads(job.dev, runtime.workers, runtime.threads):
        runner = loop.run(runtime.compile, runtime.progress)
        result = rows.table(runner.embedding_dim())
        prov = provenance(job, result, runner.dim, rows.start, timer)
        write_parquet(with_meta(result, prov), out_path)
        ckpt.cleanup()
    return report(job, out_path, prov, rows.start, rows.n_failed, timer)


def _resume(job: _Job, out_path, checkpoint_every: int) -> tuple[Checkpoints, EmbeddedRows]:
    """The job's checkpoints and the rows they already hold (none with ``checkpoint_every``
    0); an earlier run's smaller batch (after running out of GPU memory) carries over."""
    ckpt = Checkpoints(out_path, job.checkpoint_key())
    batch_size = job.settings["batch_size"]
    done = ckpt.load(job.row_ids, batch_size) if checkpoint_every else []
    rows = EmbeddedRows(job.row_ids, done, ckpt, checkpoint_every)
    if checkpoint_every:
        job.settings.update(ckpt.batch_record())
    if rows.start:
        log.info(
            "resuming %s after %d of %d rows from %s",
            Path(out_path).name,
            rows.start,
            job.n,
            ckpt.dir,
        )
    return ckpt, rows


class _Loop:
    """The model over the rows still to do, in batches; out of GPU memory, the batch halves
    and the loop goes on after the last finished batch (down to batch 1)."""

    def __init__(self, job: _Job, rows: EmbeddedRows, images: ShardImages, timer: LoopTimer):
        self.job, self.rows, self.images, self.timer = job, rows, images, timer
        self.batch = job.settings.get("batch_size_used", job.settings["batch_size"])
        self.runner: ModelRunner | None = None

    def batches(self):
        """Model batches of the rows not done yet, from a DataLoader planned for ``self.batch``
        (its batch size is baked into the plan, so each retry gets a new one)."""
        pieces, per_batch = plan_pieces(self.rows.done, self.job.n, self.batch)
        shard = StreamedPieces(self.job.shard_path, pieces)
        loader = piece_loader(
            self.images, shard, self.batch, self.job.settings["workers"], self.job.dev
        )
        return model_batches(iter(loader), per_batch)

    def run(self, compile: bool, progress: bool) -> ModelRunner:
        """Embed every row not done yet; the runner that did it."""
        job, rows, timer = self.job, self.rows, self.timer
        timer.start_loop()
        batches = self.batches()  # start the workers (fork) before CUDA is initialised
        job.timings["workers_s"] = time.perf_counter() - timer.t_loop
        self.runner = job.runner(compile, dim=rows.resumed_dim)
        job.timings["device_s"] = time.perf_counter() - timer.t_loop - job.timings["workers_s"]
        if rows.checkpoint_every and rows.start < job.n:
            rows.checkpoints.begin()
        log_start(job, rows.start)
        bar = progress_bar(
            total=job.n, initial=rows.start, unit="img", desc=job.shard_path.stem, enabled=progress
        )
        while (oom := self._embed(batches, bar)) is not None:
            batches = None  # the old loader's workers go
            self._halve(oom)
            batches = self.batches()
        bar.close()
        timer.stop_loop()
        return self.runner

    def _embed(self, batches, bar) -> BaseException | None:
        """Run the model over ``batches``, collecting the rows (and checkpointing them); the
        out-of-memory error that stopped it, or None when every batch is done."""
        runner, rows = self.runner, self.rows
        runner.batch_size = self.batch
        try:
            for batch, index, host in run_batches(batches, runner):
                rows.add(batch, index, host, runner.embedding_dim())
                bar.update(len(batch["index"]))
                self.timer.batch_done(len(batch["index"]))
                rows.checkpoint_if_due()
        except RuntimeError as exc:
            if not is_cuda_oom(exc):
                raise
            return exc.with_traceback(None)  # its frames hold the failed batch's tensors
        return None

    def _halve(self, exc: BaseException) -> None:
        """Checkpoint the finished rows, halve the batch (or fail at 1), free the GPU's cache."""
        job, rows, old = self.job, self.rows, self.batch
        rows.checkpoint_now()
        what = f"{job.identity['timm_name']} ({job.identity['dtype']}, {job.shard_path.name})"
        self.batch = halved(old, what, exc)
        retries = job.settings.get("oom_retries", 0) + 1
        job.settings.update(batch_size_used=self.batch, oom_retries=retries)
        rows.checkpoints.record_batch(self.batch, retries)
        log.warning(
            "out of GPU memory at batch %d (%s): going on with batch %d from row %d of %d",
            old,
            oom_summary(exc),
            self.batch,
            rows.done,
            job.n,
        )
        free_cuda_cache()


@contextlib.contextmanager
def _model_threads(dev, workers: int, threads: int):
    """CPU: leave the decoding workers their cores. OpenMP threads that share a core with a
    busy process wait at every barrier (seen here: 2 threads 36x slower than 1)."""
    import torch

    old_threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(max(1, threads - workers))
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)


def _prepare(shard_path, spec: ModelSpec, batch_size: int, device: str) -> _Job:
    """Check the arguments, load the model and its preprocessing, read the shard."""
    t0 = time.perf_counter()
    import timm
    import torchvision  # noqa: F401  (imported here, timed with the rest)

    timings: dict = {"imports_s": time.perf_counter() - t0}
    dev, dtype = _check(spec, batch_size, device)
    model, prep, identity = _load(spec, dev, timings)
    identity.update(
        timm_version=timm.__version__, dtype=str(dtype).replace("torch.", ""), decode=spec.decode
    )
    return _Job(
        Path(shard_path),
        dev,
        dtype,
        model,
        prep,
        _row_ids(shard_path),
        identity,
        {"precision": spec.precision},
        timings,
    )


def _check(spec: ModelSpec, batch_size: int, device: str):
    """(device, dtype) once the settings are known to make sense, before anything loads."""
    if spec.decode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}, got {spec.decode!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    dev = resolve_device(device, setting="embed_runtime.device")
    dtype = resolve_dtype(spec.precision, dev)
    if spec.decode == "nvjpeg" and dev.type != "cuda":
        raise ValueError(f"decode='nvjpeg' decodes on the GPU and needs a CUDA device, got {dev}")
    return dev, dtype


def _load(spec: ModelSpec, dev, timings: dict):
    """(model, preprocessing, identity): the weights checked and loaded through timm's
    pretrained path, the features chosen, the model's own data config."""
    from timm.data import resolve_model_data_config

    t0 = time.perf_counter()
    weights, weights_ids = weights_file(spec.weights, spec.weights_marker)
    timings["sha256_s"] = time.perf_counter() - t0
    model, fingerprint = load_model(
        spec.timm_name,
        spec.pretrained,
        weights=weights,
        from_hub=spec.weights_marker is not None,
        timings=timings,
    )
    data_config = resolve_model_data_config(model)
    model = feature_model(model, spec.features, spec.timm_name)  # the model itself for "pooled"
    prep = build_preprocess(data_config, spec.decode, max_pixels=DEFAULT_MAX_PIXELS)
    if spec.decode == "nvjpeg":
        check_nvjpeg(dev)
        if prep.tensor_resize is None:
            log.warning(
                "nvjpeg: transform of %s not recognised; decoding with PIL instead", spec.timm_name
            )
    identity = {
        "timm_name": spec.timm_name,
        "pretrained": bool(spec.pretrained),
        "weights_fingerprint": fingerprint,
        "data_config": json_safe(data_config),
        "features": spec.features,
        **weights_ids,
    }
    return model, prep, identity


def _row_ids(shard_path) -> np.ndarray:
    """The shard's row ids (its images are streamed later, one row group at a time)."""
    if "image" not in pq.read_schema(shard_path).names:
        raise ValueError(f"shard {shard_path} has no 'image' column")
    return pq.read_table(shard_path, columns=["row_id"])["row_id"].to_numpy()


@dataclass
class _Job:
    """What one ``embed_shard`` call works on: the shard, the model on its device, the settings."""

    shard_path: Path
    dev: Any
    dtype: Any
    model: Any
    prep: Preprocess
    row_ids: np.ndarray  # the shard's row ids
    identity: dict  # provenance that must agree across a model's shards (IDENTITY_KEYS)
    settings: dict  # precision, batch_size, workers, compile
    timings: dict  # seconds of the fixed costs (provenance.fixed_costs)

    @property
    def n(self) -> int:
        return len(self.row_ids)

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
            **versions(),
            "device_type": self.dev.type,
            "batch_size": self.settings["batch_size"],
            "compile": self.settings["compile"],
            "shard": shard_key(self.shard_path, self.row_ids),
        }
