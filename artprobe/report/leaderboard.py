"""The leaderboard: per dataset × target × headline metric, each model's best probe (or every
probe, ``per_probe``), its value with its 95 % interval, its rank with a 95 % rank interval,
and the models not separable from the best after Holm; across targets and datasets, each
model's mean rank with its interval. :data:`METHOD` says how, in words the page shows.

Pure numpy/pandas. The resampling is :mod:`artprobe.probes.metrics`' (paired test rows, seed-averaged
scores, the per-row flips between seeds counted once, the seeds' t draw):
:class:`~artprobe.probes.metrics.SeedResamples` scores every model on the same row draws, which
:func:`~artprobe.probes.metrics.resample_weights` deals out in chunks, so memory stays bounded
whatever ``n_boot``.

:func:`leaderboard` returns two tables. ``table``, one row per ranked model
(:data:`COLUMNS`): ``dataset``, ``target``, ``metric``; ``probe_mode`` ("best": each model's
best probe; "per probe": each probe its own ranking) and ``probe`` (the probe the row
scores); ``model``, ``kind``, ``n_seeds``; ``value`` (the seed mean on the ranking's rows),
``ci_low``/``ci_high`` (:func:`~artprobe.probes.metrics.seed_average`'s interval); ``rank`` (1 =
best, tied models share the better rank), ``rank_low``/``rank_high``; ``best`` (the model the
tests start from), ``diff_to_best``, ``p_value`` (best vs this model), ``p_holm``,
``with_best`` (not separable from the best after Holm; the best itself too); ``n_models``,
``n_rows`` (test rows every model of the ranking predicted), ``n_boot``, ``ci``, ``note``.
``mean_ranks``, one row per metric × model (× probe) (:data:`MEAN_COLUMNS`): ``mean_rank``
(ties count the mean of their places), ``mean_rank_low``/``mean_rank_high``, ``n_rankings``
and ``rankings`` (the dataset/target pairs averaged).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import NamedTuple

import numpy as np
import pandas as pd

from artprobe.probes.metrics import (
    SeedResamples,
    resample_weights,
    resampled_p_value,
    seed_average_interval,
)
from artprobe.report.tables import HEADLINE, holm, seed_predictions

#: the level of the Holm set (``with_best``)
ALPHA = 0.05
#: values of ``probe_mode``
BEST, PER_PROBE = "best", "per probe"
_TOL = 1e-12  # scores closer than this are tied

#: how the leaderboard's intervals and sets are computed (shown on the report's page)
METHOD = (
    "Each model is ranked by its best probe's score (a probe fitted over several seeds: its "
    "mean over the seeds) on the test rows every model predicted; 1 is the best, tied models "
    "share the better rank. Every resample draws those test rows with replacement once for "
    "all models, paired row by row (the targets of one dataset share the draw; datasets draw "
    "independently), and scores each model's seed average on it. The per-row flips between "
    "seeds, which those rows already carry, are taken out of each model's row noise (the "
    "resampled scores are mapped linearly so that each model loses the flips' share of its "
    "variance and the covariances between models stay), and the spread of the seeds' scores "
    "comes back as a Student-t draw, pooled over the models fitted with the same probe, as "
    "the paired comparisons do. The models are ranked on every resample; the 95 % rank "
    "interval runs from the 2.5th percentile of a model's best place to the 97.5th percentile "
    "of its worst (models tied on a resample can take either place) and always holds the "
    "observed rank. The best probe is chosen once, on the observed scores. The mean rank "
    "averages a model's ranks (tied models: the mean of their places) over the targets and "
    "datasets it was ranked on, on each resample; its interval is the 2.5th to 97.5th "
    "percentile of that average. The models not separable from the best: the best model of "
    "each ranking against each other one by the comparisons' paired test (seed-aware, "
    "p from the normal approximation), Holm-corrected over every such test of the "
    "leaderboard as one family; p_holm of at least 0.05 keeps a model in the set."
)

COLUMNS = [
    "dataset",
    "target",
    "metric",
    "probe_mode",
    "model",
    "probe",
    "kind",
    "n_seeds",
    "value",
    "ci_low",
    "ci_high",
    "rank",
    "rank_low",
    "rank_high",
    "best",
    "diff_to_best",
    "p_value",
    "p_holm",
    "with_best",
    "n_models",
    "n_rows",
    "n_boot",
    "ci",
    "note",
]
MEAN_COLUMNS = [
    "metric",
    "probe_mode",
    "probe",
    "model",
    "mean_rank",
    "mean_rank_low",
    "mean_rank_high",
    "n_rankings",
    "rankings",
]


class Leaderboard(NamedTuple):
    table: pd.DataFrame
    mean_ranks: pd.DataFrame


@dataclass
class _Target:
    """One target's fits on the test rows all of them predicted, each scored once."""

    fits: dict[tuple[str, str], dict]  # (model, probe) -> fit, input order
    ids: np.ndarray = field(init=False)
    scorers: dict[tuple[str, str], SeedResamples] = field(init=False)
    note: str = field(init=False)

    def __post_init__(self):
        self.ids, y, self.note = _shared_rows(list(self.fits.values()))
        self.scorers = {
            key: SeedResamples(y, _aligned(fit, self.ids), HEADLINE)
            for key, fit in self.fits.items()
        }


