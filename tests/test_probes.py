"""artprobe.probes: parameter checks and known answers for mlp, linear and knn."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from artprobe import probes
from artprobe.probes import HISTORY_COLUMNS, names, resolve_params
from artprobe.probes.fit import fit
from artprobe.probes.shared import FitContext, FitData

KINDS = names()  # the registered kinds

# Small, fast settings; the protocol itself (hidden 3000, lr 1e-4) is exercised by
# test_mlp_matches_reference_keras_loop and the benchmark.
FAST = {
    "mlp": {"hidden": 64, "lr": 1e-3, "epochs": 10},
    "linear": {"n_c": 5},
    "knn": {"k": 10},
}
CUDA = torch.cuda.is_available()


def gaussians(n_per=(150, 150, 150), dim=16, sep=6.0, seed=0):
    """Well-separated Gaussian classes (means sep apart in random directions)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(len(n_per), dim))
    means *= sep / np.linalg.norm(means, axis=1, keepdims=True)
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per)])
    X = means[y] + rng.normal(size=(len(y), dim))
    perm = rng.permutation(len(y))
    return X[perm].astype(np.float32), y[perm].astype(np.int64)


def splits(X, y, val=0.2, test=0.3):
    n = len(y)
    a, b = int(n * (1 - val - test)), int(n * (1 - test))
    return X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:]


def run(kind, data, n_classes, seed=0, **overrides):
    params = resolve_params(kind, {**FAST[kind], **overrides})
    return fit(kind, params, FitData(*data[:5]), FitContext(n_classes, seed, "cpu"), threads=1)


# -- parameters ------------------------------------------------------------------------


def test_resolve_params_defaults():
    mlp = resolve_params("mlp", {})
    assert mlp == {
        "hidden": 3000,
        "l2": 0.01,
        "lr": 1e-4,
        "decay_rate": 0.9,
        "decay_steps": 10000.0,
        "epsilon": 1e-7,
        "batch_size": 32,
        "epochs": 20,
        "patience": 3,
        "min_delta": 0.0,
        "restore_best": False,
        "class_weight": "none",
        "standardize": False,
        "keras_epsilon": False,
    }
    assert resolve_params("knn", {"k": 5})["k"] == [5]  # one value or a grid: always a list
    assert resolve_params("knn", {})["k"] == [10, 20, 50, 100, 200]
    assert resolve_params("linear", None)["normalize"] == "standardize"
    assert resolve_params("linear", {"class_weight": None})["class_weight"] == "none"
    assert resolve_params("mlp", resolve_params("mlp", {})) == mlp  # idempotent


@pytest.mark.parametrize(
    "kind, params, pattern",
    [
        (
            "mlp",
            {"lr_rate": 1e-3},
            r"classifier 'mlp': unknown key 'lr_rate' \(known: .*batch_size",
        ),
        ("linear", {"C": 1.0}, r"unknown key 'C'"),
        ("knn", {"k": 0}, r"classifier 'knn': key 'k' must be an integer >= 1"),
        ("knn", {"k": 2.5}, r"key 'k'"),
        ("mlp", {"lr": -1}, r"key 'lr' must be a number"),
        ("mlp", {"restore_best": "yes"}, r"key 'restore_best' must be true or false"),
        ("mlp", {"epochs": True}, r"key 'epochs'"),
        ("mlp", {"class_weight": "auto"}, r"key 'class_weight' must be one of none, balanced"),
        ("linear", {"normalize": "pca"}, r"key 'normalize'"),
        ("linear", {"c_min": 10, "c_max": 1}, r"key 'c_max'"),
        ("knn", {"weighting": "distance"}, r"key 'weighting'"),
        ("knn", {"k": [10, 0]}, r"key 'k' must be an integer >= 1"),
        ("knn", {"temperature": []}, r"key 'temperature' must be a value or a non-empty list"),
    ],
)
def test_resolve_params_errors_name_the_key(kind, params, pattern):
    with pytest.raises(ValueError, match=pattern):
        resolve_params(kind, params)


def test_resolve_params_unknown_kind_and_name():
    with pytest.raises(
        ValueError, match=r"unknown classifier kind 'svm' \(known: mlp, linear, knn\)"
    ):
        resolve_params("svm", {})
    with pytest.raises(ValueError, match=r"classifier 'mlp_big': unknown key 'x'"):
        resolve_params("mlp", {"x": 1}, name="mlp_big")


