"""``mlp``: the bachelor-thesis protocol, reproduced faithfully from its Keras code in torch.

Dense(hidden, relu, kernel L2 as Keras adds it: ``l2 * sum(W**2)`` of that kernel added
to every batch's loss) -> Dense(n_classes, softmax); Glorot-uniform kernels and zero
biases; Adam (``epsilon`` 1e-7; torch adds it to the bias-corrected ``sqrt(v_hat)``, Keras
to ``sqrt(v)``: a difference of order 1e-7 / sqrt(v); ``keras_epsilon: true`` gives Keras'
placement exactly, see :func:`~artprobe.probes.mlp_step.keras_eps`) with Keras' ``ExponentialDecay``
(``lr * decay_rate ** (step / decay_steps)``, not staircase); ``batch_size`` 32; each
epoch visits the training rows in a fresh seeded permutation; at most ``epochs`` epochs
with Keras' ``EarlyStopping(monitor="val_loss")`` semantics (``patience``, ``min_delta``;
``restore_best`` restores the best epoch's weights at the end, stopped early or not, as
Keras 3 does; default False: the last epoch's weights are kept, as in the thesis). As in
Keras, the logged losses include the L2 term (the train loss's L2 part is the mean of its
values at the start and end of the epoch), ``class_weight`` weights only the training
loss (sum of weighted losses / batch size) and ``val_loss`` is unweighted. The steps
themselves (eager, or a CUDA graph on CUDA) are in :mod:`artprobe.probes.mlp_step`.

The thesis fed raw embeddings; ``standardize: true`` (not the thesis' protocol) scales
each feature to zero mean and unit variance with train statistics first, so that models
whose embeddings have different norms are compared on equal terms.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from artprobe.common.device import synchronize
from artprobe.common.logs import progress
from artprobe.probes.mlp_step import make_step
from artprobe.probes.shared import (
    FitContext,
    FitData,
    FitResult,
    class_weights,
    standardized,
    weights_info,
)

log = logging.getLogger(__name__)


class MLP(torch.nn.Module):
    """Dense(hidden, relu) -> Dense(n_classes); softmax lives in the loss."""

    def __init__(self, d_in: int, hidden: int, n_classes: int):
        super().__init__()
        self.fc1 = torch.nn.Linear(d_in, hidden)
        self.fc2 = torch.nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))

    @torch.no_grad()
    def keras_init_(self, generator: torch.Generator) -> MLP:
        """Glorot-uniform kernels, zero biases (Keras Dense defaults), from ``generator``."""
        for lin in (self.fc1, self.fc2):
            fan_out, fan_in = lin.weight.shape
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            w = torch.rand(lin.weight.shape, generator=generator, dtype=torch.float32)
            lin.weight.copy_(w.mul_(2 * limit).sub_(limit))
            lin.bias.zero_()
        return self


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


@dataclass
class EarlyStopping:
    """Keras' ``EarlyStopping(monitor="val_loss", mode="min")``: ``wait`` counts epochs
    since the last improvement (``val_loss + min_delta < best``); stop once
    ``wait >= patience`` (never after the first epoch)."""

    patience: int
    min_delta: float
    restore_best: bool
    best: float = math.inf
    best_epoch: int = 0  # 1-based; 0 before any improvement
    wait: int = 0
    best_state: dict | None = field(default=None, repr=False)

    def update(self, epoch: int, val_loss: float, model: MLP) -> bool:
        """Record 1-based ``epoch``'s ``val_loss``; True when training should stop."""
        self.wait += 1
        if val_loss + self.min_delta < self.best:
            self.best, self.best_epoch, self.wait = val_loss, epoch, 0
            if self.restore_best:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        return self.wait >= self.patience and epoch > 1

    def restore(self, model: MLP, epochs_run: int) -> bool:
        """Put the best epoch's weights back (``restore_best``); True if that changed them."""
        if not self.restore_best or self.best_state is None or self.best_epoch == epochs_run:
            return False
        with torch.no_grad():
            for k, v in model.state_dict().items():
                v.copy_(self.best_state[k])
        return True


