"""The report stage: tables and plots that compare models across targets and probes.

Inputs are the finished fits (``classify/<model>/<target>/<classifier>/``), the merged
embeddings with their failures, the manifest and the split (see docs/design.md). Every
output is listed by :func:`report_files` (so the workflow can declare them up front) and
written atomically by :func:`build_report`.

CSV tables are for machines; Snakemake's HTML report shows only images, HTML and PDF
inline (anything else becomes a download button), so each table a reader should see
also gets a small self-contained HTML rendering under ``tables/``.
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from artprobe.io import atomic_path, read_json, read_meta, write_text

log = logging.getLogger(__name__)

#: Images in the full WikiArt dataset (huggan/wikiart); the cost table extrapolates to it.
FULL_WIKIART_IMAGES = 81_444
#: Headline metrics of ``artprobe.metrics.evaluate``, in table order.
METRICS = ("accuracy", "top5_accuracy", "macro_f1", "balanced_accuracy")
METRIC_LABELS = {
    "accuracy": "accuracy",
    "top5_accuracy": "top-5 accuracy",
    "macro_f1": "macro-F1",
    "balanced_accuracy": "balanced accuracy",
}
#: Targets whose class count is too large for a readable confusion matrix.
PAIR_TARGETS = ("artist",)
#: Targets that get a per-class F1 plot.
F1_TARGETS = ("style",)
#: Metrics compared pairwise between models with the paired bootstrap.
COMPARE_METRICS = ("accuracy", "macro_f1")
SPLITS = ("train", "val", "test")
DPI = 100

# Greys for splits, so they never read as one of the model colours.
_SPLIT_COLORS = {"train": "#4d4d4d", "val": "#999999", "test": "#cfcfcf"}
# info keys that are bookkeeping (sizes, where/how long a fit ran), not what was chosen.
_NOT_CHOSEN = re.compile(
    r"^(kind|seed|threads|torch|steps|cuda_graph|restored_best|params|grid|refit|history|"
    r"class_weights?|n_\w+|device\w*)$|seconds|s_per_epoch|_loss$"
)


# --------------------------------------------------------------------------- outputs


def report_files(
    models: list[str],
    targets: list[str],
    classifiers: list[str],
    kinds: dict[str, str],
    *,
    pair_targets: Iterable[str] = PAIR_TARGETS,
    f1_targets: Iterable[str] = F1_TARGETS,
) -> dict[str, str]:
    """Every file :func:`build_report` writes, relative to its ``out_dir``, by stable id.

    ``kinds`` maps a classifier name to its kind (mlp/linear/knn); only ``mlp`` fits have
    training curves. Targets in ``pair_targets`` get a top-confused-pairs plot instead of a
    confusion matrix; targets in ``f1_targets`` get a per-class F1 plot per classifier.
    """
    pair_targets, f1_targets = set(pair_targets), set(f1_targets)
    files = {
        "summary": "summary.csv",
        "summary_html": "tables/summary.html",
        "comparisons": "comparisons.csv",
        "comparisons_html": "tables/comparisons.html",
        "per_class": "per_class.csv",
        "confused_pairs": "confused_pairs.csv",
        "dataset": "dataset.csv",
        "splits": "splits.csv",
        "failures": "failures.csv",
        "dataset_html": "tables/dataset.html",
        "cost": "cost.csv",
        "cost_html": "tables/cost.html",
        "accuracy_plot": "accuracy.png",
    }
    for t in targets:
        files[f"dataset_plot.{t}"] = f"dataset/{t}.png"
    for t in targets:
        if t in f1_targets:
            for c in classifiers:
                files[f"f1.{t}.{c}"] = f"per_class_f1/{t}.{c}.png"
    for m, t, c in itertools.product(models, targets, classifiers):
        key = f"{m}.{t}.{c}"
        if t in pair_targets:
            files[f"pairs.{key}"] = f"confused_pairs/{key}.png"
        else:
            files[f"confusion.{key}"] = f"confusion/{key}.png"
        if kinds.get(c) == "mlp":
            files[f"curves.{key}"] = f"curves/{key}.png"
    for m in models:
        files[f"map.{m}"] = f"maps/{m}.png"
    return files


#: category names of :func:`report_sections`, numbered so the report lists them in order
CATEGORIES = {
    "results": "1. Results",
    "errors": "2. Errors by class",
    "f1": "3. Per-class F1",
    "curves": "4. Training curves",
    "maps": "5. Embedding maps",
    "dataset": "6. Dataset",
    "cost": "7. Cost",
}


def report_sections(
    models: list[str],
    targets: list[str],
    classifiers: list[str],
    kinds: dict[str, str],
    **kwargs: Any,
) -> dict[str, dict]:
    """How each file of :func:`report_files` (same arguments) appears in Snakemake's report.

    Returns ``{id: {"caption", "category", "subcategory", "labels"}}``: ``caption`` is a file
    name in the workflow's ``report/`` folder, ``subcategory`` may be None, ``labels`` is a
    dict of strings. A rule wraps each output as
    ``report(path, caption=f"../report/{s['caption']}", category=s["category"],
    subcategory=s["subcategory"], labels=s["labels"])``.
    """
    files = report_files(models, targets, classifiers, kinds, **kwargs)
    res, err, ds = CATEGORIES["results"], CATEGORIES["errors"], CATEGORIES["dataset"]
    fixed = {
        "accuracy_plot": ("accuracy.rst", res, None, "accuracy chart (95 % CI)"),
        "summary_html": ("summary.rst", res, None, "summary table"),
        "summary": ("summary.rst", res, None, "summary table (CSV)"),
        "comparisons_html": ("comparisons.rst", res, None, "paired model comparisons"),
        "comparisons": ("comparisons.rst", res, None, "paired model comparisons (CSV)"),
        "per_class": ("per_class.rst", err, "all targets (CSV)", "per-class precision, recall, F1"),
        "confused_pairs": ("confused_pairs.rst", err, "all targets (CSV)", "top confused pairs"),
        "dataset_html": ("dataset.rst", ds, None, "overview: splits, failures, class counts"),
        "dataset": ("dataset.rst", ds, None, "class counts per split (CSV)"),
        "splits": ("dataset.rst", ds, None, "rows per split (CSV)"),
        "failures": ("dataset.rst", ds, None, "embedding failures per model (CSV)"),
        "cost_html": ("cost.rst", CATEGORIES["cost"], None, "throughput and GPU-hours"),
        "cost": ("cost.rst", CATEGORIES["cost"], None, "throughput and GPU-hours (CSV)"),
    }
    out: dict[str, dict] = {}
    for fid in files:
        if fid in fixed:
            caption, cat, sub, what = fixed[fid]
            out[fid] = {
                "caption": caption,
                "category": cat,
                "subcategory": sub,
                "labels": {"content": what},
            }
            continue
        kind, _, rest = fid.partition(".")
        if kind == "dataset_plot":
            out[fid] = {
                "caption": "dataset.rst",
                "category": ds,
                "subcategory": None,
                "labels": {"content": f"class counts: {rest}"},
            }
        elif kind == "f1":
            t, c = rest.split(".", 1)
            out[fid] = {
                "caption": "per_class.rst",
                "category": CATEGORIES["f1"],
                "subcategory": None,
                "labels": {"target": t, "classifier": c},
            }
        elif kind == "map":
            out[fid] = {
                "caption": "maps.rst",
                "category": CATEGORIES["maps"],
                "subcategory": None,
                "labels": {"model": rest},
            }
        elif kind in ("confusion", "pairs", "curves"):
            m, t, c = _split_key(rest, models, targets, classifiers)
            caption = {
                "confusion": "confusion.rst",
                "pairs": "confused_pairs.rst",
                "curves": "curves.rst",
            }[kind]
            cat = CATEGORIES["curves"] if kind == "curves" else err
            out[fid] = {
                "caption": caption,
                "category": cat,
                "subcategory": t,
                "labels": {"model": m, "classifier": c},
            }
        else:  # pragma: no cover - report_files and this function are kept in step by the tests
            raise ValueError(f"no report section for {fid!r}")
    return out


def _split_key(key: str, models, targets, classifiers) -> tuple[str, str, str]:
    """``model.target.classifier`` back into its parts (names may contain dots)."""
    for m in models:
        for t in targets:
            if key.startswith(f"{m}.{t}."):
                c = key[len(m) + len(t) + 2 :]
                if c in classifiers:
                    return m, t, c
    raise ValueError(f"cannot split {key!r}")


def model_colors(models: Iterable[str]) -> dict[str, Any]:
    """One fixed colour per model (tab10 order, then tab20), used by every plot."""
    from matplotlib import colormaps

    palette = list(colormaps["tab10"].colors) + list(colormaps["tab20"].colors[1::2])
    return {m: palette[i % len(palette)] for i, m in enumerate(dict.fromkeys(models))}


# --------------------------------------------------------------------------- entry point


def build_report(
    *,
    fits: list[dict],
    embeddings: dict[str, str],
    failures: dict[str, str],
    manifest: str,
    split: str,
    out_dir: str,
    kinds: dict[str, str],
    n_boot: int = 1000,
    seed: int = 0,
    map_rows: int = 2000,
    pair_targets: Iterable[str] = PAIR_TARGETS,
    f1_targets: Iterable[str] = F1_TARGETS,
    compare_metrics: Iterable[str] = COMPARE_METRICS,
    top_pairs: int = 20,
    map_target: str = "style",
) -> None:
    """Write every file of :func:`report_files` under ``out_dir``.

    ``fits`` lists ``{"model", "target", "classifier", "dir"}``; ``embeddings`` and
    ``failures`` map a model to its merged embeddings / failures Parquet file.
    ``n_boot`` and ``seed`` drive the paired bootstrap, ``map_rows`` the seeded subsample
    of the embedding maps.
    """
    out = Path(out_dir)
    pair_targets, f1_targets = tuple(pair_targets), tuple(f1_targets)
    models = list(dict.fromkeys([f["model"] for f in fits] + list(embeddings)))
    targets = list(dict.fromkeys(f["target"] for f in fits))
    classifiers = list(dict.fromkeys(f["classifier"] for f in fits))
    colors = model_colors(models)
    man = read_json(manifest)
    classes = {t: list(v) for t, v in (man.get("classes") or {}).items()}

    loaded = [_load_fit(f, kinds) for f in fits]
    for fit in loaded:
        classes.setdefault(fit["target"], fit["class_names"])

    log.info("report: %d fits, %d models -> %s", len(loaded), len(models), out)
    summary = summary_table(loaded)
    _write_csv(out / "summary.csv", summary)
    _write_html(
        out / "tables/summary.html", "Model × target × classifier", _summary_sections(summary)
    )

    comparisons = comparison_table(
        loaded, models, n_boot=n_boot, seed=seed, metrics=compare_metrics
    )
    _write_csv(out / "comparisons.csv", comparisons)
    _write_html(
        out / "tables/comparisons.html",
        "Paired bootstrap comparisons",
        _comparison_sections(comparisons),
    )

    _write_csv(out / "per_class.csv", per_class_table(loaded))
    pairs = pd.concat(
        [confused_pairs(fit, classes.get(fit["target"]), top_pairs) for fit in loaded]
        or [pd.DataFrame(columns=_PAIR_COLUMNS)],
        ignore_index=True,
    )
    _write_csv(out / "confused_pairs.csv", pairs)

    # dataset overview, failures, cost
    dataset, splits = dataset_tables(split, embeddings, targets, classes)
    fails = failure_table(failures, embeddings, man)
    cost = cost_table(embeddings, loaded)
    _write_csv(out / "dataset.csv", dataset)
    _write_csv(out / "splits.csv", splits)
    _write_csv(out / "failures.csv", fails)
    _write_csv(out / "cost.csv", cost)
    _write_html(
        out / "tables/dataset.html",
        "Dataset overview",
        _dataset_sections(splits, fails, dataset, man),
    )
    _write_html(out / "tables/cost.html", "Embedding cost per model", _cost_sections(cost))

    # plots
    _save(plot_accuracy(summary, models, targets, classifiers, colors), out / "accuracy.png")
    for t in targets:
        _save(plot_class_counts(dataset, t), out / f"dataset/{t}.png")
    for t in targets:
        if t not in f1_targets:
            continue
        for c in classifiers:
            fig = plot_per_class_f1(
                [x for x in loaded if x["target"] == t and x["classifier"] == c],
                models,
                colors,
                t,
                c,
            )
            _save(fig, out / f"per_class_f1/{t}.{c}.png")
    for fit in loaded:
        key = f"{fit['model']}.{fit['target']}.{fit['classifier']}"
        names = classes.get(fit["target"])
        if fit["target"] in pair_targets:
            sub = pairs[
                (pairs.model == fit["model"])
                & (pairs.target == fit["target"])
                & (pairs.classifier == fit["classifier"])
            ]
            _save(plot_confused_pairs(sub, fit), out / f"confused_pairs/{key}.png")
        else:
            _save(plot_confusion(fit, names), out / f"confusion/{key}.png")
        if kinds.get(fit["classifier"]) == "mlp":
            _save(plot_curves(fit, colors[fit["model"]]), out / f"curves/{key}.png")
    map_ids = _sample_rows(embeddings, map_rows, seed)
    for m, path in embeddings.items():
        _save(plot_map(m, path, map_ids, classes, map_target), out / f"maps/{m}.png")
    declared = report_files(
        models, targets, classifiers, kinds, pair_targets=pair_targets, f1_targets=f1_targets
    )
    missing = [p for p in declared.values() if not (out / p).is_file()]
    if missing:  # the fits do not cover models × targets × classifiers
        raise RuntimeError(
            f"report: {len(missing)} declared file(s) not written, e.g. {missing[:3]}"
        )
    log.info("report: %d files written", len(declared))


# --------------------------------------------------------------------------- loading


def _load_fit(fit: Mapping[str, str], kinds: Mapping[str, str]) -> dict:
    d = Path(fit["dir"])
    metrics = read_json(d / "metrics.json")
    preds = pq.read_table(
        d / "predictions.parquet", columns=["row_id", "y_true", "y_pred"]
    ).to_pandas()
    hist_path = d / "history.csv"
    history = (
        pd.read_csv(hist_path)
        if hist_path.exists() and hist_path.stat().st_size
        else pd.DataFrame()
    )
    return {
        "model": fit["model"],
        "target": fit["target"],
        "classifier": fit["classifier"],
        "kind": kinds.get(fit["classifier"], ""),
        "dir": str(d),
        "metrics": metrics,
        "predictions": preds,
        "history": history,
        "class_names": list(metrics.get("class_names") or []),
    }


def _metric(metrics: Mapping, name: str) -> tuple[float, float, float]:
    """(value, ci_low, ci_high) of a metric; NaN where absent."""
    v = metrics.get(name)
    if isinstance(v, Mapping):
        return tuple(_float(v.get(k)) for k in ("value", "ci_low", "ci_high"))  # type: ignore[return-value]
    return _float(v), math.nan, math.nan


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _find(meta: Any, key: str, depth: int = 3) -> Any:
    """``meta[key]``, else the first ``key`` in nested dicts (breadth first), else None."""
    level = [meta]
    for _ in range(depth + 1):
        nxt = []
        for d in level:
            if isinstance(d, Mapping):
                if d.get(key) is not None:
                    return d[key]
                nxt.extend(v for v in d.values() if isinstance(v, Mapping))
        level = nxt
    return None


def _fmt(v: Any) -> str | None:
    """Short text for a scalar (or a short list); None for anything bulky."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (int, str)):
        return str(v)
    if isinstance(v, (list, tuple)) and len(json.dumps(v, default=str)) <= 40:
        return json.dumps(v, default=str)
    return None


