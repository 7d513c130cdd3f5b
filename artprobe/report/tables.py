"""The report's tables (pandas): summary, paired comparisons, per class, confused pairs,
dataset and failures, embedding cost."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from artprobe.common.io import read_meta
from artprobe.config import SPLITS
from artprobe.probes.metrics import METRICS
from artprobe.report.load import (
    as_float,
    class_name,
    compact,
    find,
    fit_seconds,
    hyperparams,
    metric,
)

#: Metrics compared pairwise between models with the paired bootstrap (the verdict's two
#: headline metrics, balanced accuracy and accuracy, and macro-F1).
COMPARE_METRICS = ("balanced_accuracy", "accuracy", "macro_f1")
#: the headline metrics, side by side in the summary and the main chart
HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1")
#: the model and classifier names of the majority-class baseline rows
BASELINE_MODEL, BASELINE_CLASSIFIER = "(baseline)", "majority"


def _seed_columns(row: dict, m: Mapping) -> None:
    """mean and sd across probe.seeds of the headline metrics, and how many fits."""
    seeds = m.get("seeds") if isinstance(m.get("seeds"), Mapping) else {}
    row["n_seeds"] = seeds.get("fitted", 1)
    for name in HEADLINE:
        d = seeds.get(name) if isinstance(seeds.get(name), Mapping) else {}
        row[f"{name}_seed_mean"] = as_float(d.get("mean", row[name]))
        row[f"{name}_seed_sd"] = as_float(d.get("sd", 0.0))


def _seed_means(row: dict, fit: Mapping, n_boot: int, seed: int) -> None:
    """A fit over several seeds: its headline metrics become the seed means, with the
    intervals of those means."""
    preds = fit.get("predictions")
    if row["n_seeds"] <= 1 or preds is None or "y_pred_seeds" not in preds:
        row["scored_as"] = "one fit"
        return
    from artprobe.probes.metrics import seed_average

    row["scored_as"] = f"mean of {row['n_seeds']} seeds"
    y, per_seed = preds["y_true"].to_numpy(), seed_predictions(preds, None)
    for name in HEADLINE:
        r = seed_average(y, per_seed, metric=name, n_boot=n_boot, seed=seed)
        row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = (
            r["value"],
            as_float(r["ci_low"]),
            as_float(r["ci_high"]),
        )


def trained_rows(m: Mapping, info: Mapping) -> tuple[str, Any]:
    """("train" or "train+val", how many rows) a fit trained on: metrics.json's record, or
    for fits written before it was recorded, the linear refit's ``on`` (train otherwise)."""
    on = m.get("trained_on")
    if not on:
        refit = info.get("refit") if isinstance(info.get("refit"), Mapping) else {}
        on = str(refit.get("on", "train")).split("+")
    n = m.get("n_train_rows")
    if n is None and m.get("n_train") is not None:
        n = m["n_train"] + ((m.get("n_val") or 0) if "val" in on else 0)
    return "+".join(on), n


def baseline_rows(fits: list[dict]) -> list[dict]:
    """One majority-class row per target, from the first fit of that target that has one."""
    rows, seen = [], set()
    for fit in fits:
        b = fit["metrics"].get("baseline")
        if fit["target"] in seen or not isinstance(b, Mapping):
            continue
        seen.add(fit["target"])
        row = {
            "model": BASELINE_MODEL,
            "target": fit["target"],
            "classifier": BASELINE_CLASSIFIER,
            "kind": "majority",
        }
        for name in METRICS:
            row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = metric(b, name)
        row["n_classes"] = fit["metrics"].get("n_classes")
        row["n_test"] = fit["metrics"].get("n_test")
        row["chosen"] = f"always {b.get('class')}"
        rows.append(row)
    return rows


