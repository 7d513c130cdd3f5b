"""The report's plots (matplotlib, pyplot-free): accuracy, confusion, confused pairs,
per-class F1, training curves, class counts, embedding maps. Class names are drawn as
written (:func:`artprobe.report.escape.plot_text`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from artprobe.common.io import atomic_path
from artprobe.config import SPLITS
from artprobe.report.escape import plot_text
from artprobe.report.load import class_name, metric
from artprobe.report.tables import per_class_table

DPI = 100
# Greys for splits, so they never read as one of the model colours.
_SPLIT_COLORS = {"train": "#4d4d4d", "val": "#999999", "test": "#cfcfcf"}


def model_colors(models: Iterable[str]) -> dict[str, Any]:
    """One fixed colour per model, used by every plot: tab10's ten, then tab20b's five dark
    hues and their lighter shades (twenty distinct colours before any repeats)."""
    from matplotlib import colormaps

    tab20b = colormaps["tab20b"].colors
    palette = list(colormaps["tab10"].colors) + list(tab20b[0::4]) + list(tab20b[2::4])
    return {m: palette[i % len(palette)] for i, m in enumerate(dict.fromkeys(models))}


def _figure(w: float, h: float, constrained: bool = True):
    """A pyplot-free figure (no global state, no GUI backend), laid out by matplotlib's
    constrained layout unless ``constrained`` is false."""
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=DPI, layout="constrained" if constrained else None)


def save(fig, path: Path) -> None:
    """The figure as a PNG. A constrained-layout figure already fits its canvas: cropping it
    to a tight box would draw it twice (half of the report job's time)."""
    tight = fig.get_layout_engine() is None
    with atomic_path(path, suffix=".png.tmp") as tmp:
        if tight:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.15)
        else:
            fig.savefig(tmp, format="png", dpi=DPI)


