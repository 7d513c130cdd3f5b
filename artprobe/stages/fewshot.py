"""Few-shot stage: one model's few-shot curve for one target (the ``fewshot`` rule).

Reads the merged embeddings with the same per-target filters as the classify stage
(:func:`artprobe.stages.classify.load_fit_data`), fits the linear probe on k train images per class
(:mod:`artprobe.probes.curve`: seeded nested subsets of train, C chosen on val, never
trained on val) and writes ``fewshot/<model>/<target>.json``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq

from artprobe import probes
from artprobe.common.io import read_json, write_json
from artprobe.config import FEWSHOT_KIND
from artprobe.probes.curve import ALL, fewshot_curve, point_record
from artprobe.settings import FewshotSpec, ProbeRuntime
from artprobe.stages.classify import FitDataError, load_fit_data
from artprobe.stages.duplicates import duplicate_rows

log = logging.getLogger(__name__)


def run_fewshot(
    embeddings_path: str | os.PathLike,
    out_path: str | os.PathLike,
    spec: FewshotSpec,
    runtime: ProbeRuntime,
    *,
    reuse: dict | None = None,
    duplicates: str | os.PathLike | None = None,
) -> dict:
    """Fit the curve of ``spec`` (:class:`~artprobe.settings.FewshotSpec`) and write it (JSON,
    atomically); return what was written.

    ``spec.params``: the linear probe's hyper-parameters (``refit`` is forced to ``train``);
    ``spec.seed`` seeds the subsets (trial t uses ``[seed, t, class]``) and the fits.
    ``reuse``: the classify fit's ``{"metrics": metrics.json, "predictions": predictions.parquet}``
    that is the ``all`` point (the workflow decided so at parse time; :func:`reused_point`
    reads it), so that point is read, not fitted again. ``duplicates``: a
    ``duplicates.parquet`` whose confirmed rows are left out, as the classify stage leaves
    them out (``split.drop_duplicates``).
    """
    params = probes.resolve_params(FEWSHOT_KIND, spec.params)
    data = load_fit_data(
        embeddings_path,
        spec.target,
        drop_labels=spec.drop_labels,
        min_class_count=spec.min_class_count,
        drop_rows=None if duplicates is None else duplicate_rows(duplicates),
    )
    (Xtr, ytr, _), (Xva, yva, _), (Xte, yte, _) = data["train"], data["val"], data["test"]
    point = None if reuse is None or ALL not in spec.shots else reused_point(reuse, params, data)
    log.info(
        "%s/%s few-shot: shots %s x %d trials; %d train, %d val, %d test rows",
        spec.model,
        spec.target,
        list(spec.shots),
        spec.trials,
        len(ytr),
        len(yva),
        len(yte),
    )
    curve = fewshot_curve(
        replace(spec, params=params),
        ((Xtr, ytr), (Xva, yva), (Xte, yte)),
        len(data["classes"]),
        runtime,
        known={} if point is None else {ALL: point},
    )
    out = {
        "model": spec.model,
        "target": spec.target,
        "classifier": FEWSHOT_KIND,
        "protocol": "k train rows per class (seeded, nested); C chosen on val; never trained on val",
        "n_train_all": int(len(ytr)),
        "n_val": int(len(yva)),
        "n_test": int(len(yte)),
        "n_classes": len(data["classes"]),
        "dropped": data["dropped"],
        **curve,
    }
    write_json(out_path, out)
    return out


def reused_point(reuse: dict, params: dict, data: dict) -> dict:
    """The ``all`` point read from the classify fit that the workflow decided is that point
    (:func:`artprobe.config.reused_fit`, at parse time). The fit is checked to be the same fit
    (the linear probe with these parameters, trained on train only, on as many train rows,
    scored on the same test rows; ``data``: :func:`load_fit_data`'s): a fit that is not is a
    wrong decision, an error, not a point to fit quietly instead."""
    y_train, (_, y_test, test_ids) = data["train"][1], data["test"]
    m = read_json(reuse["metrics"])
    pred = pq.read_table(reuse["predictions"], columns=["row_id", "y_true", "y_pred"])
    same_params = json.loads(json.dumps({**params, "refit": "train"})) == m.get("params")
    why = None
    if m.get("kind") != FEWSHOT_KIND or not same_params:
        why = "another probe or other hyper-parameters"
    elif list(m.get("trained_on", [])) != ["train"] or m.get("n_train") != len(y_train):
        why = f"it trained on {m.get('trained_on')} ({m.get('n_train')} rows)"
    elif not np.array_equal(pred["row_id"].to_numpy(), test_ids) or not np.array_equal(
        pred["y_true"].to_numpy(), y_test
    ):
        why = "its test rows differ"
    if why:
        raise FitDataError(
            f"few-shot: {reuse['metrics']} was chosen as the curve's 'all' point, but it is "
            f"not that fit ({why}); rerun its classify job (snakemake --forcerun classify)"
        )
    log.info(
        "few-shot: the 'all' point is the classify fit %s (not fitted again)", reuse["metrics"]
    )
    y_pred = pred["y_pred"].to_numpy()
    point = point_record(y_test, y_pred, m["n_train"], m["n_classes_train"], m["info"], 0.0)
    return {**point, "from_fit": str(reuse["metrics"])}
