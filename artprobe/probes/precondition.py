"""Preconditioners for the linear probe's conjugate gradients (:mod:`artprobe.probes.linear`).

Both are built from the probabilities of the last evaluated point and act on vectors laid
out like the parameters (``W`` [D, K] row-major, then the K intercepts), in float64:

- :class:`Diagonal`: the diagonal of each class's own Hessian block. Costs nothing to form;
  in the rotated basis the linear probe works in it fits well-conditioned problems.
- :class:`Blocks`: each class's whole (D+1) x (D+1) block (weights and intercept:
  ``sum_i s_i p_ik (1 - p_ik) [x_i, 1] [x_i, 1]^T``, ``lam`` on the weights), inverted by
  Cholesky. Where the fit nears separation (weak regularisation, easy targets) the rows
  that still carry curvature are few and their features correlated, the diagonal then
  leaves the conjugate gradients at their step cap, and the blocks cut the Hessian
  products several-fold (docs/benchmarks.md has the figures). Forming them
  costs about ``(D + 1) / 2`` Hessian products (K products [D+1, n] x [n, D+1], in
  float32), so :class:`Chooser` turns to them only after a solve on the diagonal took more
  products than that, which never happens for embeddings wider than twice the step cap
  (D >= ~200).

:func:`diagonal_only` keeps every solve on the diagonal, for comparing the two
(``bench/precondition_bench.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

_DIAGONAL_ONLY: ContextVar[bool] = ContextVar("diagonal_only", default=False)


@contextmanager
def diagonal_only() -> Iterator[None]:
    """Inside this block every :class:`Chooser` keeps to the diagonal (a benchmark's switch;
    the fits never use it)."""
    token = _DIAGONAL_ONLY.set(True)
    try:
        yield
    finally:
        _DIAGONAL_ONLY.reset(token)


class Diagonal:
    """``r / m``: ``m`` the per-class Hessian diagonal (:meth:`_Softmax.jacobi`)."""

    blocks = False

    def __init__(self, m: torch.Tensor):
        self.m = m

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        return r / self.m


class Blocks:
    """Solves each class's (D+1) x (D+1) Hessian block: Cholesky factors [K, D+1, D+1]."""

    blocks = True

    def __init__(self, factors: torch.Tensor):
        self.L = factors
        self.K, self.D = factors.shape[0], factors.shape[1] - 1

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        D, K = self.D, self.K
        R = torch.cat([r[: D * K].view(D, K), r[D * K :].view(1, K)]).T  # [K, D+1]
        Z = torch.cholesky_solve(R.unsqueeze(-1), self.L).squeeze(-1)
        return torch.cat([Z[:, :D].T.reshape(-1), Z[:, D]])


def block_cost(D: int) -> float:
    """What forming :class:`Blocks` costs, in Hessian products (a [n, D] x [D, K] product
    and its transpose each): ``2 n K (D+1)^2`` multiply-adds against ``~2 n D K``."""
    return (D + 1) / 2


def class_blocks(X1: torch.Tensor, c: torch.Tensor, lam: float) -> Blocks | None:
    """:class:`Blocks` from ``X1 = [X, 1]`` (float32, [n, D+1]) and the per-row curvature
    weights ``c = s_i p_ik (1 - p_ik)`` ([n, K]); None if a block is not positive definite
    in floating point (the caller then uses the diagonal)."""
    n, D1 = X1.shape
    K = c.shape[1]
    c = c.to(X1.dtype)
    B = torch.empty(K, D1, D1, dtype=X1.dtype, device=X1.device)
    for k in range(K):
        torch.mm((X1 * c[:, k : k + 1]).T, X1, out=B[k])
    B = B.double()
    diag = B.diagonal(dim1=1, dim2=2)
    diag[:, :-1] += lam
    diag += 1e-12
    L, info = torch.linalg.cholesky_ex(B)
    if bool((info != 0).any()):
        # float32 sums are good to ~1e-6 of the diagonal: a jitter of that size keeps a
        # block that is singular but for a tiny lam (a class no row is near) definite
        diag += 1e-6 * diag.mean(1, keepdim=True)
        L, info = torch.linalg.cholesky_ex(B)
        if bool((info != 0).any()):
            return None
    return Blocks(L)


class Chooser:
    """The preconditioner for each solve of one problem (all its C values): the diagonal
    until a solve on it takes more Hessian products than forming the blocks costs, the
    blocks from then on (the path only gets harder towards weak regularisation), and the
    diagonal again for any solve whose blocks are not positive definite."""

    def __init__(self, D: int):
        self.cost = block_cost(D)
        self.use_blocks = False

    def __call__(self, diagonal, blocks):
        """The pick at the current point: ``diagonal()`` and ``blocks()`` build the two kinds."""
        if self.use_blocks:
            out = blocks()
            if out is not None:
                return out
        return diagonal()

    def solved(self, precond: Diagonal | Blocks, products: int) -> None:
        """Told after each solve: one on the diagonal that cost more than the blocks would
        turns to the blocks for the rest of the problem."""
        if not precond.blocks and products > self.cost and not _DIAGONAL_ONLY.get():
            self.use_blocks = True