# -- all kinds -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_separable_gaussians(kind):
    data = splits(*gaussians())
    res = run(kind, data, n_classes=4)  # class 3 absent from train
    P = res.proba_test
    assert P.dtype == np.float32 and P.shape == (len(data[5]), 4)
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-5)
    assert (P.argmax(1) == data[5]).mean() >= 0.95
    assert res.info["kind"] == kind and res.info["device"] == "cpu"
    if kind == "mlp":
        assert [list(r) for r in res.history] == [list(HISTORY_COLUMNS)] * len(res.history)
    else:
        assert res.history == []


@pytest.mark.parametrize("kind", KINDS)
def test_shuffled_labels_near_chance(kind):
    X, y = gaussians(n_per=(400, 400, 400, 400), seed=1)
    y = np.random.default_rng(5).permutation(y)  # labels carry no information
    res = run(kind, splits(X, y, test=0.5), n_classes=4)
    acc = (res.proba_test.argmax(1) == splits(X, y, test=0.5)[5]).mean()
    assert abs(acc - 0.25) < 0.07  # 800 test rows: sd ~0.015


@pytest.mark.parametrize("kind", KINDS)
def test_balanced_class_weight_favours_minority(kind):
    # Overlapping classes, 9:1 in train; the test set is balanced.
    X, y = gaussians(n_per=(900, 100), dim=4, sep=1.5, seed=2)
    Xt, yt = gaussians(n_per=(300, 300), dim=4, sep=1.5, seed=2)
    data = (X[:800], y[:800], X[800:], y[800:], Xt)
    minority, balanced_acc = {}, {}
    for cw in ("none", "balanced"):
        pred = run(kind, data, n_classes=2, class_weight=cw).proba_test.argmax(1)
        minority[cw] = (pred == 1).mean()
        balanced_acc[cw] = np.mean([(pred == yt)[yt == c].mean() for c in (0, 1)])
    assert minority["balanced"] > minority["none"] + 0.1, minority
    assert minority["none"] < 0.4  # unweighted, every kind leans to the majority
    # ... and the weights help balanced accuracy on the balanced test set (~0.78 -> ~0.89)
    assert balanced_acc["balanced"] > balanced_acc["none"] + 0.05, balanced_acc


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_result(kind):
    data = splits(*gaussians(sep=2.0, seed=3))
    a, b = run(kind, data, 3, seed=7), run(kind, data, 3, seed=7)
    np.testing.assert_array_equal(a.proba_test, b.proba_test)
    assert a.history == b.history
    if kind == "mlp":
        c = run(kind, data, 3, seed=8)
        assert not np.array_equal(a.proba_test, c.proba_test)


# -- mlp -------------------------------------------------------------------------------


def reference_keras_loop(p, X, y, n_classes, seed, epochs):
    """The protocol written naively: autograd L2 term, float lr set per step."""
    gen = torch.Generator().manual_seed(seed)
    model = probes.MLP(X.shape[1], p["hidden"], n_classes).keras_init_(gen)
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"], eps=p["epsilon"])
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), p["batch_size"]):
            idx = perm[i : i + p["batch_size"]]
            opt.param_groups[0]["lr"] = p["lr"] * p["decay_rate"] ** (step / p["decay_steps"])
            opt.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx]) + p["l2"] * model.fc1.weight.pow(2).sum()
            loss.backward()
            opt.step()
            step += 1
    return model


def test_mlp_matches_reference_keras_loop():
    X, y = gaussians(n_per=(70, 60, 50), dim=12, sep=2.0, seed=4)
    data = splits(X, y)
    p = resolve_params("mlp", {"hidden": 300, "epochs": 3, "decay_steps": 20, "l2": 0.05})
    res = fit("mlp", p, FitData(*data[:5]), FitContext(3, seed=11, device="cpu"), threads=1)
    assert res.info["epochs_run"] == 3 and res.info["steps"] == 3 * math.ceil(len(data[0]) / 32)
    model = reference_keras_loop(p, data[0], data[1], 3, seed=11, epochs=3)
    with torch.no_grad():
        ref = torch.softmax(model(torch.from_numpy(data[4])), 1).numpy()
    np.testing.assert_allclose(res.proba_test, ref, atol=2e-5)
    # lr column: Keras ExponentialDecay at the epoch's last step
    last = res.info["steps"] - 1
    assert res.history[-1]["lr"] == pytest.approx(1e-4 * 0.9 ** (last / 20))
    # logged losses include the L2 term, as Keras reports them
    reg = 0.05 * model.fc1.weight.pow(2).sum().item()
    assert res.history[-1]["val_loss"] > reg


