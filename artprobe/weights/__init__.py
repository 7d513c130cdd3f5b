"""Weights stage: one ``weights`` job per pretrained model fetches the file timm loads from the
hub, at a pinned commit, into the hub cache, checks it and writes ``weights/<model>.json``
(repo, revision, commit, file, size, sha256, path), which the model's embed jobs load.

``source`` (which repository and file: timm's pretrained config), ``pin`` (the commit,
resolved once and kept in ``weights/<model>.lock.json``), ``fetch`` (the job), ``cache``
(the offline check at parse time; where an embed job finds the file).
"""

from artprobe.weights.cache import cached_weights, check_offline_weights, marker_file
from artprobe.weights.fetch import fetch_weights
from artprobe.weights.pin import Pin, lock_path, pin_weights
from artprobe.weights.source import (
    WeightsError,
    WeightsSource,
    fetches_weights,
    weights_source,
)

__all__ = [
    "Pin",
    "WeightsError",
    "WeightsSource",
    "cached_weights",
    "check_offline_weights",
    "fetch_weights",
    "fetches_weights",
    "lock_path",
    "marker_file",
    "pin_weights",
    "weights_source",
]