def _legend_columns(labels: Iterable[str], width: float, most: int = 5) -> int:
    """How many legend columns of ``labels`` (fontsize 10) fit a ``width``-inch figure."""
    longest = max((len(str(x)) for x in labels), default=1)
    per = (longest * 7.6 + 50) / DPI  # inches per entry: text plus its marker
    return max(1, min(most, int(width * 0.95 // per)))


def _no_data(fig, text: str) -> None:
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, wrap=True)
    ax.set_axis_off()


def _accuracy_bar(ax, r, x: float, bw: float, color, name: str, star: bool) -> None:
    """One fit's bar: the metric, CI whisker, value label, a star if it is the best model."""
    v, lo, hi = r[name], r[f"{name}_ci_low"], r[f"{name}_ci_high"]
    yerr = None
    if math.isfinite(lo) and math.isfinite(hi):
        yerr = [[max(v - lo, 0)], [max(hi - v, 0)]]
    best = star and bool(r["best_model"])
    ax.bar(
        x,
        v,
        bw * 0.92,
        color=color,
        yerr=yerr,
        capsize=3,
        error_kw={"elinewidth": 1.2, "ecolor": "black"},
        edgecolor="black" if best else "none",
        linewidth=1.4,
    )
    top = hi if math.isfinite(hi) else v
    ax.text(
        x,
        top + 0.02,
        f"{v:.3f}",
        ha="center",
        va="bottom",
        fontsize=8,
        fontweight="bold" if best else "normal",
    )
    if best:
        ax.plot(x, top + 0.16, marker="*", markersize=12, color="black")


_HEADLINE_LABELS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro-F1",
}


def _baseline_level(sub: pd.DataFrame, name: str) -> float | None:
    """The majority-class baseline's value of metric ``name`` in ``sub`` (None: no baseline
    row, or no value)."""
    base = sub[sub.kind == "majority"] if "kind" in sub else sub.iloc[:0]
    if len(base) and math.isfinite(base.iloc[0][name]):
        return float(base.iloc[0][name])
    return None


def _accuracy_panel(ax, sub: pd.DataFrame, t: str, name: str, models, classifiers, colors) -> None:
    """One target × metric panel: bars per model for each classifier, the majority-class
    baseline's value of the metric as a dotted line, title."""
    n_m, n_c = max(len(models), 1), max(len(classifiers), 1)
    bw = 0.8 / n_m
    for i, m in enumerate(models):
        for j, c in enumerate(classifiers):
            r = sub[(sub.model == m) & (sub.classifier == c)]
            if not r.empty:
                x = j - 0.4 + bw * (i + 0.5)
                _accuracy_bar(ax, r.iloc[0], x, bw, colors[m], name, name == "accuracy")
    level = _baseline_level(sub, name)
    title = f"{t}: {_HEADLINE_LABELS[name]}"
    if level is not None:
        ax.axhline(level, color="grey", linestyle=":", linewidth=1.2)
        title += f"  (majority {level:.3f})"
    ax.set_xticks(range(n_c), classifiers, fontsize=9)
    ax.set_xlim(-0.5, n_c - 0.5)
    ax.set_ylim(0, 1.3)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel(f"test {_HEADLINE_LABELS[name]}", fontsize=9)
    ax.set_title(title, fontsize=10, loc="left", fontweight="bold")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


#: from this many models on, the accuracy chart lays its bars out horizontally
HORIZONTAL_FROM = 4


def plot_accuracy(summary: pd.DataFrame, models, targets, classifiers, colors):
    """Accuracy, balanced accuracy and macro-F1 with 95 % CIs: a row of panels per target,
    one per metric, classifiers on x, bars per model; the majority-class baseline dotted.
    From :data:`HORIZONTAL_FROM` models on, :func:`plot_accuracy_rows` instead."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if len(models) >= HORIZONTAL_FROM:
        return plot_accuracy_rows(summary, models, targets, classifiers, colors)
    n_m, n_c = max(len(models), 1), max(len(classifiers), 1)
    panel = min(7.0, max(4.0, 0.45 * n_c * (n_m + 1) + 1.5))
    fig = _figure(3 * panel, 2.9 * max(len(targets), 1) + 0.6)
    if summary.empty:
        _no_data(fig, "no fits")
        return fig
    axes = fig.subplots(len(targets), len(_HEADLINE_LABELS), squeeze=False)
    for row, t in zip(axes, targets):
        for ax, name in zip(row, _HEADLINE_LABELS):
            _accuracy_panel(ax, summary[summary.target == t], t, name, models, classifiers, colors)
    handles = [Patch(color=colors[m], label=m) for m in models]
    handles.append(
        Line2D(
            [],
            [],
            marker="*",
            markersize=12,
            color="black",
            linestyle="none",
            label="best model by accuracy (per target × classifier)",
        )
    )
    handles.append(_baseline_handle())
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=_legend_columns([h.get_label() for h in handles], 3 * panel),
        fontsize=10,
        frameon=False,
    )
    fig.suptitle(
        "Test accuracy, balanced accuracy and macro-F1 with 95 % bootstrap CI", fontsize=12
    )
    return fig


_HATCHES = ("", "////", "....", "xxxx", "\\\\\\\\", "++++", "oo")


def _model_order(sub: pd.DataFrame, models) -> list[str]:
    """``models`` best first by their best accuracy over the probes (no fit: last)."""
    best = sub.groupby("model")["accuracy"].max() if len(sub) else pd.Series(dtype=float)
    score = {m: float(best.get(m, np.nan)) for m in models}
    return sorted(models, key=lambda m: -score[m] if math.isfinite(score[m]) else math.inf)


def _accuracy_rows_panel(ax, sub: pd.DataFrame, order, name: str, classifiers, colors) -> None:
    """One target × metric panel laid out horizontally: a group of bars per model (``order``,
    top to bottom), one bar per probe (hatched by probe), whisker, value, star for the best."""
    n_c = max(len(classifiers), 1)
    bh = 0.84 / n_c
    for i, m in enumerate(order):
        for j, c in enumerate(classifiers):
            r = sub[(sub.model == m) & (sub.classifier == c)]
            if r.empty:
                continue
            r, y = r.iloc[0], i - 0.42 + bh * (j + 0.5)
            v, lo, hi = r[name], r[f"{name}_ci_low"], r[f"{name}_ci_high"]
            ci = math.isfinite(lo) and math.isfinite(hi)
            best = name == "accuracy" and bool(r["best_model"])
            ax.barh(
                y,
                v,
                bh * 0.9,
                color=colors[m],
                hatch=_HATCHES[j % len(_HATCHES)],
                edgecolor="black" if best else "white",
                linewidth=1.2 if best else 0,
            )
            if ci:
                ax.errorbar(
                    v,
                    y,
                    xerr=[[max(v - lo, 0)], [max(hi - v, 0)]],
                    fmt="none",
                    ecolor="black",
                    elinewidth=1,
                    capsize=2,
                )
            end = hi if ci else v
            label = f"{v:.3f}" + (" ★" if best else "")
            ax.text(
                end + 0.01,
                y,
                label,
                va="center",
                fontsize=7,
                fontweight="bold" if best else "normal",
            )
    level = _baseline_level(sub, name)
    if level is not None:
        ax.axvline(level, color="grey", linestyle=":", linewidth=1.2)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xlim(0, 1.22)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel(f"test {_HEADLINE_LABELS[name]}", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    for k in range(len(order) - 1):
        ax.axhline(k + 0.5, color="#e6e6e6", linewidth=0.8)


def plot_accuracy_rows(summary: pd.DataFrame, models, targets, classifiers, colors):
    """The accuracy chart for many models: per target a row of panels (one per metric), the
    models down the side, best first by accuracy, one bar per probe (hatched by probe);
    the figure grows with the models, the legend sits below the panels."""
    n_m, n_c, n_t = max(len(models), 1), max(len(classifiers), 1), max(len(targets), 1)
    per_target = n_m * max(0.3, 0.15 * n_c) + 0.9
    fig = _figure(15, per_target * n_t + 1.4)
    if summary.empty:
        _no_data(fig, "no fits")
        return fig
    grid = fig.add_gridspec(n_t, len(_HEADLINE_LABELS))
    for row, t in enumerate(targets):
        sub = summary[summary.target == t]
        order = _model_order(sub[sub.model.isin(models)], list(models))
        first = None
        for col, name in enumerate(_HEADLINE_LABELS):
            ax = fig.add_subplot(grid[row, col], sharey=first)
            first = first or ax
            _accuracy_rows_panel(ax, sub, order, name, classifiers, colors)
            ax.set_title(
                f"{t}: {_HEADLINE_LABELS[name]}", fontsize=10, loc="left", fontweight="bold"
            )
            if col == 0:
                ax.set_yticks(range(len(order)), [plot_text(m) for m in order], fontsize=9)
                for lab, m in zip(ax.get_yticklabels(), order):
                    lab.set_color(colors[m])
            else:
                ax.tick_params(axis="y", labelleft=False)
    _accuracy_rows_legend(fig, classifiers)
    fig.suptitle(
        f"Test accuracy, balanced accuracy and macro-F1 with 95 % bootstrap CI — {len(models)} "
        "models, best first by accuracy per target",
        fontsize=12,
    )
    return fig


def _baseline_handle():
    """The legend entry of the majority-class baseline's dotted line."""
    from matplotlib.lines import Line2D

    label = "majority-class baseline (same test rows)"
    return Line2D([], [], color="grey", linestyle=":", linewidth=1.2, label=label)


def _accuracy_rows_legend(fig, classifiers) -> None:
    """The many-model chart's legend, below the panels: the probes' bar patterns, the best
    model's star and the majority-class baseline."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor="#bbbbbb", edgecolor="white", hatch=_HATCHES[j % len(_HATCHES)], label=c)
        for j, c in enumerate(classifiers)
    ]
    handles.append(
        Line2D(
            [],
            [],
            marker="$★$",
            color="black",
            linestyle="none",
            markersize=9,
            label="best model by accuracy (per target × probe), black outline",
        )
    )
    handles.append(_baseline_handle())
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), 6),
        fontsize=10,
        frameon=False,
        title="probe (bar pattern)",
        title_fontsize=10,
    )


def plot_confusion(fit: dict, names: list[str] | None):
    """Row-normalised confusion matrix (each row sums to 1: recall on the diagonal)."""
    p = fit["predictions"]
    ids = sorted(set(p["y_true"].astype(int)) | set(p["y_pred"].astype(int)))
    n = len(ids)
    cell = 0.42 if n <= 12 else 0.32
    side = max(4.0, n * cell)
    fig = _figure(
        side + 3.2, side + 1.6, constrained=False
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
    labels = [plot_text(class_name(names, c)) for c in ids]
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
    acc = metric(fit["metrics"], "accuracy")[0]
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
    if pairs.empty:
        fig = _figure(10, 3.0)
        _no_data(fig, "no mistakes on the test rows")
        return fig
    fig = _figure(10, max(2.8, 0.34 * len(pairs) + 1.6))  # a readable height with few pairs
    ax = fig.add_subplot()
    y = np.arange(len(pairs))[::-1]
    ax.barh(y, pairs["count"], color="#8c6bb1")
    ax.set_yticks(
        y,
        [
            f"{plot_text(t)}  →  {plot_text(q)}"
            for t, q in zip(pairs["true_class"], pairs["predicted_class"])
        ],
        fontsize=9,
    )
    for yy, c, s, sh in zip(y, pairs["count"], pairs["support"], pairs["share_of_true"]):
        ax.text(c, yy, f"  {c}/{s} ({100 * sh:.0f} %)", va="center", fontsize=8.5)
    ax.set_xlim(0, pairs["count"].max() * 1.3)
    ax.set_xlabel("test rows of the true class predicted as the other", fontsize=10)
    acc = metric(fit["metrics"], "accuracy")[0]
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
    n, n_m = max(len(classes), 1), max(len(models), 1)
    fig = _figure(9, max(0.36, 0.04 * n_m) * n + 1.8 + 0.25 * n_m / _legend_columns(models, 9))
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
        [plot_text(f"{c} (n={int(support[c])})" if pd.notna(support[c]) else c) for c in order],
        fontsize=9,
    )
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("F1 on test rows (95 % bootstrap CI)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    for k in range(len(order) - 1):
        ax.axhline(k + 0.5, color="#eeeeee", linewidth=0.8)
    ax.set_title(f"Per-class F1 — {target} · {classifier} (classes sorted by mean F1)", fontsize=11)
    ncol = _legend_columns(present, 9)
    fig.legend(loc="outside lower center", ncol=ncol, fontsize=10, frameon=False)
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
    ax.set_yticks(y, [plot_text(c) for c in sub["class"]], fontsize=fs)
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


def plot_map(
    model: str,
    xy: np.ndarray,
    labels,
    names,
    target: str | None,
    axes=("", ""),
    projection: str = "t-SNE",
):
    """One model's 2-D map (``xy``, one point per row) coloured by ``target``'s class ids
    ``labels`` (None: one colour)."""
    fig = _figure(11, 7.5)
    if len(xy) < 3:
        _no_data(fig, f"{model}: too few embeddings for a map")
        return fig
    ax = fig.add_subplot()
    if target and labels is not None:
        lab = np.asarray(labels).astype(int)
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
                label=plot_text(f"{class_name(names, c)} ({int(sel.sum())})"),
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
    ax.set_xlabel(axes[0], fontsize=10)
    ax.set_ylabel(axes[1], fontsize=10)
    ax.set_title(
        f"{model}: {projection} of {len(xy)} embeddings (seeded sample, same images for every model)",
        fontsize=11,
    )
    ax.grid(alpha=0.2)
    return fig


_FEWSHOT_METRICS = (
    ("accuracy", "-", "o"),
    ("balanced_accuracy", "--", "s"),
    ("macro_f1", ":", "^"),
)


def _shot_positions(shots: list) -> tuple[list[float], list[str]]:
    """x positions (log scale) and tick labels: k at k, ``all`` one step past the largest k."""
    ints = [s for s in shots if s != "all"]
    top = max(ints, default=1)
    xs = [float(s) if s != "all" else top * 2.5 for s in shots]
    return xs, [str(s) for s in shots]


def plot_fewshot(curve: dict, color):
    """One few-shot curve: test accuracy, balanced accuracy and macro F1 against training
    images per class (log axis), mean over trials with a ±1 sd band."""
    fig = _figure(7.5, 4.2)
    title = f"{curve['model']} · {curve['target']} · linear, few-shot"
    summary = pd.DataFrame(curve.get("summary") or [])
    if summary.empty:
        _no_data(fig, f"{title}\nno few-shot points")
        return fig
    ax = fig.add_subplot()
    xs, labels = _shot_positions(list(summary["shot"]))
    labels = [
        f"all\n(n={int(n)})" if lab == "all" else lab for lab, n in zip(labels, summary["n_train"])
    ]
    for metric_name, style, marker in _FEWSHOT_METRICS:
        mean, sd = (
            summary[metric_name].to_numpy(float),
            summary[f"{metric_name}_sd"].to_numpy(float),
        )
        ax.plot(
            xs,
            mean,
            style,
            marker=marker,
            color=color,
            markersize=4,
            linewidth=1.6,
            label=metric_name.replace("_", " "),
        )
        ax.fill_between(xs, mean - sd, mean + sd, color=color, alpha=0.12, linewidth=0)
    ax.set_xscale("log")
    ax.set_xticks(xs, labels)
    ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training images per class (k)", fontsize=10)
    ax.set_ylabel("test score", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper left")
    trials = int(curve.get("trials", 1))
    ax.set_title(
        f"{title}\nmean of {trials} seeded trial{'s' if trials > 1 else ''}, band ±1 sd; "
        f"{curve.get('n_classes', '?')} classes",
        fontsize=10,
    )
    return fig