def test_mlp_early_stopping_keras_semantics():
    # Random labels and a big learning rate: the net memorises train, val loss rises.
    X, y = gaussians(n_per=(200, 200, 200), dim=8, seed=5)
    y = np.random.default_rng(0).permutation(y)
    data = splits(X, y)
    res = run("mlp", data, 3, hidden=256, lr=1e-2, l2=0.0, epochs=30, patience=2)
    h = res.history
    assert res.info["stopped_early"] and len(h) < 30
    best = min(range(len(h)), key=lambda i: h[i]["val_loss"])
    assert res.info["best_epoch"] == best + 1 == len(h) - 2  # patience 2 after the best
    assert all(r["val_loss"] >= h[best]["val_loss"] for r in h[best + 1 :])
    assert [r["epoch"] for r in h] == list(range(1, len(h) + 1))
    assert h[-1]["train_accuracy"] > h[0]["train_accuracy"]
    assert res.info["restored_best"] is False  # Keras default: keep the last weights

    # restore_best=True gives the weights of the best epoch: the same as training
    # exactly best_epoch epochs (same seed, same permutations).
    restored = run(
        "mlp", data, 3, hidden=256, lr=1e-2, l2=0.0, epochs=30, patience=2, restore_best=True
    )
    assert restored.info["restored_best"] is True
    short = run(
        "mlp", data, 3, hidden=256, lr=1e-2, l2=0.0, epochs=res.info["best_epoch"], patience=100
    )
    np.testing.assert_allclose(restored.proba_test, short.proba_test, atol=1e-6)


def test_mlp_graph_capture_failure_falls_back_to_eager():
    # On the CPU the capture cannot work: make_step must hand back eager steps with the
    # parameters untouched, so training is the same as with steps that never tried.
    from artprobe.probes.mlp_step import EagerStep, make_step

    X, y = gaussians(n_per=(40, 40), dim=5, seed=10)
    X, y, cpu = torch.from_numpy(X), torch.from_numpy(y), torch.device("cpu")
    p = resolve_params("mlp", {"hidden": 16})
    models = [probes.MLP(5, 16, 2).keras_init_(torch.Generator().manual_seed(0)) for _ in "ab"]
    tried = make_step(models[0], p, X, y, None, cpu, use_graph=True)
    assert isinstance(tried, EagerStep) and tried.cuda_graph is False and tried.step_count == 0
    for t, ref in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(t, ref) and t.grad is None
    plain = EagerStep(models[1], p, X, y, None, cpu)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(1))
    assert tried.epoch(perm) == plain.epoch(perm)
    assert tried.step_count == plain.step_count == math.ceil(len(X) / 32)
    for t, ref in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(t, ref)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_mlp_cuda_graph_matches_eager():
    data = splits(*gaussians(n_per=(100, 110, 95), dim=16, sep=2.0))
    p = resolve_params("mlp", {"hidden": 128, "epochs": 3, "lr": 1e-3, "class_weight": "balanced"})
    g = fit("mlp", p, FitData(*data[:5]), FitContext(3, 0, "cuda", cuda_graph=True))
    e = fit("mlp", p, FitData(*data[:5]), FitContext(3, 0, "cuda", cuda_graph=False))
    assert g.info["cuda_graph"] and not e.info["cuda_graph"]
    np.testing.assert_allclose(g.proba_test, e.proba_test, atol=1e-4)
    for rg, re_ in zip(g.history, e.history):
        assert rg["train_loss"] == pytest.approx(re_["train_loss"], rel=1e-4)
        assert rg["lr"] == pytest.approx(re_["lr"], rel=1e-6)
    # fewer rows than the warm-up's batches, and a partial last batch
    tiny_rows = FitData(data[0][:40], data[1][:40], *data[2:5])
    tiny = fit("mlp", p, tiny_rows, FitContext(3, 0, "cuda", cuda_graph=True))
    assert tiny.info["cuda_graph"] and tiny.info["steps"] == 3 * 2


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("kind", ["linear", "knn"])
def test_cuda_matches_cpu(kind):
    data = splits(*gaussians(sep=2.0, seed=9))
    params = resolve_params(kind, FAST[kind])
    cpu = fit(kind, params, FitData(*data[:5]), FitContext(3, device="cpu"))
    gpu = fit(kind, params, FitData(*data[:5]), FitContext(3, device="cuda"))
    assert gpu.info["device"].startswith("cuda")
    np.testing.assert_allclose(gpu.proba_test, cpu.proba_test, atol=2e-3)


