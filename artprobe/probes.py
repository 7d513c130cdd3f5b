"""Classifiers ("probes") fitted on frozen embeddings: ``mlp``, ``linear`` and ``knn``.

Everything here works on plain numpy arrays and torch; nothing knows about files or
Snakemake. The workflow calls :func:`resolve_params` at parse time (so a typo in the
config fails before any job runs, naming the key) and :func:`fit` in the classify job.

``mlp``
    The bachelor-thesis protocol, reproduced faithfully from its Keras code in torch:
    Dense(hidden, relu, kernel L2 as Keras adds it: ``l2 * sum(W**2)`` of that kernel
    added to every batch's loss) -> Dense(n_classes, softmax); Glorot-uniform kernels
    and zero biases; Adam (``epsilon`` 1e-7; torch adds it after the bias correction,
    Keras before: a difference of order 1e-7 / sqrt(v)) with Keras' ``ExponentialDecay``
    (``lr * decay_rate ** (step / decay_steps)``, not staircase); ``batch_size`` 32;
    each epoch visits the training rows in a fresh seeded permutation; at most
    ``epochs`` epochs with Keras' ``EarlyStopping(monitor="val_loss")`` semantics
    (``patience``, ``min_delta``; ``restore_best`` restores the best epoch's weights at
    the end, stopped early or not, as Keras 3 does; default False: the last epoch's
    weights are kept, as in the thesis). As in Keras, the logged losses include the L2
    term (the train loss's L2 part is the mean of its values at the start and end of the
    epoch), ``class_weight`` weights only the training loss (sum of weighted losses /
    batch size) and ``val_loss`` is unweighted. On CUDA the training step is captured
    once in a CUDA graph and replayed, so a batch-32 step costs one launch, not ~40.
``linear``
    Multinomial logistic regression (softmax regression, unpenalised intercept) on
    standardised or L2-normalised embeddings, minimised full-batch with L-BFGS in
    float32 torch. The regularisation follows scikit-learn's ``C`` convention
    (objective ``C * sum_i w_i CE_i + ||W||^2 / 2``, so the selected ``C`` means what it
    means in ``sklearn.linear_model.LogisticRegression``). ``C`` is searched on a log
    grid (``n_c`` values from ``c_min`` to ``c_max``) from strong to weak regularisation
    with warm starts, each point scored on the validation set (``select_by``: accuracy,
    ties broken by log-loss, or log-loss); the chosen value is then refitted on train
    (+ val when ``refit_on_val``), warm-started. Each L-BFGS run stops at a gradient
    tolerance relative to the regularisation (``tol``, see :func:`_gtol`) or after
    ``max_iter`` iterations, so the whole search costs at most about
    ``(n_c + 1) * 1.2 * max_iter`` loss evaluations (~300 by default; one takes ~0.3 s
    at WikiArt size on 2 CPU cores, ~1 ms on a GPU). ``path_patience`` > 0 ends the
    search after that many grid points in a row without improvement.
``knn``
    Cosine k-nearest neighbours with a uniform or DINO-style temperature-weighted vote
    (``exp(sim / temperature)``), by chunked matrix products. The reference set is
    the training split.

All kinds take ``class_weight: none | balanced``; balanced weights are scikit-learn's
``n / (n_classes_present * count_c)`` on the training labels.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

KINDS = ("mlp", "linear", "knn")

# ---------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_)
    )


def _int(lo: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, (bool, np.bool_)) or not (
            isinstance(v, (int, np.integer))
            or (isinstance(v, (float, np.floating)) and float(v).is_integer())
        ):
            raise ValueError(f"must be an integer >= {lo}, got {v!r}")
        if int(v) < lo:
            raise ValueError(f"must be an integer >= {lo}, got {v!r}")
        return int(v)

    return check


def _float(lo: float, hi: float = math.inf, lo_open: bool = True) -> Callable[[Any], float]:
    interval = f"{'(' if lo_open else '['}{lo}, {hi}]"

    def check(v: Any) -> float:
        if not _is_num(v) or not math.isfinite(float(v)):
            raise ValueError(f"must be a number in {interval}, got {v!r}")
        f = float(v)
        if (f <= lo if lo_open else f < lo) or f > hi:
            raise ValueError(f"must be a number in {interval}, got {v!r}")
        return f

    return check


def _choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v is None and "none" in options:
            return "none"
        if not isinstance(v, str) or v not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {v!r}")
        return v

    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"must be true or false, got {v!r}")
    return bool(v)


_CLASS_WEIGHT = ("none", _choice("none", "balanced"))

# name -> (default, validator). The defaults are the protocol; see the module docstring.
_SPECS: dict[str, dict[str, tuple[Any, Callable[[Any], Any]]]] = {
    "mlp": {
        "hidden": (3000, _int(1)),
        "l2": (0.01, _float(0.0, lo_open=False)),
        "lr": (1e-4, _float(0.0)),
        "decay_rate": (0.9, _float(0.0, 1.0)),
        "decay_steps": (10000, _float(0.0)),
        "epsilon": (1e-7, _float(0.0)),
        "batch_size": (32, _int(1)),
        "epochs": (20, _int(1)),
        "patience": (3, _int(0)),
        "min_delta": (0.0, _float(0.0, lo_open=False)),
        "restore_best": (False, _bool),
        "class_weight": _CLASS_WEIGHT,
    },
    "linear": {
        "normalize": ("standardize", _choice("standardize", "l2", "none")),
        "c_min": (1e-4, _float(0.0)),
        "c_max": (1e2, _float(0.0)),
        "n_c": (8, _int(1)),
        "select_by": ("accuracy", _choice("accuracy", "log_loss")),
        "refit_on_val": (True, _bool),
        "max_iter": (30, _int(1)),
        "tol": (1e-2, _float(0.0)),
        "path_patience": (0, _int(0)),
        "class_weight": _CLASS_WEIGHT,
    },
    "knn": {
        "k": (20, _int(1)),
        "weighting": ("similarity", _choice("uniform", "similarity")),
        "temperature": (0.07, _float(0.0)),
        "class_weight": _CLASS_WEIGHT,
    },
}


def defaults(kind: str) -> dict:
    """The default parameters of ``kind`` (a fresh dict)."""
    _check_kind(kind)
    return {k: d for k, (d, _) in _SPECS[kind].items()}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown classifier kind {kind!r} (known: {', '.join(KINDS)})")


def resolve_params(kind: str, params: dict | None, *, name: str | None = None) -> dict:
    """Validate ``params`` for classifier ``kind`` and fill in the defaults.

    Raises ``ValueError`` naming the classifier (``name``, default ``kind``) and the
    offending key: an unknown key, a value of the wrong type or out of range.
    """
    _check_kind(kind)
    label = f"classifier {name or kind!r}"
    spec = _SPECS[kind]
    params = dict(params or {})
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ValueError(f"{label}: unknown key {unknown[0]!r} (known: {', '.join(sorted(spec))})")
    out = {}
    for key, (default, check) in spec.items():
        value = params.get(key, default)
        try:
            out[key] = check(value)
        except ValueError as err:
            raise ValueError(f"{label}: key {key!r} {err}") from None
    if kind == "linear" and out["c_max"] < out["c_min"]:
        raise ValueError(
            f"{label}: key 'c_max' must be >= c_min ({out['c_min']}), got {out['c_max']}"
        )
    return out


# ---------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------


@dataclass
class FitResult:
    proba_test: np.ndarray  # float32 [n_test, n_classes], rows sum to 1
    history: list[dict] = field(default_factory=list)  # per-epoch rows (iterative probes)
    info: dict = field(default_factory=dict)  # chosen hyper-parameters, timings, device


HISTORY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")


def resolve_device(device: str = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


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


def _normalize_rows(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    p = np.clip(p, 0.0, None)
    s = p.sum(axis=1, keepdims=True)
    p = np.divide(p, s, out=np.full_like(p, 1.0 / max(p.shape[1], 1)), where=s > 0)
    return p.astype(np.float32)


def fit(
    kind: str,
    params: dict,
    X_train,
    y_train,
    X_val,
    y_val,
    X_test,
    *,
    n_classes: int,
    seed: int = 0,
    threads: int = 1,
    device: str = "auto",
    cuda_graph: bool = True,
) -> FitResult:
    """Fit classifier ``kind`` with resolved ``params``; return test probabilities.

    ``X_*`` float32 [n, D]; ``y_*`` int label ids in ``[0, n_classes)`` (classes may
    be absent from train). ``threads`` bounds torch's CPU threads during the fit;
    ``device`` is ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ...
    ``cuda_graph`` lets the mlp capture its training step in a CUDA graph (CUDA only;
    falls back to eager steps if capture fails).
    """
    _check_kind(kind)
    params = resolve_params(kind, params)  # idempotent; guards direct callers
    Xtr, ytr = _as_inputs(X_train, y_train, n_classes, "train")
    Xva, yva = _as_inputs(X_val, y_val, n_classes, "val")
    Xte = _as_inputs(X_test, what="test")
    if not (Xtr.shape[1] == Xva.shape[1] == Xte.shape[1]):
        raise ValueError(
            "embedding widths differ: "
            f"train {Xtr.shape[1]}, val {Xva.shape[1]}, test {Xte.shape[1]}"
        )
    if len(Xtr) == 0:
        raise ValueError("no training rows")
    dev = resolve_device(device)
    t0 = time.perf_counter()
    with _torch_threads(threads):
        if kind == "mlp":
            res = _fit_mlp(params, Xtr, ytr, Xva, yva, Xte, n_classes, seed, dev, cuda_graph)
        elif kind == "linear":
            res = _fit_linear(params, Xtr, ytr, Xva, yva, Xte, n_classes, dev)
        else:
            res = _fit_knn(params, Xtr, ytr, Xva, yva, Xte, n_classes, dev)
    res.proba_test = _normalize_rows(res.proba_test)
    res.info = {
        "kind": kind,
        "params": dict(params),
        **res.info,
        "n_train": int(len(Xtr)),
        "n_val": int(len(Xva)),
        "n_test": int(len(Xte)),
        "n_classes": int(n_classes),
        "n_features": int(Xtr.shape[1]),
        "seed": int(seed),
        "threads": int(threads),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return res


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# ---------------------------------------------------------------------------------
# mlp
# ---------------------------------------------------------------------------------


class MLP(torch.nn.Module):
    """Dense(hidden, relu) -> Dense(n_classes); softmax lives in the loss."""

    def __init__(self, d_in: int, hidden: int, n_classes: int):
        super().__init__()
        self.fc1 = torch.nn.Linear(d_in, hidden)
        self.fc2 = torch.nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))

    @torch.no_grad()
    def keras_init_(self, generator: torch.Generator) -> "MLP":
        """Glorot-uniform kernels, zero biases (Keras Dense defaults), from ``generator``."""
        for lin in (self.fc1, self.fc2):
            fan_out, fan_in = lin.weight.shape
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            w = torch.rand(lin.weight.shape, generator=generator, dtype=torch.float32)
            lin.weight.copy_(w.mul_(2 * limit).sub_(limit))
            lin.bias.zero_()
        return self


def _keras_lr(p: dict, step: int) -> float:
    return p["lr"] * p["decay_rate"] ** (step / p["decay_steps"])


@torch.inference_mode()
def _mlp_eval(model: MLP, X: torch.Tensor, y: torch.Tensor | None, reg: float, chunk: int = 8192):
    """Mean CE + reg and accuracy on (X, y), or softmax probabilities when y is None."""
    if y is None:
        out = [torch.softmax(model(X[i : i + chunk]), 1) for i in range(0, len(X), chunk)]
        return torch.cat(out) if out else torch.zeros(0, model.fc2.out_features, device=X.device)
    if len(X) == 0:
        return float("nan"), float("nan")
    loss = torch.zeros((), dtype=torch.float64, device=X.device)
    correct = torch.zeros((), dtype=torch.int64, device=X.device)
    for i in range(0, len(X), chunk):
        logits = model(X[i : i + chunk])
        yb = y[i : i + chunk]
        loss += F.cross_entropy(logits, yb, reduction="sum").double()
        correct += (logits.argmax(1) == yb).sum()
    return loss.item() / len(X) + reg, correct.item() / len(X)


class _Trainer:
    """One epoch of Keras-protocol training steps, eager or as a replayed CUDA graph.

    The L2 term's gradient ``2 * l2 * W`` is added to the kernel's gradient directly
    instead of differentiating ``l2 * sum(W**2)`` through autograd (same update, one
    fused pass instead of three); its value, needed only for the logged train loss, is
    taken at the start and end of each epoch (trapezoid) instead of at every step.
    """

    def __init__(
        self,
        model: MLP,
        p: dict,
        X: torch.Tensor,
        y: torch.Tensor,
        w: torch.Tensor | None,
        dev: torch.device,
        use_graph: bool,
    ):
        self.model, self.p, self.dev = model, p, dev
        self.X, self.y, self.w = X, y, w
        self.n, self.bs = len(X), p["batch_size"]
        self.n_full = self.n // self.bs
        self.l2 = p["l2"]
        self.step_count = 0  # optimizer iterations so far (Keras' optimizer.iterations)
        params = list(model.parameters())
        # Running sums of the epoch's batch losses and hits (the graph captures them).
        self.loss_acc = torch.zeros((), dtype=torch.float64, device=dev)
        self.correct_acc = torch.zeros((), dtype=torch.int64, device=dev)
        self.graph = None
        if use_graph:
            snapshot = [t.detach().clone() for t in params]
            try:
                self._setup_graph(params, snapshot)
            except Exception as err:  # pragma: no cover - depends on the CUDA stack
                log.warning("CUDA graph capture failed (%r); using eager steps", err)
                self.graph = None
                with torch.no_grad():  # undo any warm-up step
                    for t, s in zip(params, snapshot):
                        t.copy_(s)
                        t.grad = None
        if self.graph is None:
            self.lr_t = None
            fused = dev.type in ("cuda", "cpu")
            try:
                self.opt = torch.optim.Adam(params, lr=p["lr"], eps=p["epsilon"], fused=fused)
            except (RuntimeError, TypeError, ValueError):  # pragma: no cover
                self.opt = torch.optim.Adam(params, lr=p["lr"], eps=p["epsilon"])

    # -- the step, shared by the eager path and the graph capture --------------------
    def _forward_backward(self, xb: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor | None):
        logits = self.model(xb)
        if wb is None:
            loss = F.cross_entropy(logits, yb)
        else:  # Keras: sum of weighted per-sample losses / batch size
            loss = (F.cross_entropy(logits, yb, reduction="none") * wb).mean()
        loss.backward()
        with torch.no_grad():
            if self.l2:
                W = self.model.fc1.weight
                W.grad.add_(W, alpha=2.0 * self.l2)
            self.loss_acc += loss.detach().double() * len(yb)
            self.correct_acc += (logits.detach().argmax(1) == yb).sum()

    def _setup_graph(self, params: list[torch.Tensor], snapshot: list[torch.Tensor]) -> None:
        p, dev, bs = self.p, self.dev, self.bs
        if self.n_full == 0:
            raise RuntimeError("fewer rows than one batch")
        self.lr_t = torch.tensor(p["lr"], dtype=torch.float32, device=dev)
        try:  # one fused kernel per step; foreach (a handful of kernels) otherwise
            self.opt = torch.optim.Adam(
                params, lr=self.lr_t, eps=p["epsilon"], capturable=True, fused=True
            )
        except (RuntimeError, TypeError, ValueError):  # pragma: no cover
            self.opt = torch.optim.Adam(
                params, lr=self.lr_t, eps=p["epsilon"], capturable=True, foreach=True
            )
        self.gstep = torch.zeros((), dtype=torch.float32, device=dev)  # iterations, on device
        self.batch_i = torch.zeros((), dtype=torch.int64, device=dev)  # batch index in epoch
        self.arange = torch.arange(bs, device=dev)
        self.Xp = torch.empty_like(self.X)
        self.yp = torch.empty_like(self.y)
        self.wp = None if self.w is None else torch.empty_like(self.w)

        def graph_step():
            idx = self.arange + self.batch_i * bs
            xb = self.Xp.index_select(0, idx)
            yb = self.yp.index_select(0, idx)
            wb = None if self.wp is None else self.wp.index_select(0, idx)
            self._forward_backward(xb, yb, wb)
            self.lr_t.copy_(p["lr"] * torch.pow(p["decay_rate"], self.gstep / p["decay_steps"]))
            self.opt.step()
            self.gstep += 1
            self.batch_i += 1

        self.Xp.copy_(self.X)
        self.yp.copy_(self.y)
        if self.wp is not None:
            self.wp.copy_(self.w)
        # Warm up on a side stream (lazy optimizer state, cuBLAS workspaces), capture,
        # then undo the warm-up steps: parameters, Adam moments and counters.
        stream = torch.cuda.Stream(dev)
        stream.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(stream):
            for _ in range(3):
                self.opt.zero_grad(set_to_none=True)
                self.batch_i.zero_()  # stay on the first batch: data may be that small
                graph_step()
        torch.cuda.current_stream(dev).wait_stream(stream)
        self.opt.zero_grad(set_to_none=True)
        self.batch_i.zero_()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            graph_step()
        with torch.no_grad():
            for t, s in zip(params, snapshot):
                t.copy_(s)
            for state in self.opt.state.values():
                for v in state.values():
                    if torch.is_tensor(v):
                        v.zero_()
            self.gstep.zero_()
            self.batch_i.zero_()
        self.graph = graph
        self._graph_step = graph_step

    # -- epochs ------------------------------------------------------------------------
    def reg_value(self) -> float:
        if not self.l2:
            return 0.0
        with torch.no_grad():
            W = self.model.fc1.weight
            return self.l2 * float(torch.dot(W.view(-1), W.view(-1)))

    def epoch(self, perm: torch.Tensor) -> tuple[float, float, float]:
        """Run one epoch over ``perm``; return (mean CE of the batches, accuracy, last lr)."""
        bs, n = self.bs, self.n
        self.loss_acc.zero_()
        self.correct_acc.zero_()
        if self.graph is not None:
            torch.index_select(self.X, 0, perm, out=self.Xp)
            torch.index_select(self.y, 0, perm, out=self.yp)
            if self.wp is not None:
                torch.index_select(self.w, 0, perm, out=self.wp)
            self.batch_i.zero_()
            for _ in range(self.n_full):
                self.graph.replay()
            self.step_count += self.n_full
            if n % bs:  # the last, partial batch: same ops, eagerly
                for t in self.model.parameters():
                    t.grad.zero_()
                sl = slice(self.n_full * bs, n)
                wb = None if self.wp is None else self.wp[sl]
                self._forward_backward(self.Xp[sl], self.yp[sl], wb)
                self.lr_t.fill_(_keras_lr(self.p, self.step_count))
                self.opt.step()
                self.gstep += 1
                self.step_count += 1
            lr = _keras_lr(self.p, self.step_count - 1)
        else:
            Xp, yp = self.X[perm], self.y[perm]
            wp = None if self.w is None else self.w[perm]
            group = self.opt.param_groups[0]
            for start in range(0, n, bs):
                group["lr"] = _keras_lr(self.p, self.step_count)
                self.opt.zero_grad(set_to_none=True)
                stop = start + bs
                self._forward_backward(
                    Xp[start:stop], yp[start:stop], None if wp is None else wp[start:stop]
                )
                self.opt.step()
                self.step_count += 1
            lr = group["lr"]
        return self.loss_acc.item() / n, self.correct_acc.item() / n, lr


def _fit_mlp(p, Xtr, ytr, Xva, yva, Xte, n_classes, seed, dev, cuda_graph) -> FitResult:
    gen = torch.Generator().manual_seed(int(seed))
    model = MLP(Xtr.shape[1], p["hidden"], n_classes).keras_init_(gen).to(dev)
    X = torch.from_numpy(Xtr).to(dev)
    y = torch.from_numpy(ytr).to(dev)
    cw = class_weights(ytr, n_classes, p["class_weight"])
    w = None if cw is None else torch.from_numpy(cw[ytr].astype(np.float32)).to(dev)
    Xv, yv = torch.from_numpy(Xva).to(dev), torch.from_numpy(yva).to(dev)
    use_graph = bool(cuda_graph) and dev.type == "cuda"
    trainer = _Trainer(model, p, X, y, w, dev, use_graph)

    history: list[dict] = []
    best, best_epoch, wait, stopped = math.inf, 0, 0, False
    best_state = None
    train_s = val_s = 0.0
    reg_start = trainer.reg_value()
    for epoch in range(p["epochs"]):
        perm = torch.randperm(len(X), generator=gen).to(dev)
        _sync(dev)
        t0 = time.perf_counter()
        ce, acc, lr = trainer.epoch(perm)  # .item() inside syncs
        t1 = time.perf_counter()
        reg_end = trainer.reg_value()
        val_loss, val_acc = _mlp_eval(model, Xv, yv, reg_end)
        val_s += time.perf_counter() - t1
        train_s += t1 - t0
        row = {
            "epoch": epoch + 1,
            "train_loss": ce + 0.5 * (reg_start + reg_end),
            "train_accuracy": acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": lr,
        }
        history.append(row)
        reg_start = reg_end
        log.info(
            "epoch %d/%d: loss %.4f acc %.4f val_loss %.4f val_acc %.4f (%.1f s)",
            epoch + 1,
            p["epochs"],
            row["train_loss"],
            acc,
            val_loss,
            val_acc,
            t1 - t0,
        )
        if not math.isfinite(row["train_loss"]):
            raise FloatingPointError(f"mlp: non-finite training loss at epoch {epoch + 1}")
        # Keras EarlyStopping(monitor="val_loss", mode="min"): wait counts epochs since
        # the last improvement (val_loss + min_delta < best); stop once wait >= patience.
        if len(Xv) == 0:
            continue
        wait += 1
        if val_loss + p["min_delta"] < best:
            best, best_epoch, wait = val_loss, epoch + 1, 0
            if p["restore_best"]:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif wait >= p["patience"] and epoch > 0:
            stopped = True
            break
    restored = False
    if p["restore_best"] and best_state is not None and best_epoch != len(history):
        with torch.no_grad():
            for k, v in model.state_dict().items():
                v.copy_(best_state[k])
        restored = True
    proba = _mlp_eval(model, torch.from_numpy(Xte).to(dev), None, 0.0)
    epochs_run = len(history)
    info = {
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "best_val_loss": best if math.isfinite(best) else None,
        "stopped_early": stopped,
        "restored_best": restored,
        "steps": trainer.step_count,
        "train_seconds": round(train_s, 3),
        "val_seconds": round(val_s, 3),
        "s_per_epoch": round(train_s / max(epochs_run, 1), 4),
        "cuda_graph": trainer.graph is not None,
        "class_weights": None if cw is None else [round(float(v), 6) for v in cw],
    }
    return FitResult(proba.float().cpu().numpy(), history, info)


# ---------------------------------------------------------------------------------
# linear
# ---------------------------------------------------------------------------------


def _preprocess(mode: str, Xtr: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Standardise with train statistics, or scale rows to norm sqrt(D) ('l2')."""
    if mode == "standardize":
        mean = Xtr.mean(axis=0, dtype=np.float64)
        std = Xtr.std(axis=0, dtype=np.float64)
        std[std < 1e-12] = 1.0
        mean, inv = mean.astype(np.float32), (1.0 / std).astype(np.float32)
        return [(X - mean) * inv for X in (Xtr, *others)]
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
        ce = s.log().add_(m).sub_(picked)  # per-row cross-entropy [n, 1]
        loss = torch.dot(ce.view(-1), self.scale.view(-1))
        # dL/dZ = (softmax - onehot) * scale, written over Z
        Z.mul_(self.scale / s).scatter_add_(1, self.y1, self.neg_scale)
        gW = torch.addmm(W, self.X.T, Z, beta=lam)
        gb = Z.sum(0)
        loss = loss + 0.5 * lam * torch.dot(W.view(-1), W.view(-1))
        return loss, gW, gb


