"""Classifiers ("probes") fitted on frozen embeddings: ``mlp``, ``linear`` and ``knn``.

Everything here works on plain numpy arrays and torch; nothing knows about files or
Snakemake. Every kind is an entry of the torch-free :mod:`~artprobe.probes.registry` (its
spec and defaults, its fit function, seeded or not, history or not); the workflow validates
the hyper-parameters at parse time with :func:`~artprobe.probes.registry.resolve_params`
and calls :func:`artprobe.probes.fit.fit` in the classify job (import it from there: the
package's ``fit`` is that module). Names here are imported on first use.

Modules, one job each:

``registry``
    :class:`~artprobe.probes.registry.ProbeKind` entries, :func:`register`, :func:`get`,
    :func:`names`, :func:`resolve_params` (torch-free; ``checks`` holds the value checks).
``fit``
    :func:`fit`: input checks, device and thread setup, the registry's fit function of the
    kind, normalised test probabilities and the ``info`` every kind reports (with the rows
    it trained on).
``shared``
    What every kind returns or uses: :class:`FitResult`, :class:`FitContext`,
    :data:`HISTORY_COLUMNS`, :func:`class_weights`.
``mlp``
    The bachelor-thesis protocol (Keras semantics in torch): the :class:`MLP`, the epoch
    loop and Keras' ``EarlyStopping``.
``mlp_step``
    One epoch of mlp training steps: :class:`~artprobe.probes.mlp_step.EagerStep`, or
    :class:`~artprobe.probes.mlp_step.GraphStep` (the step captured once in a CUDA graph
    and replayed), chosen once by :func:`~artprobe.probes.mlp_step.make_step`.
``linear``
    Softmax regression by full-batch Newton-CG, converged to a relative objective gap
    (``tol``), with a coarse then refined search over ``C`` on validation.
``knn``
    Cosine k-nearest neighbours with a uniform or temperature-weighted vote, ``k`` and
    temperature chosen on validation, ties broken by summed similarity, then the seed.
``fewshot``
    Few-shot curves: the linear probe (through :func:`fit`) on seeded nested k-per-class
    subsets of train, C chosen on val, never trained on val.

All kinds take ``class_weight: none | balanced``; balanced weights are scikit-learn's
``n / (n_classes_present * count_c)`` on the training labels.
"""

import importlib

#: public name -> the module that defines it; imported on first access, so that the
#: torch-free registry (``artprobe.probes.registry``) can be imported at parse time
_LAZY = {
    "knn_proba": "artprobe.probes.knn",
    "MLP": "artprobe.probes.mlp",
    "FitContext": "artprobe.probes.shared",
    "FitResult": "artprobe.probes.shared",
    "HISTORY_COLUMNS": "artprobe.probes.shared",
    "class_weights": "artprobe.probes.shared",
    "defaults": "artprobe.probes.registry",
    "resolve_params": "artprobe.probes.registry",
    "get": "artprobe.probes.registry",
    "names": "artprobe.probes.registry",
    "register": "artprobe.probes.registry",
    "ProbeKind": "artprobe.probes.registry",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'artprobe.probes' has no attribute {name!r}")
