"""``linear``: multinomial logistic regression on frozen embeddings.

Softmax regression (unpenalised intercept) on standardised or L2-normalised embeddings,
minimised full-batch with L-BFGS in float32 torch (loss totals in float64). The
regularisation follows scikit-learn's ``C`` convention (objective ``C * sum_i w_i CE_i +
||W||^2 / 2``, so the selected ``C`` means what it means in
``sklearn.linear_model.LogisticRegression``). ``C`` is searched as in CLIP's protocol: a
coarse log grid (``n_c`` values from ``c_min`` to ``c_max``, one per decade by default) from
strong to weak regularisation with warm starts, each point scored on the validation set
(``select_by``: accuracy, ties broken by log-loss, or log-loss; ``path_patience`` points in a
row without a better one end the path, once it has left the strongly regularised start),
then ``refine`` rounds of halving log steps around the best point. The chosen value is
refitted on train (+ val when ``refit_on_val``), warm-started. Every L-BFGS run goes to a
gradient tolerance (``tol``, see :func:`_gtol`) with ``max_iter`` only as a cap; each point
records its iterations, final objective, gradient and whether (and why not) it converged,
and :func:`fit_linear` turns non-converged points and a best coarse C at the edge of the
grid into ``info["warnings"]``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from artprobe.logs import progress
from artprobe.probes.shared import FitResult, class_weights, standardized, weights_info

log = logging.getLogger(__name__)


def _preprocess(mode: str, Xtr: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Standardise with train statistics, or scale rows to norm sqrt(D) ('l2')."""
    if mode == "standardize":
        return standardized(Xtr, *others)
    if mode == "l2":
        # Unit rows, times sqrt(D) so that features have about unit second moment and
        # the same C grid suits both normalisations (a constant factor: equivalent to
        # shifting the grid by D).
        scale = math.sqrt(Xtr.shape[1])
        out = []
        for X in (Xtr, *others):
            norm = np.linalg.norm(X, axis=1, keepdims=True)
            out.append((X * (scale / np.maximum(norm, 1e-12))).astype(np.float32))
        return out
    return [Xtr, *others]


