"""``linear``: multinomial logistic regression on frozen embeddings.

Softmax regression (unpenalised intercept) on standardised or L2-normalised embeddings,
minimised full-batch by Newton-CG in torch. The regularisation follows scikit-learn's ``C``:
scikit-learn 1.9's lbfgs minimises the mean form ``sum_i s_i CE_i / S + ||W||^2 / (2 C S)``
(``s_i`` sample x class weights, ``S`` their sum; see ``_logistic_regression_path``), whose
minimiser is that of ``C * sum_i s_i CE_i + ||W||^2 / 2``; this module minimises
``sum_i s_i CE_i / n + ||W||^2 / (2 C n)``, the same minimiser, so the selected ``C`` means
what it means in ``sklearn.linear_model.LogisticRegression``. Classes without train rows are
left out of the fit, as scikit-learn does (probability 0).

``C`` is searched as in CLIP's protocol: a coarse log grid (``n_c`` values from ``c_min`` to
``c_max``, one per decade by default) from strong to weak regularisation with warm starts,
each point scored on the validation set (``select_by``: accuracy, ties broken by log-loss, or
log-loss), then ``refine`` rounds of halving log steps around the best point. The path may end
early only where no direction of the train features is still held back by the penalty (from
:func:`_release_C` on: a class signal in a low-variance direction shows only at large C, after
a local optimum of the val scores): there, once it has left the strongly regularised start,
``path_patience`` points in a row without a better one end it, and so does one point worse
than the best in both val accuracy and log-loss with the log-loss rising. The chosen value is
refitted on train + val when ``refit: train+val`` (off by default, so that every kind trains
on the same rows), warm-started.

Every fit runs until the Newton decrement (``g^T H^-1 g / 2``, from the conjugate gradients'
solve) puts the objective within ``tol / 10`` (relative) of the optimum: ``converged`` then
promises ``tol`` (default 1e-4; measured against scikit-learn at ``tol=1e-10`` for C from
1e-4 to 1e4, whatever ``C * n``). The features are rotated to the eigenbasis of their
covariance (exact: ``||W||`` and so the objective are unchanged) so that the per-class
diagonal of the Hessian preconditions the conjugate gradients well; where it does not
(a solve that took more Hessian products than forming them costs: near separation on
narrow embeddings) each class's whole block is used instead
(:mod:`~artprobe.probes.precondition`). Small problems run in float64; a float32 fit whose
line search stalls above the tolerance goes on in float64. Each point records its Newton
iterations, loss evaluations, Hessian products (and the solves on class blocks), final
objective, estimated gap, dtype and stop reason (``tolerance``, ``max_iter``,
``stalled``), and :func:`fit_linear` turns non-converged points and a best coarse C at the
edge of the grid into ``info["warnings"]``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from artprobe.common.logs import progress
from artprobe.probes import precondition as precondition_mod
from artprobe.probes.shared import (
    FitContext,
    FitData,
    FitResult,
    class_weights,
    standardized,
    weights_info,
)

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

    ``loss = sum_i s_i CE_i / n + lam / 2 * ||W||^2`` (``s_i`` the class weight of row i, 1
    without) with ``lam = 1 / (C n)``: the minimiser of ``C * sum_i s_i CE_i + ||W||^2 / 2``,
    which is scikit-learn's. Intercept free. One call: two [n, D] x [D, K] products and a
    few in-place passes over [n, K], in the dtype of ``X`` (totals in float64).
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None):
        self.X, self.n = X, len(X)
        self.y1 = y[:, None]
        scale = torch.full((self.n, 1), 1.0 / self.n, dtype=X.dtype, device=X.device)
        if w is not None:
            scale = scale * w[:, None].to(X.dtype)
        self.scale, self.neg_scale = scale, -scale

    def to(self, dtype: torch.dtype) -> _Softmax:
        """The same problem in ``dtype`` (float64 where float32 cannot go further)."""
        out = object.__new__(_Softmax)
        out.X, out.n, out.y1 = self.X.to(dtype), self.n, self.y1
        out.scale, out.neg_scale = self.scale.to(dtype), self.neg_scale.to(dtype)
        return out

    def __call__(self, W: torch.Tensor, b: torch.Tensor, lam: float):
        """(loss as a float64 0-d tensor, dL/dW, dL/db); keeps the probabilities (``P``)
        for :func:`_hessp` and :meth:`jacobi`."""
        Z = torch.addmm(b, self.X, W)  # logits [n, K]
        picked = Z.gather(1, self.y1)
        m = Z.amax(1, keepdim=True)
        torch.exp(Z.sub_(m), out=Z)
        s = Z.sum(1, keepdim=True)
        # per-row cross-entropy and its total in float64 (cheap: [n] vectors): in float32
        # the loss's rounding (~1e-7 x the logits) would stall the line search early
        ce = s.double().log().add_(m.double()).sub_(picked.double())
        loss = torch.dot(ce.view(-1), self.scale.view(-1).double())
        Z.div_(s)  # probabilities
        self.P = Z.clone()
        # dL/dZ = (softmax - onehot) * scale, written over Z
        Z.mul_(self.scale).scatter_add_(1, self.y1, self.neg_scale)
        gW = torch.addmm(W, self.X.T, Z, beta=lam)
        gb = Z.sum(0)
        loss = loss + 0.5 * lam * torch.dot(W.view(-1), W.view(-1)).double()
        return loss, gW, gb

    def blocks(self, X1: torch.Tensor, lam: float):
        """Each class's own Hessian block at the last evaluated point, factorised
        (:func:`~artprobe.probes.precondition.class_blocks`; ``X1 = [X, 1]`` in float32)."""
        return precondition_mod.class_blocks(X1, self.P * (1 - self.P) * self.scale, lam)

    def jacobi(self, X2: torch.Tensor, lam: float) -> torch.Tensor:
        """The diagonal of each class's own Hessian block at the last evaluated point
        (``sum_i s_i p_ik (1 - p_ik) x_ij^2 + lam``; intercepts: without x and lam), flat
        like the parameters: the conjugate gradients' preconditioner. ``X2 = X * X``."""
        c = self.P * (1 - self.P) * self.scale
        return torch.cat(
            [torch.addmm(torch.full_like(X2[:1].T, lam), X2.T, c).view(-1), c.sum(0) + 1e-12]
        ).double()


