"""One epoch of the mlp's Keras-protocol training steps, eager or as a replayed CUDA graph.

:func:`make_step` chooses once: :class:`GraphStep` on CUDA when asked (the batch-32 step
captured once and replayed, one launch instead of ~40), :class:`EagerStep` otherwise or
when the capture fails. Both have the same interface (``epoch``, ``reg_value``,
``step_count``, ``cuda_graph``) and give the same updates.

The L2 term's gradient ``2 * l2 * W`` is added to the kernel's gradient directly instead
of differentiating ``l2 * sum(W**2)`` through autograd (same update, one fused pass
instead of three); its value, needed only for the logged train loss, is taken at the start
and end of each epoch (trapezoid) instead of at every step.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


def keras_lr(p: dict, step: int) -> float:
    """Keras' ``ExponentialDecay`` (not staircase) at optimizer iteration ``step``."""
    return p["lr"] * p["decay_rate"] ** (step / p["decay_steps"])


def keras_eps(p: dict, t: int) -> float:
    """torch's Adam ``eps`` that gives Keras' update at (1-based) step ``t``.

    torch: ``lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps')``; Keras:
    ``lr * sqrt(bc2) / bc1 * m / (sqrt(v) + eps)`` (``bc_i = 1 - beta_i ** t``). Multiplying
    torch's numerator and denominator by ``sqrt(bc2)`` shows they agree for
    ``eps' = eps / sqrt(bc2)``.
    """
    return p["epsilon"] / math.sqrt(1.0 - 0.999**t)


def make_step(model, p: dict, X, y, w, dev: torch.device, use_graph: bool):
    """A :class:`GraphStep` if ``use_graph`` and its capture works, else an :class:`EagerStep`.

    ``keras_epsilon`` needs a new ``eps`` every step, which a captured graph cannot take:
    those fits always run eager steps."""
    if use_graph and p.get("keras_epsilon"):
        log.info("mlp: keras_epsilon changes Adam's eps every step; using eager steps")
        use_graph = False
    if use_graph:
        params = list(model.parameters())
        snapshot = [t.detach().clone() for t in params]
        try:
            return GraphStep(model, p, X, y, w, dev)
        except Exception as err:  # pragma: no cover - depends on the CUDA stack
            log.warning("CUDA graph capture failed (%r); using eager steps", err)
            with torch.no_grad():  # undo any warm-up step
                for t, s in zip(params, snapshot):
                    t.copy_(s)
                    t.grad = None
    return EagerStep(model, p, X, y, w, dev)


class _Step:
    """What both kinds of step share: the data, the loss/hit accumulators, one
    forward-backward pass and the L2 term's value."""

    cuda_graph = False

    def __init__(self, model, p: dict, X, y, w, dev: torch.device):
        self.model, self.p, self.dev = model, p, dev
        self.X, self.y, self.w = X, y, w
        self.n, self.bs = len(X), p["batch_size"]
        self.n_full = self.n // self.bs
        self.l2 = p["l2"]
        self.step_count = 0  # optimizer iterations so far (Keras' optimizer.iterations)
        # Running sums of the epoch's batch losses and hits (a graph captures them).
        self.loss_acc = torch.zeros((), dtype=torch.float64, device=dev)
        self.correct_acc = torch.zeros((), dtype=torch.int64, device=dev)

    def forward_backward(self, xb: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor | None):
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

    def reg_value(self) -> float:
        """The L2 term ``l2 * sum(W**2)`` of the hidden kernel now."""
        if not self.l2:
            return 0.0
        with torch.no_grad():
            W = self.model.fc1.weight
            return self.l2 * float(torch.dot(W.view(-1), W.view(-1)))

    def epoch(self, perm: torch.Tensor) -> tuple[float, float, float]:
        """Run one epoch over ``perm``; return (mean CE of the batches, accuracy, last lr)."""
        self.loss_acc.zero_()
        self.correct_acc.zero_()
        lr = self._run(perm)
        return self.loss_acc.item() / self.n, self.correct_acc.item() / self.n, lr

    def _run(self, perm: torch.Tensor) -> float:
        raise NotImplementedError


class EagerStep(_Step):
    """Plain torch steps, the learning rate set per step as a float."""

    def __init__(self, model, p: dict, X, y, w, dev: torch.device):
        super().__init__(model, p, X, y, w, dev)
        params = list(model.parameters())
        fused = dev.type in ("cuda", "cpu")
        try:
            self.opt = torch.optim.Adam(params, lr=p["lr"], eps=p["epsilon"], fused=fused)
        except (RuntimeError, TypeError, ValueError):  # pragma: no cover
            self.opt = torch.optim.Adam(params, lr=p["lr"], eps=p["epsilon"])

    def _run(self, perm: torch.Tensor) -> float:
        bs, n = self.bs, self.n
        Xp, yp = self.X[perm], self.y[perm]
        wp = None if self.w is None else self.w[perm]
        group = self.opt.param_groups[0]
        keras_epsilon = self.p.get("keras_epsilon", False)
        for start in range(0, n, bs):
            group["lr"] = keras_lr(self.p, self.step_count)
            if keras_epsilon:
                group["eps"] = keras_eps(self.p, self.step_count + 1)
            self.opt.zero_grad(set_to_none=True)
            stop = start + bs
            self.forward_backward(
                Xp[start:stop], yp[start:stop], None if wp is None else wp[start:stop]
            )
            self.opt.step()
            self.step_count += 1
        return group["lr"]


