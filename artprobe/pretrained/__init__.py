"""Pretrained weights, for the weights stage and the embed jobs: one ``weights`` job per
pretrained model (:mod:`artprobe.stages.weights`) fetches the file timm loads from the hub, at
a pinned commit, into the hub cache, checks it and writes ``weights/<model>.json`` (repo,
revision, commit, file, size, sha256, path), which the model's embed jobs load.

``source`` (which repository and file: timm's pretrained config), ``pin`` (the commit,
resolved once and kept in ``weights/<model>.lock.json``), ``cached`` (the offline check at
parse time; where an embed job finds the file).
"""

from artprobe.pretrained.cached import cached_weights, check_offline_weights, marker_file
from artprobe.pretrained.pin import Pin, lock_path, pin_weights
from artprobe.pretrained.source import (
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
    "fetches_weights",
    "lock_path",
    "marker_file",
    "pin_weights",
    "weights_source",
]
