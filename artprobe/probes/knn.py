"""``knn``: cosine k-nearest neighbours with a uniform or DINO-style temperature-weighted
vote (``exp(sim / temperature)``), by chunked matrix products. The reference set is the
training split."""

from __future__ import annotations

import time

import numpy as np
import torch

from artprobe.probes.shared import FitResult, class_weights, weights_info


def _unit_rows(X: torch.Tensor) -> torch.Tensor:
    return X / X.norm(dim=1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def knn_proba(
    T: torch.Tensor,
    yT: torch.Tensor,
    Q: torch.Tensor,
    *,
    n_classes: int,
    k: int,
    weighting: str,
    temperature: float,
    cw: torch.Tensor | None = None,
) -> torch.Tensor:
    """Vote shares [len(Q), n_classes] of the k most cosine-similar rows of ``T``.

    ``T`` and ``Q`` must already be unit rows. ``similarity`` weighting is DINO's
    ``exp(sim / temperature)``; ``cw`` multiplies each neighbour's vote by its class weight.
    """
    k = min(k, len(T))
    budget = 1 << 26 if T.device.type == "cuda" else 1 << 23  # similarity-matrix entries
    chunk = max(1, budget // max(len(T), 1))
    out = torch.zeros(len(Q), n_classes, dtype=torch.float32, device=Q.device)
    for i in range(0, len(Q), chunk):
        sims, idx = (Q[i : i + chunk] @ T.T).topk(k, dim=1)
        labels = yT[idx]
        if weighting == "similarity":
            # exp((s - s_max) / T): the per-row factor exp(-s_max / T) cancels below.
            votes = torch.exp((sims - sims[:, :1]) / temperature)
        else:
            votes = torch.ones_like(sims)
        if cw is not None:
            votes = votes * cw[labels]
        out[i : i + chunk].scatter_add_(1, labels, votes)
    return out / out.sum(1, keepdim=True).clamp_min(1e-30)


def fit_knn(p, Xtr, ytr, Xva, yva, Xte, n_classes, dev) -> FitResult:
    """Test-set vote shares; no validation queries (nothing is tuned on them, and at
    WikiArt size each query set costs ~1 TFLOP on the CPU)."""
    T, yT = _unit_rows(torch.from_numpy(Xtr).to(dev)), torch.from_numpy(ytr).to(dev)
    cw = class_weights(ytr, n_classes, p["class_weight"])
    cw_t = None if cw is None else torch.from_numpy(cw.astype(np.float32)).to(dev)
    t0 = time.perf_counter()
    P = knn_proba(
        T,
        yT,
        _unit_rows(torch.from_numpy(Xte).to(dev)),
        n_classes=n_classes,
        k=p["k"],
        weighting=p["weighting"],
        temperature=p["temperature"],
        cw=cw_t,
    )
    info = {
        "k": min(p["k"], len(T)),
        "knn_seconds": round(time.perf_counter() - t0, 3),
        "class_weights": weights_info(cw),
    }
    return FitResult(P.cpu().numpy(), [], info)
