"""Test-set metrics with bootstrap confidence intervals, and paired model comparisons.

Conventions (those of scikit-learn with ``labels`` = the classes present in ``y_true``):

* accuracy, top-k accuracy (``k = min(5, n_classes)``; a row counts as a hit when the
  true class has a positive probability and fewer than k classes have a strictly higher
  one, so ties favour the true class, but a class nobody voted for, e.g. a kNN class
  without neighbours, is never a hit);
* macro F1 and balanced accuracy average over the classes present in ``y_true``; a
  prediction of some other class still costs the true class its recall;
* the per-class table covers the classes present in ``y_true`` or predicted (a class only
  predicted has support 0 and precision / recall / F1 0).

Bootstrap: ``n_boot`` resamples of the test rows with replacement, drawn once from
``numpy.random.default_rng(seed)`` (deterministic), percentile intervals at level
``ci``. Each resample's metric is the metric of that resample (macro averages over the
classes present in the resample's ``y_true``). Counting is vectorised: per resample
and class, true / predicted / correct counts come from one ``np.bincount`` over
``resample * n_labels + label``, so 1,000 resamples of 8,145 rows take well under a
second.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

METRICS = ("accuracy", "top5_accuracy", "macro_f1", "balanced_accuracy")
_ROWS_PER_CHUNK = 1 << 22  # resample indices held at once (n_boot_chunk * n_rows)


def _labels(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if len(y) and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("labels must be integers")
    return y.astype(np.int64, copy=False)


def _as_pred(pred, n: int, what: str) -> np.ndarray:
    pred = np.asarray(pred)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    pred = _labels(pred)
    if len(pred) != n:
        raise ValueError(f"{what}: {len(pred)} predictions for {n} rows")
    return pred


def _resamples(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Chunks of bootstrap row indices [b, n]; the same stream for the same (n, seed)."""
    rng = np.random.default_rng(seed)
    per = max(1, _ROWS_PER_CHUNK // max(n, 1))
    for start in range(0, n_boot, per):
        yield rng.integers(0, n, size=(min(per, n_boot - start), n))


class _Counts:
    """Per-class counts of a labelling, compact over the labels that occur."""

    def __init__(self, y_true: np.ndarray, y_pred: np.ndarray):
        self.labels = np.union1d(y_true, y_pred)
        self.t = np.searchsorted(self.labels, y_true)
        self.p = np.searchsorted(self.labels, y_pred)
        self.hit = self.t == self.p
        self.L = len(self.labels)

    def point(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        L = self.L
        return (
            np.bincount(self.t, minlength=L),
            np.bincount(self.p, minlength=L),
            np.bincount(self.t[self.hit], minlength=L),
        )

    def boot(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(support, predicted, correct) per resample and class: arrays [b, L]."""
        b, L = len(idx), self.L
        offset = (np.arange(b) * L)[:, None]

        def count(codes, weights=None):
            return np.bincount((codes + offset).ravel(), weights=weights, minlength=b * L).reshape(
                b, L
            )

        t = self.t[idx]
        support = count(t)
        predicted = count(self.p[idx])
        correct = count(t, self.hit[idx].ravel().astype(np.float64)).round().astype(np.int64)
        return support, predicted, correct


def _macro(support, predicted, correct) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(macro F1, balanced accuracy, per-class F1) over classes with support > 0.

    Works on [L] or [b, L] counts; per-class F1 is NaN where undefined (no true and no
    predicted rows)."""
    support = np.asarray(support, dtype=np.float64)
    denom = support + predicted
    f1 = np.divide(2.0 * correct, denom, out=np.full(denom.shape, np.nan), where=denom > 0)
    present = support > 0
    n_present = present.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        macro_f1 = np.where(present, np.nan_to_num(f1), 0.0).sum(axis=-1) / n_present
        recall = np.divide(correct, support, out=np.zeros(support.shape), where=present)
        bal = recall.sum(axis=-1) / n_present
    return macro_f1, bal, f1


def _interval(samples: np.ndarray, ci: float) -> tuple[float | None, float | None]:
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)] if samples.ndim == 1 else samples
    if samples.size == 0:
        return None, None
    lo, hi = np.quantile(samples, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return float(lo), float(hi)


def _topk_hits(y_true: np.ndarray, proba: np.ndarray, k: int) -> np.ndarray:
    p_true = proba[np.arange(len(y_true)), y_true]
    return ((proba > p_true[:, None]).sum(axis=1) < k) & (p_true > 0)


def _check_ci(ci: float, n_boot: int) -> None:
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")


def _check_scores(y_true, proba, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and float64 probabilities of one fit's test rows, or a ValueError."""
    y_true = _labels(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or len(proba) != len(y_true):
        raise ValueError(f"proba must be [n={len(y_true)}, n_classes], got shape {proba.shape}")
    n, n_classes = proba.shape
    if n == 0:
        raise ValueError("no test rows")
    if y_true.min() < 0 or y_true.max() >= n_classes:
        raise ValueError(f"y_true ids must lie in [0, {n_classes}) (proba's columns)")
    if len(class_names) < n_classes:
        raise ValueError(f"{len(class_names)} class names for {n_classes} probability columns")
    return y_true, proba


def point_values(y_true, y_pred) -> dict:
    """Accuracy, balanced accuracy and macro F1 of predicted label ids (no intervals)."""
    counts = _Counts(_labels(y_true), _labels(y_pred))
    macro_f1, bal, _ = _macro(*counts.point())
    return {
        "accuracy": float(counts.hit.mean()),
        "balanced_accuracy": float(bal),
        "macro_f1": float(macro_f1),
    }


def mean_sd(values) -> dict:
    """``{"mean", "sd"}`` of the values (a score over seeds or trials): the sample sd
    (ddof 1), 0 for one value."""
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def _boot_samples(
    counts: _Counts, hits: np.ndarray, n_boot: int, seed: int
) -> dict[str, np.ndarray]:
    """Each headline metric over ``n_boot`` resamples of the test rows, and per-class F1 [b, L]."""
    boots: dict[str, list] = {m: [] for m in (*METRICS, "f1")}
    for idx in _resamples(len(hits), n_boot, seed):
        m_f1, m_bal, c_f1 = _macro(*counts.boot(idx))
        boots["accuracy"].append(counts.hit[idx].mean(axis=1))
        boots["top5_accuracy"].append(hits[idx].mean(axis=1))
        boots["macro_f1"].append(m_f1)
        boots["balanced_accuracy"].append(m_bal)
        boots["f1"].append(c_f1)
    return {m: np.concatenate(v) for m, v in boots.items()}


def _per_class(
    counts: _Counts, class_names: Sequence[str], f1_boot: np.ndarray | None, ci: float
) -> dict:
    """Precision, recall, F1 (with its bootstrap interval) and support per class."""
    support, predicted, correct = counts.point()
    _, _, f1 = _macro(support, predicted, correct)
    out = {}
    for j, label in enumerate(counts.labels):
        lo = hi = None
        if f1_boot is not None and np.isfinite(f1_boot[:, j]).any():
            q = [(1 - ci) / 2, 1 - (1 - ci) / 2]
            lo, hi = (float(v) for v in np.nanquantile(f1_boot[:, j], q))
        out[str(class_names[label])] = {
            "precision": float(correct[j] / predicted[j] if predicted[j] else 0.0),
            "recall": float(correct[j] / support[j] if support[j] else 0.0),
            "f1": float(np.nan_to_num(f1[j])),
            "support": int(support[j]),
            "f1_ci_low": lo,
            "f1_ci_high": hi,
        }
    return out


def evaluate(
    y_true,
    proba,
    class_names: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict:
    """Accuracy, top-5 accuracy, macro F1, balanced accuracy and a per-class table.

    ``proba`` is [n, n_classes] (argmax = prediction); ``class_names[i]`` names label
    id ``i``. Each headline metric is ``{"value", "ci_low", "ci_high"}`` (bootstrap
    percentile interval; ``None`` when ``n_boot == 0``); per-class rows carry an F1
    interval.
    """
    _check_ci(ci, n_boot)
    y_true, proba = _check_scores(y_true, proba, class_names)
    k = min(5, proba.shape[1])
    hits = _topk_hits(y_true, proba, k)
    counts = _Counts(y_true, proba.argmax(axis=1))
    values = {**point_values(y_true, proba.argmax(axis=1)), "top5_accuracy": float(hits.mean())}
    boots = _boot_samples(counts, hits, n_boot, seed) if n_boot else {}
    out: dict = {}
    for m in METRICS:
        lo, hi = _interval(boots[m], ci) if n_boot else (None, None)
        out[m] = {"value": values[m], "ci_low": lo, "ci_high": hi}
    out["per_class"] = _per_class(counts, class_names, boots.get("f1"), ci)
    out.update(
        {
            "n_test": len(y_true),
            "n_boot": int(n_boot),
            "ci": float(ci),
            "seed": int(seed),
            "top_k": int(k),
        }
    )
    return out


def _metric_samples(metric: str, counts: _Counts, hits: np.ndarray | None, idx: np.ndarray):
    if metric == "accuracy":
        return counts.hit[idx].mean(axis=1)
    if metric == "top5_accuracy":
        return hits[idx].mean(axis=1)
    m_f1, m_bal, _ = _macro(*counts.boot(idx))
    return m_f1 if metric == "macro_f1" else m_bal


def _metric_point(metric: str, counts: _Counts, hits: np.ndarray | None) -> float:
    if metric == "accuracy":
        return float(counts.hit.mean())
    if metric == "top5_accuracy":
        return float(hits.mean())
    m_f1, m_bal, _ = _macro(*counts.point())
    return float(m_f1 if metric == "macro_f1" else m_bal)


class _SeedScores:
    """One model's per-seed predictions of the same test rows, scored by one metric: the
    score is the seed average. Seeds that all predicted alike (a deterministic probe) are
    scored as one fit, so their comparison is exactly the paired bootstrap of one fit."""

    def __init__(self, y_true: np.ndarray, preds: Sequence, metric: str, what: str):
        if not len(preds):
            raise ValueError(f"{what}: no predictions")
        n, self.metric, self.n_seeds = len(y_true), metric, len(preds)
        arrays = [np.asarray(pred) for pred in preds]
        if all(np.array_equal(arrays[0], arr) for arr in arrays[1:]):
            arrays = arrays[:1]
        self.hits, self.counts = [], []
        for arr in arrays:
            if metric == "top5_accuracy":
                if arr.ndim != 2:
                    raise ValueError("metric 'top5_accuracy' needs probabilities [n, n_classes]")
                self.hits.append(_topk_hits(y_true, arr, min(5, arr.shape[1])))
            else:
                self.hits.append(None)
            self.counts.append(_Counts(y_true, _as_pred(arr, n, what)))
        #: each distinct fit's test score
        self.per_seed = np.array(
            [_metric_point(metric, c, h) for c, h in zip(self.counts, self.hits)]
        )
        self.point = float(self.per_seed.mean())

    def samples(self, idx: np.ndarray) -> np.ndarray:
        """Each distinct fit's score on each resample of rows ``idx`` [b, n]: [fits, b]."""
        return np.array(
            [_metric_samples(self.metric, c, h, idx) for c, h in zip(self.counts, self.hits)]
        )

    def squares(self) -> float:
        """Sum of squared deviations of the seeds' test scores from their mean."""
        return float(_squares(self.per_seed))


def _squares(values: np.ndarray) -> np.ndarray:
    """Sum of squared deviations from the mean along the first axis (across the fits)."""
    return ((values - values.mean(axis=0)) ** 2).sum(axis=0)


def _row_level(
    a: _SeedScores, b: _SeedScores, n: int, n_boot: int, seed: int
) -> tuple[np.ndarray, float]:
    """The row level of a comparison: the difference of the seed averages on each of
    ``n_boot`` resamples of the test rows (the same rows for both models and every seed),
    and the row part of the seeds' spread: the sum of squared deviations across seeds that
    resampling the rows alone gives each seed's score (its deviation from that seed's test
    score), both models together, averaged over the resamples."""
    d, row_squares = [], 0.0
    for idx in _resamples(n, n_boot, seed):
        sa, sb = a.samples(idx), b.samples(idx)
        d.append(sa.mean(axis=0) - sb.mean(axis=0))
        moved = _squares(sa - a.per_seed[:, None]) + _squares(sb - b.per_seed[:, None])
        row_squares += float(moved.sum())
    return np.concatenate(d), row_squares / n_boot


def _seed_level(a: _SeedScores, b: _SeedScores, row_squares: float) -> tuple[float, float, int]:
    """(observed variance, its row part, degrees of freedom) of one seed's test score, pooled
    over both models (the same probe, the same seeds). The seeds' scores spread by what the
    seed changes in the whole model and by the rows each seed happens to get right or wrong
    (per-row flips); the row part is the second one's expected size (``row_squares``,
    :func:`_row_level`)."""
    df = (a.n_seeds - 1) + (b.n_seeds - 1)
    if df == 0:
        return 0.0, 0.0, 0
    return (a.squares() + b.squares()) / df, row_squares / df, df


class _Levels:
    """The two levels of a comparison's resampled differences. The row resamples carry the
    per-row flips between seeds, and so does the seeds' observed variance: counted once, at
    the seed level, where the t draw (``S_a + S_b - 2`` degrees of freedom) carries the
    uncertainty of a variance seen on a few seeds. So the row level keeps its variance less
    the flips' part (``se_rows``, floored at 0: the row resamples are shrunk about their mean
    to it), and the seed level adds the observed seed variance, scaled to a difference of two
    seed averages (``seed_scale``). Seeds that add nothing leave the row resamples as drawn."""

    def __init__(self, a: _SeedScores, b: _SeedScores, n: int, n_boot: int, seed: int):
        self.drawn, row_squares = _row_level(a, b, n, n_boot, seed)
        self.seed_var, flip_var, self.df = _seed_level(a, b, row_squares)
        self.h = 1 / a.n_seeds + 1 / b.n_seeds
        d, se_drawn = self.drawn, float(self.drawn.std(ddof=1))
        self.se_rows = math.sqrt(max(0.0, se_drawn**2 - self.h * flip_var))
        if flip_var > 0 and se_drawn > 0:
            d = d.mean() + (d - d.mean()) * (self.se_rows / se_drawn)
        self.seed_scale = math.sqrt(self.h * self.seed_var)
        self.seed_row_sd = math.sqrt(flip_var)
        #: the seed level's Student-t draws, in their own stream: the rows stay the unseeded test's
        self.t = np.zeros(n_boot)
        if a.n_seeds > 1 or b.n_seeds > 1:
            self.t = np.random.default_rng([seed, 1]).standard_t(self.df, size=n_boot)
        self.d = d + self.seed_scale * self.t


def _p_value(diff: float, se_rows: float, seed_scale: float, df: int) -> float:
    """Two-sided p of ``diff`` against 0 ± (``se_rows`` · Z + ``seed_scale`` · T_df), Z standard
    normal, T Student's t: the law the resampled differences follow with the row part taken
    as normal. Given T's chi-square V the sum is normal with variance
    ``se_rows² + seed_scale² · df / V``, so p is one integral over V (scipy's ``quad``)."""
    from scipy import integrate, special

    dist = abs(diff)
    if dist < 1e-12:
        return 1.0
    if seed_scale == 0.0:
        return math.erfc(dist / (se_rows * math.sqrt(2))) if se_rows > 0 else 0.0
    if se_rows == 0.0:
        return float(2 * special.stdtr(df, -dist / seed_scale))
    half, log_norm = df / 2, math.lgamma(df / 2) + df / 2 * math.log(2)

    def given_v(v: float) -> float:
        if v <= 0:
            return 0.0
        var = se_rows * se_rows + seed_scale * seed_scale * df / v
        return math.exp((half - 1) * math.log(v) - v / 2 - log_norm) * math.erfc(
            dist / math.sqrt(2 * var)
        )

    p = integrate.quad(given_v, 0, math.inf, epsabs=0, epsrel=1e-9, limit=200)[0]
    return min(1.0, p)


def paired_bootstrap(
    y_true,
    pred_a,
    pred_b,
    *,
    metric: str = "accuracy",
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict:
    """Compare models A and B on the same test rows with a paired bootstrap.

    ``pred_a`` / ``pred_b``: predicted label ids [n], or probabilities [n, n_classes]
    (argmax; needed for ``metric="top5_accuracy"``). One fit each: :func:`compare` with
    one seed per model (see there for the interval, p-value and verdict).
    """
    return compare(y_true, [pred_a], [pred_b], metric=metric, n_boot=n_boot, seed=seed, ci=ci)


def compare(
    y_true,
    preds_a: Sequence,
    preds_b: Sequence,
    *,
    metric: str = "accuracy",
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict:
    """Compare the seed-averaged scores of models A and B on the same test rows.

    ``preds_a`` / ``preds_b``: one prediction per seed of each model (label ids [n] or
    probabilities [n, n_classes]). Each of ``n_boot`` resamples draws the test rows with
    replacement, the same rows for both models (paired; every seed is scored on them).
    With several seeds (:class:`_Levels`) the seeds' observed variance, pooled over the two
    models and scaled to a difference of two seed averages, is added as a Student-t draw
    with ``S_a + S_b - 2`` degrees of freedom, and the row resamples are shrunk by the
    per-row flips between seeds that this variance already holds, so those count once. With
    one seed per model, or seeds that all predict alike, this is the plain paired bootstrap
    of test rows. ``diff = a - b``; the interval is the percentile interval of the resampled
    differences. Method and figures: docs/statistics.md.

    The two-sided p-value is not counted from the resamples, whose resolution
    ``2 / (1 + n_boot)`` cannot carry a Holm correction over many tests: it is
    :func:`_p_value` of ``diff`` under the same law with the row part normal, its sd
    ``se_rows`` that of the resampled row differences. ``p_resampled``, the count
    ``min(1, 2 * (1 + #{diff* on the far side of 0}) / (1 + n_boot))`` (differences of
    exactly 0 count against both sides), is kept as a check. The verdict names the better
    model when ``p < 1 - ci``.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    _check_ci(ci, n_boot)
    if n_boot < 2:
        raise ValueError("paired_bootstrap needs n_boot >= 2")
    y_true = _labels(y_true)
    n = len(y_true)
    if n == 0:
        raise ValueError("no test rows")
    a = _SeedScores(y_true, preds_a, metric, "pred_a")
    b = _SeedScores(y_true, preds_b, metric, "pred_b")
    lv = _Levels(a, b, n, n_boot, seed)
    diff = a.point - b.point
    out = {"metric": metric, "a": a.point, "b": b.point, "diff": diff}
    out.update(_bootstrap_test(lv.d, diff, _p_value(diff, lv.se_rows, lv.seed_scale, lv.df), ci))
    out.update(
        {
            "n_test": n,
            "n_boot": int(n_boot),
            "ci": float(ci),
            "seed": int(seed),
            "n_seeds_a": a.n_seeds,
            "n_seeds_b": b.n_seeds,
            "se_rows": lv.se_rows,
            "seed_sd": math.sqrt(lv.seed_var),
            "seed_row_sd": lv.seed_row_sd,
            "method": SEEDED_METHOD if a.n_seeds > 1 or b.n_seeds > 1 else ROWS_METHOD,
            "p_method": P_METHOD,
        }
    )
    return out


def seed_average(
    y_true, preds: Sequence, *, metric: str, n_boot: int, seed: int, ci: float = 0.95
) -> dict:
    """One model's seed-averaged score (the quantity :func:`compare` tests) and its
    percentile interval, built as one side of a comparison: ``n_boot`` resamples of the test
    rows score every seed's predictions; with several seeds, the row resamples are shrunk
    to their spread less the per-row flips between seeds, and the seeds' observed variance
    over their mean comes back as a Student-t draw with ``S - 1`` degrees of freedom (seeds
    that all predict alike: the plain bootstrap of one fit). ``n_boot`` 0: no interval."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    _check_ci(ci, n_boot)
    y = _labels(y_true)
    a = _SeedScores(y, preds, metric, "preds")
    out = {"metric": metric, "value": a.point, "ci_low": None, "ci_high": None}
    if n_boot < 1 or not len(y):
        return out
    s, row_squares = [], 0.0
    for idx in _resamples(len(y), n_boot, seed):
        sa = a.samples(idx)
        s.append(sa.mean(axis=0))
        row_squares += float(_squares(sa - a.per_seed[:, None]).sum())
    s = np.concatenate(s)
    if len(a.per_seed) > 1:
        flip_var = row_squares / n_boot / (a.n_seeds - 1)
        s = _with_seed_level(s, a.n_seeds, flip_var, a.squares(), seed)
    out["ci_low"], out["ci_high"] = _interval(s, ci)
    return out


def _with_seed_level(
    s: np.ndarray, n_seeds: int, flip_var: float, squares: float, seed
) -> np.ndarray:
    """One model's resampled seed averages ``s`` with the seed level: shrunk about their mean
    to their spread less the per-row flips' share (``flip_var``, one seed's), plus the seeds'
    observed spread (``squares``, summed squared deviations) as a Student-t draw with
    ``n_seeds - 1`` degrees of freedom in its own stream (``default_rng([seed, 1])``)."""
    df, h = n_seeds - 1, 1 / n_seeds
    drawn = float(s.std(ddof=1))
    kept = math.sqrt(max(0.0, drawn**2 - h * flip_var))
    if drawn > 0:
        s = s.mean() + (s - s.mean()) * (kept / drawn)
    t = np.random.default_rng([seed, 1]).standard_t(df, size=len(s))
    return s + math.sqrt(h * squares / df) * t


#: how :func:`compare` treated the seeds (the report's methods text quotes these)
ROWS_METHOD = "paired bootstrap of test rows (one fit per model)"
SEEDED_METHOD = (
    "paired bootstrap of test rows less the per-row flips between seeds + pooled seed-level "
    "t draws (seed-averaged scores)"
)
#: how :func:`compare` computed its p-value
P_METHOD = "normal approximation of the resampled row differences (with the seed level's t)"


def _bootstrap_test(d: np.ndarray, diff: float, p: float, ci: float) -> dict:
    """Percentile interval, the resampled p-value (a check) and the verdict of ``p``."""
    lo, hi = _interval(d, ci)
    # Differences within float noise of 0 (e.g. identical predictions) count as 0.
    d = np.where(np.abs(d) < 1e-12, 0.0, d)
    far = min(int((d <= 0).sum()), int((d >= 0).sum()))
    p_resampled = min(1.0, 2.0 * (1 + far) / (1 + len(d)))
    if p < 1 - ci:
        verdict = "A better" if diff > 0 else "B better"
    else:
        verdict = "no significant difference"
    return {
        "ci_low": lo,
        "ci_high": hi,
        "p_value": p,
        "p_resampled": p_resampled,
        "verdict": verdict,
    }


def majority_baseline(
    y_train, y_test, class_names: Sequence[str], *, n_boot: int = 1000, seed: int = 0
) -> dict:
    """The majority-class classifier: always the most frequent train class (lowest id on
    ties), scored on the test rows actually fitted, with bootstrap intervals like a fit's."""
    y_train, y_test = _labels(y_train), _labels(y_test)
    n_classes = len(class_names)
    majority = int(np.bincount(y_train, minlength=n_classes).argmax())
    proba = np.zeros((len(y_test), n_classes))
    proba[:, majority] = 1.0
    scores = evaluate(y_test, proba, class_names, n_boot=n_boot, seed=seed)
    out = {m: scores[m] for m in METRICS if m != "top5_accuracy"}
    test_counts = np.bincount(y_test, minlength=n_classes)
    return {
        "kind": "majority",
        "class": str(class_names[majority]),
        **out,
        "test_majority_share": float(test_counts.max() / max(len(y_test), 1)),
    }


# Several models on shared resamples (the leaderboard, artprobe.report.leaderboard). The
# resamples are given as row counts so that subsets of the rows (a target's rows among a
# dataset's) share them; the counts come from the same draws as ``_resamples``.

#: the metrics :class:`SeedResamples` scores (every one counted from predicted ids)
COUNTED = ("accuracy", "balanced_accuracy", "macro_f1")


def resample_weights(n: int, n_boot: int, seed) -> Iterator[np.ndarray]:
    """Chunks [b, n] of how often each of ``n`` rows is drawn in each resample (float32 row
    counts): the resamples of :func:`compare` and :func:`seed_average` for the same (n, seed),
    chunked alike (``seed``: anything ``numpy.random.default_rng`` takes)."""
    for idx in _resamples(n, n_boot, seed):
        b = len(idx)
        flat = (idx + (np.arange(b) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float32)


def _weighted_counts(counts: _Counts, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(support, predicted, correct) per resample and class [b, L] of row counts ``w`` [b, n]:
    one product with the rows' one-hot true / predicted / correct classes (exact: whole
    numbers far below float32's 2**24)."""
    n, L = len(counts.t), counts.L
    onehot = np.zeros((n, 3 * L), np.float32)
    rows = np.arange(n)
    onehot[rows, counts.t] = 1
    onehot[rows, L + counts.p] = 1
    onehot[rows[counts.hit], 2 * L + counts.t[counts.hit]] = 1
    got = (w @ onehot).round().astype(np.int64)
    return got[:, :L], got[:, L : 2 * L], got[:, 2 * L :]


def _from_counts(metric: str, support, predicted, correct) -> np.ndarray:
    if metric == "accuracy":
        return correct.sum(axis=-1) / support.sum(axis=-1)
    m_f1, m_bal, _ = _macro(support, predicted, correct)
    return m_f1 if metric == "macro_f1" else m_bal


class SeedResamples:
    """One model's seed-averaged scores (the quantity :func:`compare` tests and
    :func:`seed_average` quotes) of several metrics, on resamples of its test rows that
    other models share. Feed every chunk of row counts with :meth:`add`, the same chunks to
    every model; then :func:`resampled_p_value` and :func:`seed_average_interval` give what
    :func:`compare` and :func:`seed_average` give on those resamples.

    ``value``, ``per_seed`` and ``seed_squares`` are per metric; ``n_seeds`` counts the
    seeds fitted, and seeds that all predicted alike are scored as one fit (as there)."""

    def __init__(self, y_true, preds: Sequence, metrics: Sequence[str] = COUNTED):
        unknown = [m for m in metrics if m not in COUNTED]
        if unknown:
            raise ValueError(f"SeedResamples scores {', '.join(COUNTED)}; not {unknown}")
        fits = _SeedScores(_labels(y_true), preds, "accuracy", "preds")
        self.metrics, self.n_seeds, self._counts = tuple(metrics), fits.n_seeds, fits.counts
        self.per_seed = {
            m: np.array([_metric_point(m, c, None) for c in self._counts]) for m in self.metrics
        }
        self.value = {m: float(v.mean()) for m, v in self.per_seed.items()}
        self.seed_squares = {m: float(_squares(v)) for m, v in self.per_seed.items()}
        self.n_boot, self._row_squares = 0, dict.fromkeys(self.metrics, 0.0)

    def add(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """The seed average of each metric on each resample of the chunk ``w`` [b, n]."""
        per_fit = [_weighted_counts(c, w) for c in self._counts]
        out = {}
        for m in self.metrics:
            s = np.array([_from_counts(m, *got) for got in per_fit])  # [fits, b]
            self._row_squares[m] += float(_squares(s - self.per_seed[m][:, None]).sum())
            out[m] = s.mean(axis=0)
        self.n_boot += len(w)
        return out

    def flip_var(self, metric: str) -> float:
        """What resampling the rows alone puts into the variance of one seed's score across
        the seeds (the per-row flips; ``seed_row_sd`` squared in :func:`compare`), from the
        resamples added so far; 0 with one distinct fit."""
        if len(self.per_seed[metric]) < 2 or not self.n_boot:
            return 0.0
        return self._row_squares[metric] / self.n_boot / (self.n_seeds - 1)


def resampled_p_value(a: SeedResamples, b: SeedResamples, metric: str, d: np.ndarray) -> float:
    """:func:`compare`'s ``p_value`` of A - B from ``d``, the differences of their seed
    averages on the resamples both were fed (every one; :class:`_Levels`, :func:`_p_value`):
    the row level less the per-row flips, pooled over the two, plus the pooled seed level."""
    df = (a.n_seeds - 1) + (b.n_seeds - 1)
    h = 1 / a.n_seeds + 1 / b.n_seeds
    seed_var = flip = 0.0
    if df:
        seed_var = (a.seed_squares[metric] + b.seed_squares[metric]) / df
        flip = ((a.n_seeds - 1) * a.flip_var(metric) + (b.n_seeds - 1) * b.flip_var(metric)) / df
    se_drawn = float(np.std(d, ddof=1))
    se_rows = math.sqrt(max(0.0, se_drawn**2 - h * flip))
    diff = a.value[metric] - b.value[metric]
    return _p_value(diff, se_rows, math.sqrt(h * seed_var), df)


def seed_average_interval(
    a: SeedResamples, metric: str, s: np.ndarray, *, seed, ci: float = 0.95
) -> tuple[float | None, float | None]:
    """:func:`seed_average`'s interval from ``s``, the model's seed averages on the resamples
    it was fed: the rows shrunk to their spread less the flips, plus the seeds' t draw
    (``default_rng([seed, 1])``, as there)."""
    s = np.asarray(s, dtype=np.float64)
    if len(a.per_seed[metric]) > 1:
        s = _with_seed_level(s, a.n_seeds, a.flip_var(metric), a.seed_squares[metric], seed)
    return _interval(s, ci)