def summary_table(fits: list[dict], *, n_boot: int, seed: int) -> pd.DataFrame:
    """One row per fit, then one majority-class baseline row per target: metrics with
    95 % CIs, mean ± sd across seeds, sizes, chosen params and best flags.

    For a probe fitted over several seeds, the headline metrics (:data:`HEADLINE`) are the
    mean over its seeds, the quantity the comparisons test, with the interval of that mean
    from ``n_boot`` resamples (:func:`artprobe.probes.metrics.seed_average`; NaN with ``n_boot``
    0); ``scored_as`` says so. The other metrics are the first seed's.
    ``best_in_target`` marks the highest test accuracy of a target over every model and
    classifier; ``best_model`` the highest among models for one target × classifier.
    Ties are all marked; baseline rows are never marked.
    """
    rows = []
    for fit in fits:
        m = fit["metrics"]
        info = m.get("info") if isinstance(m.get("info"), Mapping) else {}
        row: dict[str, Any] = {
            "model": fit["model"],
            "target": fit["target"],
            "classifier": fit["classifier"],
            "kind": fit["kind"],
        }
        for name in METRICS:
            row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = metric(m, name)
        for k in ("n_classes", "n_train", "n_val", "n_test"):
            row[k] = m.get(k)
        row["trained_on"], row["n_train_rows"] = trained_rows(m, info)
        if row["n_classes"] is None:
            row["n_classes"] = len(fit["class_names"]) or None
        _seed_columns(row, m)
        _seed_means(row, fit, n_boot, seed)
        row["fit_seconds"] = fit_seconds(m)
        row["chosen"] = hyperparams(info)
        row["params"] = compact(m.get("params") or info.get("params"))
        dropped = m.get("dropped")
        row["dropped"] = "" if not dropped else json.dumps(dropped, default=str)
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(
            columns=["model", "target", "classifier", "best_in_target", "best_model"]
        )
    acc = df["accuracy"]
    df["best_in_target"] = np.isclose(acc, df.groupby("target")["accuracy"].transform("max"))
    df["best_model"] = np.isclose(
        acc, df.groupby(["target", "classifier"])["accuracy"].transform("max")
    )
    base = pd.DataFrame(baseline_rows(fits))
    if not base.empty:
        base["best_in_target"] = base["best_model"] = False
        df = pd.concat([df, base], ignore_index=True)
    return df


def search_table(fits: list[dict]) -> pd.DataFrame:
    """Every point of every model-selection search (linear's C, knn's k and temperature),
    long format, with the fit's warnings on each of its rows."""
    rows = []
    for fit in fits:
        info = fit["metrics"].get("info") or {}
        warnings = "; ".join(info.get("warnings") or [])
        for g in info.get("grid") or []:
            if isinstance(g, Mapping):
                rows.append(
                    {
                        "model": fit["model"],
                        "target": fit["target"],
                        "classifier": fit["classifier"],
                        "kind": fit["kind"],
                        **g,
                        "chosen": _is_choice(g, info),
                        "warnings": warnings,
                    }
                )
    return pd.DataFrame(rows, columns=None if rows else ["model", "target", "classifier", "kind"])


def _is_choice(g: Mapping, info: Mapping) -> bool:
    keys = [k for k in ("C", "k", "temperature") if k in g]
    return bool(keys) and all(g[k] == info.get(k) for k in keys)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values: the i-th smallest of m is multiplied by
    ``m - i + 1`` (i from 1), made monotone, capped at 1; NaNs stay NaN, not counted."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out


_COMPARISON_COLUMNS = [
    "target",
    "classifier",
    "model_a",
    "model_b",
    "metric",
    "a",
    "b",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_resampled",
    "p_holm",
    "verdict",
    "better",
    "n_rows",
    "n_boot",
    "seeds",
    "method",
    "note",
]


