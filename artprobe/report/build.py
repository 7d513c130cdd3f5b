"""build_report: every file of the layout, from the rule's inputs to the rule's outputs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from artprobe.io import read_json
from artprobe.report import html, plots, tables
from artprobe.report.choices import class_counts, readable_target, shows_pairs
from artprobe.report.load import load_fits, sample_rows

log = logging.getLogger(__name__)


def _write_tables(out: Mapping[str, Path], fits, models, targets, classes, inputs, opts) -> dict:
    """The CSV tables and their HTML pages; returns the frames the plots need."""
    man = inputs["manifest"]
    summary = tables.summary_table(fits)
    comparisons = tables.comparison_table(
        fits, models, n_boot=opts["n_boot"], seed=opts["seed"], metrics=opts["compare_metrics"]
    )
    pairs = pd.concat(
        [tables.confused_pairs(f, classes.get(f["target"]), opts["top_pairs"]) for f in fits]
        or [pd.DataFrame(columns=tables.PAIR_COLUMNS)],
        ignore_index=True,
    )
    dataset, splits = tables.dataset_tables(inputs["split"], inputs["embeddings"], targets, classes)
    splits, split_meta = tables.split_notes(inputs["split"], splits, inputs.get("duplicates"))
    fails = tables.failure_table(inputs["failures"], inputs["embeddings"], man)
    cost = tables.cost_table(inputs["embeddings"], fits, man.get("n_rows"))
    searches = tables.search_table(fits)
    csv = {"summary": summary, "comparisons": comparisons, "per_class": tables.per_class_table(fits),
           "confused_pairs": pairs, "dataset": dataset, "splits": splits, "failures": fails,
           "cost": cost, "searches": searches}  # fmt: skip
    for fid, df in csv.items():
        html.write_csv(out[fid], df)
    pages = {
        "summary_html": (
            "Model × target × classifier",
            html.summary_sections(summary) + html.search_sections(summary, fits),
        ),
        "comparisons_html": ("Paired bootstrap comparisons", html.comparison_sections(comparisons)),
        "dataset_html": ("Dataset overview", html.dataset_sections(splits, fails, dataset, man, split_meta)),
        "cost_html": ("Embedding cost per model", html.cost_sections(cost, man.get("n_rows"))),
    }
    for fid, (title, sections) in pages.items():
        html.write_html(out[fid], title, sections)
    return {"summary": summary, "pairs": pairs, "dataset": dataset}


def _write_fit_plots(out, fits, counts, classes, colors, pairs, opts) -> None:
    """Per fit: its error plot (matrix or top pairs) and, for mlp fits, training curves."""
    for fit in fits:
        key = f"{fit['model']}.{fit['target']}.{fit['classifier']}"
        fid = f"pairs.{key}" if f"pairs.{key}" in out else f"confusion.{key}"
        if shows_pairs(fit["target"], counts, opts["pairs_targets"]):
            sel = (pairs.model == fit["model"]) & (pairs.target == fit["target"])
            sub = pairs[sel & (pairs.classifier == fit["classifier"])]
            plots.save(plots.plot_confused_pairs(sub, fit), out[fid])
        else:
            plots.save(plots.plot_confusion(fit, classes.get(fit["target"])), out[fid])
        if f"curves.{key}" in out:
            plots.save(plots.plot_curves(fit, colors[fit["model"]]), out[f"curves.{key}"])


def _write_plots(out, fits, models, targets, classes, frames, inputs, opts) -> None:
    classifiers = list(dict.fromkeys(f["classifier"] for f in fits))
    colors = plots.model_colors(models)
    counts = class_counts(fits)
    plots.save(
        plots.plot_accuracy(frames["summary"], models, targets, classifiers, colors),
        out["accuracy_plot"],
    )
    for t in targets:
        plots.save(plots.plot_class_counts(frames["dataset"], t), out[f"dataset_plot.{t}"])
    chosen = readable_target(counts)
    for c in classifiers:
        for fid, t in [(f"f1.{t}.{c}", t) for t in targets] + [(f"f1.{c}", chosen)]:
            if fid in out:
                sel = [x for x in fits if x["target"] == t and x["classifier"] == c]
                plots.save(plots.plot_per_class_f1(sel, models, colors, t, c), out[fid])
    _write_fit_plots(out, fits, counts, classes, colors, frames["pairs"], opts)
    map_target = opts["map_target"] or chosen
    ids = sample_rows(inputs["embeddings"], opts["map_rows"], opts["seed"])
    for m, path in inputs["embeddings"].items():
        plots.save(plots.plot_map(m, path, ids, classes, map_target), out[f"map.{m}"])


def _write_fewshot(out, paths: Iterable[str], colors) -> None:
    """The few-shot table and one curve per model × target (when probe.fewshot is on)."""
    curves = [read_json(p) for p in paths]
    if "fewshot" in out:
        html.write_csv(out["fewshot"], tables.fewshot_table(curves))
    for c in curves:
        fid = f"fewshot.{c['model']}.{c['target']}"
        if fid in out:
            plots.save(plots.plot_fewshot(c, colors.get(c["model"], "black")), out[fid])


def build_report(
    *,
    fits: Iterable[str],
    embeddings: Mapping[str, str],
    failures: Mapping[str, str],
    manifest: str,
    split: str,
    outputs: Mapping[str, str],
    duplicates: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    map_rows: int = 2000,
    pairs_targets: Iterable[str] | None = None,
    map_target: str | None = None,
    compare_metrics: Iterable[str] = tables.COMPARE_METRICS,
    top_pairs: int = 20,
    fewshot: Iterable[str] = (),
) -> None:
    """Write every file of ``outputs`` (``{layout id: path}``, see :mod:`.layout`).

    ``fits`` is the rule's flat list of fit files (metrics.json, predictions.parquet,
    history.csv of each fit); ``embeddings`` and ``failures`` map a model to its merged
    embeddings / failures Parquet file. ``n_boot`` and ``seed`` drive the paired bootstrap,
    ``map_rows`` the seeded subsample of the embedding maps. ``pairs_targets`` and
    ``map_target`` are config ``report:``'s (None: chosen from the data, :mod:`.choices`).
    ``duplicates``: the near-duplicate scan (``duplicates.parquet``), counted per split.
    ``fewshot``: the few-shot curves' JSON files (``fewshot/<model>/<target>.json``).
    """
    out = {fid: Path(p) for fid, p in outputs.items()}
    loaded = load_fits(fits)
    models = list(dict.fromkeys([f["model"] for f in loaded] + list(embeddings)))
    targets = list(dict.fromkeys(f["target"] for f in loaded))
    man = read_json(manifest)
    classes = {t: list(v) for t, v in (man.get("classes") or {}).items()}
    for fit in loaded:
        classes.setdefault(fit["target"], fit["class_names"])
    inputs = {"manifest": man, "split": split, "embeddings": dict(embeddings), "failures": failures,
              "duplicates": duplicates}  # fmt: skip
    opts = {"n_boot": n_boot, "seed": seed, "map_rows": map_rows, "top_pairs": top_pairs,
            "compare_metrics": tuple(compare_metrics), "map_target": map_target,
            "pairs_targets": None if pairs_targets is None else tuple(pairs_targets)}  # fmt: skip
    log.info("report: %d fits, %d models -> %d files", len(loaded), len(models), len(out))
    frames = _write_tables(out, loaded, models, targets, classes, inputs, opts)
    _write_plots(out, loaded, models, targets, classes, frames, inputs, opts)
    _write_fewshot(out, fewshot, plots.model_colors(models))
    missing = [str(p) for p in out.values() if not p.is_file()]
    if missing:  # the fits do not cover models × targets × classifiers
        raise RuntimeError(f"report: {len(missing)} declared file(s) not written, e.g. {missing[:3]}")
    log.info("report: %d files written", len(out))