def _lbfgs(
    fun: _Softmax,
    W: torch.Tensor,
    b: torch.Tensor,
    lam: float,
    max_iter: int,
    gtol: float,
    ftol: float = 1e-9,
) -> tuple[int, int, float]:
    """Minimise in place from (W, b) with torch's L-BFGS (strong Wolfe line search).

    Stops when the largest gradient entry is at most ``gtol``, when the loss changes by
    less than ``ftol`` between iterations, or after ``max_iter`` iterations.
    Returns (iterations, function evaluations, final loss).
    """
    W.grad = torch.zeros_like(W)
    b.grad = torch.zeros_like(b)
    evals = 0

    def closure():
        nonlocal evals
        evals += 1
        loss, gW, gb = fun(W, b, lam)
        W.grad.copy_(gW)
        b.grad.copy_(gb)
        return loss

    opt = torch.optim.LBFGS(
        [W, b],
        lr=1.0,
        max_iter=max_iter,
        max_eval=int(max_iter * 1.5) + 5,
        tolerance_grad=gtol,
        tolerance_change=ftol,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    loss = opt.step(closure)
    n_iter = opt.state[opt._params[0]].get("n_iter", 0)
    W.grad = None
    b.grad = None
    return int(n_iter), evals, float(loss)


def _gtol(tol: float, lam: float, W: torch.Tensor) -> float:
    """Gradient tolerance relative to the regularisation.

    The objective is ``lam``-strongly convex in W, so ``|W - W*| <= |grad| / lam``:
    asking ``max|grad| <= tol * lam * max(1, max|W|)`` bounds the distance to the
    optimum relative to the weights' scale, at every C alike (an absolute tolerance
    stops warm-started weak-regularisation points before they move). Floored at 1e-7
    (float32 gradients are not more exact than that).
    """
    return max(1e-7, tol * lam * max(1.0, float(W.abs().max())))


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


def _fit_linear(p, Xtr, ytr, Xva, yva, Xte, n_classes, dev) -> FitResult:
    t_start = time.perf_counter()
    Xtr_p, Xva_p, Xte_p = _preprocess(p["normalize"], Xtr, Xva, Xte)
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)  # noqa: E731
    X, y, Xv, yv = to(Xtr_p), to(ytr), to(Xva_p), to(yva)
    cw = class_weights(ytr, n_classes, p["class_weight"])
    cw_t = None if cw is None else to(cw.astype(np.float32))
    fun = _Softmax(X, y, None if cw_t is None else cw_t[y])

    D = X.shape[1]
    W = torch.zeros(D, n_classes, dtype=torch.float32, device=dev)
    counts = np.bincount(ytr, minlength=n_classes).astype(np.float64)
    prior = np.log(np.maximum(counts, 0.5) / counts.sum())
    b = to((prior - prior.mean()).astype(np.float32))

    Cs = np.geomspace(p["c_min"], p["c_max"], p["n_c"]) if p["n_c"] > 1 else np.array([p["c_min"]])
    have_val = len(yv) > 0
    if not have_val and len(Cs) > 1:
        log.warning("linear: no validation rows, so no search; fitting C=c_min only")
        Cs = Cs[:1]
    grid: list[dict] = []
    solutions: list[tuple[torch.Tensor, torch.Tensor]] = []
    best_i, since_best = 0, 0
    for i, C in enumerate(Cs):
        t0 = time.perf_counter()
        lam = 1.0 / (C * len(X))
        n_iter, evals, loss = _lbfgs(fun, W, b, lam, p["max_iter"], _gtol(p["tol"], lam, W))
        acc, ll, _ = _scores(W, b, Xv, yv)
        solutions.append((W.clone(), b.clone()))
        grid.append(
            {
                "C": float(C),
                "val_accuracy": acc,
                "val_log_loss": ll,
                "train_objective": loss,
                "iterations": n_iter,
                "evaluations": evals,
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        log.info(
            "linear C=%.3g: val acc %.4f log-loss %.4f (%d it, %d evals, %.1f s)",
            C,
            acc,
            ll,
            n_iter,
            evals,
            grid[-1]["seconds"],
        )
        if not have_val:
            continue
        if _better(grid[i], grid[best_i], p["select_by"]):
            best_i, since_best = i, 0
        else:
            since_best += 1
            if p["path_patience"] and since_best >= p["path_patience"]:
                break
    C = grid[best_i]["C"]
    at_edge = len(Cs) > 1 and have_val and best_i in (0, len(Cs) - 1)
    if at_edge:
        log.warning(
            "linear: the selected C=%.3g is at the edge of the grid [%.3g, %.3g]", C, Cs[0], Cs[-1]
        )
    W, b = (t.clone() for t in solutions[best_i])
    refit = {"on": "train"}
    if p["refit_on_val"] and have_val:
        Xall = torch.cat([X, Xv])
        yall = torch.cat([y, yv])
        fun_all = _Softmax(Xall, yall, None if cw_t is None else cw_t[yall])
        t0 = time.perf_counter()
        lam = 1.0 / (C * len(Xall))
        n_iter, evals, loss = _lbfgs(fun_all, W, b, lam, p["max_iter"], _gtol(p["tol"], lam, W))
        refit = {
            "on": "train+val",
            "iterations": n_iter,
            "evaluations": evals,
            "train_objective": loss,
            "seconds": round(time.perf_counter() - t0, 3),
        }
    _, _, P = _scores(W, b, to(Xte_p), None)
    info = {
        "C": C,
        "C_at_grid_edge": bool(at_edge),
        "select_by": p["select_by"],
        "val_accuracy": grid[best_i]["val_accuracy"],
        "val_log_loss": grid[best_i]["val_log_loss"],
        "grid": grid,
        "refit": refit,
        "search_seconds": round(sum(g["seconds"] for g in grid), 3),
        "linear_seconds": round(time.perf_counter() - t_start, 3),
        "class_weights": None if cw is None else [round(float(v), 6) for v in cw],
    }
    return FitResult(P.cpu().numpy(), [], info)


def _better(a: dict, b: dict, select_by: str) -> bool:
    """Is grid point ``a`` strictly better than ``b``? Ties keep ``b`` (stronger reg.)."""
    if select_by == "log_loss":
        return a["val_log_loss"] < b["val_log_loss"]
    if a["val_accuracy"] != b["val_accuracy"]:
        return a["val_accuracy"] > b["val_accuracy"]
    return a["val_log_loss"] < b["val_log_loss"]


# ---------------------------------------------------------------------------------
# knn
# ---------------------------------------------------------------------------------


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


def _fit_knn(p, Xtr, ytr, Xva, yva, Xte, n_classes, dev) -> FitResult:
    to = lambda a: torch.from_numpy(a).to(dev)  # noqa: E731
    T, yT = _unit_rows(to(Xtr)), to(ytr)
    cw = class_weights(ytr, n_classes, p["class_weight"])
    cw_t = None if cw is None else to(cw.astype(np.float32))
    kw = dict(
        n_classes=n_classes,
        k=p["k"],
        weighting=p["weighting"],
        temperature=p["temperature"],
        cw=cw_t,
    )
    t0 = time.perf_counter()
    # No validation queries: nothing is tuned on them, and at WikiArt size each query
    # set costs ~1 TFLOP on the CPU.
    P = knn_proba(T, yT, _unit_rows(to(Xte)), **kw)
    info = {
        "k": min(p["k"], len(T)),
        "knn_seconds": round(time.perf_counter() - t0, 3),
        "class_weights": None if cw is None else [round(float(v), 6) for v in cw],
    }
    return FitResult(P.cpu().numpy(), [], info)