# -- linear ----------------------------------------------------------------------------


def test_linear_matches_sklearn_at_fixed_C():
    from sklearn.linear_model import LogisticRegression

    X, y = gaussians(n_per=(60, 50, 40), dim=6, sep=2.0, seed=6)
    data = splits(X, y)
    C = 0.3
    res = run("linear", data, 3, normalize="none", c_min=C, c_max=C, n_c=1, refit="train", tol=1e-8)
    assert res.info["C"] == C and res.info["converged"] and res.info["warnings"] == []
    sk = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(data[0], data[1])
    np.testing.assert_allclose(res.proba_test, sk.predict_proba(data[4]), atol=2e-4)


def softmax_objective(X, y, W, b, C):
    """scikit-learn 1.9's lbfgs objective (mean form): mean CE + ||W||^2 / (2 C n)."""
    Z = X @ W + b
    Z = Z - Z.max(1, keepdims=True)
    ce = np.log(np.exp(Z).sum(1)) - Z[np.arange(len(y)), y]
    return ce.mean() + (W**2).sum() / (2 * C * len(y))


def unbalanced_129(n=1500, d=32, seed=0):
    """129 classes with Zipf-like counts (1 to ~220 rows), correlated, offset features."""
    rng = np.random.default_rng(seed)
    freq = 1.0 / np.arange(1, 130) ** 1.1
    y = rng.choice(129, size=n, p=freq / freq.sum())
    y[:129] = np.arange(129)  # every class in train
    means = rng.normal(size=(129, d)) * 0.7
    A = np.eye(d) + 0.6 * np.random.default_rng(99).normal(size=(d, d))
    X = (means[y] + rng.normal(size=(n, d))) @ A + 3.0
    return X.astype(np.float32), y


@pytest.mark.slow  # scikit-learn's reference at tol 1e-10 takes minutes at the largest C
@pytest.mark.parametrize("C", [1e-4, 1e-2, 1.0, 1e2, 1e4])
def test_linear_objective_matches_sklearn_at_every_C(C):
    # "converged" promises an objective within tol = 1e-4 (relative) of the optimum,
    # whatever C * n (here 0.15 to 1.5e7)
    import warnings

    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    X, y = unbalanced_129()
    Xte, _ = unbalanced_129(seed=1)
    res = run("linear", (X, y, X[:0], y[:0], Xte), 129, normalize="none", c_min=C, c_max=C, n_c=1)
    (point,) = res.info["grid"]
    assert point["converged"] and point["stop"] == "tolerance" and res.info["warnings"] == []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs may end on its ftol before tol=1e-10
        sk = LogisticRegression(C=C, tol=1e-10, max_iter=100_000).fit(X, y)
    best = softmax_objective(X.astype(np.float64), y, sk.coef_.T, sk.intercept_, C)
    assert point["train_objective"] <= best * (1 + 1e-4), (point, best)
    # Where C * n is large the optimum is flat (near-separable rare classes): objectives
    # within 1e-4 still move test rows near a boundary, and lbfgs itself stops on its ftol
    # above the optimum, so the predictions are compared strictly up to C = 1 only, and
    # beyond that only where scikit-learn got as low as we did (at C = 1e4 it stops short,
    # and agreeing with a point that is not the optimum proves nothing).
    agree = (res.proba_test.argmax(1) == sk.predict(Xte)).mean()
    if C <= 1:
        assert agree >= 0.99, agree
    elif best <= point["train_objective"] * (1 + 1e-6):
        assert agree >= 0.9, (agree, point["train_objective"], best)