@dataclass
class _Training:
    """What the epoch loop hands back."""

    history: list[dict] = field(default_factory=list)
    stopped: bool = False
    train_s: float = 0.0
    val_s: float = 0.0


def _train(model, step, p, Xv, yv, gen, dev, stopper: EarlyStopping) -> _Training:
    """Up to ``epochs`` epochs, each over a fresh seeded permutation, then validation."""
    out = _Training()
    reg_start = step.reg_value()
    for epoch in progress(range(1, p["epochs"] + 1), desc="mlp epochs", unit="epoch"):
        perm = torch.randperm(step.n, generator=gen).to(dev)
        synchronize(dev)
        t0 = time.perf_counter()
        ce, acc, lr = step.epoch(perm)  # .item() inside syncs
        t1 = time.perf_counter()
        reg_end = step.reg_value()
        val_loss, val_acc = _mlp_eval(model, Xv, yv, reg_end)
        out.val_s += time.perf_counter() - t1
        out.train_s += t1 - t0
        row = {
            "epoch": epoch,
            "train_loss": ce + 0.5 * (reg_start + reg_end),
            "train_accuracy": acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": lr,
        }
        out.history.append(row)
        reg_start = reg_end
        log.info(
            "epoch %d/%d: loss %.4f acc %.4f val_loss %.4f val_acc %.4f (%.1f s)",
            epoch,
            p["epochs"],
            row["train_loss"],
            acc,
            val_loss,
            val_acc,
            t1 - t0,
        )
        if not math.isfinite(row["train_loss"]):
            raise FloatingPointError(f"mlp: non-finite training loss at epoch {epoch}")
        if len(Xv) and stopper.update(epoch, val_loss, model):
            out.stopped = True
            break
    return out


def fit_mlp(p, data: FitData, ctx: FitContext) -> FitResult:
    Xtr, ytr, Xva, yva, Xte = data
    n_classes, seed, dev, cuda_graph = ctx.n_classes, ctx.seed, ctx.device, ctx.cuda_graph
    if p["standardize"]:
        Xtr, Xva, Xte = standardized(Xtr, Xva, Xte)
    gen = torch.Generator().manual_seed(int(seed))
    model = MLP(Xtr.shape[1], p["hidden"], n_classes).keras_init_(gen).to(dev)
    X = torch.from_numpy(Xtr).to(dev)
    y = torch.from_numpy(ytr).to(dev)
    cw = class_weights(ytr, n_classes, p["class_weight"])
    w = None if cw is None else torch.from_numpy(cw[ytr].astype(np.float32)).to(dev)
    Xv, yv = torch.from_numpy(Xva).to(dev), torch.from_numpy(yva).to(dev)
    step = make_step(model, p, X, y, w, dev, bool(cuda_graph) and dev.type == "cuda")
    stopper = EarlyStopping(p["patience"], p["min_delta"], p["restore_best"])
    run = _train(model, step, p, Xv, yv, gen, dev, stopper)
    epochs_run = len(run.history)
    restored = stopper.restore(model, epochs_run)
    proba = _mlp_eval(model, torch.from_numpy(Xte).to(dev), None, 0.0)
    info = {
        "epochs_run": epochs_run,
        "best_epoch": stopper.best_epoch,
        "best_val_loss": stopper.best if math.isfinite(stopper.best) else None,
        "stopped_early": run.stopped,
        "restored_best": restored,
        "steps": step.step_count,
        "train_seconds": round(run.train_s, 3),
        "val_seconds": round(run.val_s, 3),
        "s_per_epoch": round(run.train_s / max(epochs_run, 1), 4),
        "cuda_graph": step.cuda_graph,
        "class_weights": weights_info(cw),
    }
    return FitResult(proba.float().cpu().numpy(), run.history, info)
