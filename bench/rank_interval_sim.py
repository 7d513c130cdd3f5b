"""The leaderboard's 95 % rank intervals on simulated fits: coverage and width, and the broken
variants that the unit test guards against.

    .venv/bin/python bench/rank_interval_sim.py            # ~3 min on one core
    .venv/bin/python bench/rank_interval_sim.py --reps 200 --variant-reps 0

Each repetition draws fresh test rows (10 classes, accuracy ~0.75) and three seeds' fits of
each model (``simulated_fits`` in tests/test_leaderboard.py: the rows' difficulty, each
model's own view of the rows, the seeds' per-row flips and a whole-model shift per seed of
``shift`` accuracy points), ranks them by accuracy with
:func:`artprobe.report.leaderboard.leaderboard` (``--n-boot`` resamples) and checks each
model's interval against its true rank. The true rank of models of equal true accuracy is
the range of places they share (any one of them is a correct rank): *covers* = the interval
meets that range; *holds all* = it holds the whole range (the same for untied models);
*all at once* = every model of the ranking covered. Width = ``rank_high - rank_low`` (0: one
place; the trivial interval, every place, is the number of models less one).

Second table, the same repetitions (same fits) with the construction broken: the per-row
flips counted twice (the row resamples kept as drawn), no seed level (the seeds' t draw left
out), and the interval taken as the observed rank alone.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import time

import common  # noqa: F401  (the checkout and tests/ on sys.path)
import numpy as np
from test_leaderboard import fit, simulated_fits, true_places

from artprobe.report import leaderboard as lb

SCENARIOS = {  # name: each model's true accuracy, points above the others' base
    "gap 0": (0, 0, 0, 0, 0),
    "gaps 1": (4, 3, 2, 1, 0),
    "gaps 3": (12, 9, 6, 3, 0),
    "gaps 0, 1, 3": (4, 4, 3, 0, 0, -1),
}
SHIFTS = (0.7, 1.5)
VARIANTS = {  # the construction with one of its seed-level steps switched off
    "flips twice": lb.Method(flips_once=False),
    "no seed level": lb.Method(seed_level=False),
}


@functools.cache
def run(points: tuple, n, shift, reps, n_boot, variant=None) -> dict:
    """Coverage and widths of one scenario over ``reps`` repetitions (the same fits for
    every variant: the stream depends on the scenario only)."""
    rng = np.random.default_rng([int(10 * shift), n, *(p + 20 for p in points)])
    lo, hi = true_places(points)
    got = {k: [] for k in ("low", "high", "rank")}
    for r in range(reps):
        fits = simulated_fits(rng, points, n, shift=shift)
        method = VARIANTS[variant] if variant else lb.Method()
        t = lb.leaderboard(fits, n_boot=n_boot, seed=r, metrics=("accuracy",), method=method).table
        t = t.set_index("model").loc[[f["model"] for f in fits]]
        for k, col in (("low", "rank_low"), ("high", "rank_high"), ("rank", "rank")):
            got[k].append(t[col].to_numpy())
    a, b, rank = (np.array(got[k]) for k in ("low", "high", "rank"))
    covers = (a <= hi) & (b >= lo)
    return {
        "covers": covers.mean(),
        "holds all": ((a <= lo) & (b >= hi)).mean(),
        "all at once": covers.all(axis=1).mean(),
        "width": (b - a).mean(),
        "point covers": ((rank <= hi) & (rank >= lo)).mean(),
        "point all at once": ((rank <= hi) & (rank >= lo)).all(axis=1).mean(),
    }


def scale(n_models=15, n=8000, n_boot=1000, per_probe=False) -> None:
    """Seconds and peak memory of one leaderboard at WikiArt's size: ``n_models`` models ×
    three targets (27, 11 and 23 classes) × three probes (linear: one fit; mlp and knn: three
    seeds each) on ``n`` test rows, the three headline metrics, ``n_boot`` resamples."""
    import resource

    rng = np.random.default_rng(0)
    fits = []
    truth = {
        t: (k, rng.integers(0, k, n)) for t, k in (("style", 27), ("genre", 11), ("artist", 23))
    }
    for target, m, (probe, seeds) in itertools.product(
        truth, range(n_models), (("linear", 1), ("mlp", 3), ("knn", 3))
    ):
        k, y = truth[target]
        preds = [np.where(rng.random(n) < 0.6 + m / 100, y, rng.integers(0, k, n))] * seeds
        preds = [np.where(rng.random(n) < 0.05, rng.integers(0, k, n), p) for p in preds]
        fits.append(fit(f"m{m}", y, preds, target=target, probe=probe))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    board = lb.leaderboard(fits, seed=0, n_boot=n_boot, per_probe=per_probe)
    took = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{n_models} models × 3 targets × 3 probes, {n:,} rows, {n_boot} resamples, "
        f"{'per probe' if per_probe else 'best probe'}: {len(board.table)} rows in {took:.1f} s; "
        f"peak RSS {peak:.0f} MB ({before:.0f} MB before the call)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=50, help="repetitions per scenario")
    ap.add_argument("--variant-reps", type=int, default=50, help="repetitions per variant row")
    ap.add_argument("--n-boot", type=int, default=200, help="resamples per leaderboard")
    ap.add_argument("--scale", action="store_true", help="only time one WikiArt-sized board")
    ap.add_argument("--per-probe", action="store_true", help="--scale: every probe ranked")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.scale:
        return scale(per_probe=args.per_probe)
    print("| scenario | test rows | seed shift | covers | holds all | all at once | width (of) |")
    print("|---|---|---|---|---|---|---|")
    for (name, points), n, shift in itertools.product(SCENARIOS.items(), (1000, 8000), SHIFTS):
        r = run(points, n, shift, args.reps, args.n_boot)
        print(
            f"| {name} | {n:,} | {shift} | {r['covers']:.1%} | {r['holds all']:.1%} | "
            f"{r['all at once']:.1%} | {r['width']:.2f} ({len(points) - 1}) |",
            flush=True,
        )
    if args.variant_reps:
        variants(args.variant_reps, args.n_boot)
    print(f"{time.perf_counter() - t0:.0f} s")


def variants(reps: int, n_boot: int) -> None:
    """The second table: the construction as built against its broken variants."""
    print("\n| scenario | test rows | seed shift | variant | covers | all at once | width |")
    print("|---|---|---|---|---|---|---|")
    for name, n, shift in itertools.product(("gaps 1", "gaps 0, 1, 3"), (1000, 8000), SHIFTS):
        points = SCENARIOS[name]
        ok = run(points, n, shift, reps, n_boot)
        rows = [("as built", ok), ("observed rank alone", None)]
        rows += [(v, run(points, n, shift, reps, n_boot, v)) for v in VARIANTS]
        for variant, r in rows:
            if r is None:
                cells = f"{ok['point covers']:.1%} | {ok['point all at once']:.1%} | 0.00"
            else:
                cells = f"{r['covers']:.1%} | {r['all at once']:.1%} | {r['width']:.2f}"
            print(f"| {name} | {n:,} | {shift} | {variant} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