def _shared_rows(pa_: pd.DataFrame, pb: pd.DataFrame, a: str, b: str) -> tuple[pd.DataFrame, str]:
    """Test rows both fits predicted (joined on row_id, same y_true), and a note if fewer."""
    j = pa_.merge(pb, on="row_id", suffixes=("_a", "_b"))
    note = ""
    if len(j) != len(pa_) or len(j) != len(pb):
        note = f"test rows differ ({a}: {len(pa_)}, {b}: {len(pb)}); compared on the {len(j)} shared rows"
    mismatch = int((j["y_true_a"] != j["y_true_b"]).sum())
    if mismatch:
        note = (note + "; " if note else "") + f"{mismatch} shared rows disagree on y_true; dropped"
        j = j[j["y_true_a"] == j["y_true_b"]]
    return j, note


def _compare(j: pd.DataFrame, a: str, b: str, metric_name: str, n_boot: int, seed: int) -> dict:
    """One comparison of ``metric_name`` on the shared rows ``j`` (every seed's predictions
    where the fits have several: :func:`artprobe.probes.metrics.compare`), as a table row."""
    from artprobe.probes.metrics import compare

    if len(j):
        res = compare(
            j["y_true_a"].to_numpy(),
            seed_predictions(j, "a"),
            seed_predictions(j, "b"),
            metric=metric_name,
            n_boot=n_boot,
            seed=seed,
        )
    else:  # nothing to compare on; keep the pair visible
        res = {"metric": metric_name, "verdict": "not compared: no shared test rows"}
    lo, hi = as_float(res.get("ci_low")), as_float(res.get("ci_high"))
    va, vb = as_float(res.get("a")), as_float(res.get("b"))
    verdict = str(res.get("verdict", ""))
    if verdict.lower() in ("a better", "b better"):
        better = a if verdict.lower() == "a better" else b
    else:  # unknown wording: the CI of the difference excludes zero
        better = (a if va > vb else b) if (lo > 0 or hi < 0) else ""
    return {
        "model_a": a,
        "model_b": b,
        "metric": res.get("metric", metric_name),
        "a": va,
        "b": vb,
        "diff": as_float(res.get("diff")),
        "ci_low": lo,
        "ci_high": hi,
        "p_value": as_float(res.get("p_value")),
        "p_resampled": as_float(res.get("p_resampled")),
        "verdict": verdict,
        "better": better,
        "n_rows": len(j),
        "n_boot": n_boot,
        "seeds": f"{res.get('n_seeds_a', '')} vs {res.get('n_seeds_b', '')}" if len(j) else "",
        "method": res.get("method", ""),
    }


def seed_predictions(j: pd.DataFrame, side: str | None) -> list[np.ndarray]:
    """One model's predicted ids on the joined rows (``side`` "a"/"b"; None: one fit's own
    predictions), one array per seed fitted (``y_pred_seeds`` when the fit has several
    seeds, else its ``y_pred``)."""
    end = f"_{side}" if side else ""
    col = f"y_pred_seeds{end}"
    if col in j and len(j) and not j[col].isna().any():
        return list(np.stack(j[col].to_numpy()).T)
    return [j[f"y_pred{end}"].to_numpy()]


