"""The seed-aware comparison on simulated fits: false positives and power, old vs new.

    .venv/bin/python bench/seed_test_sim.py              # ~3 min on one core
    .venv/bin/python bench/seed_test_sim.py --reps 2000 --power-reps 800

Each repetition draws ``n`` test rows of 10 classes and three fits (seeds) of models A and B.
A fit gets a row right when ``z + u + e + s + g > 0``: ``z`` the row's difficulty (shared by
every fit), ``u`` the model's own view of the row (the same for its seeds; 0 for identical
models), ``e`` the fit's per-row flips (different for each seed), ``s`` the seed's shift of
the whole model, ``g`` A's gap (0 for B). Wrong rows predict a random other class. The two
methods see the same fits and the same resampled rows (``artprobe.probes.metrics._Levels``):

* old: the seeds' observed variance added on top of the row resamples as drawn (the flips
  counted in both), and p counted from the resamples (``2 (1 + #far) / (1 + n_boot)``);
* new: :func:`artprobe.probes.metrics.compare`'s p (flips counted once, at the seed level; p from
  the normal approximation with the seed level's t); ``p_resampled`` is its count check.

Rates are at alpha 0.05 on accuracy. Null rows use ``--reps`` repetitions (500: a rate near
5 % is known to about +-2 points at 95 %), gap rows ``--power-reps`` (200: +-7 points near
50 %). Last, the Holm part: one fixed pair of one-seed fits on 1,000 rows whose bootstrap p
(infinite resamples, summed exactly over the multinomial) is about 1e-4, re-resampled with
``--holm-reps`` bootstrap seeds at ``n_boot`` 5,000: how often each p passes Holm over 81
tests (``81 p < 0.05``).
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from scipy import stats

from artprobe.probes.metrics import (
    _bootstrap_test,
    _Levels,
    _p_value,
    _SeedScores,
    compare,
    paired_bootstrap,
)

N_CLASSES, N_SEEDS, BASE_ACC = 10, 3, 0.75
FLIP_SD = 0.35  # per-row flips, z units
NOISE = {  # name: (model's own row view sd in z units, whole-model seed shift in points)
    "identical models, flips": (0.0, 0.0),
    "identical models, flips + shift 0.7": (0.0, 0.7),
    "different models, flips + shift 0.7": (0.5, 0.7),
}


def _z_per_point(model_sd: float) -> tuple[float, float]:
    """(mean difficulty for BASE_ACC, z units per accuracy point) for a model of this spread."""
    sd = np.sqrt(1 + model_sd**2 + FLIP_SD**2)
    mu = sd * stats.norm.ppf(BASE_ACC)
    return mu, sd / stats.norm.pdf(mu / sd) / 100


def _fits(rng, z, y, model_sd, shift_z, gap_z) -> list[np.ndarray]:
    u = rng.normal(0, model_sd, len(z)) if model_sd else 0.0
    out = []
    for _ in range(N_SEEDS):
        right = z + u + rng.normal(0, FLIP_SD, len(z)) + rng.normal(0, shift_z) + gap_z > 0
        wrong = (y + 1 + rng.integers(0, N_CLASSES - 1, len(y))) % N_CLASSES
        out.append(np.where(right, y, wrong))
    return out


def _p_values(y, a, b, n_boot, seed) -> tuple[float, float, float]:
    """(old p, new p, new p resampled) from one draw of the resampled rows."""
    sa, sb = (_SeedScores(y, p, "accuracy", w) for p, w in ((a, "a"), (b, "b")))
    lv = _Levels(sa, sb, len(y), n_boot, seed)
    diff = sa.point - sb.point
    new = _bootstrap_test(lv.d, diff, _p_value(diff, lv.se_rows, lv.seed_scale, lv.df), 0.95)
    old = _bootstrap_test(lv.drawn + np.sqrt(lv.h * lv.seed_var) * lv.t, diff, 1.0, 0.95)
    return old["p_resampled"], new["p_value"], new["p_resampled"]


def rates(n, gap, noise, reps, n_boot, seed) -> tuple[float, float, float]:
    """Share of repetitions called different at 0.05: old, new, new's resampled p."""
    model_sd, shift_pts = NOISE[noise]
    mu, per_point = _z_per_point(model_sd)
    rng = np.random.default_rng(seed)
    hits = np.zeros(3)
    for r in range(reps):
        z, y = rng.normal(mu, 1.0, n), rng.integers(0, N_CLASSES, n)
        a = _fits(rng, z, y, model_sd, shift_pts * per_point, gap * per_point)
        b = _fits(rng, z, y, model_sd, shift_pts * per_point, 0.0)
        ps = _p_values(y, a, b, n_boot, r)
        if r == 0:  # the same as the package's entry point
            res = compare(y, a, b, n_boot=n_boot, seed=r)
            assert ps[1:] == (res["p_value"], res["p_resampled"]), (ps, res)
        hits += np.array(ps) < 0.05
    return tuple(hits / reps)