def _compact(d: Any, skip: re.Pattern | None = None, max_len: int = 300) -> str:
    if not isinstance(d, Mapping):
        return ""
    items = []
    for k, v in d.items():
        if skip is not None and skip.search(str(k)):
            continue
        s = _fmt(v)
        if s is not None:
            items.append(f"{k}={s}")
    text = "; ".join(items)
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


def hyperparams(info: Any, max_len: int = 160) -> str:
    """``k=v; …`` of what model selection chose, from a fit's ``info``.

    E.g. ``C=0.1; select_by=accuracy; val_accuracy=0.71`` for a linear probe,
    ``best_epoch=7; epochs_run=10; stopped_early=True`` for an MLP, ``k=20`` for kNN.
    Bookkeeping (sizes, devices, timings, grids, weights) is left out.
    """
    return _compact(info, _NOT_CHOSEN, max_len)


# --------------------------------------------------------------------------- tables


def summary_table(fits: list[dict]) -> pd.DataFrame:
    """One row per fit: metrics with 95 % CIs, sizes, chosen params and best flags.

    ``best_in_target`` marks the highest test accuracy of a target over every model and
    classifier; ``best_model`` the highest among models for one target × classifier.
    Ties are all marked.
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
            row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = _metric(m, name)
        for k in ("n_classes", "n_train", "n_val", "n_test"):
            row[k] = m.get(k)
        if row["n_classes"] is None:
            row["n_classes"] = len(fit["class_names"]) or None
        row["fit_seconds"] = _float(m.get("seconds", _find(info, "seconds")))
        row["chosen"] = hyperparams(info)
        row["params"] = _compact(m.get("params") or info.get("params"))
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
    return df


def comparison_table(
    fits: list[dict],
    models: list[str],
    *,
    n_boot: int,
    seed: int,
    metrics: Iterable[str] = COMPARE_METRICS,
) -> pd.DataFrame:
    """Every pair of models per target × classifier, paired bootstrap on shared test rows.

    Predictions are joined on ``row_id``; if the two fits tested different rows (e.g. an
    image failed for one model only) the intersection is used and ``note`` says so.
    ``verdict`` is paired_bootstrap's ("A better" / "B better" / "no significant
    difference"); ``better`` names that model, or is "" when not significant.
    """
    from artprobe.metrics import paired_bootstrap

    by_key = {(f["target"], f["classifier"], f["model"]): f for f in fits}
    order = {m: i for i, m in enumerate(models)}
    rows = []
    groups = dict.fromkeys((f["target"], f["classifier"]) for f in fits)
    for target, clf in groups:
        present = sorted(
            {f["model"] for f in fits if f["target"] == target and f["classifier"] == clf},
            key=order.get,
        )
        for a, b in itertools.combinations(present, 2):
            pa, pb = (
                by_key[(target, clf, a)]["predictions"],
                by_key[(target, clf, b)]["predictions"],
            )
            j = pa.merge(pb, on="row_id", suffixes=("_a", "_b"))
            note = ""
            if len(j) != len(pa) or len(j) != len(pb):
                note = f"test rows differ ({a}: {len(pa)}, {b}: {len(pb)}); compared on the {len(j)} shared rows"
            mismatch = int((j["y_true_a"] != j["y_true_b"]).sum())
            if mismatch:
                note = (
                    note + "; " if note else ""
                ) + f"{mismatch} shared rows disagree on y_true; dropped"
                j = j[j["y_true_a"] == j["y_true_b"]]
            y = j["y_true_a"].to_numpy()
            for metric in metrics:
                if len(j):
                    res = paired_bootstrap(
                        y,
                        j["y_pred_a"].to_numpy(),
                        j["y_pred_b"].to_numpy(),
                        metric=metric,
                        n_boot=n_boot,
                        seed=seed,
                    )
                else:  # nothing to compare on; keep the pair visible
                    res = {"metric": metric, "verdict": "not compared: no shared test rows"}
                lo, hi = _float(res.get("ci_low")), _float(res.get("ci_high"))
                va, vb = _float(res.get("a")), _float(res.get("b"))
                verdict = str(res.get("verdict", ""))
                if verdict.lower() in ("a better", "b better"):
                    better = a if verdict.lower() == "a better" else b
                else:  # unknown wording: the CI of the difference excludes zero
                    better = (a if va > vb else b) if (lo > 0 or hi < 0) else ""
                rows.append(
                    {
                        "target": target,
                        "classifier": clf,
                        "model_a": a,
                        "model_b": b,
                        "metric": res.get("metric", metric),
                        "a": va,
                        "b": vb,
                        "diff": _float(res.get("diff")),
                        "ci_low": lo,
                        "ci_high": hi,
                        "p_value": _float(res.get("p_value")),
                        "verdict": verdict,
                        "better": better,
                        "n_rows": len(j),
                        "n_boot": n_boot,
                        "note": note,
                    }
                )
    cols = [
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
        "verdict",
        "better",
        "n_rows",
        "n_boot",
        "note",
    ]
    return pd.DataFrame(rows, columns=cols)


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


_PAIR_COLUMNS = [
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


def _class_name(names: list[str] | None, i: int) -> str:
    return str(names[i]) if names is not None and 0 <= i < len(names) else str(i)


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
            "true_class": _class_name(names, int(t)),
            "predicted_class": _class_name(names, int(q)),
            "count": int(n),
            "support": int(support[t]),
            "share_of_true": n / support[t],
        }
        for r, (t, q, n) in enumerate(counts.itertuples(index=False))
    ]
    return pd.DataFrame(rows, columns=_PAIR_COLUMNS)


def dataset_tables(
    split_path: str, embeddings: Mapping[str, str], targets: list[str], classes: Mapping[str, list]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(class counts per target and split, rows per split).

    Rows per split come from ``split.parquet``. Labels live in the shards and the merged
    embeddings only, so class counts use the union of the models' embeddings: a row that
    failed for every model is counted under ``split`` but not under any class.
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
            tab = labels.groupby([t, "split"]).size().unstack("split", fill_value=0)
            for cid, r in tab.iterrows():
                row = {
                    "target": t,
                    "class_id": int(cid),
                    "class": _class_name(classes.get(t), int(cid)),
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
    shards = _find(meta, "shards")
    if isinstance(shards, Mapping):
        shards = list(shards.values())
    shards = [s for s in shards or [] if isinstance(s, Mapping)]
    done = secs = 0.0
    for sh in shards:
        sec, ips = _float(sh.get("seconds")), _float(sh.get("img_per_s"))
        rows = ips * sec if math.isfinite(ips) and math.isfinite(sec) else _float(sh.get("rows"))
        if math.isfinite(rows) and math.isfinite(sec) and sec > 0:
            done, secs = done + rows, secs + sec
    speed = done / secs if secs > 0 and done > 0 else _float(_find(meta, "img_per_s"))
    if not math.isfinite(speed):
        per = [
            x for x in (_float(sh.get("img_per_s")) for sh in shards) if math.isfinite(x) and x > 0
        ]
        speed = float(np.mean(per)) if per else math.nan

    def named(key: str) -> str:
        top = _find(meta, key)
        if top:
            return str(top)
        return ", ".join(dict.fromkeys(str(sh[key]) for sh in shards if sh.get(key)))

    return speed, named("device"), named("device_name")


def cost_table(embeddings: Mapping[str, str], fits: list[dict]) -> pd.DataFrame:
    """Per model: embedding throughput, device and estimated hours for all of WikiArt."""
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
        fit_s = sum(
            _float(f["metrics"].get("seconds", _find(f["metrics"].get("info") or {}, "seconds")))
            for f in fits
            if f["model"] == m
        )
        rows.append(
            {
                "model": m,
                "timm_name": _find(meta, "timm_name") or "",
                "device": device,
                "device_name": device_name,
                "img_per_s": speed,
                "embedding_dim": dim,
                "rows_embedded": pq.ParquetFile(path).metadata.num_rows,
                "gpu_hours_full_wikiart": (
                    FULL_WIKIART_IMAGES / speed / 3600 if speed > 0 else math.nan
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
        "gpu_hours_full_wikiart",
        "fit_seconds_total",
    ]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- plots


def _figure(w: float, h: float, layout: str | None = "constrained"):
    """A pyplot-free figure (no global state, no GUI backend)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=DPI, layout=layout)


