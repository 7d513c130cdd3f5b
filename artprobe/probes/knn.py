"""``knn``: cosine k-nearest neighbours with a uniform or DINO-style temperature-weighted
vote (``exp(sim / temperature)``), by chunked matrix products. The reference set is the
training split (optionally centred on its mean first, ``center``).

``k`` and ``temperature`` may be lists: every combination is scored on the validation
queries (one neighbour search at the largest ``k``; ``k`` is capped by the training rows)
and the best by val accuracy is used on test (ties: the earlier combination, smaller ``k``
first). Ties between classes' votes go to the class whose neighbours have the larger summed
similarity, then to a class drawn with the fit seed; classes without a vote keep probability
0 (so they never count as top-5 hits).
"""

from __future__ import annotations

import itertools
import logging
import time

import numpy as np
import torch

from artprobe.common.oom import free_cuda_cache, halved, is_cuda_oom, oom_summary
from artprobe.probes.shared import FitContext, FitData, FitResult, class_weights, weights_info

log = logging.getLogger(__name__)


def _unit_rows(X: torch.Tensor) -> torch.Tensor:
    return X / X.norm(dim=1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def neighbours(T: torch.Tensor, Q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(similarities, indices) [len(Q), k] of the k most cosine-similar rows of ``T``,
    most similar first; ``T`` and ``Q`` must already be unit rows."""
    k = min(k, len(T))
    budget = 1 << 26 if T.device.type == "cuda" else 1 << 23  # similarity-matrix entries
    chunk = max(1, budget // max(len(T), 1))
    sims, idx, i = [], [], 0
    while i < len(Q):
        try:
            s, j = _block(Q[i : i + chunk], T, k)
        except RuntimeError as exc:  # out of GPU memory: smaller blocks (the same neighbours)
            if not is_cuda_oom(exc):
                raise
            old = min(chunk, len(Q) - i)
            chunk = halved(old, f"knn: a similarity block against {len(T)} rows", exc)
            log.warning(
                "knn: out of GPU memory with blocks of %d queries (%s): going on with %d",
                old,
                oom_summary(exc),
                chunk,
            )
            free_cuda_cache()
            continue
        sims.append(s)
        idx.append(j)
        i += len(s)
    if not sims:
        return torch.zeros(0, k, device=Q.device), torch.zeros(
            0, k, dtype=torch.long, device=Q.device
        )
    return torch.cat(sims), torch.cat(idx)


def _block(Qc: torch.Tensor, T: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(similarities, indices) of the k nearest rows of ``T`` for the queries ``Qc``."""
    return (Qc @ T.T).topk(k, dim=1)


def vote(sims, labels, n_classes: int, k: int, weighting: str, temperature: float, cw=None):
    """(votes, summed similarities) [n, n_classes], float64, from the first ``k`` neighbours."""
    sims, labels = sims[:, :k].double(), labels[:, :k]
    if weighting == "similarity":
        # exp((s - s_max) / T): the per-row factor exp(-s_max / T) cancels in the shares.
        w = torch.exp((sims - sims[:, :1]) / temperature)
    else:
        w = torch.ones_like(sims)
    if cw is not None:
        w = w * cw.double()[labels]
    shape = (len(sims), n_classes)
    votes = torch.zeros(shape, dtype=torch.float64, device=sims.device).scatter_add_(1, labels, w)
    summed = torch.zeros(shape, dtype=torch.float64, device=sims.device).scatter_add_(
        1, labels, sims
    )
    return votes, summed


def tie_broken_shares(
    votes: torch.Tensor, summed: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """Vote shares, nudged so that equal shares are ordered by summed similarity, then at
    random (``gen``). Only tied shares move, by under half the smallest gap between
    distinct shares of the row (and at most 1e-4), so classes with different votes keep
    their order, and zero shares stay zero."""
    n, K = votes.shape
    dev = votes.device
    order = torch.argsort(torch.rand(n, K, generator=gen, dtype=torch.float64).to(dev), dim=1)
    for key in (summed, votes):  # least significant key first, stable sorts
        order = order.gather(1, torch.argsort(key.gather(1, order), dim=1, stable=True))
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(K, device=dev).expand(n, K))
    shares = votes / votes.sum(1, keepdim=True).clamp_min(1e-300)
    if K < 2:
        return shares
    ordered, pos = shares.sort(1)
    gaps = ordered.diff(dim=1)
    gap = torch.where(gaps > 0, gaps, torch.inf).amin(1, keepdim=True)
    gap = torch.where(torch.isfinite(gap), gap, torch.ones_like(gap))
    same = gaps == 0  # entry j equals entry j + 1 (sorted)
    tied_sorted = torch.zeros_like(ordered, dtype=torch.bool)
    tied_sorted[:, 1:] |= same
    tied_sorted[:, :-1] |= same
    tied = torch.empty_like(tied_sorted).scatter_(1, pos, tied_sorted) & (shares > 0)
    # under half the smallest gap, and at most 1e-4: shares stay what the votes say
    return shares + tied * (rank.double() / K * gap.mul(0.5).clamp_max(1e-4))


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
    seed: int = 0,
) -> torch.Tensor:
    """Tie-broken vote shares [len(Q), n_classes] of the k most cosine-similar rows of ``T``.

    ``T`` and ``Q`` must already be unit rows. ``similarity`` weighting is DINO's
    ``exp(sim / temperature)``; ``cw`` multiplies each neighbour's vote by its class weight.
    """
    sims, idx = neighbours(T, Q, k)
    votes, summed = vote(sims, yT[idx], n_classes, k, weighting, temperature, cw)
    return tie_broken_shares(votes, summed, torch.Generator().manual_seed(int(seed))).float()


def _choose(sims, labels, yv, p, n_classes, k_max, cw, seed) -> tuple[dict, list[dict]]:
    """Score every (k, temperature) on val; the best and the whole grid."""
    temps = p["temperature"] if p["weighting"] == "similarity" else p["temperature"][:1]
    ks = sorted({min(k, k_max) for k in p["k"]})
    grid, best = [], None
    for k, t in itertools.product(ks, temps):
        votes, summed = vote(sims, labels, n_classes, k, p["weighting"], t, cw)
        pred = tie_broken_shares(votes, summed, torch.Generator().manual_seed(int(seed))).argmax(1)
        acc = float((pred == yv).double().mean()) if len(yv) else float("nan")
        row = {"k": k, "temperature": t, "val_accuracy": acc}
        grid.append(row)
        if best is None or acc > best["val_accuracy"]:
            best = row
    return best, grid


def feature_map(Xtr: np.ndarray, center: bool, dev="cpu"):
    """The probe's features: ``X -> unit rows of (X - train mean)`` (the mean only with
    ``center``), as a tensor on ``dev``. The report's neighbour galleries use the same map."""
    mean = Xtr.mean(axis=0, dtype=np.float64).astype(np.float32) if center else 0.0

    def unit(X: np.ndarray) -> torch.Tensor:
        return _unit_rows(torch.from_numpy(X - mean).to(dev))

    return unit


def fit_knn(p, data: FitData, ctx: FitContext) -> FitResult:
    """Test-set vote shares at the (k, temperature) chosen on val."""
    Xtr, ytr, Xva, yva, Xte = data
    n_classes, dev, seed = ctx.n_classes, ctx.device, ctx.seed
    t0 = time.perf_counter()
    unit = feature_map(Xtr, p["center"], dev)
    T, yT = unit(Xtr), torch.from_numpy(ytr).to(dev)
    cw = class_weights(ytr, n_classes, p["class_weight"])
    cw_t = None if cw is None else torch.from_numpy(cw.astype(np.float32)).to(dev)
    k_max = min(max(p["k"]), len(T))
    choice = {"k": min(p["k"][0], k_max), "temperature": p["temperature"][0]}
    grid: list[dict] = []
    if len(yva) and (len(p["k"]) > 1 or len(p["temperature"]) > 1):
        sims, idx = neighbours(T, unit(Xva), k_max)
        yv = torch.from_numpy(yva).to(dev)
        choice, grid = _choose(sims, yT[idx], yv, p, n_classes, k_max, cw_t, seed)
        log.info(
            "knn: chose k=%d temperature=%g on val (%d combinations)",
            choice["k"],
            choice["temperature"],
            len(grid),
        )
    P = knn_proba(
        T,
        yT,
        unit(Xte),
        n_classes=n_classes,
        k=choice["k"],
        weighting=p["weighting"],
        temperature=choice["temperature"],
        cw=cw_t,
        seed=seed,
    )
    info = {
        "k": choice["k"],
        "temperature": choice["temperature"] if p["weighting"] == "similarity" else None,
        "val_accuracy": choice.get("val_accuracy"),
        "center": p["center"],
        "grid": grid,
        "knn_seconds": round(time.perf_counter() - t0, 3),
        "class_weights": weights_info(cw),
    }
    return FitResult(P.cpu().numpy(), [], info)
