"""artprobe.probes.precondition: the per-class block preconditioner solves exactly the
Hessian's class blocks, the linear probe turns to it where the diagonal leaves the
conjugate gradients many steps and then needs fewer Hessian products for the same optimum,
and wide embeddings never pay for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artprobe.probes import linear, precondition, resolve_params
from artprobe.probes.fit import fit
from artprobe.probes.shared import FitContext, FitData


def near_separable(n=600, d=8, k=5, seed=0):
    """k classes, well apart, with correlated features: at weak regularisation the fit
    nears separation and the Hessian's class blocks are far from diagonal."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d)) * 4
    y = rng.integers(0, k, n)
    A = np.eye(d) + 0.8 * rng.normal(size=(d, d))
    X = (means[y] + rng.normal(size=(n, d))) @ A
    return X.astype(np.float32), y.astype(np.int64)


def full_hessian(fun, D, K, lam):
    """The Hessian at ``fun``'s last point, column by column through ``_hessp``."""
    cols = []
    for j in range(D * K + K):
        e = torch.zeros(D * K + K, dtype=torch.float64)
        e[j] = 1
        HW, Hb = linear._hessp(fun, e[: D * K].view(D, K), e[D * K :], lam)
        cols.append(torch.cat([HW.reshape(-1), Hb]))
    return torch.stack(cols, 1)


def test_blocks_solve_each_class_block_of_the_hessian():
    X, y = near_separable(n=200, d=5, k=4)
    X -= X.mean(0)  # as the probe centres them
    D, K, lam = 5, 4, 1e-3
    fun = linear._Softmax(torch.from_numpy(X).double(), torch.from_numpy(y), None)
    W = torch.from_numpy(np.random.default_rng(1).normal(size=(D, K)))
    fun(W, torch.zeros(K, dtype=torch.float64), lam)  # sets the probabilities
    H = full_hessian(fun, D, K, lam)
    X1 = torch.cat([torch.from_numpy(X), torch.ones(len(X), 1)], 1)
    blocks = fun.blocks(X1, lam)
    r = torch.from_numpy(np.random.default_rng(2).normal(size=D * K + K))
    z = blocks(r)
    for k in range(K):
        idx = [d * K + k for d in range(D)] + [D * K + k]  # W[:, k], then b[k]
        expected = torch.linalg.solve(H[idx][:, idx], r[idx])
        # formed in float32 (blocks with condition ~1e3 here): good to ~1e-4, where the
        # diagonal alone would be off by its off-diagonal share, order 1
        torch.testing.assert_close(z[idx], expected, rtol=1e-3, atol=1e-6)


def test_the_chooser_turns_to_blocks_only_after_a_costly_diagonal_solve():
    diag = precondition.Diagonal(torch.ones(3))
    block = precondition.Blocks(torch.eye(3).expand(1, 3, 3).double())
    pick = precondition.Chooser(D=8)  # blocks cost 4.5 products
    assert pick(lambda: diag, lambda: block) is diag  # no solve yet
    pick.solved(diag, 4)
    assert pick(lambda: diag, lambda: block) is diag
    pick.solved(diag, 5)
    assert pick(lambda: diag, lambda: block) is block
    pick.solved(block, 1)
    assert pick(lambda: diag, lambda: block) is block  # stays on the blocks
    assert pick(lambda: diag, lambda: None) is diag  # not positive definite
    # embeddings as wide as real models' (D >= 200): blocks cost more than a capped solve
    wide = precondition.Chooser(D=256)
    wide.solved(diag, 100)
    assert wide(lambda: diag, lambda: block) is diag


def run_linear(data, C, **kw):
    params = resolve_params("linear", {"c_min": C, "c_max": C, "n_c": 1, "refit": "train", **kw})
    X, y, Xte = data
    rows = FitData(X, y, X[:0], y[:0], Xte)
    return fit("linear", params, rows, FitContext(5, device="cpu"), threads=1)


@pytest.mark.parametrize("C", [10.0, 1e4])
def test_blocks_reach_the_same_optimum_in_fewer_hessian_products(C, monkeypatch):
    X, y = near_separable()
    data = (X, y, near_separable(seed=1)[0])
    with_blocks = run_linear(data, C, normalize="none").info["grid"][0]
    monkeypatch.setattr(precondition, "block_cost", lambda D: float("inf"))
    diagonal = run_linear(data, C, normalize="none").info["grid"][0]
    assert diagonal["block_solves"] == 0 and with_blocks["block_solves"] > 0
    assert with_blocks["converged"] and diagonal["converged"]
    assert with_blocks["train_objective"] == pytest.approx(diagonal["train_objective"], rel=1e-4)
    assert with_blocks["hessian_products"] < diagonal["hessian_products"] / 1.5, (
        with_blocks["hessian_products"],
        diagonal["hessian_products"],
    )


def test_diagonal_only_keeps_every_solve_on_the_diagonal():
    """bench/precondition_bench.py's switch: inside ``diagonal_only`` a solve that cost more
    than the blocks never turns the chooser to them; outside it does."""
    from artprobe.probes.precondition import Chooser, Diagonal, diagonal_only

    diag = Diagonal(torch.ones(3))
    with diagonal_only():
        inside = Chooser(4)
        inside.solved(diag, 10_000)
    outside = Chooser(4)
    outside.solved(diag, 10_000)
    assert (inside.use_blocks, outside.use_blocks) == (False, True)