def _hessp(fun: _Softmax, VW: torch.Tensor, Vb: torch.Tensor, lam: float):
    """The Hessian of ``fun``'s loss at its last evaluated point times (VW, Vb): with
    ``dZ = X VW + Vb``, row i's logits Hessian ``s_i (diag(p_i) - p_i p_i^T)`` times dZ_i,
    taken back through X. Costs what a gradient does (two big products)."""
    P = fun.P
    T = torch.addmm(Vb, fun.X, VW).mul_(P)
    T.sub_(P * T.sum(1, keepdim=True)).mul_(fun.scale)
    return torch.addmm(VW, fun.X.T, T, beta=lam), T.sum(0)


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a, b))


def _armijo(evaluate, x, f: float, d: torch.Tensor, gtd: float, tries: int = 30):
    """Backtracking from the unit step (the Newton step, in coordinates near the unit
    sphere) until the loss falls by a 1e-4 share of the predicted decrease; interpolates
    quadratically. Returns ``(x, f, g, evaluations)``, ``x`` None if no step lowered the
    loss (rounding in the loss is then larger than what a step can gain)."""
    t = 1.0
    for k in range(1, tries + 1):
        x_new = x + t * d
        f_new, g_new = evaluate(x_new)
        if math.isfinite(f_new) and f_new <= f + 1e-4 * t * gtd:
            return x_new, f_new, g_new, k
        curv = 2 * (f_new - f - gtd * t) if math.isfinite(f_new) else 0.0
        t = min(max(-gtd * t * t / curv, 0.1 * t), 0.5 * t) if curv > 0 else 0.1 * t
    return None, f, None, tries


@dataclass
class _Run:
    x: torch.Tensor
    f: float
    g: torch.Tensor
    iterations: int = 0
    evaluations: int = 0
    gap: float = math.inf  # estimated relative objective gap, ``g^T H g / 2 / f``
    stop: str = "max_iter"
    grad_max: float = math.nan  # largest gradient entry in W and b at the end
    products: int = 0  # Hessian-vector products (Newton-CG), each as costly as an evaluation
    block_solves: int = 0  # solves preconditioned by the per-class blocks


