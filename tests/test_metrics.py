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

from artprobe.metrics import METRICS, compare, evaluate, paired_bootstrap, point_values


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


def test_point_values_are_evaluate_s():
    y, proba = _problem()
    m, p = evaluate(y, proba, NAMES, n_boot=0), point_values(y, proba.argmax(1))
    assert p == {k: m[k]["value"] for k in ("accuracy", "balanced_accuracy", "macro_f1")}


def _seeded_fits(rng, z, y, n_seeds, shift=0.0, seed_sd=0.02, n_classes=10):
    """Predictions of one model fitted with ``n_seeds`` seeds: a row is right when its shared
    difficulty ``z`` plus the fit's own row noise plus the seed's shift (the seed moves the
    fit's true accuracy: ``seed_sd`` in z units, ~0.7 accuracy points) clears 0."""
    out = []
    for _ in range(n_seeds):
        right = z + rng.normal(0, 0.35, len(z)) + rng.normal(0, seed_sd) + shift > 0
        out.append(np.where(right, y, (y + 1 + rng.integers(0, n_classes - 1, len(y))) % n_classes))
    return out


def _called_different(reps, n, shift, seed_sd, seed=0):
    """Share of repetitions where the first-seed test (old) / the seed-aware test (new)
    calls A and B different at alpha 0.05; three seeds per model."""
    rng = np.random.default_rng(seed)
    old = new = 0
    for r in range(reps):
        z, y = rng.normal(0.6, 1.0, n), rng.integers(0, 10, n)
        a = _seeded_fits(rng, z, y, 3, shift, seed_sd)
        b = _seeded_fits(rng, z, y, 3, 0.0, seed_sd)
        old += paired_bootstrap(y, a[0], b[0], n_boot=500, seed=r)["p_value"] < 0.05
        res = compare(y, a, b, n_boot=500, seed=r)
        assert res["n_seeds_a"] == res["n_seeds_b"] == 3 and "seed" in res["method"]
        new += res["p_value"] < 0.05
    return old / reps, new / reps


def test_identical_models_with_different_seeds_are_not_called_different():
    # Known answer: A and B are the same model, fitted with different seeds. At alpha 0.05
    # at most 5 % of repetitions may call them different (+ the binomial margin of 200).
    reps = 200
    old, new = _called_different(reps, n=1000, shift=0.0, seed_sd=0.03)
    print(
        f"false-positive rate over {reps} repetitions: first seed only {old:.3f}, seed-aware {new:.3f}"
    )
    assert new <= 0.05 + 1.645 * np.sqrt(0.05 * 0.95 / reps)
    assert old > 0.10  # the simulation does fool the test of the first seed's predictions


def test_a_real_difference_of_a_few_points_is_still_found():
    rng = np.random.default_rng(1)
    z, y = rng.normal(0.6, 1.0, 4000), rng.integers(0, 10, 4000)
    a, b = _seeded_fits(rng, z, y, 3, shift=0.12), _seeded_fits(rng, z, y, 3)
    res = compare(y, a, b, n_boot=1000)
    print(f"accuracy A {res['a']:.4f}, B {res['b']:.4f}, p {res['p_value']:.4f}")
    assert 0.02 < res["diff"] < 0.06 and res["verdict"] == "A better"
    _, power = _called_different(40, n=4000, shift=0.12, seed_sd=0.03, seed=2)
    print(f"a ~4-point difference found in {power:.0%} of 40 repetitions")
    assert power >= 0.8


def test_one_seed_each_is_the_paired_bootstrap():
    y, proba = _problem()
    other = np.roll(proba, 1, axis=0)
    single = compare(y, [proba], [other], n_boot=300, seed=4)
    assert single == paired_bootstrap(y, proba, other, n_boot=300, seed=4)
    assert single["method"].startswith("paired bootstrap of test rows (one fit")
