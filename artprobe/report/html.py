"""The report's HTML tables: one self-contained page per table (the one stylesheet: :mod:`.style`).

Snakemake's report shows images, HTML and PDF inline (anything else becomes a download),
so each table a reader should see gets a small HTML rendering next to its CSV.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from artprobe.common.io import write_text
from artprobe.probes.metrics import METRICS, SEEDED_METHOD
from artprobe.report.escape import formula_cells, page, text
from artprobe.report.load import as_float
from artprobe.report.verdict import SEED_RULE, TIE_RULE, probe_label

log = logging.getLogger(__name__)

METRIC_LABELS = {
    "accuracy": "accuracy",
    "top5_accuracy": "top-5 accuracy",
    "macro_f1": "macro-F1",
    "balanced_accuracy": "balanced accuracy",
}

#: the summary's metric columns: the three headline metrics side by side, then top-5
_SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "top5_accuracy")
assert set(_SUMMARY_METRICS) == set(METRICS)


def _cell(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "★" if v else ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.{digits}f}"
    return str(v)


def _int(v: Any) -> str:
    f = as_float(v)
    return str(int(f)) if math.isfinite(f) else "?"


def _pct(x: Any) -> str:
    f = as_float(x)
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
        f"<th class='{'t' if c in text_cols or c in wide_cols else ''}'>{text(c)}</th>"
        for c in df.columns
    )
    body = []
    for i, (_, r) in enumerate(df.iterrows()):
        cls = " class='best'" if best_rows is not None and bool(best_rows[i]) else ""
        cells = "".join(
            f"<td class='{'w' if c in wide_cols else 't' if c in text_cols else ''}'>"
            f"{r[c] if c in raw_cols else text(_cell(r[c], digits))}</td>"
            for c in df.columns
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f"<div class='scroll'>{table}</div>"  # a wide table scrolls in its box, not the page


def write_html(path: Path, title: str, sections: list[str]) -> None:
    """A table page: ``title`` (text) and ``sections`` (HTML from the functions below)."""
    write_text(path, page(title, "tables", "".join(sections)))


def _section(heading: str, body: str, note: str = "") -> str:
    n = f"<p class='note'>{text(note)}</p>" if note else ""
    return f"<h2>{text(heading)}</h2>{n}{body}"


def summary_sections(s: pd.DataFrame) -> list[str]:
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
                    for m in _SUMMARY_METRICS
                },
                "across seeds (mean ± sd)": [_seed_cell(r) for _, r in sub.iterrows()],
                "best model": sub["best_model"],
                "n train/val/test": [
                    f"{_int(a)}/{_int(b)}/{_int(c)}"
                    for a, b, c in sub[["n_train", "n_val", "n_test"]].itertuples(index=False)
                ],
                "trained on": [
                    _trained_cell(on, n)
                    for on, n in zip(
                        sub.get("trained_on", [""] * len(sub)),
                        sub.get("n_train_rows", [None] * len(sub)),
                    )
                ],
                "fit s": [f"{x:.1f}" if math.isfinite(x) else "" for x in sub["fit_seconds"]],
                "chosen": sub["chosen"],
            }
        )
        n_cls = sub["n_classes"].dropna()
        note = (
            (f"{int(n_cls.iloc[0])} classes. " if len(n_cls) else "")
            + "Test-split metrics with their 95 % bootstrap interval underneath (first seed's fit). "
            "Across seeds: mean ± sd of accuracy / balanced accuracy / macro-F1 over probe.seeds "
            "(n fits; the linear probe does not depend on the seed and is fitted once). "
            "(baseline) majority: always the most frequent train class, scored on the same test "
            "rows. Green row: best accuracy for this target over all models and classifiers; "
            "★: best model for its classifier. " + TRAINED_ON_NOTE
        )
        out.append(
            _section(
                f"target: {t}",
                _table_html(
                    view,
                    text_cols=("model", "classifier"),
                    wide_cols=("chosen",),
                    raw_cols=set(METRIC_LABELS.values())
                    | {"across seeds (mean ± sd)", "trained on"},
                    best_rows=sub["best_in_target"].tolist(),
                ),
                note,
            )
        )
    return out


#: which rows the fits trained on (the methods text of the summary)
TRAINED_ON_NOTE = (
    "Trained on: the rows whose labels trained each fit. By default every probe trains on the "
    "train rows only and val only selects its settings (C, k, early stopping), so all probes "
    "see the same rows; a fit marked train+val (linear's refit: train+val) was refitted on "
    "train and val at the chosen setting: it saw more rows than the others, so its rank "
    "against them is not like for like."
)


def _trained_cell(on, n) -> str:
    if not isinstance(on, str) or not on:
        return ""
    shown = text(f"{on} ({_int(n)})" if n is not None and not pd.isna(n) else on)
    return f"<b>{shown} ⚠</b>" if "val" in on.split("+") else shown


def _seed_cell(r) -> str:
    n = as_float(r.get("n_seeds"))
    if not math.isfinite(n):
        return ""
    parts = []
    for m, short in (("accuracy", "acc"), ("balanced_accuracy", "bal"), ("macro_f1", "F1")):
        mean, sd = as_float(r.get(f"{m}_seed_mean")), as_float(r.get(f"{m}_seed_sd"))
        if math.isfinite(mean):
            parts.append(f"{short} {mean:.3f} ± {sd:.3f}")
    return "<br>".join(parts) + f"<br><span class='ci'>n={int(n)}</span>" if parts else ""


def search_sections(summary: pd.DataFrame, fits: list[dict]) -> list[str]:
    """What model selection searched and chose per fit, with its warnings (convergence,
    edge of the grid); every point is in searches.csv."""
    rows = []
    for fit in fits:
        info = fit["metrics"].get("info") or {}
        grid = [g for g in info.get("grid") or [] if isinstance(g, Mapping)]
        if not grid:
            continue
        if "C" in grid[0]:  # a regularisation path (linear); else a (k, temperature) grid
            Cs = [g["C"] for g in grid]
            searched = f"C in [{min(Cs):.3g}, {max(Cs):.3g}], {len(grid)} points"
            chosen = f"C={as_float(info.get('C')):.3g}"
            conv = f"{sum(bool(g.get('converged')) for g in grid)}/{len(grid)} converged"
        else:
            searched = f"{len(grid)} (k, temperature) pairs"
            chosen = f"k={info.get('k')}, temperature={info.get('temperature')}"
            conv = ""
        val = max(as_float(g.get("val_accuracy")) for g in grid)
        rows.append(
            {
                "model": fit["model"],
                "target": fit["target"],
                "classifier": fit["classifier"],
                "searched": searched,
                "chosen": chosen,
                "best val accuracy": val,
                "convergence": conv,
                "warnings": "; ".join(info.get("warnings") or []),
            }
        )
    if not rows:
        return []
    body = _table_html(
        pd.DataFrame(rows),
        text_cols=("model", "target", "classifier", "searched", "chosen", "convergence"),
        wide_cols=("warnings",),
    )
    note = (
        "Model selection on the validation split. linear: a coarse log grid of C, then "
        "rounds of halving log steps around the best, each Newton-CG run until its objective is "
        "within tol (relative) of the optimum (not converged: the iteration cap or a stalled "
        "line search); knn: every (k, "
        "temperature) pair. Every point: searches.csv."
    )
    return [_section("Model selection", body, note)]


def comparison_note(sub: pd.DataFrame, m: int) -> str:
    """The methods text of one target's comparisons: how they resample, and how each
    classifier's comparisons handle seeds."""
    text = (
        f"Paired bootstrap over the test rows both models have ({int(sub['n_boot'].iloc[0])} "
        "resamples, the same rows for both models): the difference A − B with its 95 % interval "
        "and two-sided p-value, p from the normal approximation of the resampled differences "
        "(p resampled: the resamples' own count, a check; docs/statistics.md). "
        f"p (Holm): Holm's correction across all {m} tests of this table "
        "(every target, classifier, pair and metric). A verdict names the better model when the "
        "Holm-corrected p is below 0.05. Seeds: "
    )
    parts = []
    for clf, g in sub.groupby("classifier", sort=False):
        seeds = next((x for x in g.get("seeds", []) if isinstance(x, str) and x), "")
        if (g.get("method", pd.Series(dtype=str)) == SEEDED_METHOD).any():
            parts.append(
                f"{clf} ({seeds} seeds) compares seed-averaged scores; the row resamples keep their "
                "spread less the per-row flips between seeds, and each resample adds a seed-level "
                "draw (the seeds' observed variance pooled over both models, for a difference of two "
                "seed averages, times a Student-t draw with all seeds − 2 degrees of freedom), so the "
                "interval and p carry the seed noise once as well as the test-row noise"
            )
        else:
            parts.append(
                f"{clf} (one fit per model: unseeded, or probe.seeds has one seed) "
                "resamples test rows only, so seed noise is not part of its p"
            )
    return text + "; ".join(parts) + ". " + TRAINED_ON_NOTE