def _cg(hessp, g: torch.Tensor, precond, eta: float, max_steps: int):
    """Conjugate gradients on ``H p = -g``, preconditioned by ``precond`` (a
    :mod:`~artprobe.probes.precondition` solve), to relative (preconditioned) residual
    ``eta``; returns (p, Hessian products)."""
    p = torch.zeros_like(g)
    r = g.neg()
    z = precond(r)
    d = z.clone()
    rz = _dot(r, z)
    stop = eta**2 * rz
    for k in range(1, max_steps + 1):
        Hd = hessp(d)
        dHd = _dot(d, Hd)
        if not dHd > 0:
            return (p if k > 1 else d), k
        a = rz / dHd
        p.add_(d, alpha=a)
        r.add_(Hd, alpha=-a)
        z = precond(r)
        rz, rz_old = _dot(r, z), rz
        if rz <= stop:
            return p, k
        d.mul_(rz / rz_old).add_(z)
    return p, max_steps


def _newton(
    evaluate,
    hessp,
    chooser: precondition_mod.Chooser,
    preconditioners: tuple,
    run: _Run,
    max_iter: int,
    tol: float,
    eta: float = 0.01,
    cg_steps: int = 100,
) -> _Run:
    """Newton-CG from ``run``'s point: each iteration solves the Newton system by conjugate
    gradients (Hessian-vector products; ``chooser`` picks one of ``preconditioners``, the
    diagonal's and the blocks' builders, at the current point and is told each solve's
    cost) and backtracks along it. The Newton decrement
    ``-g^T p / 2`` estimates the gap to the optimum; at most ``tol`` of the objective
    ends it ("tolerance"), as do a step that lowers nothing ("stalled") and ``max_iter``."""
    while run.iterations < max_iter:
        # loose solves far from the optimum, tight ones where the decrement must be exact
        precond = chooser(*preconditioners)
        p, products = _cg(hessp, run.g, precond, eta if run.gap < 100 * tol else 0.1, cg_steps)
        chooser.solved(precond, products)
        run.products += products
        run.block_solves += precond.blocks
        gtp = _dot(run.g, p)
        run.gap = -0.5 * gtp / abs(run.f)
        if run.gap <= tol:
            run.stop = "tolerance"
            return run
        x, f, g, evals = _armijo(evaluate, run.x, run.f, p, gtp)
        run.evaluations += evals
        if x is None:
            run.stop = "stalled"
            return run
        run.x, run.f, run.g = x, f, g
        run.iterations += 1
    run.stop = "max_iter"
    return run


_F64_BELOW = 3e8  # multiply-adds per [n, D] x [D, K] product under which float64 is cheap