@dataclass
class _Ranking:
    """The models of one dataset × target × metric (× probe), each with one probe."""

    dataset: str
    target: str
    metric: str
    probe_mode: str
    entries: list[tuple[str, str]]  # (model, probe)
    chunks: list[np.ndarray] = field(default_factory=list)  # [models, b] per chunk


@dataclass(frozen=True)
class Method:
    """The construction's two seed-level steps, each switchable so a benchmark can measure
    what it is worth (bench/rank_interval_sim.py): ``flips_once`` takes the per-row flips
    between seeds out of the rows' noise, ``seed_level`` adds the seeds' Student-t draw."""

    flips_once: bool = True
    seed_level: bool = True


def leaderboard(
    fits: Sequence[dict] | Mapping[str, Sequence[dict]],
    *,
    n_boot: int,
    seed: int,
    ci: float = 0.95,
    metrics: Sequence[str] = HEADLINE,
    per_probe: bool = False,
    method: Method = Method(),
) -> Leaderboard:
    """The leaderboard of the report's loaded fits (:func:`artprobe.report.load.load_fits`):
    one list (one dataset, named "") or ``{dataset name: fits}``. See the module docstring
    for the tables and :data:`METHOD` for the method. Deterministic from ``seed``."""
    if n_boot < 2:
        raise ValueError("the leaderboard needs n_boot >= 2")
    datasets = dict(fits) if isinstance(fits, Mapping) else {"": list(fits)}
    rows, mids = [], []
    for name, dfits in datasets.items():
        targets = {t: _Target(f) for t, f in _by_target(dfits).items()}
        if not targets:
            continue
        rankings = _rankings(name, targets, metrics, per_probe)
        seed_d = _dataset_seed(seed, name)
        _resample(targets, rankings, n_boot, seed_d)
        rng = np.random.default_rng([seed_d, 2])
        for r in rankings:
            got, mid = _finish(r, targets[r.target], rng, seed_d, ci, method)
            rows += got
            mids.append((r, mid))
    table = _with_holm(pd.DataFrame(rows, columns=COLUMNS))
    return Leaderboard(table, _mean_ranks(table, mids, ci))


def _dataset_seed(seed: int, name: str) -> int:
    """The seed of one dataset's resamples: ``seed`` itself for an unnamed dataset (a
    one-list leaderboard draws the rows :func:`artprobe.probes.metrics.compare` draws with it, rows
    in row-id order), else one drawn from ``seed`` and the name, so each dataset's draws are
    its own whichever datasets come with it."""
    if not name:
        return seed
    return int(np.random.SeedSequence([seed, *name.encode()]).generate_state(1)[0])


def _by_target(fits: Sequence[dict]) -> dict[str, dict[tuple[str, str], dict]]:
    """target -> {(model, probe): fit}, in input order (baselines left out)."""
    out: dict[str, dict[tuple[str, str], dict]] = {}
    for f in fits:
        if f.get("kind") != "majority":
            out.setdefault(f["target"], {})[(f["model"], f["classifier"])] = f
    return out


def _shared_rows(fits: list[dict]) -> tuple[np.ndarray, np.ndarray, str]:
    """(row ids, y_true) of the test rows every fit predicted, by row id; rows whose y_true
    the fits disagree on are left out, and the note says so."""
    truth = [f["predictions"].set_index("row_id")["y_true"] for f in fits]
    ids = reduce(np.intersect1d, [t.index.to_numpy() for t in truth])
    ys = np.stack([t.loc[ids].to_numpy() for t in truth])
    agree = (ys == ys[0]).all(axis=0)
    if not agree.any():
        raise ValueError(
            f"target {fits[0]['target']!r}: no test row that every fit predicted with one y_true"
        )
    notes = []
    if any(len(t) != len(ids) for t in truth):
        notes.append(f"ranked on the {len(ids)} test rows every fit predicted")
    if not agree.all():
        notes.append(f"{int((~agree).sum())} rows whose y_true the fits disagree on left out")
    return ids[agree], ys[0][agree], "; ".join(notes)


