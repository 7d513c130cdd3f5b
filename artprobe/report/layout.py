"""The report's file list, written once: id, path, caption, category, subcategory, labels.

Standard library and the torch-free probe registry only, so ``rules/common.smk`` can call it
at parse time without pandas or matplotlib. The same description declares the rule's outputs
(wrapped in ``report()``), tells
:func:`artprobe.report.build.build_report` which file is which, and is what the tests check.

Paths are relative to the report folder. The list is computable from config alone: where a
choice depends on the data (how many classes a target has), the file is generic and the
builder decides what it shows (see :mod:`artprobe.report.choices`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace

from artprobe.probes import registry

#: category names, numbered so Snakemake's report lists them in this order
CATEGORIES = {
    "verdict": "1. Leaderboard and verdict",
    "results": "2. Results",
    "paintings": "3. Paintings and maps",
    "errors": "4. Errors by class",
    "f1": "5. Per-class F1",
    "curves": "6. Training curves",
    "dataset": "7. Dataset",
    "cost": "8. Cost",
    "fewshot": "9. Few-shot curves",
}
#: subcategories of "3. Paintings and maps", lettered so the report lists them in this order
PAINTINGS = {
    "gallery": "a. nearest neighbours",
    "disagreements": "b. where models disagree",
    "confusions": "c. confusions",
    "picture_map": "d. map of paintings",
    "map_page": "e. interactive map",
    "map": "f. dot maps",
}

# id -> (path, caption, category key, subcategory, content label)
_FIXED = {
    "leaderboard_html": ("leaderboard.html", "leaderboard.rst", "verdict", None, "leaderboard"),
    "leaderboard": ("leaderboard.csv", "leaderboard.rst", "verdict", None, "leaderboard (CSV)"),
    "mean_ranks": ("mean_ranks.csv", "leaderboard.rst", "verdict", None, "mean ranks (CSV)"),
    "verdict_html": ("verdict.html", "verdict.rst", "verdict", None, "verdict"),
    "verdict": ("verdict.csv", "verdict.rst", "verdict", None, "verdict (CSV)"),
    "summary": ("summary.csv", "summary.rst", "results", None, "summary table (CSV)"),
    "summary_html": ("tables/summary.html", "summary.rst", "results", None, "summary table"),
    "comparisons": (
        "comparisons.csv",
        "comparisons.rst",
        "results",
        None,
        "paired model comparisons (CSV)",
    ),
    "comparisons_html": (
        "tables/comparisons.html",
        "comparisons.rst",
        "results",
        None,
        "paired model comparisons",
    ),
    "per_class": (
        "per_class.csv",
        "per_class.rst",
        "errors",
        "all targets (CSV)",
        "per-class precision, recall, F1",
    ),
    "confused_pairs": (
        "confused_pairs.csv",
        "confused_pairs.rst",
        "errors",
        "all targets (CSV)",
        "top confused pairs",
    ),
    "dataset": ("dataset.csv", "dataset.rst", "dataset", None, "class counts per split (CSV)"),
    "splits": ("splits.csv", "dataset.rst", "dataset", None, "rows per split (CSV)"),
    "failures": (
        "failures.csv",
        "dataset.rst",
        "dataset",
        None,
        "embedding failures per model (CSV)",
    ),
    "dataset_html": (
        "tables/dataset.html",
        "dataset.rst",
        "dataset",
        None,
        "overview: splits, failures, class counts",
    ),
    "cost": ("cost.csv", "cost.rst", "cost", None, "throughput and GPU-hours (CSV)"),
    "cost_html": ("tables/cost.html", "cost.rst", "cost", None, "throughput and GPU-hours"),
    "accuracy_plot": (
        "accuracy.png",
        "accuracy.rst",
        "results",
        None,
        "accuracy, balanced accuracy, macro-F1 (95 % CI)",
    ),
    "searches": ("searches.csv", "summary.rst", "results", None, "model-selection searches (CSV)"),
}


@dataclass(frozen=True)
class ReportFile:
    """One file of the report, as ``report(path, caption=..., category=..., ...)`` needs it."""

    id: str
    path: str
    caption: str
    category: str
    subcategory: str | None = None
    labels: dict = field(default_factory=dict)

    def section(self) -> dict:
        """caption, category, subcategory and labels (everything but id and path)."""
        d = asdict(self)
        del d["id"], d["path"]
        return d


def _fit_files(m: str, t: str, c: str, kind: str, pairs_targets) -> list[ReportFile]:
    key, labels = f"{m}.{t}.{c}", {"model": m, "classifier": c}
    err, curves = CATEGORIES["errors"], CATEGORIES["curves"]
    if pairs_targets is not None and t in pairs_targets:
        out = [
            ReportFile(
                f"pairs.{key}", f"confused_pairs/{key}.png", "confused_pairs.rst", err, t, labels
            )
        ]
    else:  # a matrix, or (pairs_targets None and too many classes) the top confused pairs
        out = [
            ReportFile(f"confusion.{key}", f"confusion/{key}.png", "confusion.rst", err, t, labels)
        ]
    if kind in registry.names() and registry.get(kind).has_history:  # training curves
        out.append(
            ReportFile(f"curves.{key}", f"curves/{key}.png", "curves.rst", curves, t, labels)
        )
    return out


def _f1_files(targets, classifiers, f1_targets) -> list[ReportFile]:
    cat = CATEGORIES["f1"]
    if f1_targets is None:  # one plot per classifier; the builder picks the target
        return [
            ReportFile(
                f"f1.{c}", f"per_class_f1/{c}.png", "per_class.rst", cat, None, {"classifier": c}
            )
            for c in classifiers
        ]
    return [
        ReportFile(
            f"f1.{t}.{c}",
            f"per_class_f1/{t}.{c}.png",
            "per_class.rst",
            cat,
            None,
            {"target": t, "classifier": c},
        )
        for t in targets
        if t in f1_targets
        for c in classifiers
    ]


def _fewshot_files(models, targets) -> list[ReportFile]:
    cat = CATEGORIES["fewshot"]
    files = [
        ReportFile(
            "fewshot", "fewshot.csv", "fewshot.rst", cat, None, {"content": "few-shot curves (CSV)"}
        )
    ]
    files += [
        ReportFile(f"fewshot.{m}.{t}", f"fewshot/{m}.{t}.png", "fewshot.rst", cat, t, {"model": m})
        for m in models
        for t in targets
    ]
    return files


def _painting_files(models, targets) -> list[ReportFile]:
    """Galleries, disagreements and confusions per target; maps per model, one page for all."""
    cat, sub = CATEGORIES["paintings"], PAINTINGS
    per_target = (
        ("gallery", "galleries", "gallery.rst"),
        ("disagreements", "disagreements", "disagreements.rst"),
        ("confusions", "confused_paintings", "confused_paintings.rst"),
    )
    files = [
        ReportFile(f"{fid}.{t}", f"{folder}/{t}.html", caption, cat, sub[fid], {"target": t})
        for fid, folder, caption in per_target
        for t in targets
    ]
    files += [
        ReportFile(
            f"picture_map.{m}",
            f"picture_maps/{m}.jpg",
            "picture_map.rst",
            cat,
            sub["picture_map"],
            {"model": m},
        )
        for m in models
    ]
    files.append(
        ReportFile(
            "map_page",
            "maps/interactive.html",
            "map_page.rst",
            cat,
            sub["map_page"],
            {"content": "every model; hover a dot for its painting"},
        )
    )
    files += [
        ReportFile(f"map.{m}", f"maps/{m}.png", "maps.rst", cat, sub["map"], {"model": m})
        for m in models
    ]
    return files


def report_layout(
    models: Iterable[str],
    targets: Iterable[str],
    classifiers: Iterable[str],
    kinds: Mapping[str, str],
    *,
    pairs_targets: Iterable[str] | None = None,
    f1_targets: Iterable[str] | None = None,
    fewshot: bool = False,
    labels: Mapping[str, str] | None = None,
) -> list[ReportFile]:
    """Every file of the report, in a stable order.

    ``kinds`` maps a classifier name to its kind (mlp/linear/knn). ``pairs_targets`` and
    ``f1_targets`` are config ``report.pairs_targets`` / ``report.f1_targets``: a list names
    the targets that get a confused-pairs plot (instead of a confusion matrix) / a per-class
    F1 plot; None leaves it to the data (one ``confusion/`` file per fit, drawn as a matrix or
    as pairs by class count; one ``per_class_f1/<classifier>.png`` for a target chosen by rule).
    ``fewshot`` (config ``probe.fewshot`` set) adds the few-shot table and one curve per
    model × target. ``labels`` go first into every file's labels (the dataset, where a run
    has several).
    """
    models, targets, classifiers = list(models), list(targets), list(classifiers)
    pairs = None if pairs_targets is None else set(pairs_targets)
    f1 = None if f1_targets is None else set(f1_targets)
    files = [
        ReportFile(fid, path, caption, CATEGORIES[cat], sub, {"content": what})
        for fid, (path, caption, cat, sub, what) in _FIXED.items()
    ]
    files += [
        ReportFile(
            f"dataset_plot.{t}",
            f"dataset/{t}.png",
            "dataset.rst",
            CATEGORIES["dataset"],
            None,
            {"content": f"class counts: {t}"},
        )
        for t in targets
    ]
    files += _f1_files(targets, classifiers, f1)
    for m, t, c in itertools.product(models, targets, classifiers):
        files += _fit_files(m, t, c, kinds.get(c, ""), pairs)
    files += _painting_files(models, targets)
    if fewshot:
        files += _fewshot_files(models, targets)
    if labels:
        files = [replace(f, labels={**labels, **f.labels}) for f in files]
    return files


def report_files(*args, **kwargs) -> dict[str, str]:
    """``{id: path}`` of :func:`report_layout` (same arguments)."""
    return {f.id: f.path for f in report_layout(*args, **kwargs)}


def report_sections(*args, **kwargs) -> dict[str, dict]:
    """``{id: {"caption", "category", "subcategory", "labels"}}`` of :func:`report_layout`."""
    return {f.id: f.section() for f in report_layout(*args, **kwargs)}


def layout_options(report_config: Mapping, targets: Iterable[str]) -> dict:
    """The layout keyword arguments from config ``report:``, checked against ``targets``.

    Absent or null keys are left to the data. Raises ValueError naming the key.
    """
    targets = list(targets)
    for key in ("pairs_targets", "f1_targets", "map_target"):  # gallery etc.: every target
        value = report_config.get(key)
        chosen = [value] if isinstance(value, str) else value or []
        unknown = sorted(set(chosen) - set(targets))
        if unknown:
            raise ValueError(
                f"config report.{key}: unknown target(s) {unknown} (targets: {targets})"
            )
    return {k: report_config.get(k) for k in ("pairs_targets", "f1_targets")}
