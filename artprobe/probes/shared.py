"""What every probe kind returns or uses: the result record, the fit context, the history
schema, class weights, train-statistics standardisation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


@dataclass
class FitResult:
    proba_test: np.ndarray  # float32 [n_test, n_classes], rows sum to 1
    history: list[dict] = field(default_factory=list)  # per-epoch rows (iterative probes)
    info: dict = field(default_factory=dict)  # chosen hyper-parameters, timings, device
    #: the splits whose rows trained the returned model (val used only to select: not here)
    trained_on: tuple[str, ...] = ("train",)


class FitData(NamedTuple):
    """The rows of one fit: embeddings ``X_*`` (float32 [n, D]) and label ids ``y_*`` of train
    and val, and the test embeddings (their labels never reach a probe)."""

    X_train: Any
    y_train: Any
    X_val: Any
    y_val: Any
    X_test: Any


@dataclass(frozen=True)
class FitContext:
    """What every kind's fit function gets beside its params and data (one signature:
    ``fit(params, data: FitData, ctx) -> FitResult``). Given to
    :func:`artprobe.probes.fit.fit`, ``device`` may also be a name (``auto``, ``cpu``,
    ``cuda:1`` ...); the kind's function gets the resolved torch.device."""

    n_classes: int
    seed: int = 0
    device: Any = "cpu"  # a torch.device (artprobe.common.device.resolve_device)
    cuda_graph: bool = True  # mlp: capture the training step in a CUDA graph (CUDA only)


HISTORY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")


def class_weights(y: np.ndarray, n_classes: int, mode: str) -> np.ndarray | None:
    """Per-class weights (float64 [n_classes]) or None for ``mode == 'none'``.

    ``balanced``: ``n / (n_present * count_c)`` like scikit-learn; absent classes get 0.
    """
    if mode == "none":
        return None
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = len(y) / (present.sum() * counts[present])
    return w


def weights_info(cw: np.ndarray | None) -> list[float] | None:
    """Class weights as the ``info`` dict reports them (rounded, JSON-ready)."""
    return None if cw is None else [round(float(v), 6) for v in cw]


def standardized(Xtr: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Zero mean, unit variance per feature with train statistics (constant features: 1)."""
    mean = Xtr.mean(axis=0, dtype=np.float64)
    std = Xtr.std(axis=0, dtype=np.float64)
    std[std < 1e-12] = 1.0
    mean, inv = mean.astype(np.float32), (1.0 / std).astype(np.float32)
    return [(X - mean) * inv for X in (Xtr, *others)]
