"""Classify stage: fit one probe on one model's embeddings for one target.

Reads the merged embeddings (``row_id, split, targets…, embedding``), applies the
per-target filters (catch-all labels, rare classes), fits the classifier on train
(model selection on val; a kind's train+val refit only where its params ask for it), and
writes metrics with bootstrap intervals, the sklearn
classification report, per-row test predictions and the training history.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artprobe import probes
from artprobe.common.io import (
    atomic_path,
    embedding_matrix,
    read_meta,
    write_json,
    write_parquet,
    write_text,
)
from artprobe.config import FIT_FILES
from artprobe.probes import metrics
from artprobe.probes.fit import fit as fit_probe
from artprobe.probes.shared import FitContext, FitData
from artprobe.settings import FitSpec, ProbeRuntime  # FitSpec: the classify job's settings
from artprobe.stages.duplicates import duplicate_rows

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
    keep, dropped = usable_rows(
        row_id,
        split,
        y,
        classes,
        target,
        drop_labels=drop_labels,
        min_class_count=min_class_count,
        drop_rows=drop_rows,
    )
    try:
        X = embedding_matrix(table.column("embedding"))
    except ValueError as err:  # a wrongly typed column: this file cannot support the fit
        raise FitDataError(f"{embeddings_path}: {err}") from None
    data = {"classes": classes, "dropped": dropped}
    for part in ("train", "val", "test"):
        m = keep & (split == part)
        if not m.any():
            raise FitDataError(
                f"{embeddings_path}: no {part} rows left for {target!r} after filtering"
            )
        data[part] = (X[m], y[m], row_id[m])
    return data


def usable_rows(
    row_id: np.ndarray,
    split: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    target: str,
    *,
    drop_labels: list[str] | None = None,
    min_class_count: int | None = None,
    drop_rows: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """(mask of the rows a probe of ``target`` uses, what was dropped and why): the filters
    of :func:`load_fit_data`, for whoever must see the same rows (the report's galleries)."""
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
    return keep, dropped


def fit_paths(out_dir: str | os.PathLike) -> dict[str, Path]:
    """The files of one fit in ``out_dir``, by :data:`~artprobe.config.FIT_FILES` key."""
    return {key: Path(out_dir) / name for key, name in FIT_FILES.items()}


def run_fit(
    embeddings_path: str | os.PathLike,
    spec: FitSpec,
    out: Mapping[str, str | os.PathLike],
    runtime: ProbeRuntime,
    duplicates: str | os.PathLike | None = None,
) -> dict:
    """Fit ``spec`` (:class:`~artprobe.settings.FitSpec`) on ``runtime``'s device and threads
    and write the files ``out`` names (keys of ``FIT_FILES``); return metrics.json's dict.
    ``duplicates``: a ``duplicates.parquet`` whose confirmed rows are left out of the fit."""
    params = probes.resolve_params(spec.kind, spec.params, name=spec.classifier)
    drop_rows = None if duplicates is None else duplicate_rows(duplicates)
    data = load_fit_data(
        embeddings_path,
        spec.target,
        drop_labels=spec.drop_labels,
        min_class_count=spec.min_class_count,
        drop_rows=drop_rows,
    )
    (Xtr, ytr, _), (Xva, yva, _), (Xte, yte, rte) = data["train"], data["val"], data["test"]
    log.info(
        "%s: %d train, %d val, %d test rows, D=%d, %d classes",
        spec.name,
        len(ytr),
        len(yva),
        len(yte),
        Xtr.shape[1],
        len(data["classes"]),
    )
    t0 = time.perf_counter()
    rows = FitData(Xtr, ytr, Xva, yva, Xte)
    fits = [
        fit_probe(
            spec.kind,
            params,
            rows,
            FitContext(n_classes=len(data["classes"]), seed=s, device=runtime.device),
            threads=runtime.threads,
        )
        for s in spec.fitted_seeds()
    ]
    result = {**fit_record(spec, params, data, fits), "seconds": time.perf_counter() - t0}
    proba = np.asarray(fits[0].proba_test, dtype=np.float32)
    seed_preds = [f.proba_test.argmax(1) for f in fits] if len(fits) > 1 else None
    write_parquet(predictions_table(rte, yte, proba, seed_preds), out["predictions"])
    write_history(fits[0].history, out["history"])
    write_text(out["classification_report"], report_text(yte, proba.argmax(1), data["classes"]))
    write_json(out["metrics"], result)
    acc = result["accuracy"]
    log.info(
        "%s: accuracy %.4f [%.4f, %.4f] in %.1f s",
        spec.name,
        acc["value"],
        acc["ci_low"],
        acc["ci_high"],
        result["seconds"],
    )
    return result


def fit_record(spec: FitSpec, params: dict, data: dict, fits: list) -> dict:
    """metrics.json's content (all but ``seconds``): the first fit's scores with intervals,
    sizes, the rows the probe trained on, the baseline and the per-seed summary."""
    classes, info = data["classes"], fits[0].info
    ytr, yte = data["train"][1], data["test"][1]
    proba = np.asarray(fits[0].proba_test, dtype=np.float32)
    return {
        "model": spec.model,
        "target": spec.target,
        "classifier": spec.classifier,
        "kind": spec.kind,
        "params": params,
        **metrics.evaluate(yte, proba, classes, n_boot=spec.n_boot, seed=spec.seed),
        "n_train": int(len(ytr)),
        "n_val": int(len(data["val"][1])),
        "n_test": int(len(yte)),
        "trained_on": info["trained_on"],
        "n_train_rows": info["n_train_rows"],
        "n_classes": len(classes),
        "n_classes_train": int(len(np.unique(ytr))),
        "dropped": data["dropped"],
        "baseline": metrics.majority_baseline(
            ytr, yte, classes, n_boot=spec.n_boot, seed=spec.seed
        ),
        "seeds": seed_summary(list(spec.seeds), fits, yte, classes, spec.kind),
        "info": info,
        "class_names": classes,
    }


def seed_summary(
    seeds: list[int], fits: list, y_true: np.ndarray, classes: list[str], kind: str
) -> dict:
    """Headline metrics per seed, and their mean and sample sd (0 for one fit)."""
    names = ("accuracy", "balanced_accuracy", "macro_f1", "top5_accuracy")
    rows = []
    for s, res in zip(seeds, fits):
        m = metrics.evaluate(y_true, res.proba_test, classes, n_boot=0)
        rows.append({"seed": int(s), **{n: m[n]["value"] for n in names}})
    out = {"seeds": [int(s) for s in seeds], "fitted": len(rows), "per_seed": rows}
    out["deterministic"] = not probes.get(kind).seeded
    for n in names:
        out[n] = metrics.mean_sd([r[n] for r in rows])
    return out


def predictions_table(
    row_id: np.ndarray,
    y_true: np.ndarray,
    proba: np.ndarray,
    seed_preds: list[np.ndarray] | None = None,
) -> pa.Table:
    """Per-row test predictions: original row ids, true and predicted label ids, probabilities
    (the first seed's fit), and with several seeds every seed's predicted ids (``y_pred_seeds``)."""
    cols = {
        "row_id": pa.array(row_id, pa.int64()),
        "y_true": pa.array(y_true, pa.int32()),
        "y_pred": pa.array(proba.argmax(1), pa.int32()),
        "proba": pa.FixedSizeListArray.from_arrays(
            pa.array(proba.ravel(), pa.float32()), proba.shape[1]
        ),
    }
    if seed_preds:
        flat = pa.array(np.stack(seed_preds, axis=1).ravel(), pa.int32())
        cols["y_pred_seeds"] = pa.FixedSizeListArray.from_arrays(flat, len(seed_preds))
    return pa.table(cols)


def report_text(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> str:
    """scikit-learn's classification report over the classes that occur in truth or prediction
    (:mod:`artprobe.probes.classification_text`: the same text without importing scikit-learn)."""
    from artprobe.probes.classification_text import classification_report

    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    return classification_report(
        y_true, y_pred, labels=present, target_names=[classes[i] for i in present], digits=4
    )


def write_history(history: list[dict], path: str | os.PathLike) -> None:
    """Per-epoch history as CSV (header only for non-iterative probes)."""
    import csv

    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(
                fh, fieldnames=list(probes.HISTORY_COLUMNS), extrasaction="ignore"
            )
            writer.writeheader()
            for row in history:
                writer.writerow(row)
