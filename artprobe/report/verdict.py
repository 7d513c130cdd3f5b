"""The verdict: per target and headline metric, the best model (with its probe), its value and
95 % interval, the runner-up, the difference and whether the lead holds after Holm.

Written from the summary and comparison tables (:mod:`.tables`), in sentences a reader can
quote. The runner-up is the best *other* model under the best fit's probe: that is the pair
the paired bootstrap compared, so its Holm-adjusted p-value says whether the lead holds. A
lead that does not hold (p_holm >= 0.05), or equal values, is called a tie. Ties are settled
by :data:`TIE_RULE`, never by the order of the rows; a seeded probe's value is its seed mean
(:data:`SEED_RULE`, :func:`artprobe.report.tables.summary_table`). Columns of the tables
beyond the ones read here are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

#: the headline metrics of the verdict, in order (the first also picks the disagreement pair)
VERDICT_METRICS = ("balanced_accuracy", "accuracy")
ALPHA = 0.05
_LABELS = {"balanced_accuracy": "balanced accuracy", "accuracy": "accuracy", "macro_f1": "macro-F1"}

#: how the verdict settles ties (shown on the report's first page)
TIE_RULE = (
    "Where one model's probes share the best value, each is compared with the best other "
    "model under it and the weakest of those comparisons decides (an untested one, else the "
    "largest Holm p); where two models share the best value, the verdict is a tie."
)
#: what the verdict's value is for a probe fitted over several seeds
SEED_RULE = (
    "A probe fitted over several seeds is ranked and quoted by its mean over the seeds, with "
    "the 95 % interval of that mean; the paired comparisons test the same means."
)

COLUMNS = [
    "target",
    "metric",
    "best_model",
    "best_probe",  # the probes of the best model that share the best value (a list)
    "decided_by",
    "value",
    "ci_low",
    "ci_high",
    "runner_up",
    "runner_up_probe",
    "runner_up_value",
    "diff",
    "p_holm",
    "outcome",
    "sentence",
]


def _fits(summary: pd.DataFrame, target: str, metric: str) -> pd.DataFrame:
    """The target's fits with a finite value of ``metric``, best first (stable: input order)."""
    sub = summary[summary["target"] == target]
    if "kind" in sub:
        sub = sub[sub["kind"] != "majority"]
    sub = sub[np.isfinite(sub[metric].astype(float))]
    return sub.sort_values(metric, ascending=False, kind="stable")


def _p_holm(comparisons: pd.DataFrame, target, probe, a, b, metric) -> float:
    """The Holm-adjusted p of the (a, b) comparison under ``probe``; NaN if none was made."""
    if comparisons is None or comparisons.empty or "p_holm" not in comparisons:
        return math.nan
    c = comparisons
    pair = ((c.model_a == a) & (c.model_b == b)) | ((c.model_a == b) & (c.model_b == a))
    hit = c[(c.target == target) & (c.classifier == probe) & (c.metric == metric) & pair]
    return float(hit["p_holm"].iloc[0]) if len(hit) else math.nan


def _runner_up(fits: pd.DataFrame, comparisons, target, metric, model, probe) -> dict | None:
    """The best other model under ``probe`` and its comparison with ``model``; where other
    models share that value, the one whose comparison is weakest (so input order never
    decides). None if no other model has a fit of ``probe``."""
    others = fits[(fits.model != model) & (fits.classifier == probe)]
    if others.empty:
        return None
    value = float(others[metric].max())
    tied = others[np.isclose(others[metric].astype(float), value, rtol=0, atol=1e-12)]
    options = [
        {"row": r, "p": _p_holm(comparisons, target, probe, model, r.model, metric)}
        for r in tied.itertuples()
    ]
    return max(options, key=_weakness)


def _weakness(option: dict) -> tuple:
    """Sort key, weakest comparison last: untested, then the larger Holm p, then the
    smaller lead (the runner-up's larger value), then names (a total order)."""
    p, r = option["p"], option["row"]
    return (not math.isfinite(p), p if math.isfinite(p) else 0.0, r.value, r.model)


def _entry(fits: pd.DataFrame, comparisons, target: str, metric: str) -> dict:
    """One verdict row (see :data:`COLUMNS`) from the target's ranked fits.

    The best value decides the best model. Where two models share it, a tie. Where one
    model's probes share it, each tied probe's comparison with its runner-up is looked at
    and the weakest decides (:data:`TIE_RULE`): listing the probes in another order never
    changes the verdict."""
    fits = fits.assign(value=fits[metric].astype(float))
    best_value = float(fits["value"].max())
    at_top = fits[np.isclose(fits["value"], best_value, rtol=0, atol=1e-12)]
    top = at_top.iloc[0]
    probes = list(dict.fromkeys(at_top[at_top.model == top["model"]]["classifier"]))
    row = {
        "target": target,
        "metric": metric,
        "best_model": top["model"],
        "best_probe": probes,
        "value": best_value,
    }
    tie = at_top[at_top.model != top["model"]]  # another model shares the best value
    if not tie.empty:
        other = next(tie.itertuples())
        p_tie = _p_holm(comparisons, target, other.classifier, top["model"], other.model, metric)
        ru = {"row": other, "p": p_tie}
        decided = other.classifier if other.classifier in probes else top["classifier"]
    else:
        found = [
            (p, _runner_up(fits, comparisons, target, metric, top["model"], p)) for p in probes
        ]
        found = [(p, ru) for p, ru in found if ru is not None]
        if found:
            decided, ru = max(found, key=lambda x: _weakness(x[1]))
        else:  # no other model has the best model's probes: its best fit of any probe
            others = fits[fits.model != top["model"]]
            if others.empty:
                return {**_interval(row, top, metric), "outcome": "only model"}
            ru, decided = {"row": next(others.itertuples()), "p": math.nan}, top["classifier"]
    # the fit quoted: the best model's fit of the deciding probe (always one of its tied fits)
    quoted = at_top[(at_top.model == top["model"]) & (at_top.classifier == decided)].iloc[0]
    r, p = ru["row"], ru["p"]
    diff = best_value - float(r.value)
    if np.isclose(diff, 0, rtol=0, atol=1e-12):
        outcome = "tie"
    elif not math.isfinite(p):
        outcome = "not tested"
    else:
        outcome = "lead holds" if p < ALPHA else "tie"
    return {
        **_interval(row, quoted, metric),
        "decided_by": decided,
        "runner_up": r.model,
        "runner_up_probe": r.classifier,
        "runner_up_value": float(r.value),
        "diff": diff,
        "p_holm": p,
        "outcome": outcome,
    }