def test_linear_stop_reasons_are_true():
    # the same problem at C = 100: 3 Newton iterations are not enough, and the record says so
    X, y = unbalanced_129(n=600, d=16, seed=3)
    kw = {"normalize": "none", "c_min": 100.0, "c_max": 100.0, "n_c": 1, "refit": "train"}
    capped = run("linear", (X, y, X[:0], y[:0], X[:50]), 129, max_iter=3, **kw)
    full = run("linear", (X, y, X[:0], y[:0], X[:50]), 129, **kw)
    (pc,), (pf,) = capped.info["grid"], full.info["grid"]
    assert pc["iterations"] == 3 and pc["stop"] == "max_iter" and not pc["converged"]
    assert (
        not capped.info["converged"]
        and "did not converge within max_iter=3" in capped.info["warnings"][0]
    )
    assert (
        pf["stop"] == "tolerance"
        and pf["converged"]
        and pf["iterations"] > 3
        and full.info["warnings"] == []
    )
    # the recorded objectives are the final ones, and the gap the capped run reports is real
    assert pf["gap_estimate"] <= 1e-5 and pc["gap_estimate"] > 1e-5
    assert pc["train_objective"] > pf["train_objective"] * (1 + 1e-5)


def test_linear_float32_reaches_the_float64_optimum():
    # above _F64_BELOW the fit runs in float32 (falling back to float64 only if it stalls)
    from artprobe.probes import linear

    X, y = unbalanced_129(n=1500, d=32, seed=4)
    kw = {"normalize": "none", "c_min": 1.0, "c_max": 1.0, "n_c": 1, "refit": "train"}
    f64 = run("linear", (X, y, X[:0], y[:0], X[:100]), 129, **kw).info["grid"][0]
    old = linear._F64_BELOW
    linear._F64_BELOW = 0
    try:
        f32 = run("linear", (X, y, X[:0], y[:0], X[:100]), 129, **kw).info["grid"][0]
    finally:
        linear._F64_BELOW = old
    assert f64["dtype"] == "float64" and f32["dtype"] in ("float32", "float64") and f32["converged"]
    assert f32["train_objective"] == pytest.approx(f64["train_objective"], rel=1e-4)


def test_linear_classes_absent_from_train_get_probability_zero():
    X, y = gaussians(n_per=(80, 80, 80), dim=6, sep=6.0, seed=2)
    data = splits(X, y)
    res = run("linear", data, 5)  # classes 3 and 4 have no rows anywhere
    assert res.info["converged"] and np.all(res.proba_test[:, 3:] == 0)
    assert (res.proba_test.argmax(1) == data[5]).mean() > 0.95


def test_linear_picks_strong_regularisation_for_noise_weak_for_signal():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(600, 20)).astype(np.float32)
    y = rng.integers(0, 3, 600)
    noise = run("linear", splits(X, y), 3, n_c=7, select_by="log_loss")
    coarse = [g["C"] for g in noise.info["grid"] if g["phase"] == "coarse"]
    # strong to weak, 1e-6, 1e-4, ...; nothing beats the prior, so patience never ends it
    assert coarse == pytest.approx([1e-6, 1e-4, 1e-2, 1, 1e2, 1e4, 1e6])
    assert noise.info["C"] < 1e-4, noise.info["grid"]
    refined = [g["C"] for g in noise.info["grid"] if g["phase"] == "refine"]
    assert len(refined) == 3 and all(1e-6 < c < 1e-4 for c in refined)  # halving log steps
    assert noise.info["C_at_grid_edge"] == (noise.info["C"] == 1e-6)

    clean = run(
        "linear",
        splits(*gaussians(sep=8.0, seed=7)),
        3,
        n_c=7,
        select_by="log_loss",
        refit="train+val",
    )
    assert clean.info["C"] >= 100 * noise.info["C"], clean.info["grid"]
    assert clean.info["refit"]["on"] == "train+val" and clean.info["refit"]["converged"]
    for g in clean.info["grid"]:
        assert set(g) >= {"C", "phase", "val_accuracy", "val_log_loss", "iterations", "converged"}


