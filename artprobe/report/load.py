"""Reading the report's inputs: fits (metrics, predictions, history) and embedding rows.

Also the small readers of loosely structured values (metrics with CIs, nested ``info``).
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from artprobe.common.io import embedding_matrix, read_json

# info keys that are bookkeeping (sizes, where/how long a fit ran), not what was chosen.
_NOT_CHOSEN = re.compile(
    r"^(kind|seed|threads|torch|steps|cuda_graph|restored_best|params|grid|refit|trained_on|history|"
    r"class_weights?|n_\w+|device\w*|warnings|search_points|not_converged)$|seconds|"
    r"s_per_epoch|_loss$"
)


def group_fit_files(paths: Iterable[str]) -> list[dict[str, Path]]:
    """The rule's flat list of fit files, grouped per fit: ``[{file name: path}, ...]``."""
    groups: dict[Path, dict[str, Path]] = defaultdict(dict)
    for p in map(Path, paths):
        groups[p.parent][p.name] = p
    missing = [str(d) for d, g in groups.items() if "metrics.json" not in g]
    if missing:
        raise ValueError(f"report: fit input(s) without metrics.json: {missing[:3]}")
    return list(groups.values())


def load_fit(files: Mapping[str, Path]) -> dict:
    """One fit from its files; model/target/classifier/kind come from its metrics.json."""
    metrics = read_json(files["metrics.json"])
    path = files["predictions.parquet"]
    seeds = ["y_pred_seeds"] if "y_pred_seeds" in pq.read_schema(path).names else []
    preds = pq.read_table(path, columns=["row_id", "y_true", "y_pred", *seeds]).to_pandas()
    hist = files.get("history.csv")
    history = pd.read_csv(hist) if hist and hist.stat().st_size else pd.DataFrame()
    return {
        **{k: metrics[k] for k in ("model", "target", "classifier")},
        "kind": metrics.get("kind", ""),
        "metrics": metrics,
        "predictions": preds,
        "history": history,
        "class_names": list(metrics.get("class_names") or []),
    }


def load_fits(paths: Iterable[str]) -> list[dict]:
    """Every fit of the rule's ``fits`` input, in input order."""
    return [load_fit(g) for g in group_fit_files(paths)]


def metric(metrics: Mapping, name: str) -> tuple[float, float, float]:
    """(value, ci_low, ci_high) of a metric; NaN where absent."""
    v = metrics.get(name)
    if isinstance(v, Mapping):
        return tuple(as_float(v.get(k)) for k in ("value", "ci_low", "ci_high"))  # type: ignore[return-value]
    return as_float(v), math.nan, math.nan


def as_float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def find(meta: Any, key: str, depth: int = 3) -> Any:
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


def fit_seconds(metrics: Mapping) -> float:
    """Seconds a fit took (top level, else inside ``info``)."""
    return as_float(metrics.get("seconds", find(metrics.get("info") or {}, "seconds")))


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


def compact(d: Any, skip: re.Pattern | None = None, max_len: int = 300) -> str:
    """``k=v; …`` of a dict's short values."""
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
    return compact(info, _NOT_CHOSEN, max_len)


def class_name(names: list[str] | None, i: int) -> str:
    return str(names[i]) if names is not None and 0 <= i < len(names) else str(i)


def sample_rows(embeddings: Mapping[str, str], map_rows: int, seed: int) -> np.ndarray:
    """Seeded sample of row ids shared by every model, so all maps show the same images."""
    common = None
    for path in embeddings.values():
        ids = pq.read_table(path, columns=["row_id"])["row_id"].to_numpy()
        common = ids if common is None else np.intersect1d(common, ids)
    common = np.sort(common) if common is not None else np.array([], dtype=np.int64)
    if len(common) > map_rows:
        common = np.sort(np.random.default_rng(seed).choice(common, map_rows, replace=False))
    return common


def read_rows(
    path: str, row_ids: np.ndarray, columns: list[str]
) -> tuple[np.ndarray, pd.DataFrame]:
    """(embedding matrix, other columns) of the given rows, reading one batch at a time."""
    pf = pq.ParquetFile(path)
    parts = []
    for batch in pf.iter_batches(batch_size=8192, columns=["row_id", "embedding", *columns]):
        mask = np.isin(batch.column("row_id").to_numpy(), row_ids)
        if mask.any():
            parts.append(batch.filter(mask))
    if not parts:
        return np.zeros((0, 0), np.float32), pd.DataFrame(columns=["row_id", *columns])
    table = pa.Table.from_batches(parts)
    return embedding_matrix(table["embedding"]), table.drop(["embedding"]).to_pandas()
