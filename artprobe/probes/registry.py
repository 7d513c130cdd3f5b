"""The probe registry: one entry per probe kind, saying everything the rest of the code asks
of a kind (like timm's model registry). Torch-free: the workflow imports it at parse time.

An entry (:class:`ProbeKind`) holds the kind's hyper-parameter spec and defaults, its fit
function (a ``"module:function"`` path imported on first use, so parsing never loads torch),
whether the fit depends on the seed (fitted once per ``probe.seeds``), whether it writes
per-epoch history (the report's training curves), whether it can draw few-shot curves,
whether its fits gain from a GPU (a cluster sends them to the GPU partition) and whether it
is the nearest-neighbour probe whose feature map the report's neighbour galleries share.

Every fit function has one signature::

    fit(params, data: FitData, ctx: FitContext) -> FitResult

(:mod:`artprobe.probes.shared`; ``data`` holds ``X_train, y_train, X_val, y_val, X_test``).
A new kind is one module with that function and one :func:`register` call (below, or in
the caller's code for a kind of its own).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from artprobe.probes.checks import (
    CLASS_WEIGHT,
    boolean,
    choice,
    integer,
    number,
    one_or_more,
)

#: the rows a probe can be trained on: train only (the default), or train + val refit
REFIT_CHOICES = ("train", "train+val")


@dataclass(frozen=True)
class ProbeKind:
    """One probe kind: what the workflow, the classify job and the report ask of it."""

    name: str
    #: hyper-parameter -> (default, check); the defaults are the protocol
    spec: Mapping[str, tuple[Any, Callable[[Any], Any]]]
    #: the fit function, or its ``"module:function"`` path (imported when first fitted)
    fit: str | Callable
    #: the fit depends on the seed (init, batch order, tie-breaks): fitted once per seed
    seeded: bool
    #: per-epoch history rows (history.csv): the report draws training curves
    has_history: bool = False
    #: can draw few-shot curves (artprobe.probes.curve)
    fewshot: bool = False
    #: a fit gains enough from a GPU to be sent to one on a cluster (config ``gpu_probes``,
    #: rules/common.smk ``probe_gpu_resources``; docs/slurm.md, "Where probe fits run")
    gpu: bool = False
    #: a check across the resolved keys (ValueError naming the key), after each key's own
    check: Callable[[dict], None] | None = None
    #: a nearest-neighbour probe: the report's neighbour galleries search its feature map
    #: (artprobe.probes.knn.feature_map), centred as its ``center`` parameter says
    neighbours: bool = False

    def defaults(self) -> dict:
        return {k: d for k, (d, _) in self.spec.items()}

    def resolve(self, params: Mapping | None, *, name: str | None = None) -> dict:
        """``params`` checked and completed with the defaults; ValueError naming the
        classifier (``name``, default the kind) and the offending key."""
        label = f"classifier {name or self.name!r}"
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.spec))
        if unknown:
            known = ", ".join(sorted(self.spec))
            raise ValueError(f"{label}: unknown key {unknown[0]!r} (known: {known})")
        out = {}
        for key, (default, check) in self.spec.items():
            try:
                out[key] = check(params.get(key, default))
            except ValueError as err:
                raise ValueError(f"{label}: key {key!r} {err}") from None
        if self.check is not None:
            try:
                self.check(out)
            except ValueError as err:
                raise ValueError(f"{label}: {err}") from None
        return out

    def fit_function(self) -> Callable:
        if callable(self.fit):
            return self.fit
        module, _, func = self.fit.partition(":")
        return getattr(importlib.import_module(module), func)


_REGISTRY: dict[str, ProbeKind] = {}


def register(kind: ProbeKind, *, replace: bool = False) -> ProbeKind:
    """Add ``kind`` (ValueError if its name is taken, unless ``replace``); returns it."""
    if kind.name in _REGISTRY and not replace:
        raise ValueError(f"probe kind {kind.name!r} is already registered")
    _REGISTRY[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """The registered kinds, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> ProbeKind:
    """The entry of kind ``name``; ValueError naming the known kinds."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown classifier kind {name!r} (known: {', '.join(_REGISTRY)})"
        ) from None


def defaults(kind: str) -> dict:
    """The default parameters of ``kind`` (a fresh dict)."""
    return get(kind).defaults()


def gains_from_gpu(kind: str) -> bool:
    """Is a fit of ``kind`` worth a GPU job on a cluster (``gpu_probes`` in the config)?"""
    return get(kind).gpu


def neighbour_center(kinds: Mapping[str, str], params: Mapping[str, dict]) -> bool:
    """Whether the report's neighbour galleries centre the features: as the first classifier
    of a ``neighbours`` kind does (its ``center`` parameter); False without one. ``kinds``:
    classifier name -> kind, in config order; ``params``: their resolved hyper-parameters."""
    for name, kind in kinds.items():
        if get(kind).neighbours:
            return bool(params[name]["center"])
    return False


def resolve_params(kind: str, params: Mapping | None, *, name: str | None = None) -> dict:
    """Validate ``params`` for classifier ``kind`` and fill in the defaults (see
    :meth:`ProbeKind.resolve`)."""
    return get(kind).resolve(params, name=name)


# ---------------------------------------------------------------------------------
# The built-in kinds (artprobe.probes' docstring describes each protocol)
# ---------------------------------------------------------------------------------


def _check_linear(p: dict) -> None:
    if p["c_max"] < p["c_min"]:
        raise ValueError(f"key 'c_max' must be >= c_min ({p['c_min']}), got {p['c_max']}")


register(
    ProbeKind(
        name="mlp",
        spec={
            "hidden": (3000, integer(1)),
            "l2": (0.01, number(0.0, lo_open=False)),
            "lr": (1e-4, number(0.0)),
            "decay_rate": (0.9, number(0.0, 1.0)),
            "decay_steps": (10000, number(0.0)),
            "epsilon": (1e-7, number(0.0)),
            "batch_size": (32, integer(1)),
            "epochs": (20, integer(1)),
            "patience": (3, integer(0)),
            "min_delta": (0.0, number(0.0, lo_open=False)),
            "restore_best": (False, boolean),
            "class_weight": CLASS_WEIGHT,
            "standardize": (False, boolean),
            "keras_epsilon": (False, boolean),
        },
        fit="artprobe.probes.mlp:fit_mlp",
        seeded=True,  # init and batch order
        has_history=True,
        # 20 epochs of WikiArt take ~30 min on two CPU cores, ~9 s on an H200; linear and knn
        # take minutes or seconds on a CPU node
        gpu=True,
    )
)

register(
    ProbeKind(
        name="linear",
        spec={
            "normalize": ("standardize", choice("standardize", "l2", "none")),
            "c_min": (1e-6, number(0.0)),
            "c_max": (1e6, number(0.0)),
            "n_c": (13, integer(1)),
            "refine": (3, integer(0)),
            "select_by": ("accuracy", choice("accuracy", "log_loss")),
            "refit": ("train", choice(*REFIT_CHOICES)),
            "max_iter": (1000, integer(1)),
            "tol": (1e-4, number(0.0)),  # relative objective gap (Newton decrement estimate)
            "path_patience": (2, integer(0)),
            "class_weight": CLASS_WEIGHT,
        },
        fit="artprobe.probes.linear:fit_linear",
        seeded=False,  # a convex problem solved from zeros
        fewshot=True,
        check=_check_linear,
    )
)

register(
    ProbeKind(
        name="knn",
        spec={
            "k": ([10, 20, 50, 100, 200], one_or_more(integer(1))),
            "weighting": ("similarity", choice("uniform", "similarity")),
            "temperature": ([0.02, 0.05, 0.07, 0.1, 0.2], one_or_more(number(0.0))),
            "center": (False, boolean),
            "class_weight": CLASS_WEIGHT,
        },
        fit="artprobe.probes.knn:fit_knn",
        seeded=True,  # random tie-breaks
        neighbours=True,
    )
)