def _aligned(fit: dict, ids: np.ndarray) -> list[np.ndarray]:
    """The fit's predicted ids on rows ``ids``, one array per seed."""
    p = fit["predictions"].set_index("row_id").loc[ids].reset_index()
    return seed_predictions(p, None)


def _rankings(dataset, targets: dict[str, _Target], metrics, per_probe) -> list[_Ranking]:
    """Every ranking of one dataset: per target × metric, each model's best probe (highest
    seed mean; equal ones: the probe name first in order), or per probe."""
    out = []
    for target, t in targets.items():
        models = list(dict.fromkeys(m for m, _ in t.fits))
        probes = list(dict.fromkeys(p for _, p in t.fits))
        for metric in metrics:
            if per_probe:
                for probe in probes:
                    entries = [(m, probe) for m in models if (m, probe) in t.fits]
                    out.append(_Ranking(dataset, target, metric, PER_PROBE, entries))
                continue
            entries = []
            for m in models:
                own = [p for p in probes if (m, p) in t.fits]
                score = {p: t.scorers[(m, p)].value[metric] for p in own}
                entries.append((m, min(own, key=lambda p: (-score[p], p))))
            out.append(_Ranking(dataset, target, metric, BEST, entries))
    return out


def _resample(targets: dict[str, _Target], rankings: list[_Ranking], n_boot, seed) -> None:
    """Feed every ranked fit the dataset's row draws (the union of its targets' rows, each
    target the draws of its own rows) and keep each ranking's resampled scores."""
    union = np.unique(np.concatenate([t.ids for t in targets.values()]))
    used = {(r.target, e) for r in rankings for e in r.entries}
    for w in resample_weights(len(union), n_boot, seed):
        got = {}
        for name, t in targets.items():
            keys = [k for k in t.scorers if (name, k) in used]
            if keys:
                wt = np.ascontiguousarray(w[:, np.searchsorted(union, t.ids)])
                got.update({(name, k): t.scorers[k].add(wt) for k in keys})
        for r in rankings:
            r.chunks.append(np.stack([got[(r.target, e)][r.metric] for e in r.entries]))


def _finish(
    r: _Ranking, t: _Target, rng, seed, ci: float, method: Method
) -> tuple[list[dict], tuple]:
    """One ranking's table rows, and its resampled and observed places (ties: the mean of
    their places) for the mean ranks."""
    sc = [t.scorers[e] for e in r.entries]
    s = np.concatenate(r.chunks, axis=1).T  # [n_boot, models]: the rows' draws as scored
    values = np.array([x.value[r.metric] for x in sc])
    joint = s.copy()
    if method.flips_once:
        joint = _rows_less_flips(s, np.array([x.flip_var(r.metric) / x.n_seeds for x in sc]))
    if method.seed_level:
        joint += _seed_draws(sc, [p for _, p in r.entries], r.metric, len(s), rng)
    lo, hi = _places(joint)
    (p_lo,), (p_hi,) = _places(values[None])
    q = (1 - ci) / 2
    rank_low = np.minimum(np.quantile(lo, q, axis=0, method="inverted_cdf"), p_lo)
    rank_high = np.maximum(np.quantile(hi, 1 - q, axis=0, method="inverted_cdf"), p_hi)
    best = min(range(len(sc)), key=lambda k: (-values[k], r.entries[k][0]))
    rows = []
    for k, ((model, probe), x) in enumerate(zip(r.entries, sc)):
        low, high = seed_average_interval(x, r.metric, s[:, k], seed=seed, ci=ci)
        p = math.nan
        if k != best:
            p = resampled_p_value(sc[best], x, r.metric, s[:, best] - s[:, k])
        rows.append(
            {
                **{c: getattr(r, c) for c in ("dataset", "target", "metric", "probe_mode")},
                "model": model,
                "probe": probe,
                "kind": t.fits[(model, probe)].get("kind", ""),
                "n_seeds": x.n_seeds,
                "value": values[k],
                "ci_low": low,
                "ci_high": high,
                "rank": int(p_lo[k]),
                "rank_low": int(rank_low[k]),
                "rank_high": int(rank_high[k]),
                "best": k == best,
                "diff_to_best": values[best] - values[k],
                "p_value": p,
                "n_models": len(sc),
                "n_rows": len(t.ids),
                "n_boot": len(s),
                "ci": ci,
                "note": t.note,
            }
        )
    rows.sort(key=lambda row: (row["rank"], -row["value"], row["model"]))
    return rows, ((lo + hi) / 2, (p_lo + p_hi) / 2)