def _rotation(X: np.ndarray, rows: int = 8192) -> np.ndarray:
    """The eigenvectors of the (centred) features' second moment, from at most ``rows``
    evenly spaced rows (an estimate will do): in that basis the features are uncorrelated,
    so a diagonal preconditioner fits the Hessian; the norm of W, and so the objective,
    does not change."""
    Xs = torch.from_numpy(X[:: max(1, len(X) // rows)]).double()
    _, V = torch.linalg.eigh(Xs.T @ Xs)
    return V.numpy()


class _Minimiser:
    """Minimises the objective at any C from any start, in float32 for big problems (float64
    for small ones, and where float32 stalls above the tolerance)."""

    def __init__(self, fun: _Softmax, p: dict):
        self.funs = {fun.X.dtype: fun}
        self.squares: dict = {}
        self.ones: torch.Tensor | None = None  # [X, 1] in float32, for the class blocks
        self.chooser = precondition_mod.Chooser(fun.X.shape[1])  # along the whole path
        self.p = p

    def fun(self, dtype: torch.dtype) -> _Softmax:
        if dtype not in self.funs:
            self.funs[dtype] = next(iter(self.funs.values())).to(dtype)
        return self.funs[dtype]

    def __call__(self, W, b, C: float):
        """The minimiser from (W, b) and the run's record."""
        t0 = time.perf_counter()
        fun = next(iter(self.funs.values()))
        dtype = fun.X.dtype
        lam = 1.0 / (C * fun.n)
        run = None
        while True:
            W, b, run = self._run(self.fun(dtype), W.to(dtype), b.to(dtype), lam, run)
            if run.stop != "stalled" or dtype == torch.float64:
                break
            log.info(
                "linear C=%.3g: float32 stalled at estimated gap %.2g; going on in float64",
                C,
                run.gap,
            )
            dtype = torch.float64
        return (
            W,
            b,
            {
                "train_objective": run.f,
                "gap_estimate": run.gap,
                "grad_max": run.grad_max,
                "converged": run.stop == "tolerance",
                "stop": run.stop,
                "iterations": run.iterations,
                "evaluations": run.evaluations,
                "hessian_products": run.products,
                "block_solves": run.block_solves,
                "dtype": str(dtype).replace("torch.", ""),
                "seconds": round(time.perf_counter() - t0, 3),
            },
        )

    def _run(self, fun: _Softmax, W, b, lam: float, before: _Run | None):
        D, K = W.shape
        dt = fun.X.dtype
        X2 = self.squares.setdefault(dt, fun.X * fun.X)

        def params(x):
            return x[: D * K].view(D, K).to(dt), x[D * K :].to(dt)

        def flat(gW, gb):
            return torch.cat([gW.reshape(-1), gb]).double()

        def evaluate(x):
            loss, gW, gb = fun(*params(x), lam)
            return float(loss), flat(gW, gb)

        def hessp(v):
            return flat(*_hessp(fun, *params(v), lam))

        preconditioners = (
            lambda: precondition_mod.Diagonal(fun.jacobi(X2, lam)),
            lambda: fun.blocks(self._ones(fun), lam),
        )
        loss, gW, gb = fun(W, b, lam)
        run = _Run(flat(W, b), float(loss), flat(gW, gb))
        if before is not None:
            for key in ("iterations", "evaluations", "products", "block_solves"):
                setattr(run, key, getattr(before, key))
        run.evaluations += 1
        run = _newton(
            evaluate,
            hessp,
            self.chooser,
            preconditioners,
            run,
            self.p["max_iter"],
            self.p["tol"] / 10,
        )
        g = run.g.abs()
        run.grad_max = float(g.max())
        return (*params(run.x), run)

    def _ones(self, fun: _Softmax) -> torch.Tensor:
        if self.ones is None:
            X = fun.X.float()
            self.ones = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], 1)
        return self.ones


@torch.no_grad()
def _scores(W, b, X, y, cols: torch.Tensor, n_classes: int, chunk: int = 16384):
    """(accuracy, mean log-loss, probabilities over all ``n_classes``) of the model on (X, y);
    classes absent from train (not in ``cols``) get probability 0."""
    W, b = W.to(X.dtype), b.to(X.dtype)
    P = torch.zeros(len(X), n_classes, dtype=X.dtype, device=X.device)
    for i in range(0, len(X), chunk):
        P[i : i + chunk, cols] = torch.softmax(torch.addmm(b, X[i : i + chunk], W), 1)
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
    """The preprocessed, centred and rotated splits on the device (float64 when small), train labels
    renumbered over the classes present in train (``cols``: their ids), the class weights,
    and the start point."""

    X: torch.Tensor
    y: torch.Tensor
    Xv: torch.Tensor
    yv: torch.Tensor
    Xte: torch.Tensor
    cols: torch.Tensor
    n_classes: int
    cw: np.ndarray | None
    cw_t: torch.Tensor | None
    W: torch.Tensor
    b: torch.Tensor

    def softmax(self, X: torch.Tensor, y: torch.Tensor) -> _Softmax:
        """The objective on rows (X, y), ``y`` renumbered like ``self.y``."""
        return _Softmax(X, y, None if self.cw_t is None else self.cw_t[y])

    def scores(self, W, b, X, y=None):
        return _scores(W, b, X, y, self.cols, self.n_classes)


def _problem(p, data: FitData, n_classes: int, dev) -> _Problem:
    """Zero weights, and intercepts at the centred log class priors of train.

    Every split is centred with the train mean (an exact change of the intercept) so that
    the intercept and the weights are not coupled; classes without train rows are left
    out of the fit, as scikit-learn does (they get probability 0)."""
    Xtr, ytr, Xva, yva, Xte = data
    Xtr_p, Xva_p, Xte_p = _preprocess(p["normalize"], Xtr, Xva, Xte)
    mean = Xtr_p.mean(axis=0, dtype=np.float64).astype(np.float32)
    Xtr_p, Xva_p, Xte_p = (X - mean for X in (Xtr_p, Xva_p, Xte_p))
    V = _rotation(Xtr_p)
    counts = np.bincount(ytr, minlength=n_classes).astype(np.float64)
    present = np.flatnonzero(counts > 0)
    renumber = np.full(n_classes, -1, np.int64)
    renumber[present] = np.arange(len(present))
    small = len(Xtr) * Xtr.shape[1] * len(present) <= _F64_BELOW
    dtype = np.float64 if small else np.float32

    def to(a, dt=None):
        a = np.ascontiguousarray(a if dt is None else a.astype(dt))
        return torch.from_numpy(a).to(dev)

    def rotated(X):
        return to(X, dtype) @ to(V, dtype)

    cw = class_weights(ytr, n_classes, p["class_weight"])
    prior = np.log(counts[present] / counts.sum())
    return _Problem(
        X=rotated(Xtr_p),
        y=to(renumber[ytr]),
        Xv=rotated(Xva_p),
        yv=to(yva),
        Xte=rotated(Xte_p),
        cols=to(present),
        n_classes=n_classes,
        cw=cw,
        cw_t=None if cw is None else to(cw[present], dtype),
        W=torch.zeros(Xtr_p.shape[1], len(present), dtype=torch.float32, device=dev),
        b=to(prior - prior.mean(), np.float32),
    )


def _c_grid(p: dict, have_val: bool) -> np.ndarray:
    """The coarse grid: ``n_c`` values log-spaced from ``c_min`` to ``c_max``."""
    Cs = np.geomspace(p["c_min"], p["c_max"], p["n_c"]) if p["n_c"] > 1 else np.array([p["c_min"]])
    if not have_val and len(Cs) > 1:
        log.warning("linear: no validation rows, so no search; fitting C=c_min only")
        Cs = Cs[:1]
    return Cs


def _release_C(prob: _Problem) -> float:
    """The C from which the penalty holds back no direction of the train features.

    Along a direction of train variance ``v`` (a column of the rotated features) the data's
    curvature is about ``p (1 - p) v``, ``v / K`` for K classes at the prior; the penalty per
    weight is ``1 / (C n)``. Below ``C = K / (n v)`` the penalty outweighs the data there, and
    the weights along that direction stay near zero whatever it separates, so the val scores
    can worsen on the directions already in use and improve again once this one is let go:
    the released point asks the penalty to be a tenth of the smallest direction's curvature.
    Directions with no train variance (below 1e-10 of the largest: rounding; fewer rows than
    features) carry nothing the penalty could hold back and are left out."""
    n = len(prob.X)
    v = torch.linalg.vector_norm(prob.X, dim=0).double().square() / n
    v = v[v > 1e-10 * v.max()]
    if not len(v):
        return 0.0
    return 10.0 * len(prob.cols) / (n * float(v.min()))


class _Search:
    """Fits at chosen values of C, each warm-started from the solved point nearest in
    log C and scored on val; remembers every point (the search's record) and solution."""

    def __init__(self, prob: _Problem, p: dict):
        self.prob, self.p = prob, p
        self.minimise = _Minimiser(prob.softmax(prob.X, prob.y), p)
        self.grid: list[dict] = []
        self.solutions: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.best = 0
        self.released = _release_C(prob)

    def has(self, C: float) -> bool:
        return any(math.isclose(g["C"], C, rel_tol=1e-9) for g in self.grid)

    def start(self, C: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The solved point nearest in log C (a warm start), or the prior."""
        if not self.solutions:
            return self.prob.W, self.prob.b
        near = min(range(len(self.grid)), key=lambda i: abs(math.log(self.grid[i]["C"] / C)))
        return self.solutions[near]

    def run(self, C: float, phase: str) -> bool:
        """Fit and score at ``C``; True if it is the new best point."""
        prob = self.prob
        t0 = time.perf_counter()
        W, b, run = self.minimise(*self.start(C), C)
        acc, ll, _ = prob.scores(W, b, prob.Xv, prob.yv)
        run["seconds"] = round(time.perf_counter() - t0, 3)  # scoring included
        self.grid.append(
            {"C": float(C), "phase": phase, "val_accuracy": acc, "val_log_loss": ll, **run}
        )
        self.solutions.append((W, b))
        log.info(
            "linear %s C=%.3g: val acc %.4f log-loss %.4f (%d it, %d evals + %d Hessian products, "
            "%d solves on class blocks, %s, gap ~%.1g, %.1f s)",
            phase,
            C,
            acc,
            ll,
            run["iterations"],
            run["evaluations"],
            run["hessian_products"],
            run["block_solves"],
            "converged" if run["converged"] else f"NOT converged: {run['stop']}",
            run["gap_estimate"],
            run["seconds"],
        )
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

    def past_optimum(self) -> bool:
        """Is the last point worse than the best in val accuracy *and* in val log-loss, with
        the log-loss rising from the point before? Asked only past :attr:`released`, where
        weaker regularisation lets the weights grow along the directions already in use and
        so only overfits further: the path ends without spending ``path_patience`` on the
        slowest, least regularised fits. (Before that point the val log-loss need not be
        unimodal in C: a signal in a low-variance direction appears only once the penalty
        lets it go.)"""
        last, prev, best = self.grid[-1], self.grid[-2], self.grid[self.best]
        return (
            last["val_accuracy"] < best["val_accuracy"]
            and last["val_log_loss"] > best["val_log_loss"]
            and last["val_log_loss"] > prev["val_log_loss"]
        )

    def coarse(self, Cs: np.ndarray) -> None:
        """Strong to weak regularisation; once the path has learned something and has
        reached the released point (:func:`_release_C`), ``path_patience`` points in a row
        without a better one end it, as does one point past the optimum by both measures
        (:meth:`past_optimum`; with ``path_patience`` on). Points before the released
        point do not count."""
        since_best = 0
        patience = self.p["path_patience"]
        if patience:
            log.info(
                "linear: the penalty holds back no direction of the train features from "
                "C=%.3g on; the path may end only from there",
                self.released,
            )
        for C in progress(Cs, desc="linear C search", unit="C"):
            if self.run(float(C), "coarse") or len(self.grid) == 1 or not self.learned():
                since_best = 0
                continue
            if C < self.released * (1 - 1e-9):
                continue
            since_best += 1
            if patience and (since_best >= patience or self.past_optimum()):
                log.info("linear: the path ends at C=%.3g (%s)", C, self._why(since_best))
                break

    def _why(self, since_best: int) -> str:
        if since_best >= self.p["path_patience"]:
            return f"{since_best} points without a better one"
        return "past the optimum: val accuracy and log-loss both worse than the best"

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


_REFIT_KEYS = (
    "iterations",
    "evaluations",
    "hessian_products",
    "block_solves",
    "train_objective",
    "gap_estimate",
    "grad_max",
    "converged",
    "stop",
    "dtype",
    "seconds",
)


def _warnings(search: _Search, Cs: np.ndarray, at_edge: float | None) -> list[str]:
    out = []
    if at_edge is not None:
        out.append(
            f"the best coarse-grid C={at_edge:.3g} is at the edge of the grid "
            f"[{Cs[0]:.3g}, {Cs[-1]:.3g}]: the optimum may lie outside it"
        )
    for stop, why in (
        ("max_iter", f"within max_iter={search.p['max_iter']}"),
        ("stalled", "(no step lowered the loss, in float64, above the tolerance)"),
    ):
        bad = [g["C"] for g in search.grid if g["stop"] == stop]
        if bad:
            out.append(
                f"{len(bad)} of {len(search.grid)} search points did not converge {why} "
                f"(C={', '.join(f'{c:.3g}' for c in bad)})"
            )
    return out


def _refit(prob: _Problem, search: _Search, W, b, C: float):
    """The chosen C on train + val, warm-started from its train solution. Val rows of
    classes without train rows stay out (the model has no such class); counted."""
    renumber = torch.full((prob.n_classes,), -1, dtype=torch.int64, device=prob.yv.device)
    renumber[prob.cols] = torch.arange(len(prob.cols), device=prob.yv.device)
    yv = renumber[prob.yv]
    keep = yv >= 0
    fun = prob.softmax(torch.cat([prob.X, prob.Xv[keep]]), torch.cat([prob.y, yv[keep]]))
    W, b, run = _Minimiser(fun, search.p)(W, b, C)
    refit = {"on": "train+val", **{k: run[k] for k in _REFIT_KEYS}}
    refit["val_rows_left_out"] = int((~keep).sum())
    return W, b, refit


def fit_linear(p, data: FitData, ctx: FitContext) -> FitResult:
    t_start = time.perf_counter()
    prob = _problem(p, data, ctx.n_classes, ctx.device)
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
    W, b = search.solutions[search.best]
    refit = {"on": "train"}
    if p["refit"] == "train+val" and have_val:
        W, b, refit = _refit(prob, search, W, b, C)
    warnings = _warnings(search, Cs, coarse_best if at_edge else None)
    if refit.get("converged") is False:
        warnings.append(f"the refit at C={C:.3g} did not converge ({refit['stop']})")
    for w in warnings:
        log.warning("linear: %s", w)
    _, _, P = prob.scores(W, b, prob.Xte)
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
    return FitResult(P.cpu().numpy(), [], info, trained_on=tuple(refit["on"].split("+")))
