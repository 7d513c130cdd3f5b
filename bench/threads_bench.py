"""Seconds per Hessian product of the linear probe's Newton-CG at one and two torch threads.

    python bench/threads_bench.py        # the sizes of a few-shot point up to WikiArt's classify

A Hessian product (``artprobe.probes.linear._hessp``: two [n, D] x [D, K] products and a few
passes over [n, K]) is what the linear probe and the few-shot curves spend their time on.
Prints, per problem size, the mean seconds at one and two threads and their ratio; run it on a
quiet machine and beside a busy process to see what load does to the second thread.
"""

from __future__ import annotations

import time

import common  # noqa: F401  (the checkout on sys.path)
import torch

from artprobe.probes.linear import _hessp, _Softmax

#: (rows, features, classes, dtype): a 25- and a 100-shot style point, a 100-shot point of a
#: 1,024-wide model, the artist and style classify fits at D = 64, WikiArt's artist fit at 1,024
SIZES = [
    (675, 64, 27, torch.float64),
    (2700, 64, 27, torch.float64),
    (2700, 1024, 27, torch.float64),
    (12900, 64, 129, torch.float64),
    (65000, 64, 27, torch.float64),
    (65000, 1024, 129, torch.float32),
]


def seconds_per_product(n: int, d: int, k: int, dtype: torch.dtype, threads: int) -> float:
    torch.manual_seed(0)
    X, y = torch.randn(n, d, dtype=dtype), torch.randint(0, k, (n,))
    fun = _Softmax(X, y, None)
    fun(torch.randn(d, k, dtype=dtype) * 0.1, torch.zeros(k, dtype=dtype), 1e-3)
    V, Vb = torch.randn(d, k, dtype=dtype), torch.randn(k, dtype=dtype)
    torch.set_num_threads(threads)
    reps = max(5, int(2e8 / (n * d * k)))
    _hessp(fun, V, Vb, 1e-3)  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        _hessp(fun, V, Vb, 1e-3)
    return (time.perf_counter() - t0) / reps


def main() -> None:
    for n, d, k, dtype in SIZES:
        one, two = (seconds_per_product(n, d, k, dtype, t) for t in (1, 2))
        common.say(
            f"n={n} D={d} K={k} ({n * d * k:.1e} multiply-adds): 1 thread {one * 1e3:.3f} ms,"
            f" 2 threads {two * 1e3:.3f} ms, ratio {two / one:.2f}"
        )


if __name__ == "__main__":
    main()
