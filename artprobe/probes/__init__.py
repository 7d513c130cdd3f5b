"""Classifiers ("probes") fitted on frozen embeddings: ``mlp``, ``linear`` and ``knn``.

Everything here works on plain numpy arrays and torch; nothing knows about files or
Snakemake. The workflow validates the hyper-parameters at parse time with the torch-free
:func:`artprobe.config.resolve_params` (re-exported here) and calls :func:`fit` in the
classify job.

Modules, one job each:

``fit``
    :func:`fit`: input checks, device and thread setup, dispatch to a kind, normalised
    test probabilities and the ``info`` every kind reports.
``shared``
    What every kind returns or uses: :class:`FitResult`, :data:`HISTORY_COLUMNS`,
    :func:`class_weights`.
``mlp``
    The bachelor-thesis protocol (Keras semantics in torch): the :class:`MLP`, the epoch
    loop and Keras' ``EarlyStopping``.
``mlp_step``
    One epoch of mlp training steps: :class:`~artprobe.probes.mlp_step.EagerStep`, or
    :class:`~artprobe.probes.mlp_step.GraphStep` (the step captured once in a CUDA graph
    and replayed), chosen once by :func:`~artprobe.probes.mlp_step.make_step`.
``linear``
    Softmax regression by full-batch L-BFGS, converged to a tolerance, with a coarse then
    refined search over ``C`` on validation.
``knn``
    Cosine k-nearest neighbours with a uniform or temperature-weighted vote, ``k`` and
    temperature chosen on validation, ties broken by summed similarity, then the seed.
``fewshot``
    Few-shot curves: the linear probe (through :func:`fit`) on seeded nested k-per-class
    subsets of train, C chosen on val, never trained on val.

All kinds take ``class_weight: none | balanced``; balanced weights are scikit-learn's
``n / (n_classes_present * count_c)`` on the training labels.
"""

from artprobe.config import KINDS, defaults, resolve_params
from artprobe.probes.fit import fit
from artprobe.probes.knn import knn_proba
from artprobe.probes.mlp import MLP
from artprobe.probes.shared import HISTORY_COLUMNS, FitResult, class_weights

__all__ = [
    "HISTORY_COLUMNS",
    "KINDS",
    "MLP",
    "FitResult",
    "class_weights",
    "defaults",
    "fit",
    "knn_proba",
    "resolve_params",
]