def comparison_table(
    fits: list[dict],
    models: list[str],
    *,
    n_boot: int,
    seed: int,
    metrics: Iterable[str] = COMPARE_METRICS,
) -> pd.DataFrame:
    """Every pair of models per target × classifier, paired bootstrap on shared test rows;
    for seeded probes fitted over several seeds, seed-averaged scores with the seed variance
    carried (:func:`artprobe.probes.metrics.compare`; ``seeds`` and ``method`` say which).

    Predictions are joined on ``row_id``; if the two fits tested different rows (e.g. an
    image failed for one model only) the intersection is used and ``note`` says so.
    ``p_value`` is compare's (the normal approximation of the resampled differences,
    docs/statistics.md), ``p_resampled`` the resamples' own count, kept as a check;
    ``p_holm`` is Holm's correction of ``p_value`` across every
    test in the table (all targets, classifiers, pairs and metrics: one family). ``verdict``
    and ``better`` follow ``p_holm < 0.05``: "A better" / "B better" (by the sign of the
    difference) or "no significant difference"; ``better`` names the model, or is "".
    """
    by_key = {(f["target"], f["classifier"], f["model"]): f for f in fits}
    order = {m: i for i, m in enumerate(models)}
    rows = []
    for target, clf in dict.fromkeys((f["target"], f["classifier"]) for f in fits):
        present = sorted({m for t, c, m in by_key if (t, c) == (target, clf)}, key=order.get)
        for a, b in itertools.combinations(present, 2):
            pred_a = by_key[(target, clf, a)]["predictions"]
            j, note = _shared_rows(pred_a, by_key[(target, clf, b)]["predictions"], a, b)
            for name in metrics:
                row = _compare(j, a, b, name, n_boot, seed)
                rows.append({"target": target, "classifier": clf, **row, "note": note})
    df = pd.DataFrame(rows, columns=_COMPARISON_COLUMNS)
    df["p_holm"] = holm(df["p_value"].astype(float))
    for i, r in df.iterrows():
        if not np.isfinite(r["p_holm"]):
            continue
        significant = r["p_holm"] < 0.05
        df.at[i, "verdict"] = (
            ("A better" if r["diff"] > 0 else "B better")
            if significant
            else ("no significant difference")
        )
        df.at[i, "better"] = (
            (r["model_a"] if r["diff"] > 0 else r["model_b"]) if significant else ""
        )
    return df


def per_class_table(fits: list[dict]) -> pd.DataFrame:
    """Per-class precision/recall/F1 (with F1 CI) and support of every fit, long format."""
    rows = []
    for fit in fits:
        for name, d in (fit["metrics"].get("per_class") or {}).items():
            if not isinstance(d, Mapping):
                continue
            rows.append(
                {
                    "model": fit["model"],
                    "target": fit["target"],
                    "classifier": fit["classifier"],
                    "class": name,
                    **{
                        k: d.get(k)
                        for k in ("precision", "recall", "f1", "f1_ci_low", "f1_ci_high", "support")
                    },
                }
            )
    cols = [
        "model",
        "target",
        "classifier",
        "class",
        "precision",
        "recall",
        "f1",
        "f1_ci_low",
        "f1_ci_high",
        "support",
    ]
    return pd.DataFrame(rows, columns=cols)


PAIR_COLUMNS = [
    "model",
    "target",
    "classifier",
    "rank",
    "true_class",
    "predicted_class",
    "count",
    "support",
    "share_of_true",
]


