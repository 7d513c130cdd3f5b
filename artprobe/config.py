"""What parsing the workflow needs, without torch or pandas.

``rules/common.smk`` imports this module on every parse (``snakemake -n``, every SLURM job's
re-parse), so it holds only light code: the classifier hyper-parameter specs
(:func:`resolve_params`), the checks a JSON schema cannot express (:func:`check_config`), the
demo defaults, and names shared by several stages (``SPLITS``). The timm-name check lives in
:mod:`artprobe.timm_names` (it may import timm, so the stages' envs need not have it).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Callable

import numpy as np

SPLITS = ("train", "val", "test")
KINDS = ("mlp", "linear", "knn")
#: kinds whose fits gain enough from a GPU to be sent to one on a cluster (the thesis mlp: 20
#: epochs of WikiArt take ~30 min on two CPU cores, ~9 s on an H200); linear and knn take
#: minutes or seconds on a CPU node (docs/slurm.md, "Where probe fits run")
GPU_KINDS = ("mlp",)
#: the embedded demo's generator settings; ``demo:`` keys in the config override them
DEMO_DEFAULTS = {"rows": 360, "files": 3, "seed": 0, "broken": 2}
#: ``probe.fewshot:`` keys left out of the config (the schema fills them too)
FEWSHOT_DEFAULTS = {"shots": [1, 2, 5, 10, 25, 100, "all"], "trials": 3, "classifier": None}

# ---------------------------------------------------------------------------------
# Classifier hyper-parameters
# ---------------------------------------------------------------------------------


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_)
    )


def _int(lo: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, (bool, np.bool_)) or not (
            isinstance(v, (int, np.integer))
            or (isinstance(v, (float, np.floating)) and float(v).is_integer())
        ):
            raise ValueError(f"must be an integer >= {lo}, got {v!r}")
        if int(v) < lo:
            raise ValueError(f"must be an integer >= {lo}, got {v!r}")
        return int(v)

    return check


def _float(lo: float, hi: float = math.inf, lo_open: bool = True) -> Callable[[Any], float]:
    interval = f"{'(' if lo_open else '['}{lo}, {hi}]"

    def check(v: Any) -> float:
        if not _is_num(v) or not math.isfinite(float(v)):
            raise ValueError(f"must be a number in {interval}, got {v!r}")
        f = float(v)
        if (f <= lo if lo_open else f < lo) or f > hi:
            raise ValueError(f"must be a number in {interval}, got {v!r}")
        return f

    return check


def _choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v is None and "none" in options:
            return "none"
        if not isinstance(v, str) or v not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {v!r}")
        return v

    return check


def _one_or_more(check: Callable[[Any], Any]) -> Callable[[Any], list]:
    """A value or a non-empty list of values, each passing ``check``; always a list."""

    def many(v: Any) -> list:
        values = list(v) if isinstance(v, (list, tuple)) else [v]
        if not values:
            raise ValueError("must be a value or a non-empty list, got []")
        return [check(x) for x in values]

    return many


def _bool(v: Any) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"must be true or false, got {v!r}")
    return bool(v)


_CLASS_WEIGHT = ("none", _choice("none", "balanced"))

# name -> (default, validator). The defaults are the protocol; see artprobe.probes' docstring.
_SPECS: dict[str, dict[str, tuple[Any, Callable[[Any], Any]]]] = {
    "mlp": {
        "hidden": (3000, _int(1)),
        "l2": (0.01, _float(0.0, lo_open=False)),
        "lr": (1e-4, _float(0.0)),
        "decay_rate": (0.9, _float(0.0, 1.0)),
        "decay_steps": (10000, _float(0.0)),
        "epsilon": (1e-7, _float(0.0)),
        "batch_size": (32, _int(1)),
        "epochs": (20, _int(1)),
        "patience": (3, _int(0)),
        "min_delta": (0.0, _float(0.0, lo_open=False)),
        "restore_best": (False, _bool),
        "class_weight": _CLASS_WEIGHT,
        "standardize": (False, _bool),
        "keras_epsilon": (False, _bool),
    },
    "linear": {
        "normalize": ("standardize", _choice("standardize", "l2", "none")),
        "c_min": (1e-6, _float(0.0)),
        "c_max": (1e6, _float(0.0)),
        "n_c": (13, _int(1)),
        "refine": (3, _int(0)),
        "select_by": ("accuracy", _choice("accuracy", "log_loss")),
        "refit_on_val": (True, _bool),
        "max_iter": (1000, _int(1)),
        "tol": (1e-4, _float(0.0)),
        "path_patience": (2, _int(0)),
        "class_weight": _CLASS_WEIGHT,
    },
    "knn": {
        "k": ([10, 20, 50, 100, 200], _one_or_more(_int(1))),
        "weighting": ("similarity", _choice("uniform", "similarity")),
        "temperature": ([0.02, 0.05, 0.07, 0.1, 0.2], _one_or_more(_float(0.0))),
        "center": (False, _bool),
        "class_weight": _CLASS_WEIGHT,
    },
}


def defaults(kind: str) -> dict:
    """The default parameters of ``kind`` (a fresh dict)."""
    _check_kind(kind)
    return {k: d for k, (d, _) in _SPECS[kind].items()}


def gains_from_gpu(kind: str) -> bool:
    """Is a fit of ``kind`` worth a GPU job on a cluster (``gpu_probes`` in the config)?"""
    _check_kind(kind)
    return kind in GPU_KINDS


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown classifier kind {kind!r} (known: {', '.join(KINDS)})")


def resolve_params(kind: str, params: dict | None, *, name: str | None = None) -> dict:
    """Validate ``params`` for classifier ``kind`` and fill in the defaults.

    Raises ``ValueError`` naming the classifier (``name``, default ``kind``) and the
    offending key: an unknown key, a value of the wrong type or out of range.
    """
    _check_kind(kind)
    label = f"classifier {name or kind!r}"
    spec = _SPECS[kind]
    params = dict(params or {})
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ValueError(f"{label}: unknown key {unknown[0]!r} (known: {', '.join(sorted(spec))})")
    out = {}
    for key, (default, check) in spec.items():
        value = params.get(key, default)
        try:
            out[key] = check(value)
        except ValueError as err:
            raise ValueError(f"{label}: key {key!r} {err}") from None
    if kind == "linear" and out["c_max"] < out["c_min"]:
        raise ValueError(
            f"{label}: key 'c_max' must be >= c_min ({out['c_min']}), got {out['c_max']}"
        )
    return out


# ---------------------------------------------------------------------------------
# Cross-key checks of the whole config
# ---------------------------------------------------------------------------------


def _duplicates(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


def check_config(config: dict) -> dict[str, dict]:
    """Checks a JSON schema cannot express; each error names the offending key.

    ``config`` is already validated against ``schemas/config.schema.yaml`` (defaults filled).
    Returns the resolved hyper-parameters of every classifier, by classifier name.
    """
    dup = _duplicates([m["name"] for m in config["models"]])
    if dup:
        raise ValueError(f"config models: duplicate name(s) {dup}")
    for m in config["models"]:
        if m.get("weights") is not None and not m["pretrained"]:
            raise ValueError(f"config models[{m['name']}].weights: set, but pretrained is false")
        if m.get("revision") is not None and (m.get("weights") is not None or not m["pretrained"]):
            why = "weights is set (a local file)" if m.get("weights") is not None else "pretrained is false"
            raise ValueError(f"config models[{m['name']}].revision: set, but {why}")
    dup = _duplicates([c["name"] for c in config["classifiers"]])
    if dup:
        raise ValueError(f"config classifiers: duplicate name(s) {dup}")
    resolved = {}
    for c in config["classifiers"]:
        spec = {k: v for k, v in c.items() if k not in ("name", "kind")}
        try:
            resolved[c["name"]] = resolve_params(c["kind"], spec)
        except ValueError as err:
            raise ValueError(f"config classifiers[{c['name']}]: {err}") from None
    targets = config["dataset"]["targets"]
    for key in ("drop_labels", "min_class_count"):
        unknown = sorted(set(config["probe"][key]) - set(targets))
        if unknown:
            raise ValueError(f"config probe.{key}: unknown target(s) {unknown} (targets: {targets})")
    strat = config["split"]["stratify_by"]
    if strat is not None and strat not in targets:
        raise ValueError(f"config split.stratify_by: {strat!r} is not one of dataset.targets {targets}")
    _check_split(config["split"], targets)
    if config["demo"] is not None and not is_local_source(config["dataset"]["source"]):
        raise ValueError("config demo: set, but dataset.source is a hub id, not a local folder")
    return resolved


def _check_split(split: dict, targets: list[str]) -> None:
    """group_by goes with method group and is no target; drop_duplicates needs the scan."""
    group_by = split.get("group_by")
    if split["method"] == "group" and group_by is None:
        raise ValueError("config split.group_by: required with split.method 'group' (e.g. artist)")
    if group_by is not None and split["method"] != "group":
        raise ValueError(f"config split.group_by: set, but split.method is {split['method']!r}, not 'group'")
    if group_by in targets:
        raise ValueError(
            f"config split.group_by: {group_by!r} is also in dataset.targets; with every {group_by} "
            f"on one side no test {group_by} is seen in training, so its fits mean nothing. "
            f"Remove {group_by!r} from dataset.targets (group_by reads the source column itself)"
        )
    if split.get("drop_duplicates") and split.get("duplicate_distance") is None:
        raise ValueError("config split.drop_duplicates: true, but split.duplicate_distance is null (no scan)")


def fewshot_settings(config: dict, classifier_params: dict[str, dict]) -> dict | None:
    """``probe.fewshot`` resolved: ``{shots, trials, params}`` (the linear probe's
    hyper-parameters: the named classifier's, the first linear one's, or the defaults); None
    when off. ``classifier_params`` is :func:`check_config`'s result."""
    fs = config["probe"].get("fewshot")
    if fs is None:
        return None
    fs = {**FEWSHOT_DEFAULTS, **fs}
    linear = [c["name"] for c in config["classifiers"] if c["kind"] == "linear"]
    name = fs["classifier"]
    if name is not None and name not in linear:
        raise ValueError(
            f"config probe.fewshot.classifier: {name!r} is not a linear classifier (linear: {linear})"
        )
    name = name or (linear[0] if linear else None)
    params = classifier_params[name] if name else defaults("linear")
    return {"shots": list(fs["shots"]), "trials": int(fs["trials"]), "params": params}


def demo_settings(config: dict) -> dict:
    """The demo generator's settings: :data:`DEMO_DEFAULTS` overridden by ``demo:``."""
    return {**DEMO_DEFAULTS, **(config["demo"] or {})}


def is_local_source(source: str) -> bool:
    """Local if it exists on disk or is written as a path (``/…``, ``./…``, ``~/…``);
    otherwise a hub id ``owner/name``."""
    if os.path.exists(os.path.expanduser(source)) or source.startswith(("/", ".", "~")):
        return True
    return not re.fullmatch(r"[\w.-]+/[\w.-]+", source)
