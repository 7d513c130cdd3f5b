"""build_report: every file of the layout, from the rule's inputs to the rule's outputs.

The summary, comparisons and verdict come from the compare stage (:mod:`.compare`); the
paintings from the thumbnails stage (:mod:`.thumbnails`). This job draws and writes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from artprobe.common.io import read_json
from artprobe.report import atlas, html, plots, sheets, tables, verdict
from artprobe.report.choices import class_counts, readable_target, shows_pairs
from artprobe.report.compare import Standings, StandingsFiles, read_standings
from artprobe.report.load import load_fits, read_rows
from artprobe.settings import ReportSettings

log = logging.getLogger(__name__)

#: confused class pairs per fit in confused_pairs.csv and the pairs plots
TOP_PAIRS = 20


@dataclass(frozen=True)
class ReportInputs:
    """The report rule's inputs. ``fits``: the flat list of fit files (metrics.json,
    predictions.parquet, history.csv of each fit); ``fewshot``: the few-shot curves' JSON
    files; ``embeddings`` and ``failures``: a model's merged embeddings / failures Parquet
    file; ``duplicates``: the near-duplicate scan, counted per split (None: none);
    ``rows`` and ``thumbnails``: the thumbnails stage's outputs (which paintings each section
    shows, and their JPEGs: the report never opens a shard); ``standings``: the compare
    stage's tables."""

    fits: list[str]
    fewshot: list[str]
    embeddings: Mapping[str, str]
    failures: Mapping[str, str]
    manifest: str
    split: str
    duplicates: str | None
    rows: str
    thumbnails: str
    standings: StandingsFiles


@dataclass(frozen=True)
class _Job:
    """What every writer below reads: the outputs (``{layout id: path}``), the loaded fits,
    models, targets, class names and manifest, the inputs and the settings."""

    out: dict[str, Path]
    fits: list[dict]
    models: list[str]
    targets: list[str]
    classes: dict[str, list[str]]
    manifest: dict
    inputs: ReportInputs
    settings: ReportSettings


def _write_tables(j: _Job, s: Standings) -> dict:
    """The CSV tables and their HTML pages; returns the frames the plots need."""
    man, inputs, fits, classes = j.manifest, j.inputs, j.fits, j.classes
    pairs = pd.concat(
        [tables.confused_pairs(f, classes.get(f["target"]), TOP_PAIRS) for f in fits]
        or [pd.DataFrame(columns=tables.PAIR_COLUMNS)],
        ignore_index=True,
    )
    embeddings = dict(inputs.embeddings)
    dataset, splits = tables.dataset_tables(inputs.split, embeddings, j.targets, classes)
    splits, split_meta = tables.split_notes(inputs.split, splits, inputs.duplicates)
    fails = tables.failure_table(inputs.failures, embeddings, man)
    cost = tables.cost_table(embeddings, fits, man.get("n_rows"))
    csv = {
        "leaderboard": s.leaderboard,
        "mean_ranks": s.mean_ranks,
        "verdict": verdict.csv_view(s.verdict),
        "summary": s.summary,
        "comparisons": s.comparisons,
        "per_class": tables.per_class_table(fits),
        "confused_pairs": pairs,
        "dataset": dataset,
        "splits": splits,
        "failures": fails,
        "cost": cost,
        "searches": tables.search_table(fits),
    }
    for fid, df in csv.items():
        html.write_csv(j.out[fid], df)
    pages = {
        "leaderboard_html": (
            "Leaderboard: which model represents art best, and how sure is each rank",
            html.leaderboard_sections(s.leaderboard, s.mean_ranks, s.verdict),
        ),
        "verdict_html": (
            "Verdict: which model represents art best",
            html.verdict_sections(s.verdict),
        ),
        "summary_html": (
            "Model × target × classifier",
            html.summary_sections(s.summary) + html.search_sections(s.summary, fits),
        ),
        "comparisons_html": (
            "Paired bootstrap comparisons",
            html.comparison_sections(s.comparisons),
        ),
        "dataset_html": (
            "Dataset overview",
            html.dataset_sections(splits, fails, dataset, man, split_meta),
        ),
        "cost_html": ("Embedding cost per model", html.cost_sections(cost, man.get("n_rows"))),
    }
    for fid, (title, sections) in pages.items():
        html.write_html(j.out[fid], title, sections)
    return {"summary": s.summary, "pairs": pairs, "dataset": dataset}


def _write_fit_plots(j: _Job, counts, colors, pairs) -> None:
    """Per fit: its error plot (matrix or top pairs) and, for mlp fits, training curves."""
    out, classes = j.out, j.classes
    for fit in j.fits:
        key = f"{fit['model']}.{fit['target']}.{fit['classifier']}"
        fid = f"pairs.{key}" if f"pairs.{key}" in out else f"confusion.{key}"
        if shows_pairs(fit["target"], counts, j.settings.pairs_targets):
            sel = (pairs.model == fit["model"]) & (pairs.target == fit["target"])
            sub = pairs[sel & (pairs.classifier == fit["classifier"])]
            plots.save(plots.plot_confused_pairs(sub, fit), out[fid])
        else:
            plots.save(plots.plot_confusion(fit, classes.get(fit["target"])), out[fid])
        if f"curves.{key}" in out:
            plots.save(plots.plot_curves(fit, colors[fit["model"]]), out[f"curves.{key}"])


