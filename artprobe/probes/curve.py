"""Few-shot curves: the linear probe trained on k images per class, for several k.

The protocol (CLIP_benchmark#125 is the trap it avoids: val rows must never train the probe):

* Subsets come from **train only**. Per trial and class, the class's train rows are put in a
  seeded random order (``default_rng([seed, trial, class])``) and the k-shot subset takes the
  first ``min(k, n_class)`` of them: a class with fewer than k rows gives all it has, and the
  subsets of one trial are nested (the 1-shot subset is inside the 2-shot one, and so on).
  ``"all"`` is every train row (the same in every trial).
* The linear probe's C is chosen on the **whole val split** with the subset as training set;
  ``refit`` is forced to ``train``, so no val row is ever trained on. Test rows are only scored.
* A subset that equals one already fitted (e.g. k above every class's count is "all") is
  fitted once and its result reused; the ``all`` point is the classify stage's fit of the
  same probe where there is one (``known``; :func:`artprobe.stages.fewshot.reused_point`).
"""

from __future__ import annotations

import hashlib
import logging
import time

import numpy as np

from artprobe.common.logs import progress
from artprobe.config import FEWSHOT_KIND
from artprobe.probes.fit import fit
from artprobe.probes.metrics import mean_sd, point_values
from artprobe.probes.shared import FitContext, FitData
from artprobe.settings import ALL_SHOTS as ALL
from artprobe.settings import FewshotSpec, ProbeRuntime

log = logging.getLogger(__name__)


def normalize_shots(shots) -> list:
    """Positive ints in increasing order, then ``"all"`` if asked for; ValueError otherwise."""
    ints, has_all = set(), False
    for k in shots:
        if k == ALL:
            has_all = True
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1:
            ints.add(int(k))
        else:
            raise ValueError(f"few-shot shots must be integers >= 1 or 'all', got {k!r}")
    if not ints and not has_all:
        raise ValueError("few-shot shots: empty")
    return sorted(ints) + ([ALL] if has_all else [])


def fewshot_subsets(y_train: np.ndarray, shots, trial: int, seed: int) -> dict:
    """``{shot: sorted row indices into y_train}`` for one trial (nested; see module doc)."""
    y = np.asarray(y_train)
    shots = normalize_shots(shots)
    orders = {}
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        orders[int(c)] = rows[np.random.default_rng([seed, trial, int(c)]).permutation(len(rows))]
    out = {}
    for k in shots:
        if k == ALL:
            out[k] = np.arange(len(y))
        else:
            out[k] = np.sort(np.concatenate([o[:k] for o in orders.values()] or [np.zeros(0, int)]))
    return out


def _fit_point(params, data, idx, ctx: FitContext, threads: int) -> dict:
    """One linear fit on train rows ``idx`` (C chosen on val), scored on test."""
    (Xtr, ytr), (Xva, yva), (Xte, yte) = data
    t0 = time.perf_counter()
    rows = FitData(Xtr[idx], ytr[idx], Xva, yva, Xte)
    res = fit(FEWSHOT_KIND, params, rows, ctx, threads=threads)
    n_classes_train = len(np.unique(ytr[idx]))
    seconds = round(time.perf_counter() - t0, 3)
    return point_record(yte, res.proba_test.argmax(1), len(idx), n_classes_train, res.info, seconds)


def point_record(y_test, y_pred, n_train: int, n_classes_train: int, info: dict, seconds: float):
    """One curve point: test scores of the predictions, the rows trained on, the linear
    fit's chosen C and its val accuracy (``info``: the fit's)."""
    return {
        **point_values(y_test, y_pred),
        "n_train": int(n_train),
        "n_classes_train": int(n_classes_train),
        "C": info.get("C"),
        "C_at_grid_edge": info.get("C_at_grid_edge"),
        "val_accuracy": info.get("val_accuracy"),
        "seconds": seconds,
    }


def fewshot_curve(
    spec: FewshotSpec, data, n_classes: int, runtime: ProbeRuntime, known: dict | None = None
) -> dict:
    """The curve of ``spec`` (its ``params``, ``shots``, ``trials``, ``seed``): ``points`` (one
    row per trial and shot) and ``summary`` (mean and sd over trials per shot). ``data`` is
    ``(train, val, test)``, each an ``(X, y)`` pair; ``refit`` is forced to ``train``.
    ``known``: ``{shot: point}`` already fitted elsewhere (the ``all`` point that the classify
    stage fitted), used as is."""
    params = {**spec.params, "refit": "train"}
    shots, trials, seed = normalize_shots(spec.shots), spec.trials, spec.seed
    train = data[0]
    ctx = FitContext(n_classes=n_classes, seed=seed, device=runtime.device)
    done: dict[str, dict] = {}
    points = []
    bar = progress(total=trials * len(shots), desc="few-shot", unit="point")
    for trial in range(trials):
        for k, idx in fewshot_subsets(train[1], shots, trial, seed).items():
            key = hashlib.sha1(idx.astype(np.int64).tobytes()).hexdigest()
            if k in (known or {}) and key not in done:
                done[key] = known[k]
            reused = key in done
            if not reused:
                done[key] = _fit_point(params, data, idx, ctx, runtime.threads)
            points.append(
                {"shot": k, "trial": trial, **done[key], "reused": reused, "subset_sha1": key[:12]}
            )
            bar.update()
            log.info(
                "few-shot k=%s trial %d: %d rows, accuracy %.4f%s",
                k,
                trial,
                points[-1]["n_train"],
                points[-1]["accuracy"],
                " (reused)" if reused else "",
            )
    bar.close()
    return {
        "params": params,
        "shots": shots,
        "trials": trials,
        "seed": seed,
        "points": points,
        "summary": summarize(points, shots),
    }


def summarize(points: list[dict], shots) -> list[dict]:
    """Per shot: mean and sd (ddof 1; 0 for one trial) of each metric over the trials."""
    out = []
    for k in shots:
        rows = [p for p in points if p["shot"] == k]
        row = {
            "shot": k,
            "trials": len(rows),
            "n_train": float(np.mean([p["n_train"] for p in rows])),
        }
        for m in ("accuracy", "balanced_accuracy", "macro_f1"):
            d = mean_sd([p[m] for p in rows])
            row[m], row[f"{m}_sd"] = d["mean"], d["sd"]
        out.append(row)
    return out