def _save(fig, path: Path) -> None:
    with atomic_path(path, suffix=".png.tmp") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.15)


def _no_data(fig, text: str) -> None:
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, wrap=True)
    ax.set_axis_off()


def plot_accuracy(summary: pd.DataFrame, models, targets, classifiers, colors):
    """Test accuracy with 95 % CIs: one panel per target, classifiers on x, bars per model."""
    n_m, n_c = max(len(models), 1), max(len(classifiers), 1)
    width = max(7.0, 0.55 * n_c * (n_m + 1) + 2.5)
    fig = _figure(width, 2.9 * max(len(targets), 1) + 0.6)
    if summary.empty:
        _no_data(fig, "no fits")
        return fig
    axes = fig.subplots(len(targets), 1, squeeze=False)[:, 0]
    bw = 0.8 / n_m
    for ax, t in zip(axes, targets):
        sub = summary[summary.target == t]
        for i, m in enumerate(models):
            for j, c in enumerate(classifiers):
                r = sub[(sub.model == m) & (sub.classifier == c)]
                if r.empty:
                    continue
                r = r.iloc[0]
                x = j - 0.4 + bw * (i + 0.5)
                v, lo, hi = r["accuracy"], r["accuracy_ci_low"], r["accuracy_ci_high"]
                yerr = None
                if math.isfinite(lo) and math.isfinite(hi):
                    yerr = [[max(v - lo, 0)], [max(hi - v, 0)]]
                ax.bar(
                    x,
                    v,
                    bw * 0.92,
                    color=colors[m],
                    yerr=yerr,
                    capsize=3,
                    error_kw={"elinewidth": 1.2, "ecolor": "black"},
                    edgecolor="black" if r["best_model"] else "none",
                    linewidth=1.4,
                )
                top = hi if math.isfinite(hi) else v
                best = bool(r["best_model"])
                ax.text(
                    x,
                    top + 0.02,
                    f"{v:.3f}",
                    rotation=0 if n_m <= 4 else 90,
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    fontweight="bold" if best else "normal",
                )
                if best:
                    ax.plot(
                        x,
                        top + (0.16 if n_m <= 4 else 0.22),
                        marker="*",
                        markersize=12,
                        color="black",
                    )
        n_classes = sub["n_classes"].dropna()
        title = f"target: {t}"
        if len(n_classes):
            k = int(n_classes.iloc[0])
            ax.axhline(1.0 / k, color="grey", linestyle=":", linewidth=1.2)
            title += f"  ({k} classes, chance {1.0 / k:.3f})"
        ax.set_xticks(range(n_c), classifiers, fontsize=10)
        ax.set_xlim(-0.5, n_c - 0.5)
        ax.set_ylim(0, 1.3 if n_m <= 4 else 1.38)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("test accuracy", fontsize=10)
        ax.set_title(title, fontsize=11, loc="left", fontweight="bold")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=colors[m], label=m) for m in models]
    handles.append(
        Line2D(
            [],
            [],
            marker="*",
            markersize=12,
            color="black",
            linestyle="none",
            label="best model (per target × classifier)",
        )
    )
    handles.append(Line2D([], [], color="grey", linestyle=":", linewidth=1.2, label="chance"))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), 5),
        fontsize=10,
        frameon=False,
    )
    fig.suptitle("Test accuracy with 95 % bootstrap CI", fontsize=12)
    return fig


