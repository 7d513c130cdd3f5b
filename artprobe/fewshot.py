"""Few-shot stage: one model's few-shot curve for one target (the ``fewshot`` rule).

Reads the merged embeddings with the same per-target filters as the classify stage
(:func:`artprobe.classify.load_fit_data`), fits the linear probe on k train images per class
(:mod:`artprobe.probes.fewshot`: seeded nested subsets of train, C chosen on val, never
trained on val) and writes ``fewshot/<model>/<target>.json``.
"""

from __future__ import annotations

import logging
import os

from artprobe import probes
from artprobe.classify import load_fit_data
from artprobe.config import FEWSHOT_KIND
from artprobe.io import write_json
from artprobe.probes.fewshot import DEFAULT_SHOTS, fewshot_curve

log = logging.getLogger(__name__)


def run_fewshot(
    embeddings_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    model: str,
    target: str,
    params: dict | None = None,
    shots=DEFAULT_SHOTS,
    trials: int = 3,
    drop_labels: list[str] | None = None,
    min_class_count: int | None = None,
    seed: int = 0,
    threads: int = 1,
    device: str = "auto",
) -> dict:
    """Fit the curve and write it (JSON, atomically); return what was written.

    ``params``: the linear probe's hyper-parameters (defaults filled in; ``refit`` is
    forced to ``train``). ``seed`` seeds the subsets (trial t uses ``[seed, t, class]``) and the fits.
    """
    params = probes.resolve_params(FEWSHOT_KIND, params)
    data = load_fit_data(
        embeddings_path, target, drop_labels=drop_labels, min_class_count=min_class_count
    )
    (Xtr, ytr, _), (Xva, yva, _), (Xte, yte, _) = data["train"], data["val"], data["test"]
    log.info(
        "%s/%s few-shot: shots %s x %d trials; %d train, %d val, %d test rows",
        model,
        target,
        list(shots),
        trials,
        len(ytr),
        len(yva),
        len(yte),
    )
    curve = fewshot_curve(
        params,
        (Xtr, ytr),
        (Xva, yva),
        (Xte, yte),
        n_classes=len(data["classes"]),
        shots=shots,
        trials=trials,
        seed=seed,
        threads=threads,
        device=device,
    )
    out = {
        "model": model,
        "target": target,
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