def test_linear_patience_waits_for_the_path_to_learn():
    # 30 classes, a weak signal: at strong regularisation val accuracy is the majority share
    # (or below it, as the first weights grow). Points there must not end the search.
    # (Counting those points, the search stopped at C=1e-4 and chose 1e-6: val 0.14.)
    rng = np.random.default_rng(17)
    y = rng.choice(30, size=1500, p=np.r_[0.16, np.full(29, 0.84 / 29)])
    X = (rng.normal(size=(30, 24))[y] * 0.4 + rng.normal(size=(1500, 24))).astype(np.float32)
    res = run("linear", splits(X, y), 30, n_c=13)
    first = res.info["grid"][0]["val_accuracy"]
    assert first == pytest.approx((splits(X, y)[3] == 0).mean())  # the prior: majority share
    assert res.info["val_accuracy"] > first + 0.2 and res.info["C"] > 1e-2, res.info["grid"]


def test_linear_l2_normalisation_and_path_patience():
    data = splits(*gaussians(seed=8))
    res = run("linear", data, 3, normalize="l2", n_c=9, path_patience=2)
    assert (res.proba_test.argmax(1) == data[5]).mean() >= 0.95
    phases = [g["phase"] for g in res.info["grid"]]
    assert phases.count("coarse") <= 9 and phases.count("refine") <= 2 * 3  # 3 rounds of 2


# -- knn -------------------------------------------------------------------------------


def test_knn_votes_known_answer():
    # Train points on the unit circle; the query at angle 0.
    ang = np.array([0.1, -0.2, 0.3, 2.0, 2.5, 3.0])
    Xtr = np.stack([np.cos(ang), np.sin(ang)], 1).astype(np.float32)
    ytr = np.array([0, 1, 0, 1, 1, 1])
    q = np.array([[5.0, 0.0]], dtype=np.float32)  # scale must not matter (cosine)
    p = resolve_params("knn", {"k": 3, "weighting": "uniform"})
    P = fit("knn", p, FitData(Xtr, ytr, q, [0], q), FitContext(3, device="cpu")).proba_test
    np.testing.assert_allclose(P, [[2 / 3, 1 / 3, 0]], atol=1e-6)
    p = resolve_params("knn", {"k": 3, "weighting": "similarity", "temperature": 0.1})
    P = fit("knn", p, FitData(Xtr, ytr, q, [0], q), FitContext(3, device="cpu")).proba_test
    w = np.exp(np.cos(ang[:3]) / 0.1)
    np.testing.assert_allclose(P[0, :2], [(w[0] + w[2]) / w.sum(), w[1] / w.sum()], atol=1e-5)
    # balanced: class 0 has 2 of 6 rows (weight 1.5), class 1 has 4 (weight 0.75)
    p = resolve_params("knn", {"k": 3, "weighting": "uniform", "class_weight": "balanced"})
    P = fit("knn", p, FitData(Xtr, ytr, q, [0], q), FitContext(3, device="cpu")).proba_test
    np.testing.assert_allclose(P, [[3 / 3.75, 0.75 / 3.75, 0]], atol=1e-6)


def test_fit_rejects_bad_inputs():
    X, y = gaussians(n_per=(10, 10), dim=3)
    p = resolve_params("knn", {})
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        fit("knn", p, FitData(X, y + 1, X, y, X), FitContext(2, device="cpu"))
    with pytest.raises(ValueError, match="widths differ"):
        fit("knn", p, FitData(X, y, X[:, :2], y, X), FitContext(2, device="cpu"))