def plot_confusion(fit: dict, names: list[str] | None):
    """Row-normalised confusion matrix (each row sums to 1: recall on the diagonal)."""
    p = fit["predictions"]
    ids = sorted(set(p["y_true"].astype(int)) | set(p["y_pred"].astype(int)))
    n = len(ids)
    cell = 0.42 if n <= 12 else 0.32
    side = max(4.0, n * cell)
    fig = _figure(
        side + 3.2, side + 1.6, layout=None
    )  # bbox_inches="tight" does the layout, faster
    if n == 0:
        _no_data(fig, "no test predictions")
        return fig
    pos = {c: i for i, c in enumerate(ids)}
    cm = np.zeros((n, n))
    np.add.at(cm, (p["y_true"].map(pos).to_numpy(), p["y_pred"].map(pos).to_numpy()), 1)
    support = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, support, out=np.full_like(cm, np.nan), where=support > 0)
    ax = fig.add_subplot()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    labels = [_class_name(names, c) for c in ids]
    fs = 10 if n <= 12 else 8.5
    ax.set_xticks(range(n), labels, rotation=60, ha="right", rotation_mode="anchor", fontsize=fs)
    ax.set_yticks(
        range(n), [f"{lab} ({int(s)})" for lab, s in zip(labels, support[:, 0])], fontsize=fs
    )
    if n <= 30:
        for i in range(n):
            for j in range(n):
                v = norm[i, j]
                if np.isfinite(v) and v >= 0.005:
                    ax.text(
                        j,
                        i,
                        f"{100 * v:.0f}",
                        ha="center",
                        va="center",
                        fontsize=7 if n > 12 else 9,
                        color="white" if v > 0.55 else "black",
                    )
    ax.set_xlabel("predicted class", fontsize=10)
    ax.set_ylabel("true class (test rows)", fontsize=10)
    acc = _metric(fit["metrics"], "accuracy")[0]
    ax.set_title(
        f"{fit['model']} · {fit['target']} · {fit['classifier']} — accuracy {acc:.3f}\n"
        "row-normalised, % of each true class",
        fontsize=11,
    )
    cb = fig.colorbar(im, ax=ax, shrink=0.6, pad=0.02)
    cb.set_label("share of true class", fontsize=9)
    return fig


