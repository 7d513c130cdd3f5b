"""Which paintings the report shows: row ids per section, decided before any image is read.

- models: the leaderboard's top ``report.top_models`` by mean rank plus ``report.show_models``
  (:func:`shown_models`), recorded in ``rows.json`` so the report names the same ones;
- galleries: per target a seeded sample of test paintings spread over its classes, and each
  shown model's k nearest train paintings (cosine on the kNN probe's features, its centring
  included: :func:`artprobe.probes.knn.feature_map`);
- disagreements: per target, test paintings the best fit gets right and the runner-up gets
  wrong, and the reverse (the pair of the verdict, read from the compare stage);
- confusions: per target, the best fit's top confused class pairs, a few paintings each;
- the map: a seeded sample of the rows every model embedded, and a class-stratified part of
  it that carries thumbnails.

:func:`select_rows` returns a JSON-able dict; :func:`thumbnail_rows` lists the rows (and
sizes) the thumbnail stage reads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from artprobe.common.io import embedding_matrix, read_meta
from artprobe.report import tables, verdict
from artprobe.report.choices import class_counts, readable_target
from artprobe.report.leaderboard import BEST
from artprobe.report.load import sample_rows
from artprobe.settings import ThumbnailSettings

log = logging.getLogger(__name__)


def spread(row_ids: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` rows spread over the classes: classes in a seeded order, one random row of
    each in turn, round after round (a class with no rows left is skipped)."""
    by_class = {}
    for c in rng.permutation(np.unique(labels)):
        members = row_ids[labels == c]
        by_class[int(c)] = list(rng.permutation(members))
    out: list[int] = []
    while len(out) < n and any(by_class.values()):
        for rows in by_class.values():
            if rows and len(out) < n:
                out.append(int(rows.pop()))
    return np.array(out, dtype=np.int64)


def _load(path: str, targets: list[str]) -> pd.DataFrame:
    """row_id, split and the targets of a model's embeddings (without the vectors)."""
    have = set(pq.read_schema(path).names)
    return pq.read_table(
        path, columns=["row_id", "split", *[t for t in targets if t in have]]
    ).to_pandas()


def gallery_queries(
    frames: Mapping[str, pd.DataFrame], target: str, n: int, seed: int
) -> list[int]:
    """Test rows with a label for ``target`` that every model embedded, spread over classes."""
    common = None
    for df in frames.values():
        ok = df[(df["split"] == "test") & (df[target] >= 0)]
        common = ok if common is None else common[common.row_id.isin(ok.row_id)]
    if common is None or common.empty:
        return []
    common = common.sort_values("row_id")
    rng = np.random.default_rng([seed, 1])
    return spread(common.row_id.to_numpy(), common[target].to_numpy(), n, rng).tolist()


@dataclass(frozen=True)
class ProbeView:
    """What the kNN probe sees, so the galleries show its neighbours: its centring
    (``center``), the row filters of config ``probe:`` (per target) and the confirmed
    near-duplicates left out (``drop_rows``), applied by :func:`artprobe.stages.classify.usable_rows`."""

    center: bool = False
    drop_labels: Mapping[str, list[str]] = field(default_factory=dict)
    min_class_count: Mapping[str, int | None] = field(default_factory=dict)
    drop_rows: np.ndarray | None = None


def _probe_train(df: pd.DataFrame, classes: list[str], t: str, rows: ProbeView) -> np.ndarray:
    """Positions in ``df`` of the train rows a probe of ``t`` trains on."""
    from artprobe.stages.classify import usable_rows

    split = df["split"].to_numpy(dtype=object)
    keep, _ = usable_rows(
        df["row_id"].to_numpy(),
        split,
        df[t].to_numpy().astype(np.int64),
        classes,
        t,
        drop_labels=rows.drop_labels.get(t),
        min_class_count=rows.min_class_count.get(t),
        drop_rows=rows.drop_rows,
    )
    return np.flatnonzero(keep & (split == "train"))


def nearest_train(
    path: str,
    targets: list[str],
    queries: Mapping[str, list[int]],
    k: int,
    probe: ProbeView | None = None,
) -> dict:
    """``{target: [[train row id, ...] per query]}``: one model's k nearest train rows of each
    query, most similar first, among the rows the kNN probe searched (``probe``; none: every
    labelled train row, uncentred)."""
    import torch

    from artprobe.probes.knn import feature_map, neighbours

    probe = probe or ProbeView()
    table = pq.read_table(path, columns=["row_id", "split", "embedding", *targets])
    classes = read_meta(table.schema).get("classes", {})
    X = embedding_matrix(table["embedding"]).astype(np.float32)
    df = table.drop(["embedding"]).to_pandas()
    pos = pd.Series(np.arange(len(df)), index=df.row_id)
    out = {}
    for t, q in queries.items():
        train = _probe_train(df, classes.get(t) or [], t, probe)
        if not len(q) or not len(train):
            out[t] = [[] for _ in q]
            continue
        unit = feature_map(X[train], probe.center, "cpu")
        with torch.no_grad():
            _, idx = neighbours(unit(X[train]), unit(X[pos[q].to_numpy()]), k)
        out[t] = df.row_id.to_numpy()[train][idx.numpy()].tolist()
    return out