def comparison_sections(c: pd.DataFrame) -> list[str]:
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
                "p (Holm)": [f"{p:.3f}" if math.isfinite(p) else "" for p in sub["p_holm"]],
                "verdict": [
                    f"<b>{text(b)} better</b>" if b else text(v)
                    for b, v in zip(sub["better"], sub["verdict"])
                ],
                "test rows": [
                    f"{n} {'*' * (notes.index(x) + 1)}" if x else str(n)
                    for n, x in zip(sub["n_rows"], sub["note"])
                ],
            }
        )
        foot = "".join(
            f"<p class='note'>{'*' * (i + 1)} {text(n)}</p>" for i, n in enumerate(notes)
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
                comparison_note(sub, len(c)),
            )
        )
    return out


def split_note(meta: Mapping | None) -> str:
    """How the split was made and what the near-duplicate scan found, in a sentence or two."""
    meta = meta or {}
    sp, dup = meta.get("split") or {}, meta.get("duplicates")
    text = f"Split: {sp.get('method', '?')}, seed {sp.get('seed', '?')}"
    if sp.get("method") == "group":
        text += (
            f", every {sp.get('group_by')} on one side ({sp.get('n_groups')} groups; "
            f"{sp.get('ungrouped_rows')} rows without one are split row by row)"
        )
    if sp.get("achieved"):
        asked = {"val": sp.get("val_fraction"), "test": sp.get("test_fraction")}
        text += "; achieved " + ", ".join(f"{s} {_pct(v)}" for s, v in sp["achieved"].items())
        if sp.get("method") == "given":
            val = (
                "the source's too"
                if sp.get("val_from") == "source"
                else f"{_pct(asked['val'])} of all rows, carved from train"
            )
            text += f" (train and test are the source's own splits; val {val})"
        elif None not in asked.values():
            text += f" (asked val {_pct(asked['val'])}, test {_pct(asked['test'])})"
    text += ". "
    if dup:
        text += (
            f"near_duplicate_candidates: val/test images within {dup.get('distance')} of 64 bits of "
            "a train image's perceptual hash (DCT pHash); near_duplicates: those a second measure "
            "confirms (the detail and colour of small thumbnails agree; pictures that only share "
            "a layout do not), the rows split.drop_duplicates leaves out "
            "(results/…/duplicates.parquet lists them with their train row). "
        )
    return text