def _rows_less_flips(s: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """The resampled scores [n_boot, models] mapped linearly about their mean so that their
    covariance is the resamples' less ``flips`` (each model's per-row-flip variance of its
    seed average) on the diagonal: each model's spread is :func:`seed_average`'s row level,
    each pair's difference :func:`compare`'s. Negative eigenvalues are floored at 0. No
    flips: the resamples as drawn."""
    if not np.any(flips > 0):
        return s.copy()
    mean = s.mean(axis=0)
    x = s - mean
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    return mean + x @ (_psd_power(cov - np.diag(flips), 0.5) @ _psd_power(cov, -0.5)).T


def _psd_power(m: np.ndarray, power: float) -> np.ndarray:
    """``m ** power`` of a symmetric matrix on its positive eigenvalues (the rest: 0)."""
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    keep = vals > _TOL * max(float(vals.max()), _TOL)
    scaled = np.zeros_like(vals)
    scaled[keep] = vals[keep] ** power
    return (vecs * scaled) @ vecs.T


def _seed_draws(sc: list[SeedResamples], probes: list[str], metric, n_boot, rng) -> np.ndarray:
    """The seed level [n_boot, models]: per probe, the seeds' observed variance pooled over
    the models fitted with it (``sum (S_k - 1)`` degrees of freedom), each model's share of
    it (``/ S_k``) drawn as a multivariate t: independent normals over one chi-square per
    resample, so the difference of two models is :func:`compare`'s t draw with the pooled
    degrees of freedom. A probe with one fit per model adds nothing."""
    out = np.zeros((n_boot, len(sc)))
    for probe in sorted(set(probes)):
        ks = [k for k, p in enumerate(probes) if p == probe]
        df = sum(sc[k].n_seeds - 1 for k in ks)
        if df == 0:
            continue
        var = sum(sc[k].seed_squares[metric] for k in ks) / df
        scale = np.sqrt(df / rng.chisquare(df, n_boot))
        z = rng.standard_normal((n_boot, len(ks)))
        sizes = np.array([sc[k].n_seeds for k in ks])
        out[:, ks] = z * np.sqrt(var / sizes) * scale[:, None]
    return out


def _places(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best, worst) place of each model [b, models] by its scores ``s`` [b, models], 1 the
    highest; models within ``_TOL`` of each other are tied and share the places they span."""
    diff = s[:, None, :] - s[:, :, None]  # [b, k, j]: j's score less k's
    return 1 + (diff > _TOL).sum(axis=2), (diff >= -_TOL).sum(axis=2)


def _with_holm(table: pd.DataFrame) -> pd.DataFrame:
    """Holm over every best-vs-other test of the table (one family) and the set kept with
    the best (``p_holm >= ALPHA``; the best itself)."""
    table["p_holm"] = holm(table["p_value"].astype(float))
    table["with_best"] = table["best"].astype(bool) | (table["p_holm"] >= ALPHA)
    return table


def _mean_ranks(table: pd.DataFrame, mids: list, ci: float) -> pd.DataFrame:
    """Each model's mean place over the rankings of one metric (× probe), on each resample
    and observed, with the percentile interval of the resampled means."""
    groups: dict[tuple, list] = {}
    for r, (res, point) in mids:
        for k, (model, probe) in enumerate(r.entries):
            key = (r.metric, r.probe_mode, probe if r.probe_mode == PER_PROBE else "", model)
            where = f"{r.dataset}/{r.target}" if r.dataset else r.target
            groups.setdefault(key, []).append((res[:, k], point[k], where))
    q = (1 - ci) / 2
    rows = []
    for (metric, mode, probe, model), got in groups.items():
        res = np.mean([g[0] for g in got], axis=0)
        mean = float(np.mean([g[1] for g in got]))
        low, high = np.quantile(res, [q, 1 - q])
        rows.append(
            {
                "metric": metric,
                "probe_mode": mode,
                "probe": probe,
                "model": model,
                "mean_rank": mean,
                "mean_rank_low": min(float(low), mean),
                "mean_rank_high": max(float(high), mean),
                "n_rankings": len(got),
                "rankings": "; ".join(g[2] for g in got),
            }
        )
    out = pd.DataFrame(rows, columns=MEAN_COLUMNS)
    order = {m: i for i, m in enumerate(dict.fromkeys(table["metric"]))}
    out["_m"] = out["metric"].map(order)
    out = out.sort_values(["_m", "probe", "mean_rank", "model"], kind="stable")
    return out.drop(columns="_m").reset_index(drop=True)