def exact_bootstrap_p(n: int, n10: int, n01: int) -> float:
    """The resampled p of one-fit accuracies with infinitely many resamples: A right and B
    wrong on n10 rows, the reverse on n01; 2 P(#A-only* <= #B-only*) over the multinomial."""
    k = np.arange(n + 1)
    q, r = (n10 + n01) / n, n10 / (n10 + n01)
    return float(2 * np.sum(stats.binom.pmf(k, n, q) * stats.binom.cdf(k // 2, k, r)))


def holm_pass(reps: int, n_boot: int = 5000, m: int = 81) -> dict:
    """How often a comparison whose bootstrap p is ~1e-4 passes Holm over ``m`` tests."""
    n, n10, n01 = 1000, 127, 73
    y = np.zeros(n, dtype=int)
    a, b = y.copy(), y.copy()
    a[n10 : n10 + n01] = 1  # B only right
    b[:n10] = 1  # A only right
    new = old = 0
    ps = []
    for s in range(reps):
        res = paired_bootstrap(y, a, b, n_boot=n_boot, seed=s)
        new += res["p_value"] * m < 0.05
        old += res["p_resampled"] * m < 0.05
        ps.append(res["p_value"])
    return {
        "exact": exact_bootstrap_p(n, n10, n01),
        "new_median": float(np.median(ps)),
        "old_pass": old / reps,
        "new_pass": new / reps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=500, help="repetitions per null row")
    ap.add_argument("--power-reps", type=int, default=200, help="repetitions per gap row")
    ap.add_argument("--holm-reps", type=int, default=100, help="bootstrap seeds of the Holm part")
    ap.add_argument("--noise", action="append", choices=list(NOISE), help="only these (repeat)")
    ap.add_argument("--n-boot", type=int, default=200, help="resamples per comparison")
    args = ap.parse_args()
    t0 = time.perf_counter()
    print("| seed noise | test rows | gap (points) | old | new | new, resampled p |")
    print("|---|---|---|---|---|---|")
    for noise, n, gap in itertools.product(args.noise or NOISE, (1000, 8000), (0, 2, 4)):
        reps = args.reps if gap == 0 else args.power_reps
        if reps:  # each row its own stream, whichever rows run
            old, new, check = rates(
                n, gap, noise, reps, args.n_boot, [list(NOISE).index(noise), n, gap]
            )
            print(f"| {noise} | {n:,} | {gap} | {old:.1%} | {new:.1%} | {check:.1%} |", flush=True)
    if args.holm_reps:
        h = holm_pass(args.holm_reps)
        print(
            f"\nHolm over 81, bootstrap p {h['exact']:.2e} (new p's median "
            f"{h['new_median']:.2e}), {args.holm_reps} bootstrap seeds at n_boot 5,000: "
            f"resampled p passes {h['old_pass']:.0%}, new p {h['new_pass']:.0%}"
        )
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