def confused_pairs(fit: dict, names: list[str] | None, top: int = 20) -> pd.DataFrame:
    """The ``top`` most frequent (true → predicted) mistakes of a fit on its test rows."""
    p = fit["predictions"]
    wrong = p[p["y_true"] != p["y_pred"]]
    support = p["y_true"].value_counts()
    counts = wrong.groupby(["y_true", "y_pred"]).size().reset_index(name="count")
    counts = counts.sort_values(["count", "y_true", "y_pred"], ascending=[False, True, True]).head(
        top
    )
    rows = [
        {
            "model": fit["model"],
            "target": fit["target"],
            "classifier": fit["classifier"],
            "rank": r + 1,
            "true_class": class_name(names, int(t)),
            "predicted_class": class_name(names, int(q)),
            "count": int(n),
            "support": int(support[t]),
            "share_of_true": n / support[t],
        }
        for r, (t, q, n) in enumerate(counts.itertuples(index=False))
    ]
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def dataset_tables(
    split_path: str, embeddings: Mapping[str, str], targets: list[str], classes: Mapping[str, list]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(class counts per target and split, rows per split).

    Rows per split come from ``split.parquet``. Labels live in the shards and the merged
    embeddings only, so class counts use the union of the models' embeddings: a row that
    failed for every model is counted under ``split`` but not under any class. A row
    without a label for a target (id -1) is under no class of it; ``no_label_<target>``
    counts those rows per split (they are left out of that target's fits).
    """
    sp = pq.read_table(split_path, columns=["row_id", "split"]).to_pandas()
    splits = sp["split"].value_counts()
    order = [s for s in SPLITS if s in splits.index] + sorted(set(splits.index) - set(SPLITS))
    split_df = pd.DataFrame({"split": order, "rows": [int(splits[s]) for s in order]})
    split_df["share"] = split_df["rows"] / max(int(split_df["rows"].sum()), 1)

    labels = None
    for path in embeddings.values():
        have = set(pq.read_schema(path).names)
        cols = ["row_id"] + [t for t in targets if t in have]
        part = pq.read_table(path, columns=cols).to_pandas()
        labels = (
            part if labels is None else pd.concat([labels, part[~part.row_id.isin(labels.row_id)]])
        )
    rows = []
    if labels is not None:
        labels = labels.merge(sp, on="row_id", how="inner")
        split_df["labelled_rows"] = [int((labels["split"] == s).sum()) for s in order]
        for t in targets:
            if t not in labels:
                continue
            missing = labels[t] < 0  # no label for this target: left out of its fits
            split_df[f"no_label_{t}"] = [
                int((missing & (labels["split"] == s)).sum()) for s in order
            ]
            tab = labels[~missing].groupby([t, "split"]).size().unstack("split", fill_value=0)
            for cid, r in tab.iterrows():
                row = {
                    "target": t,
                    "class_id": int(cid),
                    "class": class_name(classes.get(t), int(cid)),
                }
                row.update({s: int(r.get(s, 0)) for s in order})
                row["total"] = int(sum(r.get(s, 0) for s in order))
                rows.append(row)
    cols = ["target", "class_id", "class", *order, "total"]
    return pd.DataFrame(rows, columns=cols), split_df


def failure_table(
    failures: Mapping[str, str], embeddings: Mapping[str, str], manifest: Mapping
) -> pd.DataFrame:
    """Per model: rows embedded, rows failed and the most common failure reasons."""
    n_rows = manifest.get("n_rows")
    rows = []
    for m in dict.fromkeys(list(embeddings) + list(failures)):
        embedded = pq.ParquetFile(embeddings[m]).metadata.num_rows if m in embeddings else None
        reasons = ""
        failed = 0
        if m in failures and Path(failures[m]).exists():
            f = pq.read_table(failures[m]).to_pandas()
            failed = len(f)
            if failed and "reason" in f:
                short = f["reason"].fillna("").astype(str).str.split("\n").str[0].str.slice(0, 80)
                reasons = "; ".join(
                    f"{r or '(none)'}: {n}" for r, n in short.value_counts().head(5).items()
                )
        rows.append(
            {
                "model": m,
                "manifest_rows": n_rows,
                "embedded": embedded,
                "failed": failed,
                "failed_share": failed / n_rows if n_rows else math.nan,
                "top_reasons": reasons,
            }
        )
    return pd.DataFrame(
        rows,
        columns=["model", "manifest_rows", "embedded", "failed", "failed_share", "top_reasons"],
    )


def embedding_speed(meta: Mapping) -> tuple[float, str, str]:
    """(images per second, device, device name) from merged-embedding metadata.

    Read defensively: the speed is the shards' embedded rows over their seconds (a shard's
    rows embedded in its run are ``img_per_s × seconds`` when both are there, so rows
    resumed from a checkpoint do not inflate it, else its ``rows``); failing that a
    top-level or nested ``img_per_s``, then the mean of the shards' ``img_per_s``.
    """
    shards = find(meta, "shards")
    if isinstance(shards, Mapping):
        shards = list(shards.values())
    shards = [s for s in shards or [] if isinstance(s, Mapping)]
    done = secs = 0.0
    for sh in shards:
        sec, ips = as_float(sh.get("seconds")), as_float(sh.get("img_per_s"))
        rows = ips * sec if math.isfinite(ips) and math.isfinite(sec) else as_float(sh.get("rows"))
        if math.isfinite(rows) and math.isfinite(sec) and sec > 0:
            done, secs = done + rows, secs + sec
    speed = done / secs if secs > 0 and done > 0 else as_float(find(meta, "img_per_s"))
    if not math.isfinite(speed):
        per = [
            x
            for x in (as_float(sh.get("img_per_s")) for sh in shards)
            if math.isfinite(x) and x > 0
        ]
        speed = float(np.mean(per)) if per else math.nan

    def named(key: str) -> str:
        top = find(meta, key)
        if top:
            return str(top)
        return ", ".join(dict.fromkeys(str(sh[key]) for sh in shards if sh.get(key)))

    return speed, named("device"), named("device_name")


def cost_table(embeddings: Mapping[str, str], fits: list[dict], n_rows: int | None) -> pd.DataFrame:
    """Per model: embedding throughput, device and the GPU-hours for this dataset's ``n_rows``.

    ``n_rows`` is the manifest's row count (None: the model's embedded rows).
    """
    rows = []
    for m, path in embeddings.items():
        meta = read_meta(path)
        speed, device, device_name = embedding_speed(meta)
        schema = pq.read_schema(path)
        dim = (
            getattr(schema.field("embedding").type, "list_size", None)
            if "embedding" in schema.names
            else None
        )
        fit_s = sum(fit_seconds(f["metrics"]) for f in fits if f["model"] == m)
        embedded = pq.ParquetFile(path).metadata.num_rows
        rows.append(
            {
                "model": m,
                "timm_name": find(meta, "timm_name") or "",
                "device": device,
                "device_name": device_name,
                "img_per_s": speed,
                "embedding_dim": dim,
                "rows_embedded": embedded,
                "gpu_hours_this_dataset": (
                    (n_rows or embedded) / speed / 3600 if speed > 0 else math.nan
                ),
                "fit_seconds_total": fit_s,
            }
        )
    cols = [
        "model",
        "timm_name",
        "device",
        "device_name",
        "img_per_s",
        "embedding_dim",
        "rows_embedded",
        "gpu_hours_this_dataset",
        "fit_seconds_total",
    ]
    return pd.DataFrame(rows, columns=cols)


def split_notes(
    split_path: str, splits: pd.DataFrame, duplicates: str | None
) -> tuple[pd.DataFrame, dict]:
    """Rows per split with the near-duplicate counts of each part (``duplicates.parquet``:
    hash candidates and confirmed duplicates; none for train: the scan compares val/test
    with train), and how the split was made."""
    meta = {"split": read_meta(split_path)}
    if duplicates is None:
        return splits, meta
    meta["duplicates"] = read_meta(duplicates)
    splits = splits.copy()
    for column, key in (
        ("near_duplicate_candidates", "candidates"),
        ("near_duplicates", "duplicates"),
    ):
        found = meta["duplicates"].get(key)
        if found is not None:  # a scan from before the confirmation has no candidates
            counts = [found.get(s, 0) if s != "train" else None for s in splits["split"]]
            splits[column] = pd.array(counts, dtype="Int64")
    return splits, meta


FEWSHOT_COLUMNS = [
    "model",
    "target",
    "shot",
    "trials",
    "n_train",
    "accuracy",
    "accuracy_sd",
    "balanced_accuracy",
    "balanced_accuracy_sd",
    "macro_f1",
    "macro_f1_sd",
]


def fewshot_table(curves: list[dict]) -> pd.DataFrame:
    """One row per model × target × shot: mean and sd over the few-shot trials."""
    rows = [
        {"model": c["model"], "target": c["target"], **s}
        for c in curves
        for s in c.get("summary", [])
    ]
    df = pd.DataFrame(rows, columns=FEWSHOT_COLUMNS)
    df["shot"] = df["shot"].astype(str)
    return df
