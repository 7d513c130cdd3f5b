"""build_report: every file of the layout, from the rule's inputs to the rule's outputs."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from artprobe.io import read_json
from artprobe.report import atlas, html, plots, sheets, tables, verdict
from artprobe.report.choices import class_counts, readable_target, shows_pairs
from artprobe.report.load import load_fits, read_rows

log = logging.getLogger(__name__)


def _write_tables(out: Mapping[str, Path], fits, models, targets, classes, inputs, opts) -> dict:
    """The CSV tables and their HTML pages; returns the frames the plots need."""
    man = inputs["manifest"]
    summary = tables.summary_table(fits, n_boot=opts["n_boot"], seed=opts["seed"])
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
    ruling = verdict.verdict_table(summary, comparisons)
    csv = {
        "verdict": ruling,
        "summary": summary,
        "comparisons": comparisons,
        "per_class": tables.per_class_table(fits),
        "confused_pairs": pairs,
        "dataset": dataset,
        "splits": splits,
        "failures": fails,
        "cost": cost,
        "searches": searches,
    }
    for fid, df in csv.items():
        html.write_csv(out[fid], df)
    pages = {
        "verdict_html": ("Verdict: which model represents art best", html.verdict_sections(ruling)),
        "summary_html": (
            "Model × target × classifier",
            html.summary_sections(summary) + html.search_sections(summary, fits),
        ),
        "comparisons_html": ("Paired bootstrap comparisons", html.comparison_sections(comparisons)),
        "dataset_html": (
            "Dataset overview",
            html.dataset_sections(splits, fails, dataset, man, split_meta),
        ),
        "cost_html": ("Embedding cost per model", html.cost_sections(cost, man.get("n_rows"))),
    }
    for fid, (title, sections) in pages.items():
        html.write_html(out[fid], title, sections)
    return {"summary": summary, "pairs": pairs, "dataset": dataset, "verdict": ruling}


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


def _write_paintings(out, targets, classes, chosen, thumbs) -> None:
    """The neighbour galleries, disagreements and confusions of every target."""
    for t in targets:
        sheets.gallery_sheet(
            out[f"gallery.{t}"],
            t,
            chosen["gallery"][t],
            thumbs,
            classes,
            chosen["k"],
            chosen["center"],
        )
        sheets.disagreement_sheet(
            out[f"disagreements.{t}"], t, chosen["disagreements"].get(t), thumbs, classes
        )
        sheets.confusion_sheet(
            out[f"confusions.{t}"], t, chosen["confusions"].get(t), thumbs, classes
        )


def _map_rows(path: str, rows, targets) -> tuple:
    """(embeddings, labels frame) of ``rows`` in that order (rows a model lacks are dropped)."""
    emb, df = read_rows(path, rows, [t for t in targets if t in pq.read_schema(path).names])
    order = pd.Index(df["row_id"]).get_indexer(rows)
    keep = order >= 0
    return emb[order[keep]], df.iloc[order[keep]].reset_index(drop=True)


def _write_maps(out, embeddings, targets, classes, chosen, thumbs, opts) -> None:
    """Per model its dot map and its map of paintings; one interactive page for all models."""
    m_rows, target = chosen["map"]["rows"], chosen["map"]["target"]
    method = opts["map_method"]
    name = {"tsne": "t-SNE", "pca": "PCA"}[method]
    xy, labels = {}, None
    for m, path in embeddings.items():
        emb, df = _map_rows(path, m_rows, targets)
        if len(df) != len(m_rows):  # the map rows are the rows every model embedded
            raise RuntimeError(f"report: {m} lacks {len(m_rows) - len(df)} map rows")
        xy[m], axes = (
            atlas.coordinates(emb, method, opts["seed"])
            if len(df) >= 3
            else (np.zeros((len(df), 2)), ("", ""))
        )
        labels = df
        lab = df[target].to_numpy() if target in df else None
        plots.save(
            plots.plot_map(m, xy[m], lab, classes.get(target), target, axes, name), out[f"map.{m}"]
        )
        pos = {r: i for i, r in enumerate(m_rows)}
        grid = [r for r in chosen["map"]["thumbs"] if thumbs.jpeg(r, "small") is not None][
            : opts["map_grid"] ** 2
        ]
        idx = [pos[r] for r in grid]
        img = atlas.picture_map(xy[m][idx], [thumbs.jpeg(r, "small") for r in grid])
        atlas.save_jpeg(img, out[f"picture_map.{m}"])
    shown = [t for t in targets if labels is not None and t in labels]
    note = (
        f"{len(m_rows)} paintings (a seeded sample, the same for every model) placed by {name} of each "
        f"model's embeddings; {sum(thumbs.uri(r, 'small') is not None for r in m_rows)} of them, stratified by "
        f"{target}, carry their painting (outlined dots). Buttons switch the model and the colouring."
    )
    atlas.interactive_page(
        out["map_page"],
        xy,
        m_rows,
        {t: labels[t].tolist() for t in shown},
        classes,
        [thumbs.uri(r, "small") for r in m_rows],
        target if target in shown else (shown or [""])[0],
        note,
    )


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
    rows: str,
    thumbnails: str,
    outputs: Mapping[str, str],
    duplicates: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    pairs_targets: Iterable[str] | None = None,
    compare_metrics: Iterable[str] = tables.COMPARE_METRICS,
    top_pairs: int = 20,
    fewshot: Iterable[str] = (),
    map_method: str = "tsne",
    map_grid: int = 32,
) -> None:
    """Write every file of ``outputs`` (``{layout id: path}``, see :mod:`.layout`).

    ``fits`` is the rule's flat list of fit files (metrics.json, predictions.parquet,
    history.csv of each fit); ``embeddings`` and ``failures`` map a model to its merged
    embeddings / failures Parquet file. ``rows`` and ``thumbnails`` are the thumbnail stage's
    outputs (:mod:`.thumbnails`): which paintings each section shows, and their JPEGs; the
    report never opens a shard. ``n_boot`` and ``seed`` drive the paired bootstrap and the
    maps. ``pairs_targets`` is config ``report:``'s (None: chosen from the data,
    :mod:`.choices`); ``map_method`` (tsne/pca) and ``map_grid`` (cells per side of the
    map of paintings) too. ``duplicates``: the near-duplicate scan, counted per split.
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
    inputs = {
        "manifest": man,
        "split": split,
        "embeddings": dict(embeddings),
        "failures": failures,
        "duplicates": duplicates,
    }
    opts = {
        "n_boot": n_boot,
        "seed": seed,
        "top_pairs": top_pairs,
        "map_method": map_method,
        "compare_metrics": tuple(compare_metrics),
        "map_grid": map_grid,
        "pairs_targets": None if pairs_targets is None else tuple(pairs_targets),
    }
    log.info("report: %d fits, %d models -> %d files", len(loaded), len(models), len(out))
    frames = _write_tables(out, loaded, models, targets, classes, inputs, opts)
    _write_plots(out, loaded, models, targets, classes, frames, inputs, opts)
    chosen, thumbs = read_json(rows), sheets.Thumbs(thumbnails)
    _write_paintings(out, targets, classes, chosen, thumbs)
    _write_maps(out, inputs["embeddings"], targets, classes, chosen, thumbs, opts)
    _write_fewshot(out, fewshot, plots.model_colors(models))
    missing = [str(p) for p in out.values() if not p.is_file()]
    if missing:  # the fits do not cover models × targets × classifiers
        raise RuntimeError(
            f"report: {len(missing)} declared file(s) not written, e.g. {missing[:3]}"
        )
    log.info("report: %d files written", len(out))
    for line in frames["verdict"]["sentence"]:
        log.info("verdict: %s", line)