class GraphStep(_Step):
    """The full-batch step captured once in a CUDA graph and replayed; the epoch's rows
    are permuted into static buffers the graph reads, the learning rate and the step and
    batch counters live on the device. A last partial batch runs the same ops eagerly."""

    cuda_graph = True

    def __init__(self, model, p: dict, X, y, w, dev: torch.device):
        super().__init__(model, p, X, y, w, dev)
        if self.n_full == 0:
            raise RuntimeError("fewer rows than one batch")
        self.lr_t = torch.tensor(p["lr"], dtype=torch.float32, device=dev)
        self.opt = self._capturable_adam(list(model.parameters()))
        self.gstep = torch.zeros((), dtype=torch.float32, device=dev)  # iterations, on device
        self.batch_i = torch.zeros((), dtype=torch.int64, device=dev)  # batch index in epoch
        self.arange = torch.arange(self.bs, device=dev)
        self.Xp = X.clone()
        self.yp = y.clone()
        self.wp = None if w is None else w.clone()
        self.graph = self._capture()

    def _capturable_adam(self, params: list[torch.Tensor]) -> torch.optim.Adam:
        """One fused kernel per step; foreach (a handful of kernels) otherwise."""
        eps = self.p["epsilon"]
        try:
            return torch.optim.Adam(params, lr=self.lr_t, eps=eps, capturable=True, fused=True)
        except (RuntimeError, TypeError, ValueError):  # pragma: no cover
            return torch.optim.Adam(params, lr=self.lr_t, eps=eps, capturable=True, foreach=True)

    def _step(self) -> None:
        """One batch, read from the static buffers at ``batch_i``: what the graph holds."""
        p = self.p
        idx = self.arange + self.batch_i * self.bs
        xb = self.Xp.index_select(0, idx)
        yb = self.yp.index_select(0, idx)
        wb = None if self.wp is None else self.wp.index_select(0, idx)
        self.forward_backward(xb, yb, wb)
        self.lr_t.copy_(p["lr"] * torch.pow(p["decay_rate"], self.gstep / p["decay_steps"]))
        self.opt.step()
        self.gstep += 1
        self.batch_i += 1

    def _capture(self) -> torch.cuda.CUDAGraph:
        """Warm up on a side stream (lazy optimizer state, cuBLAS workspaces), capture,
        then undo the warm-up steps: parameters, Adam moments and counters."""
        dev = self.dev
        params = list(self.model.parameters())
        snapshot = [t.detach().clone() for t in params]
        stream = torch.cuda.Stream(dev)
        stream.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(stream):
            for _ in range(3):
                self.opt.zero_grad(set_to_none=True)
                self.batch_i.zero_()  # stay on the first batch: data may be that small
                self._step()
        torch.cuda.current_stream(dev).wait_stream(stream)
        self.opt.zero_grad(set_to_none=True)
        self.batch_i.zero_()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        with torch.no_grad():
            for t, s in zip(params, snapshot):
                t.copy_(s)
            for state in self.opt.state.values():
                for v in state.values():
                    if torch.is_tensor(v):
                        v.zero_()
            self.gstep.zero_()
            self.batch_i.zero_()
        return graph

    def _run(self, perm: torch.Tensor) -> float:
        torch.index_select(self.X, 0, perm, out=self.Xp)
        torch.index_select(self.y, 0, perm, out=self.yp)
        if self.wp is not None:
            torch.index_select(self.w, 0, perm, out=self.wp)
        self.batch_i.zero_()
        for _ in range(self.n_full):
            self.graph.replay()
        self.step_count += self.n_full
        if self.n % self.bs:
            self._partial_batch()
        return keras_lr(self.p, self.step_count - 1)

    def _partial_batch(self) -> None:
        """The epoch's last, short batch: the graph's ops, run eagerly."""
        for t in self.model.parameters():
            t.grad.zero_()
        sl = slice(self.n_full * self.bs, self.n)
        wb = None if self.wp is None else self.wp[sl]
        self.forward_backward(self.Xp[sl], self.yp[sl], wb)
        self.lr_t.fill_(keras_lr(self.p, self.step_count))
        self.opt.step()
        self.gstep += 1
        self.step_count += 1