def test_knn_top5_never_counts_classes_without_votes():
    # 3 neighbours, 129 classes: at most 3 classes get votes. The old vote shares tied all
    # the rest at 0, and the metric counted a true class among them as a top-5 hit.
    from sklearn.metrics import top_k_accuracy_score

    from artprobe.probes.metrics import evaluate

    rng = np.random.default_rng(0)
    K = 129
    Xtr = rng.normal(size=(600, 8)).astype(np.float32)
    ytr = rng.integers(0, K, 600)
    Xte = rng.normal(size=(300, 8)).astype(np.float32)
    yte = rng.integers(0, K, 300)
    p = resolve_params("knn", {"k": 3, "weighting": "uniform"})
    P = fit("knn", p, FitData(Xtr, ytr, Xte, yte, Xte), FitContext(K, device="cpu")).proba_test
    voted = P > 0
    assert voted.sum(1).max() <= 3
    top5 = evaluate(yte, P, [str(i) for i in range(K)], n_boot=0)["top5_accuracy"]["value"]
    assert top5 == pytest.approx(voted[np.arange(300), yte].mean())  # hits: voted true classes
    # With enough neighbours that every row has >= 5 voted classes, ties are broken, so
    # the metric is scikit-learn's exactly.
    p = resolve_params("knn", {"k": 60, "weighting": "uniform"})
    P = fit("knn", p, FitData(Xtr, ytr, Xte, yte, Xte), FitContext(K, device="cpu")).proba_test
    assert (P > 0).sum(1).min() >= 5
    assert len({tuple(np.sort(r)[-6:]) for r in P}) > 1  # not all rows alike
    assert all(len(set(r[r > 0].tolist())) == (r > 0).sum() for r in P)  # no ties left
    ours = evaluate(yte, P, [str(i) for i in range(K)], n_boot=0)["top5_accuracy"]["value"]
    assert ours == pytest.approx(top_k_accuracy_score(yte, P, k=5, labels=np.arange(K)))


def test_knn_ties_go_to_summed_similarity_then_the_seed():
    # Query at angle 0, k=5 uniform: class 2 (angles +-0.1) and class 0 (0.3 and 2.0) get
    # two votes each, class 1 (0.2) one. Class 2's neighbours are closer: it wins the tie
    # (the lowest class id used to).
    ang = np.array([0.3, 0.2, 0.1, -0.1, 2.0])
    Xtr = np.stack([np.cos(ang), np.sin(ang)], 1).astype(np.float32)
    ytr = np.array([0, 1, 2, 2, 0])
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    p = resolve_params("knn", {"k": 5, "weighting": "uniform"})
    P = fit("knn", p, FitData(Xtr, ytr, q, [0], q), FitContext(4, device="cpu")).proba_test[0]
    assert P.argmax() == 2 and P[2] > P[0] > P[1] > 0 and P[3] == 0
    np.testing.assert_allclose(P, [0.4, 0.2, 0.4, 0], atol=2e-4)  # shares barely moved
    # Two rows at the same cosine to q, one per class: a tie in votes and in summed
    # similarity goes to a class drawn with the seed.
    Xtr = np.array([[1.0, 0.5], [1.0, -0.5]], dtype=np.float32)  # same cosine to q
    winners = set()
    for seed in range(20):
        p = resolve_params("knn", {"k": 2, "weighting": "uniform"})
        P = fit("knn", p, FitData(Xtr, [0, 1], q, [0], q), FitContext(2, seed, "cpu")).proba_test
        winners.add(int(P[0].argmax()))
        again = fit("knn", p, FitData(Xtr, [0, 1], q, [0], q), FitContext(2, seed, "cpu"))
        assert int(again.proba_test[0].argmax()) == int(P[0].argmax())  # seeded
    assert winners == {0, 1}  # neither class id is favoured


def test_knn_chooses_k_and_temperature_on_val():
    data = splits(*gaussians(n_per=(300, 300, 300), dim=8, sep=3.0, seed=12))
    p = resolve_params("knn", {"k": [1, 5, 1000], "temperature": [0.05, 0.5], "center": True})
    res = fit("knn", p, FitData(*data[:5]), FitContext(3, device="cpu"))
    grid = res.info["grid"]
    assert [(g["k"], g["temperature"]) for g in grid] == [
        (1, 0.05),
        (1, 0.5),
        (5, 0.05),
        (5, 0.5),
        (450, 0.05),
        (450, 0.5),
    ]  # every combination, k capped at the 450 training rows
    best = max(grid, key=lambda g: g["val_accuracy"])
    assert res.info["val_accuracy"] == best["val_accuracy"]
    assert (res.info["k"], res.info["temperature"]) == (best["k"], best["temperature"])
    assert res.info["center"] is True
    # the chosen pair, fitted alone and scored on val, gives that accuracy
    one = {"k": res.info["k"], "temperature": res.info["temperature"], "center": True}
    on_val = FitData(*data[:4], data[2])
    again = fit("knn", resolve_params("knn", one), on_val, FitContext(3, device="cpu"))
    assert again.info["grid"] == []  # one combination: nothing to choose
    acc = (again.proba_test.argmax(1) == data[3]).mean()
    assert acc == pytest.approx(best["val_accuracy"])