def _write_plots(j: _Job, frames: dict) -> None:
    out, fits, models, targets = j.out, j.fits, j.models, j.targets
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
    _write_fit_plots(j, counts, colors, frames["pairs"])


def _write_paintings(j: _Job, chosen, thumbs) -> None:
    """The neighbour galleries, disagreements and confusions of every target."""
    out, classes = j.out, j.classes
    for t in j.targets:
        sheets.gallery_sheet(
            out[f"gallery.{t}"],
            t,
            {**chosen["gallery"][t], "models": chosen["models"]},
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


def _write_maps(j: _Job, chosen, thumbs) -> None:
    """Per model its dot map and its map of paintings; one interactive page for all models."""
    out, targets, classes, settings = j.out, j.targets, j.classes, j.settings
    m_rows, target = chosen["map"]["rows"], chosen["map"]["target"]
    method = settings.map_method
    name = {"tsne": "t-SNE", "pca": "PCA"}[method]
    xy, labels = {}, None
    for m, path in j.inputs.embeddings.items():
        emb, df = _map_rows(path, m_rows, targets)
        if len(df) != len(m_rows):  # the map rows are the rows every model embedded
            raise RuntimeError(f"report: {m} lacks {len(m_rows) - len(df)} map rows")
        xy[m], axes = (
            atlas.coordinates(emb, method, settings.seed)
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
            : settings.map_grid**2
        ]
        idx = [pos[r] for r in grid]
        img = atlas.picture_map(xy[m][idx], [thumbs.jpeg(r, "small") for r in grid])
        atlas.save_jpeg(img, out[f"picture_map.{m}"])
    shown = [t for t in targets if labels is not None and t in labels]
    note = (
        f"{len(m_rows)} paintings (a seeded sample, the same for every model) placed by {name} of each "
        f"model's embeddings; {sum(thumbs.uri(r, 'small') is not None for r in m_rows)} of them, stratified by "
        f"{target}, carry their painting (outlined dots). The list picks the model (best mean rank "
        "first), the buttons the colouring."
    )
    ranked = [m for m in chosen["models"]["ranked"] if m in xy]
    atlas.interactive_page(
        out["map_page"],
        {m: xy[m] for m in ranked + [m for m in xy if m not in ranked]},
        m_rows,
        {t: labels[t].tolist() for t in shown},
        classes,
        [thumbs.uri(r, "small") for r in m_rows],
        target if target in shown else (shown or [""])[0],
        note,
    )


def _write_fewshot(j: _Job) -> None:
    """The few-shot table and one curve per model × target (when probe.fewshot is on)."""
    out, colors = j.out, plots.model_colors(j.models)
    curves = [read_json(p) for p in j.inputs.fewshot]
    if "fewshot" in out:
        html.write_csv(out["fewshot"], tables.fewshot_table(curves))
    for c in curves:
        fid = f"fewshot.{c['model']}.{c['target']}"
        if fid in out:
            plots.save(plots.plot_fewshot(c, colors.get(c["model"], "black")), out[fid])


def build_report(
    inputs: ReportInputs, settings: ReportSettings, outputs: Mapping[str, str]
) -> None:
    """Write every file of ``outputs`` (``{layout id: path}``, see :mod:`.layout`)."""
    loaded = load_fits(inputs.fits)
    man = read_json(inputs.manifest)
    classes = {t: list(v) for t, v in (man.get("classes") or {}).items()}
    for fit in loaded:
        classes.setdefault(fit["target"], fit["class_names"])
    j = _Job(
        out={fid: Path(p) for fid, p in outputs.items()},
        fits=loaded,
        models=list(dict.fromkeys([f["model"] for f in loaded] + list(inputs.embeddings))),
        targets=list(dict.fromkeys(f["target"] for f in loaded)),
        classes=classes,
        manifest=man,
        inputs=inputs,
        settings=settings,
    )
    log.info("report: %d fits, %d models -> %d files", len(loaded), len(j.models), len(j.out))
    frames = _write_tables(j, read_standings(inputs.standings))
    _write_plots(j, frames)
    chosen, thumbs = read_json(inputs.rows), sheets.Thumbs(inputs.thumbnails)
    _write_paintings(j, chosen, thumbs)
    _write_maps(j, chosen, thumbs)
    _write_fewshot(j)
    missing = [str(p) for p in j.out.values() if not p.is_file()]
    if missing:  # the fits do not cover models × targets × classifiers
        raise RuntimeError(
            f"report: {len(missing)} declared file(s) not written, e.g. {missing[:3]}"
        )
    log.info("report: %d files written", len(j.out))