def disagreements(
    fits: list[dict], target: str, best: tuple, other: tuple, n: int, seed: int
) -> dict:
    """Test rows of ``target`` that fit ``best`` (model, probe) gets right and ``other`` wrong
    (``a_only``), and the reverse (``b_only``): up to ``n`` each, a seeded sample in row
    order, with both predictions."""
    by = {(f["model"], f["classifier"]): f["predictions"] for f in fits if f["target"] == target}
    j = by[best].merge(by[other], on="row_id", suffixes=("_a", "_b"))
    j = j[j.y_true_a == j.y_true_b].sort_values("row_id")
    a_ok, b_ok = j.y_pred_a == j.y_true_a, j.y_pred_b == j.y_true_b
    rng = np.random.default_rng([seed, 2])
    out = {
        "a": {"model": best[0], "classifier": best[1]},
        "b": {"model": other[0], "classifier": other[1]},
        "n_shared": len(j),
    }
    for key, sel in (("a_only", a_ok & ~b_ok), ("b_only", b_ok & ~a_ok)):
        rows = j[sel]
        out[f"n_{key}"] = len(rows)
        if len(rows) > n:
            rows = rows.iloc[np.sort(rng.choice(len(rows), n, replace=False))]
        out[key] = [
            {
                "row_id": int(r.row_id),
                "y_true": int(r.y_true_a),
                "pred_a": int(r.y_pred_a),
                "pred_b": int(r.y_pred_b),
            }
            for r in rows.itertuples()
        ]
    return out


def confusions(fit: dict, pairs: int, examples: int, seed: int) -> dict:
    """The fit's ``pairs`` most frequent (true A, predicted B) mistakes on its test rows, each
    with up to ``examples`` test paintings of A recognised, of A called B and of B recognised."""
    p = fit["predictions"].sort_values("row_id")
    counts = tables.confused_pairs(fit, None, pairs)
    rng = np.random.default_rng([seed, 3])

    def pick(sel) -> list[int]:
        ids = p.row_id[sel].to_numpy(copy=True)  # pandas 3 hands out read-only views
        return sorted(int(i) for i in rng.permutation(ids)[:examples])

    out = []
    for r in counts.itertuples():
        a, b = int(r.true_class), int(r.predicted_class)
        out.append(
            {
                "true": a,
                "pred": b,
                "count": int(r.count),
                "support": int(r.support),
                "a_right": pick((p.y_true == a) & (p.y_pred == a)),
                "a_as_b": pick((p.y_true == a) & (p.y_pred == b)),
                "b_right": pick((p.y_true == b) & (p.y_pred == b)),
            }
        )
    return {"model": fit["model"], "classifier": fit["classifier"], "pairs": out}


def map_rows(
    embeddings: Mapping[str, str], frames, target: str | None, n_rows: int, n_thumbs: int, seed: int
) -> dict:
    """The map's rows (seeded, the same for every model) and the class-stratified part of
    them that carries thumbnails, in the order the picture map fills its grid."""
    rows = sample_rows(embeddings, n_rows, seed)
    thumbs = rows
    if target is not None and len(rows):
        df = next(iter(frames.values())).set_index("row_id").loc[rows]
        thumbs = spread(rows, df[target].to_numpy(), n_thumbs, np.random.default_rng([seed, 4]))
    return {"target": target, "rows": rows.tolist(), "thumbs": [int(x) for x in thumbs[:n_thumbs]]}


#: the metric whose mean rank orders the models shown: the verdict's first, the one that
#: also picks the disagreements' pair and the confusions' best fit
RANK_METRIC = verdict.VERDICT_METRICS[0]