class _Softmax:
    """Full-batch loss and gradient of L2-regularised softmax regression (no autograd).

    ``loss = sum_i w_i CE_i / n + lam / 2 * ||W||^2`` with ``lam = 1 / (C n)``: the
    minimiser of scikit-learn's ``C * sum_i w_i CE_i + ||W||^2 / 2``. Intercept free.
    One call: two [n, D] x [D, K] products and a few in-place passes over [n, K].
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None):
        self.X, self.n = X, len(X)
        self.y1 = y[:, None]
        scale = torch.full((self.n, 1), 1.0 / self.n, device=X.device)
        if w is not None:
            scale = scale * w[:, None].float()
        self.scale, self.neg_scale = scale, -scale

    def __call__(self, W: torch.Tensor, b: torch.Tensor, lam: float):
        Z = torch.addmm(b, self.X, W)  # logits [n, K]
        picked = Z.gather(1, self.y1)
        m = Z.amax(1, keepdim=True)
        torch.exp(Z.sub_(m), out=Z)
        s = Z.sum(1, keepdim=True)
        # per-row cross-entropy [n, 1] and its total in float64 (cheap: [n] vectors): in
        # float32 the loss's rounding (~1e-7 x the logits) stalls the line search long
        # before the gradient is small
        ce = s.double().log().add_(m.double()).sub_(picked.double())
        loss = torch.dot(ce.view(-1), self.scale.view(-1).double())
        # dL/dZ = (softmax - onehot) * scale, written over Z
        Z.mul_(self.scale / s).scatter_add_(1, self.y1, self.neg_scale)
        gW = torch.addmm(W, self.X.T, Z, beta=lam)
        gb = Z.sum(0)
        loss = loss + 0.5 * lam * torch.dot(W.view(-1), W.view(-1)).double()
        return loss, gW, gb


class _Closure:
    """L-BFGS's closure: loss at the current (W, b), gradients written to ``.grad``;
    counts its calls (the function evaluations)."""

    def __init__(self, fun: _Softmax, W: torch.Tensor, b: torch.Tensor, lam: float):
        self.fun, self.W, self.b, self.lam = fun, W, b, lam
        self.evals = 0

    def __call__(self) -> torch.Tensor:
        self.evals += 1
        loss, gW, gb = self.fun(self.W, self.b, self.lam)
        self.W.grad.copy_(gW)
        self.b.grad.copy_(gb)
        return loss


def _lbfgs(fun: _Softmax, W, b, lam: float, max_iter: int, gtol: float) -> tuple[int, int]:
    """Minimise in place from (W, b) with torch's L-BFGS (strong Wolfe line search).

    Stops when the largest gradient entry is at most ``gtol``, when a step no longer
    changes the loss (float32 can go no further), or after ``max_iter`` iterations.
    Returns (iterations, function evaluations).
    """
    W.grad = torch.zeros_like(W)
    b.grad = torch.zeros_like(b)
    closure = _Closure(fun, W, b, lam)
    opt = torch.optim.LBFGS(
        [W, b],
        lr=1.0,
        max_iter=max_iter,
        max_eval=int(max_iter * 1.5) + 5,
        tolerance_grad=gtol,
        tolerance_change=1e-15,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    opt.step(closure)  # returns the loss at the *start*; the final one is measured below
    n_iter = opt.state[opt._params[0]].get("n_iter", 0)
    W.grad = None
    b.grad = None
    return int(n_iter), closure.evals


def _gtol(tol: float, lam: float, W: torch.Tensor) -> float:
    """Gradient tolerance relative to the regularisation.

    The objective is ``lam``-strongly convex in W, so ``|W - W*| <= |grad| / lam``:
    asking ``max|grad| <= tol * lam * max(1, max|W|)`` bounds the distance to the
    optimum relative to the weights' scale, at every C alike (an absolute tolerance
    stops warm-started weak-regularisation points before they move). With
    ``max(1, max|W|) = 1`` this is scikit-learn's lbfgs ``tol`` on its sum-form
    objective. Floored at 1e-5: below that the float32 logits' rounding (~1e-7 of each
    logit) is larger than the loss decrease a step can make, and the line search stalls."""
    return max(1e-5, tol * lam * max(1.0, float(W.abs().max())))


@torch.no_grad()
def _final_state(fun: _Softmax, W, b, lam: float) -> tuple[float, float]:
    """(objective, largest gradient entry) at (W, b): one more evaluation."""
    loss, gW, gb = fun(W, b, lam)
    return float(loss), max(float(gW.abs().max()), float(gb.abs().max()))


def _minimise(fun: _Softmax, W, b, C: float, p: dict) -> dict:
    """L-BFGS at ``C`` from (W, b), in place; the run's counts, final objective,
    gradient, whether it converged, and seconds."""
    t0 = time.perf_counter()
    lam = 1.0 / (C * fun.n)
    gtol = _gtol(p["tol"], lam, W)
    n_iter, evals = _lbfgs(fun, W, b, lam, p["max_iter"], gtol)
    objective, grad_max = _final_state(fun, W, b, lam)
    gtol = max(gtol, _gtol(p["tol"], lam, W))  # relative to the weights reached
    converged = bool(grad_max <= gtol)
    return {
        "train_objective": objective,
        "grad_max": grad_max,
        "gtol": gtol,
        "converged": converged,
        # not converged: the iteration cap, or no step could lower the loss any more
        "stop": "tolerance" if converged else "max_iter" if n_iter >= p["max_iter"] else "stalled",
        "iterations": n_iter,
        "evaluations": evals + 1,
        "seconds": round(time.perf_counter() - t0, 3),
    }


@torch.no_grad()
def _scores(W, b, X, y, chunk: int = 16384) -> tuple[float, float, torch.Tensor]:
    """(accuracy, mean log-loss, probabilities) of the model on (X, y)."""
    probs = []
    for i in range(0, len(X), chunk):
        probs.append(torch.softmax(torch.addmm(b, X[i : i + chunk], W), 1))
    P = torch.cat(probs) if probs else torch.zeros(0, W.shape[1], device=X.device)
    if y is None or len(y) == 0:
        return float("nan"), float("nan"), P
    acc = (P.argmax(1) == y).double().mean().item()
    ll = -torch.log(P[torch.arange(len(y), device=P.device), y].clamp_min(1e-15)).double().mean()
    return acc, ll.item(), P


def _better(a: dict, b: dict, select_by: str) -> bool:
    """Is grid point ``a`` strictly better than ``b``? Ties keep ``b`` (stronger reg.)."""
    if select_by == "log_loss":
        return a["val_log_loss"] < b["val_log_loss"]
    if a["val_accuracy"] != b["val_accuracy"]:
        return a["val_accuracy"] > b["val_accuracy"]
    return a["val_log_loss"] < b["val_log_loss"]


@dataclass
class _Problem:
    """The preprocessed splits on the device, the class weights, and the start point."""

    X: torch.Tensor
    y: torch.Tensor
    Xv: torch.Tensor
    yv: torch.Tensor
    Xte: torch.Tensor
    cw: np.ndarray | None
    cw_t: torch.Tensor | None
    W: torch.Tensor
    b: torch.Tensor

    def softmax(self, X: torch.Tensor, y: torch.Tensor) -> _Softmax:
        return _Softmax(X, y, None if self.cw_t is None else self.cw_t[y])


def _problem(p, Xtr, ytr, Xva, yva, Xte, n_classes, dev) -> _Problem:
    """Zero weights, and intercepts at the centred log class priors of train."""
    Xtr_p, Xva_p, Xte_p = _preprocess(p["normalize"], Xtr, Xva, Xte)

    def to(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(dev)

    cw = class_weights(ytr, n_classes, p["class_weight"])
    counts = np.bincount(ytr, minlength=n_classes).astype(np.float64)
    prior = np.log(np.maximum(counts, 0.5) / counts.sum())
    return _Problem(
        X=to(Xtr_p),
        y=to(ytr),
        Xv=to(Xva_p),
        yv=to(yva),
        Xte=to(Xte_p),
        cw=cw,
        cw_t=None if cw is None else to(cw.astype(np.float32)),
        W=torch.zeros(Xtr_p.shape[1], n_classes, dtype=torch.float32, device=dev),
        b=to((prior - prior.mean()).astype(np.float32)),
    )


def _c_grid(p: dict, have_val: bool) -> np.ndarray:
    """The coarse grid: ``n_c`` values log-spaced from ``c_min`` to ``c_max``."""
    Cs = np.geomspace(p["c_min"], p["c_max"], p["n_c"]) if p["n_c"] > 1 else np.array([p["c_min"]])
    if not have_val and len(Cs) > 1:
        log.warning("linear: no validation rows, so no search; fitting C=c_min only")
        Cs = Cs[:1]
    return Cs


class _Search:
    """Fits at chosen values of C, each warm-started from the solved point nearest in
    log C and scored on val; remembers every point (the search's record) and solution."""

    def __init__(self, prob: _Problem, p: dict):
        self.prob, self.p = prob, p
        self.fun = prob.softmax(prob.X, prob.y)
        self.grid: list[dict] = []
        self.solutions: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.best = 0

    def has(self, C: float) -> bool:
        return any(math.isclose(g["C"], C, rel_tol=1e-9) for g in self.grid)

    def run(self, C: float, phase: str) -> bool:
        """Fit and score at ``C``; True if it is the new best point."""
        prob = self.prob
        if self.solutions:
            near = min(range(len(self.grid)), key=lambda i: abs(math.log(self.grid[i]["C"] / C)))
            W, b = (t.clone() for t in self.solutions[near])
        else:
            W, b = prob.W.clone(), prob.b.clone()
        t0 = time.perf_counter()
        run = _minimise(self.fun, W, b, C, self.p)
        acc, ll, _ = _scores(W, b, prob.Xv, prob.yv)
        run["seconds"] = round(time.perf_counter() - t0, 3)  # scoring included
        self.grid.append({"C": float(C), "phase": phase, "val_accuracy": acc, "val_log_loss": ll, **run})
        self.solutions.append((W, b))
        log.info(
            "linear %s C=%.3g: val acc %.4f log-loss %.4f (%d it, %d evals, %s, %.1f s)",
            phase, C, acc, ll, run["iterations"], run["evaluations"],
            "converged" if run["converged"] else "NOT converged", run["seconds"],
        )  # fmt: skip
        i = len(self.grid) - 1
        if i and len(prob.yv) and _better(self.grid[i], self.grid[self.best], self.p["select_by"]):
            self.best = i
            return True
        return False

    def learned(self) -> bool:
        """Has the path left the strongly regularised start? (With strong regularisation
        every class gets its prior: val accuracy sits at the majority share, and may dip
        below it as the first weights grow, before it rises.)"""
        if self.p["select_by"] == "accuracy":
            return self.grid[self.best]["val_accuracy"] > self.grid[0]["val_accuracy"]
        return self.best > 0

    def coarse(self, Cs: np.ndarray) -> None:
        """Strong to weak regularisation; once the path has learned something,
        ``path_patience`` points in a row without a better one end it."""
        since_best = 0
        for C in progress(Cs, desc="linear C search", unit="C"):
            if self.run(float(C), "coarse") or len(self.grid) == 1 or not self.learned():
                since_best = 0
                continue
            since_best += 1
            if self.p["path_patience"] and since_best >= self.p["path_patience"]:
                break

    def refine(self, Cs: np.ndarray) -> None:
        """``refine`` rounds of halving the log step around the best point (within the grid)."""
        if len(Cs) < 2:
            return
        step = math.log(Cs[1] / Cs[0])
        for _ in progress(range(self.p["refine"]), desc="linear C refine", unit="round"):
            step /= 2
            centre = self.grid[self.best]["C"]
            for C in (centre * math.exp(-step), centre * math.exp(step)):
                if Cs[0] * (1 - 1e-9) <= C <= Cs[-1] * (1 + 1e-9) and not self.has(C):
                    self.run(C, "refine")


_REFIT_KEYS = ("iterations", "evaluations", "train_objective", "grad_max", "gtol", "converged",
               "stop", "seconds")  # fmt: skip


def _warnings(search: _Search, Cs: np.ndarray, at_edge: float | None) -> list[str]:
    out = []
    if at_edge is not None:
        out.append(
            f"the best coarse-grid C={at_edge:.3g} is at the edge of the grid "
            f"[{Cs[0]:.3g}, {Cs[-1]:.3g}]: the optimum may lie outside it"
        )
    for stop, why in (("max_iter", f"within max_iter={search.p['max_iter']}"),
                      ("stalled", "(the line search stalled above the tolerance)")):  # fmt: skip
        bad = [g["C"] for g in search.grid if g["stop"] == stop]
        if bad:
            out.append(
                f"{len(bad)} of {len(search.grid)} search points did not converge {why} "
                f"(C={', '.join(f'{c:.3g}' for c in bad)})"
            )
    return out


def fit_linear(p, Xtr, ytr, Xva, yva, Xte, n_classes, dev) -> FitResult:
    t_start = time.perf_counter()
    prob = _problem(p, Xtr, ytr, Xva, yva, Xte, n_classes, dev)
    have_val = len(prob.yv) > 0
    Cs = _c_grid(p, have_val)
    search = _Search(prob, p)
    search.coarse(Cs)
    coarse_best = search.grid[search.best]["C"]
    at_edge = len(Cs) > 1 and have_val and coarse_best in (Cs[0], Cs[-1])
    if have_val:
        search.refine(Cs)
    best = search.grid[search.best]
    C = best["C"]
    W, b = (t.clone() for t in search.solutions[search.best])
    refit = {"on": "train"}
    if p["refit_on_val"] and have_val:
        fun_all = prob.softmax(torch.cat([prob.X, prob.Xv]), torch.cat([prob.y, prob.yv]))
        run = _minimise(fun_all, W, b, C, p)
        refit = {"on": "train+val", **{k: run[k] for k in _REFIT_KEYS}}
    warnings = _warnings(search, Cs, coarse_best if at_edge else None)
    if refit.get("converged") is False:
        warnings.append(f"the refit at C={C:.3g} did not converge ({refit['stop']})")
    for w in warnings:
        log.warning("linear: %s", w)
    _, _, P = _scores(W, b, prob.Xte, None)
    info = {
        "C": C,
        "C_at_grid_edge": bool(at_edge),
        "converged": bool(best["converged"] and refit.get("converged", True)),
        "select_by": p["select_by"],
        "val_accuracy": best["val_accuracy"],
        "val_log_loss": best["val_log_loss"],
        "grid": search.grid,
        "refit": refit,
        "warnings": warnings,
        "search_points": len(search.grid),
        "not_converged": sum(not g["converged"] for g in search.grid),
        "search_seconds": round(sum(g["seconds"] for g in search.grid), 3),
        "linear_seconds": round(time.perf_counter() - t_start, 3),
        "class_weights": weights_info(prob.cw),
    }
    return FitResult(P.cpu().numpy(), [], info)