def keras_adam_loop(p, X, y, n_classes, seed, epochs):
    """The protocol with Adam written out as Keras 3 does it (eps added to sqrt(v))."""
    gen = torch.Generator().manual_seed(seed)
    model = probes.MLP(X.shape[1], p["hidden"], n_classes).keras_init_(gen).double()
    params = list(model.parameters())
    m = [torch.zeros_like(t) for t in params]
    v = [torch.zeros_like(t) for t in params]
    X, y = torch.from_numpy(X).double(), torch.from_numpy(y)
    b1, b2, it = 0.9, 0.999, 0
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), p["batch_size"]):
            idx = perm[i : i + p["batch_size"]]
            lr = p["lr"] * p["decay_rate"] ** (it / p["decay_steps"])
            model.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx]) + p["l2"] * model.fc1.weight.pow(2).sum()
            loss.backward()
            it += 1
            alpha = lr * math.sqrt(1 - b2**it) / (1 - b1**it)
            with torch.no_grad():
                for t, mt, vt in zip(params, m, v):
                    mt += (t.grad - mt) * (1 - b1)
                    vt += (t.grad**2 - vt) * (1 - b2)
                    t -= alpha * mt / (vt.sqrt() + p["epsilon"])
    return model


def test_mlp_keras_epsilon_matches_keras_adam_by_hand():
    # A big epsilon makes the placement matter: torch's (eps on sqrt(v_hat)) drifts from
    # the Keras formula, keras_epsilon follows it to float32 rounding.
    X, y = gaussians(n_per=(50, 40, 30), dim=6, sep=2.0, seed=13)
    data = splits(X, y)
    base = {"hidden": 40, "epochs": 3, "lr": 1e-2, "decay_steps": 20, "epsilon": 1e-2}
    ref = keras_adam_loop(resolve_params("mlp", base), data[0], data[1], 3, seed=3, epochs=3)
    with torch.no_grad():
        want = torch.softmax(ref(torch.from_numpy(data[4]).double()), 1).numpy()
    got = {}
    for keras in (False, True):
        p = resolve_params("mlp", {**base, "keras_epsilon": keras})
        got[keras] = fit(
            "mlp", p, FitData(*data[:5]), FitContext(3, seed=3, device="cpu")
        ).proba_test
    np.testing.assert_allclose(got[True], want, atol=2e-5)
    assert np.abs(got[False] - want).max() > 1e-3  # the default placement is measurably off


def test_mlp_standardize_makes_feature_scale_irrelevant():
    data = splits(*gaussians(n_per=(80, 80, 80), dim=8, sep=2.0, seed=14))
    out = {}
    for std in (False, True):
        for scale in (0.1, 10.0):
            scaled = [a * scale if a.dtype == np.float32 else a for a in data]
            out[std, scale] = run("mlp", scaled, 3, standardize=std).proba_test
    np.testing.assert_allclose(out[True, 0.1], out[True, 10.0], atol=1e-4)
    assert np.abs(out[False, 0.1] - out[False, 10.0]).max() > 0.05  # raw features: it matters


def test_linear_path_ends_one_point_past_the_optimum():
    # separable-ish Gaussians with few train rows: weak regularisation overfits. Once a point
    # is worse than the best in val accuracy and log-loss (log-loss rising), the path ends
    # there, although path_patience=5 would wait for five such points.
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 400)
    X = (rng.normal(size=(4, 40))[y] * 0.35 + rng.normal(size=(400, 40))).astype(np.float32)
    data = splits(X, y)
    ended = run("linear", data, 4, n_c=13, path_patience=5, refine=0)
    full = run("linear", data, 4, n_c=13, path_patience=0, refine=0)
    coarse = ended.info["grid"]
    assert len(coarse) < len(full.info["grid"]) == 13, [g["C"] for g in coarse]
    last, best = coarse[-1], coarse[[g["C"] for g in coarse].index(ended.info["C"])]
    assert last["val_accuracy"] < best["val_accuracy"]
    assert last["val_log_loss"] > max(best["val_log_loss"], coarse[-2]["val_log_loss"])
    # the points it skipped would not have been chosen
    assert full.info["C"] == ended.info["C"]