def _interval(row: dict, fit: pd.Series, metric: str) -> dict:
    """``row`` with the 95 % interval of ``fit``, the fit the verdict quotes."""
    return {
        **row,
        "ci_low": float(fit[f"{metric}_ci_low"]),
        "ci_high": float(fit[f"{metric}_ci_high"]),
    }


def probe_label(probes: Iterable[str]) -> str:
    """The best probes as a reader sees them (the CSV's cell, the pages): joined by "/"."""
    return "/".join(probes)


def csv_view(verdict: pd.DataFrame) -> pd.DataFrame:
    """The verdict as verdict.csv holds it: ``best_probe`` joined (:func:`probe_label`)."""
    return verdict.assign(best_probe=[probe_label(p) for p in verdict["best_probe"]])


def sentence(r: dict) -> str:
    """The verdict row as one quotable line."""
    ci = (
        f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        if math.isfinite(r["ci_low"]) and math.isfinite(r["ci_high"])
        else ""
    )
    metric = _LABELS.get(r["metric"], r["metric"])
    tied = list(r["best_probe"])
    head = f"{r['target']}, {metric}: {r['best_model']} + {probe_label(tied)} {r['value']:.2f}{ci}"
    if r["outcome"] == "only model":
        return f"{head}; the only model"
    ru = (
        r["runner_up"]
        if tied == [r["runner_up_probe"]]
        else f"{r['runner_up']} + {r['runner_up_probe']}"
    )
    p = f"p_holm = {r['p_holm']:.3g}" if math.isfinite(r["p_holm"]) else "no paired test"
    same = np.isclose(r["diff"], 0, rtol=0, atol=1e-12)  # a tie of models, whatever the test
    if len(tied) > 1 and isinstance(r.get("decided_by"), str) and not same:
        p += f"; {r['decided_by']}'s comparison decides, the weakest of the tied probes'"
    if r["outcome"] == "tie" and same:
        return f"{head}; tie with {ru} (same value, {p})"
    if r["outcome"] == "tie":
        return f"{head}; tie with {ru}: ahead by {r['diff']:.2f}, not significant ({p})"
    if r["outcome"] == "not tested":
        return f"{head}; ahead of {ru} by {r['diff']:.2f} ({p})"
    return f"{head}; ahead of {ru} by {r['diff']:.2f}, {p}"


def verdict_table(
    summary: pd.DataFrame,
    comparisons: pd.DataFrame | None,
    metrics: Iterable[str] = VERDICT_METRICS,
) -> pd.DataFrame:
    """One row per target × metric (targets in summary order); see :data:`COLUMNS`."""
    rows = []
    if summary.empty or "target" not in summary:
        return pd.DataFrame(columns=COLUMNS)
    for target in dict.fromkeys(summary["target"]):
        for metric in metrics:
            if metric not in summary:
                continue
            fits = _fits(summary, target, metric)
            if fits.empty:
                continue
            r = _entry(fits, comparisons, target, metric)
            r["sentence"] = sentence(
                {
                    "runner_up": "",
                    "runner_up_probe": "",
                    "decided_by": None,
                    "diff": math.nan,
                    "p_holm": math.nan,
                    **r,
                }
            )
            rows.append(r)
    return pd.DataFrame(rows, columns=COLUMNS)


def best_fit(verdict: pd.DataFrame, target: str) -> tuple[str, str] | None:
    """(best model, probe) of ``target`` by the first verdict metric: where the model's probes
    share the best value, the one whose comparison decided (:data:`TIE_RULE`)."""
    sub = verdict[verdict.target == target]
    if sub.empty:
        return None
    r = sub.iloc[0]
    probe = r.get("decided_by")
    return r["best_model"], probe if isinstance(probe, str) else r["best_probe"][0]


def pair(verdict: pd.DataFrame, target: str) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """((best model, probe), (runner-up, probe)) of ``target`` by the first verdict metric:
    the pair whose comparison the verdict quotes; None with one model."""
    sub = verdict[verdict.target == target]
    if sub.empty or not isinstance(sub.iloc[0]["runner_up"], str):
        return None
    r = sub.iloc[0]
    return best_fit(verdict, target), (r["runner_up"], r["runner_up_probe"])