def dataset_sections(
    splits: pd.DataFrame,
    fails: pd.DataFrame,
    dataset: pd.DataFrame,
    man: Mapping,
    split_meta: Mapping | None = None,
) -> list[str]:
    src = " ".join(str(x) for x in (man.get("source"), man.get("revision")) if x)
    splits, fails = splits.copy(), fails.copy()
    splits["share"] = [_pct(x) for x in splits["share"]]
    fails["failed_share"] = [_pct(x) for x in fails["failed_share"]]
    for col in ("near_duplicate_candidates", "near_duplicates"):
        if col in splits:
            splits[col] = ["" if pd.isna(x) else str(int(x)) for x in splits[col]]
    out = [
        _section(
            "Rows per split",
            _table_html(splits, text_cols=("split",)),
            f"{man.get('n_rows', '?')} rows in the manifest{(' (' + src + ')') if src else ''}. "
            + split_note(split_meta)
            + "labelled_rows: rows with labels in at least one model's embeddings; "
            "no_label_<target>: those of them without a label for that target (left out of "
            "its fits).",
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


def cost_sections(cost: pd.DataFrame, n_rows: Any) -> list[str]:
    view = cost.copy()
    for col, fmt in (
        ("img_per_s", "{:.1f}"),
        ("gpu_hours_this_dataset", "{:.2f}"),
        ("fit_seconds_total", "{:.1f}"),
    ):
        view[col] = [fmt.format(x) if math.isfinite(x) else "" for x in view[col].astype(float)]
    rows = f"{int(n_rows):,} rows (the manifest)" if n_rows else "the rows embedded"
    return [
        _section(
            "Throughput and cost",
            _table_html(view, text_cols=("model", "timm_name", "device", "device_name")),
            f"gpu_hours_this_dataset = {rows} / img_per_s / 3600, "
            "using the throughput measured while embedding (rows embedded / seconds, over all shards). "
            "fit_seconds_total: all probes of the model.",
        )
    ]


def write_csv(path: Path, df: pd.DataFrame) -> None:
    """``df`` as CSV, every value as it is (a reader gets the dataset's own names back);
    cells a spreadsheet would take for a formula are named in the log (docs/report.md)."""
    risky = formula_cells(df)
    if risky:
        log.warning(
            "%s: %d value(s) begin with =, +, -, @, tab or CR, e.g. %r: a spreadsheet may read "
            "them as formulas; the CSV keeps them as they are (open it as text, docs/report.md)",
            Path(path).name,
            len(risky),
            risky[0],
        )
    write_text(path, df.to_csv(index=False))


def _rank_cell(rank: float, low: float, high: float) -> str:
    """HTML: the rank, and its 95 % rank interval underneath."""
    if not math.isfinite(as_float(rank)):
        return ""
    span = f"{int(low)}" if int(low) == int(high) else f"{int(low)}–{int(high)}"
    return f"{int(rank)}<br><span class='ci'>[{span}]</span>"


def _board_view(sub: pd.DataFrame) -> pd.DataFrame:
    """One ranking's rows (one target × metric), best first, as the page shows them."""
    sub = sub.sort_values(["rank", "value"], ascending=[True, False], kind="stable")
    return pd.DataFrame(
        {
            "rank [95 % interval]": [
                _rank_cell(*r) for r in sub[["rank", "rank_low", "rank_high"]].itertuples(False)
            ],
            "model": sub["model"],
            "probe": sub["probe"],
            "value [95 % CI]": [
                _ci(*r) for r in sub[["value", "ci_low", "ci_high"]].itertuples(index=False)
            ],
            "behind the best": [0.0 if d == 0 else -d for d in sub["diff_to_best"].astype(float)],
            "p (Holm) vs best": [
                f"{p:.3g}" if math.isfinite(as_float(p)) else "" for p in sub["p_holm"]
            ],
            "with the best": ["yes" if w else "no" for w in sub["with_best"]],
        }
    )


def leaderboard_sections(
    board: pd.DataFrame, mean_ranks: pd.DataFrame, v: pd.DataFrame
) -> list[str]:
    """The leaderboard (:mod:`.leaderboard`): the verdict's sentences as its summary, each
    model's mean rank over every ranking (the answer across targets and datasets), one
    ranking per (dataset ×) target × metric with rank intervals, and how they are made."""
    from artprobe.report.leaderboard import METHOD

    several = board["dataset"].nunique() > 1
    where = "each dataset's report/verdict.html" if several else "verdict.html"
    lines = "".join(f"<li>{text(x)}</li>" for x in v["sentence"]) if len(v) else ""
    out = [_section("In one sentence each", f"<ul>{lines}</ul>", f"The verdict ({where}).")]
    if len(mean_ranks):
        over = "the datasets and targets" if several else "the targets"
        note = "Each model's mean rank [95 % interval], best first; 1 is the best place."
        out.append(_section(f"Mean rank over {over}", _mean_rank_table(mean_ranks), note))
    out += _ranking_sections(board)
    out.append(_section("How the intervals are computed", "", METHOD))
    return out


def _ranking_sections(board: pd.DataFrame) -> list[str]:
    """One table per (dataset ×) target × metric: rank with its interval, value, Holm set."""
    out = []
    for (d, t, m), sub in board.groupby(["dataset", "target", "metric"], sort=False):
        view = _board_view(sub)
        out.append(
            _section(
                f"{d + ': ' if d else ''}{t}, {METRIC_LABELS.get(m, m)}",
                _table_html(
                    view,
                    text_cols=("model", "probe", "with the best"),
                    raw_cols=("rank [95 % interval]", "value [95 % CI]"),
                    best_rows=[w == "yes" for w in view["with the best"]],
                ),
                f"{int(sub['n_rows'].iloc[0])} test rows every model predicted; "
                f"{int(sub['n_boot'].iloc[0])} resamples.",
            )
        )
    return out


def _mean_rank_table(mean_ranks: pd.DataFrame) -> str:
    """One row per model (per probe where every probe is ranked apart), one column per
    metric, best first by the first metric's mean rank."""
    mr = mean_ranks.assign(
        who=[
            m if not p else f"{m} + {p}" for m, p in zip(mean_ranks["model"], mean_ranks["probe"])
        ],
        cell=[
            f"{r:.2f}<br><span class='ci'>[{lo:.2f}, {hi:.2f}]</span>"
            for r, lo, hi in mean_ranks[
                ["mean_rank", "mean_rank_low", "mean_rank_high"]
            ].itertuples(index=False)
        ],
    )
    metrics = list(dict.fromkeys(mr["metric"]))
    order = mr[mr["metric"] == metrics[0]].sort_values("mean_rank", kind="stable")["who"]
    cells = mr.pivot(index="who", columns="metric", values="cell").reindex(list(order))
    view = pd.DataFrame({"model": cells.index})
    for m in metrics:
        view[METRIC_LABELS.get(m, m)] = list(cells[m].fillna(""))
    view["rankings"] = list(mr.drop_duplicates("who").set_index("who").loc[order, "n_rankings"])
    labels = tuple(METRIC_LABELS.get(m, m) for m in metrics)
    return _table_html(view, text_cols=("model",), raw_cols=labels)


def verdict_sections(v: pd.DataFrame) -> list[str]:
    """The verdict as quotable sentences, then as a table (:mod:`.verdict`)."""
    if v.empty:
        return [_section("No fits", "")]
    lines = "".join(f"<li>{text(s)}</li>" for s in v["sentence"])
    outcome = {
        "lead holds": "lead holds after Holm",
        "tie": "tie",
        "only model": "only model",
        "not tested": "no paired test",
    }
    view = pd.DataFrame(
        {
            "target": v["target"],
            "metric": [METRIC_LABELS.get(m, m) for m in v["metric"]],
            "best": [f"{a} + {probe_label(b)}" for a, b in zip(v["best_model"], v["best_probe"])],
            "value [95 % CI]": [
                _ci(*r) for r in v[["value", "ci_low", "ci_high"]].itertuples(index=False)
            ],
            "runner-up": [
                f"{a} + {b}" if isinstance(a, str) else ""
                for a, b in zip(v["runner_up"], v["runner_up_probe"])
            ],
            "its value": v["runner_up_value"],
            "difference": v["diff"],
            "p (Holm)": [f"{p:.3g}" if math.isfinite(as_float(p)) else "" for p in v["p_holm"]],
            "outcome": [outcome.get(o, o) for o in v["outcome"]],
        }
    )
    note = (
        "Per target and headline metric: the best model with its probe on the test split, its 95 % "
        "bootstrap interval, and the runner-up: the best other model with the same probe, the pair the "
        "paired bootstrap compared. The lead holds when Holm's adjusted p (over every comparison of the "
        f"report) is below 0.05; otherwise, or with equal values, it is a tie. {SEED_RULE} {TIE_RULE}"
    )
    return [
        _section("In one sentence each", f"<ul>{lines}</ul>", note),
        _section(
            "As a table",
            _table_html(
                view,
                text_cols=("target", "metric", "best", "runner-up", "outcome"),
                raw_cols=("value [95 % CI]",),
                best_rows=list(v["outcome"] == "lead holds"),
            ),
        ),
    ]
