"""scikit-learn's text ``classification_report``, written with numpy alone.

A classify job writes this report once; importing ``sklearn.metrics`` for it cost a job about
as much CPU as importing torch (~2 s), for a table of counts. :func:`classification_report`
gives the same text, character for character, as ``sklearn.metrics.classification_report(
y_true, y_pred, labels=labels, target_names=..., digits=..., zero_division=0)`` for single-label
targets whose ``labels`` cover every class in truth or prediction (what the classify stage
passes): the same sums, divisions and numpy averages in the same order, so even a value on a
rounding boundary prints alike (tests/test_class_report.py compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

HEADERS = ("precision", "recall", "f1-score", "support")


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` in float64, 0 where ``den`` is 0 (sklearn's ``zero_division=0``)."""
    den = np.asarray(den, dtype=np.float64).copy()
    zero = den == 0
    den[zero] = 1
    out = np.asarray(num, dtype=np.float64) / den
    out[zero] = 0.0
    return out


def _scores(tp: np.ndarray, pred: np.ndarray, true: np.ndarray):
    """(precision, recall, F1) as sklearn computes them (F1 from counts: 2tp / (true + pred))."""
    f1 = _divide(
        2.0 * tp.astype(np.float64),
        1.0 * true.astype(np.float64) + pred.astype(np.float64),
    )
    return _divide(tp, pred), _divide(tp, true), f1


def classification_report(
    y_true, y_pred, labels: Sequence[int], target_names: Sequence[str], digits: int = 2
) -> str:
    """Per-class precision, recall, F1 and support, then accuracy, macro and weighted averages.

    ``labels`` must include every label of ``y_true`` and ``y_pred`` (ValueError otherwise:
    sklearn would print a micro-average row instead of accuracy); ``target_names[i]`` names
    ``labels[i]``.
    """
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    labels = np.asarray(labels)
    if len(labels) != len(target_names):
        raise ValueError(f"{len(labels)} labels but {len(target_names)} target names")
    missing = set(np.unique(np.concatenate([y_true, y_pred])).tolist()) - set(labels.tolist())
    if missing:
        raise ValueError(f"labels leave out classes that occur: {sorted(missing)}")
    hit = y_true == y_pred
    tp = np.array([np.count_nonzero(hit & (y_true == c)) for c in labels], dtype=np.int64)
    pred = np.array([np.count_nonzero(y_pred == c) for c in labels], dtype=np.int64)
    true = np.array([np.count_nonzero(y_true == c) for c in labels], dtype=np.int64)
    p, r, f1 = _scores(tp, pred, true)

    width = max(max(len(n) for n in target_names), len("weighted avg"), digits)
    row = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    text = ("{:>{width}s} " + " {:>9}" * len(HEADERS)).format("", *HEADERS, width=width) + "\n\n"
    for name, *values in zip(target_names, p, r, f1, true):
        text += row.format(name, *values, width=width, digits=digits)
    text += "\n"

    support = np.sum(true)
    _, _, accuracy = _scores(tp.sum().reshape(1), pred.sum().reshape(1), true.sum().reshape(1))
    accuracy_row = "{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f}" + " {:>9}\n"
    text += accuracy_row.format(
        "accuracy",
        "",
        "",
        float(np.nanmean(accuracy)),
        support,
        width=width,
        digits=digits,
    )
    macro = [float(np.nanmean(v)) for v in (p, r, f1)]
    text += row.format("macro avg", *macro, support, width=width, digits=digits)
    weighted = [float(np.average(v, weights=true)) for v in (p, r, f1)]
    text += row.format("weighted avg", *weighted, support, width=width, digits=digits)
    return text