def plot_confused_pairs(pairs: pd.DataFrame, fit: dict):
    """Horizontal bars of the most frequent true → predicted mistakes of one fit."""
    k = max(len(pairs), 1)
    fig = _figure(10, 0.34 * k + 1.6)
    if pairs.empty:
        _no_data(fig, "no mistakes on the test rows")
        return fig
    ax = fig.add_subplot()
    y = np.arange(len(pairs))[::-1]
    ax.barh(y, pairs["count"], color="#8c6bb1")
    ax.set_yticks(
        y,
        [f"{t}  →  {q}" for t, q in zip(pairs["true_class"], pairs["predicted_class"])],
        fontsize=9,
    )
    for yy, c, s, sh in zip(y, pairs["count"], pairs["support"], pairs["share_of_true"]):
        ax.text(c, yy, f"  {c}/{s} ({100 * sh:.0f} %)", va="center", fontsize=8.5)
    ax.set_xlim(0, pairs["count"].max() * 1.3)
    ax.set_xlabel("test rows of the true class predicted as the other", fontsize=10)
    acc = _metric(fit["metrics"], "accuracy")[0]
    ax.set_title(
        f"{fit['model']} · {fit['target']} · {fit['classifier']} — accuracy {acc:.3f}\n"
        f"top {len(pairs)} confused pairs (true → predicted)",
        fontsize=11,
    )
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_per_class_f1(fits: list[dict], models, colors, target: str, classifier: str):
    """Per-class F1 with 95 % CIs, one row per class, one marker per model."""
    per = per_class_table(fits)
    classes = list(dict.fromkeys(per["class"]))
    n = max(len(classes), 1)
    fig = _figure(9, 0.36 * n + 1.8)
    if per.empty:
        _no_data(fig, f"no per-class metrics for {target} / {classifier}")
        return fig
    order = per.groupby("class")["f1"].mean().sort_values(ascending=True).index.tolist()
    ypos = {c: i for i, c in enumerate(order)}
    present = [m for m in models if m in set(per["model"])]
    ax = fig.add_subplot()
    step = 0.7 / max(len(present), 1)
    for i, m in enumerate(present):
        sub = per[per.model == m]
        y = np.array([ypos[c] for c in sub["class"]]) + 0.35 - step * (i + 0.5)
        f1 = sub["f1"].astype(float).to_numpy()
        lo = sub["f1_ci_low"].astype(float).to_numpy()
        hi = sub["f1_ci_high"].astype(float).to_numpy()
        xerr = np.vstack([np.clip(f1 - lo, 0, None), np.clip(hi - f1, 0, None)])
        xerr = np.nan_to_num(xerr)
        ax.errorbar(
            f1,
            y,
            xerr=xerr,
            fmt="o",
            color=colors[m],
            markersize=4.5,
            elinewidth=1.3,
            capsize=2,
            label=m,
        )
    support = per.groupby("class")["support"].max()
    ax.set_yticks(
        range(len(order)),
        [f"{c} (n={int(support[c])})" if pd.notna(support[c]) else c for c in order],
        fontsize=9,
    )
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("F1 on test rows (95 % bootstrap CI)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    for k in range(len(order) - 1):
        ax.axhline(k + 0.5, color="#eeeeee", linewidth=0.8)
    ax.set_title(f"Per-class F1 — {target} · {classifier} (classes sorted by mean F1)", fontsize=11)
    fig.legend(loc="outside lower center", ncol=min(len(present), 5), fontsize=10, frameon=False)
    return fig


def plot_curves(fit: dict, color):
    """Loss and accuracy per epoch, train (solid) and validation (dashed)."""
    h = fit["history"]
    fig = _figure(11, 4.0)
    title = f"{fit['model']} · {fit['target']} · {fit['classifier']}"
    if h.empty or "epoch" not in h:
        _no_data(fig, f"{title}\nno per-epoch history recorded")
        return fig
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, what in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for split, style in (("train", "-"), ("val", "--")):
            col = f"{split}_{what}"
            if col in h and h[col].notna().any():
                ax.plot(
                    h["epoch"],
                    h[col],
                    style,
                    color=color,
                    marker="o" if len(h) <= 30 else None,
                    markersize=3,
                    linewidth=1.6,
                    label=split,
                )
        ax.set_xlabel("epoch", fontsize=10)
        ax.set_ylabel(what, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    if "val_accuracy" in h and h["val_accuracy"].notna().any():
        best = h.loc[h["val_accuracy"].idxmax()]
        for ax in (ax_loss, ax_acc):
            ax.axvline(best["epoch"], color="grey", linestyle=":", linewidth=1)
        late = best["epoch"] > h["epoch"].min() + 0.6 * (h["epoch"].max() - h["epoch"].min())
        ax_acc.annotate(
            f"best val {best['val_accuracy']:.3f}\n@ epoch {int(best['epoch'])}",
            (best["epoch"], best["val_accuracy"]),
            textcoords="offset points",
            xytext=(-8, -30) if late else (8, -30),
            ha="right" if late else "left",
            fontsize=8.5,
        )
    ax_loss.set_title("loss", fontsize=10)
    ax_acc.set_title("accuracy", fontsize=10)
    fig.suptitle(title + " — training curves", fontsize=11)
    return fig


def plot_class_counts(dataset: pd.DataFrame, target: str):
    """Stacked horizontal bars of rows per class and split, classes sorted by count."""
    sub = dataset[dataset.target == target].sort_values("total")
    n = max(len(sub), 1)
    fs = 9 if n <= 40 else 8
    fig = _figure(9, (0.26 if n <= 40 else 0.17) * n + 1.8)
    if sub.empty:
        _no_data(fig, f"no labels for {target}")
        return fig
    ax = fig.add_subplot()
    left = np.zeros(len(sub))
    y = np.arange(len(sub))
    for s in [s for s in SPLITS if s in sub]:
        ax.barh(y, sub[s], left=left, color=_SPLIT_COLORS[s], label=s, height=0.8)
        left += sub[s].to_numpy()
    ax.set_yticks(y, sub["class"], fontsize=fs)
    ax.set_ylim(-0.6, len(sub) - 0.4)
    ax.set_xlabel("images", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=9, loc="lower right")
    ax.set_title(
        f"{target}: {len(sub)} classes, {int(sub['total'].sum())} labelled images by split",
        fontsize=11,
    )
    return fig


def _class_styles(n: int) -> list[tuple]:
    """(colour, marker) per class: tab10 hues, then lighter and other hues with new markers."""
    from matplotlib import colormaps

    pal = (
        list(colormaps["tab10"].colors)
        + list(colormaps["tab20"].colors[1::2])
        + list(colormaps["tab20b"].colors[::2])
    )
    markers = "os^DvP"
    return [(pal[i % len(pal)], markers[(i // 10) % len(markers)]) for i in range(n)]


def _sample_rows(embeddings: Mapping[str, str], map_rows: int, seed: int) -> np.ndarray:
    """Seeded sample of row ids shared by every model, so all maps show the same images."""
    common = None
    for path in embeddings.values():
        ids = pq.read_table(path, columns=["row_id"])["row_id"].to_numpy()
        common = ids if common is None else np.intersect1d(common, ids)
    common = np.sort(common) if common is not None else np.array([], dtype=np.int64)
    if len(common) > map_rows:
        common = np.sort(np.random.default_rng(seed).choice(common, map_rows, replace=False))
    return common


def _read_rows(path: str, row_ids: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """The given rows of a (possibly large) Parquet file, reading one batch at a time."""
    pf = pq.ParquetFile(path)
    parts = []
    for batch in pf.iter_batches(batch_size=8192, columns=["row_id", *columns]):
        mask = np.isin(batch.column("row_id").to_numpy(), row_ids)
        if mask.any():
            parts.append(batch.filter(mask).to_pandas())
    return (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["row_id", *columns])
    )


def plot_map(model: str, path: str, ids: np.ndarray, classes: Mapping[str, list], target: str):
    """PCA of one model's embeddings of the rows ``ids``, coloured by ``target``."""
    names = pq.read_schema(path).names
    if target not in names:
        target = next((t for t in classes if t in names), None)  # type: ignore[assignment]
    fig = _figure(11, 7.5)
    df = _read_rows(path, ids, ["embedding"] + ([target] if target else []))
    if len(df) < 3:
        _no_data(fig, f"{model}: too few embeddings for a map")
        return fig
    x = np.stack(df["embedding"].to_numpy()).astype(np.float64)
    x -= x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    xy = u[:, :2] * s[:2]
    var = s**2 / max((s**2).sum(), 1e-12)
    ax = fig.add_subplot()
    if target:
        lab = df[target].astype(int).to_numpy()
        ids_present = sorted(set(lab))
        for c, (col, mk) in zip(ids_present, _class_styles(len(ids_present))):
            sel = lab == c
            ax.scatter(
                xy[sel, 0],
                xy[sel, 1],
                s=10,
                color=col,
                marker=mk,
                alpha=0.75,
                linewidths=0,
                label=f"{_class_name(classes.get(target), c)} ({int(sel.sum())})",
            )
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=8,
            markerscale=1.8,
            frameon=False,
            ncol=1 if len(ids_present) <= 30 else 2,
            title=target,
            title_fontsize=9,
        )
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=9, alpha=0.6)
    ax.set_xlabel(f"PC1 ({100 * var[0]:.1f} % of variance)", fontsize=10)
    ax.set_ylabel(f"PC2 ({100 * var[1]:.1f} % of variance)", fontsize=10)
    ax.set_title(
        f"{model}: PCA of {len(df)} embeddings (seeded sample, same images for every model)",
        fontsize=11,
    )
    ax.grid(alpha=0.2)
    return fig


# --------------------------------------------------------------------------- HTML tables

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;font-size:14px;margin:16px;color:#222}
h1{font-size:19px;margin:0 0 8px} h2{font-size:16px;margin:22px 0 6px}
p.note{color:#555;margin:4px 0 10px;max-width:70em}
table{border-collapse:collapse;margin-bottom:8px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f0f0f0;position:sticky;top:0}
td.t,th.t{text-align:left} td.w{white-space:normal;min-width:18em;max-width:36em;text-align:left}
tr:nth-child(even) td{background:#fafafa} tr.best td{background:#e6f2e6;font-weight:600}
span.ci{font-size:12px;color:#666;font-weight:normal}
"""


def _cell(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "★" if v else ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.{digits}f}"
    return str(v)


def _int(v: Any) -> str:
    f = _float(v)
    return str(int(f)) if math.isfinite(f) else "?"


def _pct(x: Any) -> str:
    f = _float(x)
    return f"{100 * f:.2f} %" if math.isfinite(f) else ""


def _ci(v: float, lo: float, hi: float) -> str:
    """HTML: the value, and its interval in small print underneath."""
    if not math.isfinite(v):
        return ""
    if math.isfinite(lo) and math.isfinite(hi):
        return f"{v:.3f}<br><span class='ci'>[{lo:.3f}, {hi:.3f}]</span>"
    return f"{v:.3f}"


def _table_html(
    df: pd.DataFrame, text_cols=(), wide_cols=(), best_rows=None, digits=3, raw_cols=()
) -> str:
    """An HTML table; cells are escaped except in ``raw_cols`` (already HTML)."""
    if df.empty:
        return "<p class='note'>(no rows)</p>"
    head = "".join(
        f"<th class='{'t' if c in text_cols or c in wide_cols else ''}'>{html.escape(str(c))}</th>"
        for c in df.columns
    )
    body = []
    for i, (_, r) in enumerate(df.iterrows()):
        cls = " class='best'" if best_rows is not None and bool(best_rows[i]) else ""
        cells = "".join(
            f"<td class='{'w' if c in wide_cols else 't' if c in text_cols else ''}'>"
            f"{r[c] if c in raw_cols else html.escape(_cell(r[c], digits))}</td>"
            for c in df.columns
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _write_html(path: Path, title: str, sections: list[str]) -> None:
    doc = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>\n"
    )
    write_text(path, doc)


def _section(heading: str, body: str, note: str = "") -> str:
    n = f"<p class='note'>{html.escape(note)}</p>" if note else ""
    return f"<h2>{html.escape(heading)}</h2>{n}{body}"


def _summary_sections(s: pd.DataFrame) -> list[str]:
    if s.empty:
        return [_section("No fits", "")]
    out = []
    for t in dict.fromkeys(s["target"]):
        sub = s[s.target == t].reset_index(drop=True)
        view = pd.DataFrame(
            {
                "model": sub["model"],
                "classifier": sub["classifier"],
                **{
                    METRIC_LABELS[m]: [
                        _ci(*r)
                        for r in sub[[m, f"{m}_ci_low", f"{m}_ci_high"]].itertuples(index=False)
                    ]
                    for m in METRICS
                },
                "best model": sub["best_model"],
                "n train/val/test": [
                    f"{_int(a)}/{_int(b)}/{_int(c)}"
                    for a, b, c in sub[["n_train", "n_val", "n_test"]].itertuples(index=False)
                ],
                "fit s": [f"{x:.1f}" if math.isfinite(x) else "" for x in sub["fit_seconds"]],
                "chosen": sub["chosen"],
            }
        )
        n_cls = sub["n_classes"].dropna()
        note = (
            (f"{int(n_cls.iloc[0])} classes. " if len(n_cls) else "")
            + "Test-split metrics with their 95 % bootstrap interval underneath. Green row: best accuracy "
            "for this target over all models and classifiers; ★: best model for its classifier."
        )
        out.append(
            _section(
                f"target: {t}",
                _table_html(
                    view,
                    text_cols=("model", "classifier"),
                    wide_cols=("chosen",),
                    raw_cols=set(METRIC_LABELS.values()),
                    best_rows=sub["best_in_target"].tolist(),
                ),
                note,
            )
        )
    return out


def _comparison_sections(c: pd.DataFrame) -> list[str]:
    if c.empty:
        return [_section("No comparisons", "", "Fewer than two models per target and classifier.")]
    out = []
    for t in dict.fromkeys(c["target"]):
        sub = c[c.target == t].reset_index(drop=True)
        notes = list(dict.fromkeys(n for n in sub["note"] if n))
        view = pd.DataFrame(
            {
                "classifier": sub["classifier"],
                "metric": [METRIC_LABELS.get(m, m) for m in sub["metric"]],
                "model A": sub["model_a"],
                "model B": sub["model_b"],
                "A": sub["a"],
                "B": sub["b"],
                "A − B [95 % CI]": [
                    (
                        f"{d:+.3f} <span class='ci'>[{lo:+.3f}, {hi:+.3f}]</span>"
                        if math.isfinite(d)
                        else ""
                    )
                    for d, lo, hi in zip(sub["diff"], sub["ci_low"], sub["ci_high"])
                ],
                "p": [f"{p:.3f}" if math.isfinite(p) else "" for p in sub["p_value"]],
                "verdict": [
                    f"<b>{html.escape(b)} better</b>" if b else html.escape(v)
                    for b, v in zip(sub["better"], sub["verdict"])
                ],
                "test rows": [
                    f"{n} {'*' * (notes.index(x) + 1)}" if x else str(n)
                    for n, x in zip(sub["n_rows"], sub["note"])
                ],
            }
        )
        foot = "".join(
            f"<p class='note'>{'*' * (i + 1)} {html.escape(n)}</p>" for i, n in enumerate(notes)
        )
        out.append(
            _section(
                f"target: {t}",
                _table_html(
                    view,
                    text_cols=("classifier", "metric", "model A", "model B", "verdict"),
                    raw_cols=("A − B [95 % CI]", "verdict"),
                )
                + foot,
                f"Paired bootstrap over the test rows both models have ({int(sub['n_boot'].iloc[0])} resamples): "
                "the difference A − B with its 95 % interval and two-sided p-value. A verdict names the better "
                "model when the difference is significant.",
            )
        )
    return out


def _dataset_sections(
    splits: pd.DataFrame, fails: pd.DataFrame, dataset: pd.DataFrame, man: Mapping
) -> list[str]:
    src = " ".join(str(x) for x in (man.get("source"), man.get("revision")) if x)
    splits, fails = splits.copy(), fails.copy()
    splits["share"] = [_pct(x) for x in splits["share"]]
    fails["failed_share"] = [_pct(x) for x in fails["failed_share"]]
    out = [
        _section(
            "Rows per split",
            _table_html(splits, text_cols=("split",)),
            f"{man.get('n_rows', '?')} rows in the manifest{(' (' + src + ')') if src else ''}. "
            "labelled_rows: rows with labels in at least one model's embeddings.",
        ),
        _section(
            "Embedding failures per model",
            _table_html(fails, text_cols=("model",), wide_cols=("top_reasons",)),
        ),
    ]
    for t in dict.fromkeys(dataset["target"]):
        sub = (
            dataset[dataset.target == t]
            .sort_values("total", ascending=False)
            .drop(columns=["target"])
        )
        out.append(
            _section(
                f"Class counts: {t} ({len(sub)} classes)", _table_html(sub, text_cols=("class",))
            )
        )
    return out


def _cost_sections(cost: pd.DataFrame) -> list[str]:
    view = cost.copy()
    view["img_per_s"] = [
        f"{x:.1f}" if math.isfinite(x) else "" for x in view["img_per_s"].astype(float)
    ]
    view["gpu_hours_full_wikiart"] = [
        f"{x:.2f}" if math.isfinite(x) else "" for x in view["gpu_hours_full_wikiart"].astype(float)
    ]
    view["fit_seconds_total"] = [
        f"{x:.1f}" if math.isfinite(x) else "" for x in view["fit_seconds_total"].astype(float)
    ]
    return [
        _section(
            "Throughput and cost",
            _table_html(view, text_cols=("model", "timm_name", "device", "device_name")),
            f"gpu_hours_full_wikiart = {FULL_WIKIART_IMAGES:,} images / img_per_s / 3600, "
            "using the throughput measured while embedding (rows embedded / seconds, over all shards). "
            "fit_seconds_total: all probes of the model.",
        )
    ]


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    write_text(path, df.to_csv(index=False))
