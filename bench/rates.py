"""Throughput of the two halves of ``embed_shard``, for the benchmarks and for finding the
bottleneck on a new machine: the model alone on ready-made batches (:func:`model_only_rate`),
and the input pipeline alone, decode + preprocess + copy to the device (:func:`decode_only_rate`).

Both use the package's own pieces (loader, runner, nvjpeg), so they time what embed_shard runs.
"""

from __future__ import annotations

import time

import common  # noqa: F401  (this checkout's artprobe on sys.path)
import pyarrow.parquet as pq

from artprobe.common.device import resolve_device, synchronize
from artprobe.embedding import (
    ModelRunner,
    ShardImages,
    build_preprocess,
    check_nvjpeg,
    decode_jpeg_batch,
    load_model,
    piece_loader,
    place_model,
    plan_pieces,
    resolve_dtype,
)
from artprobe.embedding.loader import model_batches
from artprobe.embedding.runner import CHANNELS_LAST


def _timed_forward(runner: ModelRunner, batches: list, k: int, dev) -> float:
    t0 = time.perf_counter()
    for i in range(k):
        runner.forward(runner.to_input(batches[i % 2]))
    synchronize(dev)
    return time.perf_counter() - t0


def model_only_rate(
    timm_name: str,
    pretrained: bool,
    *,
    batch_size: int = 32,
    precision: str = "auto",
    device: str = "auto",
    compile: bool = False,
    iters: int = 10,
    warmup: int = 2,
    threads: int | None = None,
) -> dict:
    """img/s of the forward pass alone, on pre-made uint8 batches already on the device."""
    import torch
    from timm.data import resolve_model_data_config

    dev = resolve_device(device)
    dtype = resolve_dtype(precision, dev)
    model, _ = load_model(timm_name, pretrained)
    prep = build_preprocess(resolve_model_data_config(model), "exact")
    old = torch.get_num_threads()
    if dev.type == "cpu" and threads:
        torch.set_num_threads(threads)
    try:
        compiled, plain = place_model(model, dev, compile)
        runner = ModelRunner(
            compiled, plain, prep, dev, dtype, batch_size, pad=compile, channels_last=CHANNELS_LAST
        )
        h, w = prep.crop
        gen = torch.Generator().manual_seed(0)
        batches = [
            torch.randint(0, 256, (batch_size, 3, h, w), dtype=torch.uint8, generator=gen).to(dev)
            for _ in range(2)
        ]
        with torch.inference_mode():
            warm_s = _timed_forward(runner, batches, warmup, dev)
            s = _timed_forward(runner, batches, iters, dev)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(old)
    return {
        "img_per_s": iters * batch_size / s,
        "seconds": s,
        "warmup_s": warm_s,
        "batch_size": batch_size,
        "dtype": str(dtype).replace("torch.", ""),
        "device": str(dev),
        "threads": used_threads,
    }


def decode_only_rate(
    shard_path,
    timm_name: str,
    pretrained: bool = False,
    *,
    decode: str = "fast",
    batch_size: int = 32,
    workers: int = 0,
    device: str = "auto",
    limit: int | None = None,
) -> dict:
    """img/s of the input pipeline alone: read, decode, preprocess, copy to the device."""
    import torch
    from timm.data import resolve_model_data_config

    dev = resolve_device(device)
    if decode == "nvjpeg":
        check_nvjpeg(dev)
    model, _ = load_model(timm_name, pretrained)
    prep = build_preprocess(resolve_model_data_config(model), decode)
    table = pq.read_table(shard_path, columns=["image"])
    n = table.num_rows if limit is None else min(limit, table.num_rows)
    images = ShardImages(table["image"], prep, gpu_jpeg=decode == "nvjpeg")
    pieces, per_batch = plan_pieces(0, n, batch_size)
    loader = piece_loader(images, pieces, batch_size, workers, dev)
    runner = ModelRunner(
        None, None, prep, dev, torch.float32, batch_size, pad=False, channels_last=True
    )
    rows = failed = 0
    t0 = time.perf_counter()
    first = None
    with torch.inference_mode():
        for batch in model_batches(iter(loader), per_batch):
            for p in batch["pixels"]:
                runner.to_input(p)
            if batch["jpeg"]:
                decoded, errs = decode_jpeg_batch(batch, prep, dev)
                failed += len(errs)
                if decoded:
                    runner.to_input(torch.stack([t for _, t in decoded]))
            failed += len(batch["errors"])
            rows += len(batch["index"])
            if first is None:
                synchronize(dev)
                first = (time.perf_counter() - t0, rows)
    synchronize(dev)
    s = time.perf_counter() - t0
    steady = (
        (rows - first[1]) / (s - first[0])
        if first and rows > first[1] and s > first[0]
        else float("nan")
    )
    return {
        "img_per_s": rows / s,
        "steady_img_per_s": steady,
        "rows": rows,
        "failed": failed,
        "seconds": s,
        "workers": workers,
        "decode": decode,
    }
