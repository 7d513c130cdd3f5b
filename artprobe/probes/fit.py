"""The one entry point of every probe kind: checks the inputs, sets up device and threads,
calls the kind's fit function from the registry, and returns normalised test
probabilities with a common ``info`` (including the rows the probe trained on)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch

from artprobe.common.device import resolve_device
from artprobe.common.oom import on_gpu_or_cpu
from artprobe.probes import registry
from artprobe.probes.shared import FitContext, FitData, FitResult


def fit(kind: str, params: dict, data: FitData, ctx: FitContext, *, threads: int = 1) -> FitResult:
    """Fit classifier ``kind`` with resolved ``params`` on ``data``; return test probabilities.

    ``data``'s ``X_*`` float32 [n, D]; ``y_*`` int label ids in ``[0, ctx.n_classes)``
    (classes may be absent from train). ``ctx.seed`` seeds the fit; ``ctx.device`` is
    ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ... (see
    :func:`artprobe.common.device.resolve_device`); ``ctx.cuda_graph`` lets the mlp capture
    its training step in a CUDA graph (CUDA only; falls back to eager steps if capture
    fails). ``threads`` bounds torch's CPU threads during the fit.
    ``info["trained_on"]`` names the splits whose rows trained the returned model and
    ``info["n_train_rows"]`` counts them (val rows count only when a kind refits on them).
    Out of GPU memory, the fit is done on the CPU (a warning; ``info["gpu_out_of_memory"]``
    says why and ``info["device"]`` is ``cpu``); kNN first halves its similarity blocks.
    """
    entry = registry.get(kind)
    params = entry.resolve(params)  # idempotent; guards direct callers
    n_classes = int(ctx.n_classes)
    data = _check_inputs(data, n_classes)
    dev = resolve_device(ctx.device)
    ctx = replace(
        ctx, n_classes=n_classes, seed=int(ctx.seed), device=dev, cuda_graph=bool(ctx.cuda_graph)
    )
    fit_kind = entry.fit_function()

    def fit_on(d):
        return fit_kind(params, data, replace(ctx, device=d))

    t0 = time.perf_counter()
    with _torch_threads(threads):
        res, dev = on_gpu_or_cpu(fit_on, dev, f"{kind} fit")  # out of GPU memory: on the CPU
    res.proba_test = normalize_rows(res.proba_test)
    rows = {"train": len(data.X_train), "val": len(data.X_val)}
    res.info = {
        "kind": kind,
        "params": dict(params),
        **res.info,
        "trained_on": list(res.trained_on),
        "n_train_rows": int(sum(rows[s] for s in res.trained_on)),
        "n_train": int(len(data.X_train)),
        "n_val": int(len(data.X_val)),
        "n_test": int(len(data.X_test)),
        "n_classes": n_classes,
        "n_features": int(data.X_train.shape[1]),
        "seed": ctx.seed,
        "threads": int(threads),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return res


def _check_inputs(data: FitData, n_classes: int) -> FitData:
    """float32 C-contiguous matrices and int64 labels, or a ValueError saying what is wrong."""
    Xtr, ytr = _as_inputs(data.X_train, data.y_train, n_classes, "train")
    Xva, yva = _as_inputs(data.X_val, data.y_val, n_classes, "val")
    Xte = _as_inputs(data.X_test, what="test")
    if not (Xtr.shape[1] == Xva.shape[1] == Xte.shape[1]):
        raise ValueError(
            "embedding widths differ: "
            f"train {Xtr.shape[1]}, val {Xva.shape[1]}, test {Xte.shape[1]}"
        )
    if len(Xtr) == 0:
        raise ValueError("no training rows")
    return FitData(Xtr, ytr, Xva, yva, Xte)


def _as_inputs(X, y=None, n_classes: int | None = None, what: str = "X"):
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"{what} must be 2-D [n, D], got shape {X.shape}")
    if y is None:
        return X
    y = np.asarray(y).astype(np.int64, copy=False).reshape(-1)
    if len(y) != len(X):
        raise ValueError(f"{what}: {len(X)} rows but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{what}: labels must lie in [0, {n_classes}), got {y.min()}..{y.max()}")
    return X, y


def normalize_rows(p: np.ndarray) -> np.ndarray:
    """Non-negative float32 rows that sum to 1 (uniform where a row sums to 0)."""
    p = np.asarray(p, dtype=np.float64)
    p = np.clip(p, 0.0, None)
    s = p.sum(axis=1, keepdims=True)
    p = np.divide(p, s, out=np.full_like(p, 1.0 / max(p.shape[1], 1)), where=s > 0)
    return p.astype(np.float32)


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(old)
