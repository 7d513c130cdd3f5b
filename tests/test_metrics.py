"""artprobe.metrics: known answers against scikit-learn, bootstrap behaviour."""

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from artprobe.metrics import METRICS, evaluate, paired_bootstrap


def _problem(n=600, k=7, signal=1.5, seed=0):
    rng = np.random.default_rng(seed)
    y = np.minimum(rng.zipf(1.5, n) - 1, k - 1)  # imbalanced
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += signal
    proba = np.exp(logits)
    return y, proba / proba.sum(1, keepdims=True)


NAMES = [f"class{i}" for i in range(10)]


def test_point_values_match_sklearn():
    y, proba = _problem()
    pred = proba.argmax(1)
    r = evaluate(y, proba, NAMES, n_boot=50)
    present = np.unique(y)
    assert r["accuracy"]["value"] == pytest.approx(accuracy_score(y, pred))
    assert r["macro_f1"]["value"] == pytest.approx(
        f1_score(y, pred, labels=present, average="macro", zero_division=0)
    )
    assert r["balanced_accuracy"]["value"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert r["top5_accuracy"]["value"] == pytest.approx(
        top_k_accuracy_score(y, proba, k=5, labels=np.arange(proba.shape[1]))
    )
    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=present, zero_division=0)
    for j, c in enumerate(present):
        row = r["per_class"][NAMES[c]]
        assert row["precision"] == pytest.approx(prec[j])
        assert row["recall"] == pytest.approx(rec[j])
        assert row["f1"] == pytest.approx(f1[j])
        assert row["support"] == sup[j]
    assert r["n_test"] == len(y) and r["n_boot"] == 50 and r["ci"] == 0.95


def test_class_only_predicted_is_listed_but_not_averaged():
    y = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 3, 1, 1, 2, 2])  # class 3 never true
    proba = np.eye(4)[pred]
    r = evaluate(y, proba, NAMES, n_boot=0)
    assert r["per_class"]["class3"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
        "f1_ci_low": None,
        "f1_ci_high": None,
    }
    assert r["macro_f1"]["value"] == pytest.approx(
        f1_score(y, pred, labels=[0, 1, 2], average="macro")
    )
    assert r["balanced_accuracy"]["value"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert r["accuracy"]["ci_low"] is None


def test_topk_uses_min_5_classes():
    y = np.array([0, 1, 2, 0])
    proba = np.array([[0.1, 0.5, 0.4], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3], [0.9, 0.05, 0.05]])
    r = evaluate(y, proba, NAMES, n_boot=0)
    assert r["top_k"] == 3 and r["top5_accuracy"]["value"] == 1.0
    assert r["accuracy"]["value"] == 0.25


def test_ci_contains_estimate_and_narrows_with_more_rows():
    widths = []
    for n in (300, 3000):
        y, proba = _problem(n=n, seed=1)
        r = evaluate(y, proba, NAMES, n_boot=300, seed=0)
        for m in METRICS:
            assert r[m]["ci_low"] <= r[m]["value"] <= r[m]["ci_high"], (n, m)
        for row in r["per_class"].values():
            if row["f1_ci_low"] is not None:
                assert row["f1_ci_low"] <= row["f1_ci_high"]
        widths.append(r["accuracy"]["ci_high"] - r["accuracy"]["ci_low"])
    assert widths[1] < 0.5 * widths[0]  # ~ 1/sqrt(10)


def test_bootstrap_is_seeded_and_deterministic():
    y, proba = _problem()
    a = evaluate(y, proba, NAMES, n_boot=100, seed=3)
    b = evaluate(y, proba, NAMES, n_boot=100, seed=3)
    c = evaluate(y, proba, NAMES, n_boot=100, seed=4)
    assert a == b
    assert a["macro_f1"] != c["macro_f1"]


def test_bootstrap_is_fast_at_wikiart_size():
    import time

    y, proba = _problem(n=8145, k=129, seed=2)
    t = time.perf_counter()
    evaluate(y, proba, [str(i) for i in range(129)], n_boot=1000)
    assert time.perf_counter() - t < 20  # seconds, not minutes (typically ~1 s)


def test_paired_identical_predictions():
    y, proba = _problem()
    pred = proba.argmax(1)
    for metric in ("accuracy", "macro_f1", "balanced_accuracy"):
        r = paired_bootstrap(y, pred, pred.copy(), metric=metric, n_boot=200)
        assert r["diff"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0
        assert r["p_value"] == 1.0
        assert r["verdict"] == "no significant difference"


def test_paired_clearly_better_model():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 1000)
    good = np.where(rng.random(1000) < 0.8, y, rng.integers(0, 5, 1000))
    bad = np.where(rng.random(1000) < 0.5, y, rng.integers(0, 5, 1000))
    r = paired_bootstrap(y, good, bad, n_boot=500)
    assert r["verdict"] == "A better" and r["diff"] > 0.2
    assert 0 < r["ci_low"] <= r["diff"] <= r["ci_high"]
    assert r["p_value"] < 0.01
    r2 = paired_bootstrap(y, bad, good, metric="macro_f1", n_boot=500)
    assert r2["verdict"] == "B better" and r2["diff"] < 0
    # a small, noisy difference is not significant
    near = good.copy()
    near[:3] = (y[:3] + 1) % 5
    r3 = paired_bootstrap(y, good, near, n_boot=500)
    assert r3["verdict"] == "no significant difference"


def test_paired_top5_needs_probabilities():
    y, proba = _problem()
    r = paired_bootstrap(y, proba, proba[:, ::-1], metric="top5_accuracy", n_boot=100)
    assert r["verdict"] == "A better"
    with pytest.raises(ValueError, match="probabilities"):
        paired_bootstrap(y, proba.argmax(1), proba.argmax(1), metric="top5_accuracy")
    with pytest.raises(ValueError, match="unknown metric"):
        paired_bootstrap(y, y, y, metric="auc")
