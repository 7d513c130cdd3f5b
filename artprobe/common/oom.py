"""Out of GPU memory: recognise it, give the memory back, and halve the batch that caused it.

Used by the embed loop (halve the batch, go on from the last finished batch) and by the
probe fits (halve a similarity block or an evaluation chunk; move a fit whose batch is a
hyper-parameter to the CPU). torch raises ``torch.OutOfMemoryError`` (a ``RuntimeError``);
allocations outside torch's caching allocator (cuBLAS, cuDNN workspaces, a plain
``cudaMalloc``) surface as a ``RuntimeError`` whose text says so.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

#: texts of CUDA out-of-memory errors that are not ``torch.OutOfMemoryError``
OOM_TEXTS = (
    "CUDA out of memory",
    "CUDA error: out of memory",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
)


class GPUOutOfMemoryError(RuntimeError):
    """Out of GPU memory with nothing left to halve (batch 1)."""


def is_cuda_oom(exc: BaseException) -> bool:
    """Is ``exc`` the GPU running out of memory?"""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc) for t in OOM_TEXTS)


def oom_summary(exc: BaseException) -> str:
    """The error's first line, short enough for one log line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}"


def free_cuda_cache() -> None:
    """Collect the tensors an aborted step left behind and hand the cached blocks back to the
    driver, so the retry starts with the GPU's memory free (a no-op without CUDA)."""
    import torch

    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def halved(batch: int, what: str, exc: BaseException) -> int:
    """The batch to retry with after ``exc`` (``batch // 2``); at batch 1 a
    :class:`GPUOutOfMemoryError` saying what did not fit (``what``) and what to do."""
    if batch <= 1:
        raise GPUOutOfMemoryError(
            f"{what} does not fit in GPU memory even at batch 1 ({oom_summary(exc)}). Free the "
            "GPU of other processes, use a GPU with more memory, or a lower precision"
        ) from exc
    return batch // 2


def on_gpu_or_cpu(fit_on, dev, what: str):
    """``(fit_on(dev), dev)``; out of GPU memory on a CUDA ``dev``, a warning and
    ``(fit_on(cpu), cpu)``: for work whose batch is a hyper-parameter (the mlp's 32) or that
    has no batch to halve (linear's full-batch Newton-CG), the CPU is the way to finish."""
    import torch

    try:
        return fit_on(dev), dev
    except RuntimeError as exc:
        if dev.type != "cuda" or not is_cuda_oom(exc):
            raise
        summary = oom_summary(exc)
    free_cuda_cache()
    log.warning("%s: out of GPU memory on %s (%s): fitting on the CPU instead", what, dev, summary)
    cpu = torch.device("cpu")
    res = fit_on(cpu)
    res.info["gpu_out_of_memory"] = summary
    return res, cpu