def shown_models(mean_ranks: pd.DataFrame, models: list[str], top: int, show: list[str]) -> dict:
    """The models the painting sections show: the ``top`` best of ``models`` by mean rank
    (:data:`RANK_METRIC`, each model's best probe), plus ``show`` (names of ``models``), in
    rank order. Equal mean ranks keep the order of ``models``; a model without one comes last.
    Returns ``{"shown", "ranked" (every model, best first), "mean_rank", "metric",
    "top_models", "show_models"}``."""
    unknown = [m for m in show if m not in models]
    if unknown:
        raise ValueError(
            f"report.show_models names {unknown}, not models of this run: choose from {models}"
        )
    sel = mean_ranks[(mean_ranks.probe_mode == BEST) & (mean_ranks.metric == RANK_METRIC)]
    rank = {m: float(r) for m, r in zip(sel.model, sel.mean_rank) if m in models}
    key = {m: (0, rank[m]) if np.isfinite(rank.get(m, np.nan)) else (1, 0.0) for m in models}
    ranked = sorted(models, key=lambda m: (*key[m], models.index(m)))
    wanted = set(ranked[:top]) | set(show)
    return {
        "shown": [m for m in ranked if m in wanted],
        "ranked": ranked,
        "mean_rank": {m: rank[m] for m in ranked if m in rank and np.isfinite(rank[m])},
        "metric": RANK_METRIC,
        "top_models": top,
        "show_models": list(show),
    }


def select_rows(
    fits: list[dict],
    embeddings: Mapping[str, str],
    ruling: pd.DataFrame,
    mean_ranks: pd.DataFrame,
    settings: ThumbnailSettings,
    drop_rows: np.ndarray | None = None,
) -> dict:
    """Every section's rows (see the module docstring). ``ruling``: the verdict table (the
    compare stage's), so the pair shown is the verdict's; ``mean_ranks``: the leaderboard's
    mean ranks (the compare stage's), which pick the galleries' models; ``drop_rows``: the
    confirmed near-duplicates the probes leave out (the galleries' neighbours, with the kNN
    probe's centring and row filters of ``settings``)."""
    s, seed, targets = settings, settings.seed, list(settings.targets)
    models = shown_models(mean_ranks, list(embeddings), s.top_models, list(s.show_models))
    probe = ProbeView(s.center, s.drop_labels, s.min_class_count, drop_rows)
    frames = {m: _load(p, targets) for m, p in embeddings.items()}
    g = s.gallery
    queries = {t: gallery_queries(frames, t, g["queries"], seed) for t in targets}
    near = {
        m: nearest_train(embeddings[m], targets, queries, g["k"], probe) for m in models["shown"]
    }
    gallery = {
        t: {"queries": queries[t], "neighbours": {m: near[m][t] for m in near}} for t in targets
    }
    disagree, confused = _best_fit_rows(fits, targets, ruling, s)
    target = (
        s.map_target or readable_target(class_counts(fits)) or (targets[0] if targets else None)
    )
    chosen = {
        "models": models,
        "gallery": gallery,
        "disagreements": disagree,
        "confusions": confused,
        "map": map_rows(embeddings, frames, target, s.map_rows, s.map_thumbnails, seed),
        "seed": seed,
        "center": probe.center,
        "k": g["k"],
    }
    log.info(
        "select: %d rows shown, %d map thumbnails",
        len(shown_rows(chosen)),
        len(chosen["map"]["thumbs"]),
    )
    return chosen


def _best_fit_rows(fits, targets, ruling, s: ThumbnailSettings) -> tuple[dict, dict]:
    """Per target the disagreements of the verdict's pair and the best fit's confusions."""
    disagree, confused = {}, {}
    for t in targets:
        pair = verdict.pair(ruling, t)
        if pair is not None:
            disagree[t] = disagreements(fits, t, *pair, s.disagreements, s.seed)
        key = verdict.best_fit(ruling, t)
        if key is not None:
            fit = next(f for f in fits if f["target"] == t and (f["model"], f["classifier"]) == key)
            c = s.confusions
            confused[t] = confusions(fit, c["pairs"], c["examples"], s.seed)
    return disagree, confused


def shown_rows(chosen: Mapping) -> set[int]:
    """Every row a gallery, disagreement or confusion sheet shows (large thumbnails)."""
    rows: set[int] = set()
    for g in chosen["gallery"].values():
        rows.update(g["queries"])
        for per_query in g["neighbours"].values():
            rows.update(i for ns in per_query for i in ns)
    for d in chosen["disagreements"].values():
        rows.update(r["row_id"] for key in ("a_only", "b_only") for r in d[key])
    for c in chosen["confusions"].values():
        for p in c["pairs"]:
            rows.update(p["a_right"] + p["a_as_b"] + p["b_right"])
    return rows


def thumbnail_rows(chosen: Mapping) -> dict[str, list[int]]:
    """``{"large": rows of the sheets, "small": the map's thumbnail rows}``, sorted."""
    return {"large": sorted(shown_rows(chosen)), "small": sorted(chosen["map"]["thumbs"])}
