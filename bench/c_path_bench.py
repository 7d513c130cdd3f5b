"""Where the linear probe's C path may end early: each rule against the whole grid.

    python bench/c_path_bench.py [--low-variance 30] [--ordinary 24] [--seed 28]

Issue 28 (defect 3). Two families of small random problems: ``low-variance`` ones built like
the issue's failing case (``tests/test_linear_path.py``: the class signal lives only in the
low-variance differences of feature pairs; eps, the weak features' strength and s's noise
drawn per problem) and ``ordinary`` ones (Gaussian classes in random directions, anisotropic
noise, random classes, dims and split sizes). Each problem's coarse path is fitted once over
the whole grid (``path_patience: 0``, no refine) and scored on val and test; each rule is then
replayed on that record by the probe's own loop (:meth:`_Search.coarse`): an early end is a
prefix of the whole path, since every point starts from the one before. Rules:

- ``old``: the path as it was before issue 28 (the released point at 0: may end anywhere);
- ``new``: the probe as it is (ends only from :func:`artprobe.probes.linear._release_C` on);
- ``suggested``: the issue's example, for comparison (two points in a row past the optimum:
  log-loss rising and above the best's, val accuracy below the best's by more than its
  binomial standard error; no end on patience alone).

Prints per family and rule: problems whose chosen coarse C differs from the whole grid's, the
test accuracy lost there (percentage points; mean over those and over all problems), and the
share of the coarse fits and of their seconds the early end saved.
"""

from __future__ import annotations

import argparse
import logging
import math
import time

import common  # noqa: F401  (the checkout and tests/ on sys.path)
import numpy as np
import torch
from test_linear_path import low_variance_signal

from artprobe.common.logs import progress
from artprobe.probes import linear, resolve_params
from artprobe.probes.shared import FitData


def ordinary(seed: int):
    """Gaussian classes in random directions with anisotropic noise; all sizes drawn."""
    rng = np.random.default_rng([seed, 1])
    k, d = int(rng.choice([3, 5, 10, 20])), int(rng.choice([16, 32, 64, 128]))
    n = (int(rng.choice([300, 1000, 2000])), int(rng.choice([100, 300, 1000])), 1000)
    rows = sum(n)
    y = rng.integers(0, k, rows)
    means = rng.normal(size=(k, d)) * rng.uniform(1.5, 6.0) / math.sqrt(d)
    noise = rng.normal(size=(rows, d)) * np.sqrt(np.geomspace(1, rng.uniform(0.01, 1.0), d))
    X = ((means[y] + noise) @ np.linalg.qr(rng.normal(size=(d, d)))[0]).astype(np.float32)
    a, b = n[0], n[0] + n[1]
    return (X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:]), k


def low_variance(seed: int):
    rng = np.random.default_rng([seed, 0])
    eps, weak, spread = rng.uniform(0.01, 0.03), rng.uniform(0.3, 0.8), rng.uniform(0.5, 1.0)
    return low_variance_signal(int(rng.integers(2**31)), eps, weak, spread), 10


def whole_path(data, classes: int) -> linear._Search:
    """The whole coarse grid, each point with its test accuracy."""
    p = resolve_params("linear", {"path_patience": 0, "refine": 0})
    prob = linear._problem(p, FitData(*data[:5]), classes, torch.device("cpu"))
    search = linear._Search(prob, p)
    search.coarse(linear._c_grid(p, True))
    for g, (W, b) in zip(search.grid, search.solutions, strict=True):
        g["test_accuracy"] = float(
            (prob.scores(W, b, prob.Xte)[2].argmax(1).numpy() == data[5]).mean()
        )
    return search


class Replay(linear._Search):
    """The probe's path loop over a recorded whole path (no fits): ``run`` hands out the
    recorded points in order."""

    def __init__(self, whole: linear._Search, released: float, patience: int = 2):
        self.prob, self.p = whole.prob, {**whole.p, "path_patience": patience}
        self.record, self.grid, self.solutions, self.best = whole.grid, [], [], 0
        self.released = released

    def run(self, C: float, phase: str) -> bool:
        point = self.record[len(self.grid)]
        assert math.isclose(point["C"], C), (point["C"], C)
        self.grid.append(point)
        i = len(self.grid) - 1
        if i and linear._better(point, self.grid[self.best], self.p["select_by"]):
            self.best = i
            return True
        return False


class Suggested(Replay):
    """The issue's example rule: two points past the optimum, beyond val noise."""

    def __init__(self, whole: linear._Search):
        super().__init__(whole, 0.0, patience=10**9)  # patience alone never ends it

    def past_optimum(self) -> bool:
        best = self.grid[self.best]
        a, n_val = best["val_accuracy"], len(self.prob.yv)
        se = math.sqrt(a * (1 - a) / n_val)
        last = self.grid[-3:]
        return len(self.grid) - 1 - self.best >= 2 and all(
            g["val_accuracy"] < a - se
            and g["val_log_loss"] > max(before["val_log_loss"], best["val_log_loss"])
            for before, g in zip(last, last[1:])
        )


def rules(whole: linear._Search) -> dict[str, Replay]:
    return {
        "old": Replay(whole, 0.0),
        "new": Replay(whole, whole.released),
        "suggested": Suggested(whole),
    }


def measure(make, n: int, first_seed: int) -> dict[str, list[dict]]:
    """Per rule, one row per problem: chosen C vs the whole grid's, test points lost, saving."""
    out: dict[str, list[dict]] = {}
    for seed in progress(range(first_seed, first_seed + n), desc="problems", unit="problem"):
        whole = whole_path(*make(seed))
        everything = Replay(whole, math.inf)
        everything.coarse(np.array([g["C"] for g in whole.grid]))
        for name, rule in rules(whole).items():
            rule.coarse(np.array([g["C"] for g in whole.grid]))
            got, want = rule.grid[rule.best], whole.grid[everything.best]
            out.setdefault(name, []).append(
                {
                    "differs": got["C"] != want["C"],
                    "lost": 100 * (want["test_accuracy"] - got["test_accuracy"]),
                    "fits": len(rule.grid) / len(whole.grid),
                    "seconds": sum(g["seconds"] for g in rule.grid)
                    / sum(g["seconds"] for g in whole.grid),
                    "released": whole.released,
                }
            )
    return out


def report(family: str, rows: dict[str, list[dict]]) -> None:
    released = [r["released"] for r in rows["new"]]
    print(
        f"{family}: {len(released)} problems, released point C {min(released):.3g} .. {max(released):.3g}"
    )
    for name, rs in rows.items():
        lost = [r["lost"] for r in rs if r["differs"]]
        print(
            f"  {name:9s} differs from the whole grid in {len(lost):2d}/{len(rs)}, "
            f"test points lost {np.mean(lost) if lost else 0:5.1f} where it differs "
            f"({np.mean([r['lost'] for r in rs]):4.1f} over all); "
            f"saved {1 - np.mean([r['fits'] for r in rs]):.0%} of the coarse fits, "
            f"{1 - np.mean([r['seconds'] for r in rs]):.0%} of their seconds"
        )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--low-variance", type=int, default=30, help="problems like the failing case")
    ap.add_argument("--ordinary", type=int, default=24, help="ordinary problems")
    ap.add_argument("--seed", type=int, default=28, help="the first problem's seed")
    a = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # the probe's per-point log lines
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    report("low-variance", measure(low_variance, a.low_variance, a.seed))
    report("ordinary", measure(ordinary, a.ordinary, a.seed))
    print(f"{time.perf_counter() - t0:.0f} s on 1 thread")


if __name__ == "__main__":
    main()
