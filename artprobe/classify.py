"""Classify stage: fit one probe on one model's embeddings for one target.

Reads the merged embeddings (``row_id, split, targets…, embedding``), applies the
per-target filters (catch-all labels, rare classes), fits the classifier on train
(model selection on val), and writes metrics with bootstrap intervals, the sklearn
classification report, per-row test predictions and the training history.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artprobe import metrics, probes
from artprobe.io import atomic_path, embedding_matrix, read_meta, write_json, write_parquet, write_text

log = logging.getLogger(__name__)


class FitDataError(ValueError):
    """The embeddings cannot support this fit (missing column, empty split, bad label name)."""


def load_fit_data(
    embeddings_path: str | os.PathLike,
    target: str,
    *,
    drop_labels: list[str] | None = None,
    min_class_count: int | None = None,
    drop_rows: np.ndarray | None = None,
) -> dict:
    """Rows of the merged embeddings usable for ``target``, split into train/val/test.

    ``drop_labels`` are class *names* removed from every split (e.g. "Unknown Artist");
    ``min_class_count`` removes classes with fewer train rows than that. Rows whose label
    is missing (id -1) are left out, counted in ``dropped["missing_label_rows"]`` (when any).
    Label ids keep their original values, so outputs refer to the dataset's own class list.
    ``drop_rows`` are row ids left out first (``split.drop_duplicates``: val/test
    near-duplicates of train).
    """
    schema = pq.read_schema(embeddings_path)
    for col in ("row_id", "split", target, "embedding"):
        if col not in schema.names:
            raise FitDataError(f"{embeddings_path}: no column {col!r} (has {schema.names})")
    classes = read_meta(schema).get("classes", {}).get(target)
    if not classes:
        raise FitDataError(f"{embeddings_path}: no class names for {target!r} in its metadata")
    table = pq.read_table(embeddings_path, columns=["row_id", "split", target, "embedding"])
    row_id = table.column("row_id").to_numpy()
    split = np.asarray(table.column("split").to_pylist(), dtype=object)
    y = table.column(target).to_numpy().astype(np.int64)
    keep = y >= 0  # -1: no label for this target (the row is kept for the other targets)
    dropped: dict = {"labels": {}, "rare_classes": [], "rows": 0}
    if not keep.all():
        dropped["missing_label_rows"] = int((~keep).sum())
    if drop_rows is not None:
        dup = np.isin(row_id, drop_rows)
        dropped["duplicates"] = int((dup & keep).sum())
        keep &= ~dup
    for name in drop_labels or []:
        if name not in classes:
            raise FitDataError(
                f"probe.drop_labels[{target!r}]: {name!r} is not a class of {target} "
                f"(classes include {classes[:5]}…)"
            )
        hit = y == classes.index(name)
        dropped["labels"][name] = int((hit & keep).sum())
        keep &= ~hit
    if min_class_count:
        counts = np.bincount(y[keep & (split == "train")], minlength=len(classes))
        rare = np.flatnonzero(counts < min_class_count)
        rare_hit = np.isin(y, rare) & keep
        dropped["rare_classes"] = [classes[i] for i in rare if (y[keep] == i).any()]
        dropped["rare_rows"] = int(rare_hit.sum())
        keep &= ~rare_hit
    dropped["rows"] = int((~keep).sum())
    try:
        X = embedding_matrix(table.column("embedding"))
    except ValueError as err:  # a wrongly typed column: this file cannot support the fit
        raise FitDataError(f"{embeddings_path}: {err}") from None
    data = {"classes": classes, "dropped": dropped}
    for part in ("train", "val", "test"):
        m = keep & (split == part)
        if not m.any():
            raise FitDataError(f"{embeddings_path}: no {part} rows left for {target!r} after filtering")
        data[part] = (X[m], y[m], row_id[m])
    return data


def run_fit(
    embeddings_path: str | os.PathLike,
    *,
    metrics_path: str | os.PathLike,
    report_path: str | os.PathLike,
    predictions_path: str | os.PathLike,
    history_path: str | os.PathLike,
    model: str,
    target: str,
    classifier: str,
    kind: str,
    params: dict,
    drop_labels: list[str] | None = None,
    min_class_count: int | None = None,
    seed: int = 0,
    seeds: list[int] | None = None,
    n_boot: int = 1000,
    threads: int = 1,
    device: str = "auto",
    duplicates: str | os.PathLike | None = None,
) -> dict:
    """Fit ``kind`` with ``params`` and write the four outputs; return metrics.json's dict.

    ``seeds`` (default ``[seed]``): the probe is fitted once per seed; the first fit's
    predictions, history and bootstrap intervals are the outputs, the others add their
    headline metrics to ``seeds`` (mean and sd across seeds). ``linear`` does not depend on
    the seed, so it is fitted once. ``baseline``: the majority class of train, scored on test.
    ``duplicates``: a ``duplicates.parquet`` whose rows are left out of the fit.
    """
    seeds = list(seeds) if seeds else [seed]
    params = probes.resolve_params(kind, params)
    drop_rows = None if duplicates is None else pq.read_table(duplicates, columns=["row_id"]).column("row_id").to_numpy()
    data = load_fit_data(
        embeddings_path, target, drop_labels=drop_labels, min_class_count=min_class_count, drop_rows=drop_rows
    )
    classes = data["classes"]
    (Xtr, ytr, _), (Xva, yva, _), (Xte, yte, rte) = data["train"], data["val"], data["test"]
    log.info(
        "%s/%s/%s: %d train, %d val, %d test rows, D=%d, %d classes",
        model, target, classifier, len(ytr), len(yva), len(yte), Xtr.shape[1], len(classes),
    )  # fmt: skip
    t0 = time.perf_counter()
    fits = []
    for s in seeds if kind in SEEDED_KINDS else seeds[:1]:
        fits.append(probes.fit(
            kind, params, Xtr, ytr, Xva, yva, Xte,
            n_classes=len(classes), seed=s, threads=threads, device=device,
        ))  # fmt: skip
    seconds = time.perf_counter() - t0
    result = fits[0]
    proba = np.asarray(result.proba_test, dtype=np.float32)
    y_pred = proba.argmax(1)
    scores = metrics.evaluate(yte, proba, classes, n_boot=n_boot, seed=seed)
    out = {
        "model": model,
        "target": target,
        "classifier": classifier,
        "kind": kind,
        "params": params,
        **scores,
        "n_train": int(len(ytr)),
        "n_val": int(len(yva)),
        "n_test": int(len(yte)),
        "n_classes": len(classes),
        "n_classes_train": int(len(np.unique(ytr))),
        "dropped": data["dropped"],
        "baseline": metrics.majority_baseline(ytr, yte, classes, n_boot=n_boot, seed=seed),
        "seeds": seed_summary(seeds, fits, yte, classes, kind),
        "seconds": seconds,
        "info": result.info,
        "class_names": classes,
    }
    write_parquet(predictions_table(rte, yte, proba), predictions_path)
    write_history(result.history, history_path)
    write_text(report_path, report_text(yte, y_pred, classes))
    write_json(metrics_path, out)
    log.info(
        "%s/%s/%s: accuracy %.4f [%.4f, %.4f] in %.1f s",
        model, target, classifier, out["accuracy"]["value"],
        out["accuracy"]["ci_low"], out["accuracy"]["ci_high"], seconds,
    )  # fmt: skip
    return out


#: kinds whose fit depends on the seed (mlp: init and batch order; knn: random tie-breaks)
SEEDED_KINDS = ("mlp", "knn")


def seed_summary(seeds: list[int], fits: list, y_true: np.ndarray, classes: list[str], kind: str) -> dict:
    """Headline metrics per seed, and their mean and sample sd (0 for one fit)."""
    names = ("accuracy", "balanced_accuracy", "macro_f1", "top5_accuracy")
    rows = []
    for s, res in zip(seeds, fits):
        m = metrics.evaluate(y_true, res.proba_test, classes, n_boot=0)
        rows.append({"seed": int(s), **{n: m[n]["value"] for n in names}})
    out = {"seeds": [int(s) for s in seeds], "fitted": len(rows), "per_seed": rows}
    out["deterministic"] = kind not in SEEDED_KINDS
    for n in names:
        v = np.array([r[n] for r in rows])
        out[n] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
    return out


def predictions_table(row_id: np.ndarray, y_true: np.ndarray, proba: np.ndarray) -> pa.Table:
    """Per-row test predictions: original row ids, true and predicted label ids, probabilities."""
    return pa.table(
        {
            "row_id": pa.array(row_id, pa.int64()),
            "y_true": pa.array(y_true, pa.int32()),
            "y_pred": pa.array(proba.argmax(1), pa.int32()),
            "proba": pa.FixedSizeListArray.from_arrays(pa.array(proba.ravel(), pa.float32()), proba.shape[1]),
        }
    )


def report_text(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> str:
    """scikit-learn's classification report over the classes that occur in truth or prediction
    (:mod:`artprobe.class_report`: the same text without importing scikit-learn)."""
    from artprobe.class_report import classification_report

    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    return classification_report(
        y_true, y_pred, labels=present, target_names=[classes[i] for i in present], digits=4
    )


def write_history(history: list[dict], path: str | os.PathLike) -> None:
    """Per-epoch history as CSV (header only for non-iterative probes)."""
    import csv

    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(probes.HISTORY_COLUMNS), extrasaction="ignore")
            writer.writeheader()
            for row in history:
                writer.writerow(row)
