"""The verdict: per target and headline metric, the best model (with its probe), its value and
95 % interval, the runner-up, the difference and whether the lead holds after Holm.

Written from the summary and comparison tables (:mod:`.tables`), in sentences a reader can
quote. The runner-up is the best *other* model under the best fit's probe: that is the pair
the paired bootstrap compared, so its Holm-adjusted p-value says whether the lead holds. A
lead that does not hold (p_holm >= 0.05), or equal values, is called a tie. Columns of the
tables beyond the ones read here are ignored.
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

COLUMNS = [
    "target",
    "metric",
    "best_model",
    "best_probe",
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


def _entry(fits: pd.DataFrame, comparisons, target: str, metric: str) -> dict:
    """One verdict row (see :data:`COLUMNS`) from the target's ranked fits."""
    top = fits.iloc[0]
    best_value = float(top[metric])
    at_top = fits[np.isclose(fits[metric].astype(float), best_value, rtol=0, atol=1e-12)]
    row = {
        "target": target,
        "metric": metric,
        "best_model": top["model"],
        "best_probe": "/".join(dict.fromkeys(at_top[at_top.model == top["model"]]["classifier"])),
        "value": best_value,
        "ci_low": float(top[f"{metric}_ci_low"]),
        "ci_high": float(top[f"{metric}_ci_high"]),
    }
    probe = top["classifier"]
    others = at_top[at_top.model != top["model"]]  # another model shares the best value: a tie
    if others.empty:
        others = fits[(fits.model != top["model"]) & (fits.classifier == probe)]
    if others.empty:
        others = fits[fits.model != top["model"]]
    if others.empty:
        return {**row, "outcome": "only model"}
    ru = others.iloc[0]
    diff = best_value - float(ru[metric])
    p = (
        _p_holm(comparisons, target, probe, top["model"], ru["model"], metric)
        if ru["classifier"] == probe
        else math.nan
    )
    if np.isclose(diff, 0, rtol=0, atol=1e-12):
        outcome = "tie"
    elif not math.isfinite(p):
        outcome = "not tested"
    else:
        outcome = "lead holds" if p < ALPHA else "tie"
    return {
        **row,
        "runner_up": ru["model"],
        "runner_up_probe": ru["classifier"],
        "runner_up_value": float(ru[metric]),
        "diff": diff,
        "p_holm": p,
        "outcome": outcome,
    }


def sentence(r: dict) -> str:
    """The verdict row as one quotable line."""
    ci = (
        f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        if math.isfinite(r["ci_low"]) and math.isfinite(r["ci_high"])
        else ""
    )
    metric = _LABELS.get(r["metric"], r["metric"])
    head = f"{r['target']}, {metric}: {r['best_model']} + {r['best_probe']} {r['value']:.2f}{ci}"
    if r["outcome"] == "only model":
        return f"{head}; the only model"
    ru = (
        r["runner_up"]
        if r["runner_up_probe"] in str(r["best_probe"]).split("/")
        else f"{r['runner_up']} + {r['runner_up_probe']}"
    )
    p = f"p_holm = {r['p_holm']:.3g}" if math.isfinite(r["p_holm"]) else "no paired test"
    if r["outcome"] == "tie" and np.isclose(r["diff"], 0, rtol=0, atol=1e-12):
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
                {"runner_up": "", "runner_up_probe": "", "diff": math.nan, "p_holm": math.nan, **r}
            )
            rows.append(r)
    return pd.DataFrame(rows, columns=COLUMNS)


def pair(verdict: pd.DataFrame, target: str) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """((best model, probe), (runner-up, probe)) of ``target`` by the first verdict metric;
    None with one model. Where two probes share the best value, the first named."""
    sub = verdict[verdict.target == target]
    if sub.empty or not isinstance(sub.iloc[0]["runner_up"], str):
        return None
    r = sub.iloc[0]
    return (r["best_model"], r["best_probe"].split("/")[0]), (r["runner_up"], r["runner_up_probe"])
