"""The probe registry: one entry per kind says everything the rest of the code asks.

A fourth kind (a nearest-centroid probe defined here) is one function and one entry: it
passes the config checks and runs through the classify entry point without other code
knowing it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from artprobe.config import check_config, gains_from_gpu
from artprobe.probes import registry
from artprobe.probes.checks import CLASS_WEIGHT, choice
from artprobe.probes.shared import FitContext, FitData, FitResult
from artprobe.report.layout import report_layout
from artprobe.settings import ProbeRuntime
from artprobe.stages.classify import FitSpec, fit_paths, run_fit

ROOT = Path(__file__).resolve().parents[1]


def fit_centroid(params, data: FitData, ctx: FitContext) -> FitResult:
    """Nearest class centroid (classes absent from train get no probability)."""
    Xtr, ytr, Xte = data.X_train, data.y_train, data.X_test
    present = np.unique(ytr)
    centres = np.stack([Xtr[ytr == c].mean(axis=0) for c in present])
    if params["metric"] == "cosine":
        centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        Xte = Xte / np.linalg.norm(Xte, axis=1, keepdims=True)
    d = ((Xte[:, None, :] - centres[None]) ** 2).sum(-1)
    proba = np.zeros((len(Xte), ctx.n_classes), np.float32)
    proba[:, present] = np.exp(-(d - d.min(axis=1, keepdims=True)))
    return FitResult(proba, [], {"centres": len(present)})


@pytest.fixture
def centroid():
    kind = registry.register(
        registry.ProbeKind(
            name="centroid",
            spec={
                "metric": ("euclidean", choice("euclidean", "cosine")),
                "class_weight": CLASS_WEIGHT,
            },
            fit=fit_centroid,
            seeded=False,
        )
    )
    yield kind
    registry.unregister("centroid")


def _config(*classifiers) -> dict:
    from snakemake.utils import validate

    config = copy.deepcopy(yaml.safe_load((ROOT / "config.yaml").read_text()))
    config["classifiers"] = list(classifiers)
    validate(config, str(ROOT / "schemas/config.schema.yaml"))
    return config


def test_a_new_kind_is_one_function_and_one_entry(centroid, tmp_path):
    from test_classify import NAMES, merged

    resolved = check_config(_config({"name": "nc", "kind": "centroid", "metric": "cosine"}))
    assert resolved == {"nc": {"metric": "cosine", "class_weight": "none"}}
    with pytest.raises(ValueError, match=r"classifiers\[nc\].*key 'metric' must be one of"):
        check_config(_config({"name": "nc", "kind": "centroid", "metric": "manhattan"}))
    emb = merged(tmp_path / "emb.parquet")
    spec = FitSpec(
        model="m",
        target="genre",
        classifier="nc",
        kind="centroid",
        params=resolved["nc"],
        drop_labels=[],
        min_class_count=None,
        seed=0,
        seeds=[0, 1, 2],
        n_boot=50,
    )
    out = run_fit(emb, spec, fit_paths(tmp_path / "nc"), ProbeRuntime(device="cpu", threads=1))
    assert not gains_from_gpu("centroid")  # registered without the gpu flag: a CPU job
    assert out["accuracy"]["value"] > 0.95 and out["class_names"] == NAMES
    assert out["seeds"]["fitted"] == 1 and out["seeds"]["deterministic"]  # registered unseeded
    assert out["trained_on"] == ["train"] and out["n_train_rows"] == out["n_train"] == 280
    assert json.loads((tmp_path / "nc" / "metrics.json").read_text())["info"]["centres"] == 4
    files = report_layout(["m"], ["genre"], ["nc"], {"nc": "centroid"})
    assert not any(f.id.startswith("curves.") for f in files)  # no history: no curves


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(
        ValueError, match=r"unknown classifier kind 'svm' \(known: mlp, linear, knn\)"
    ):
        check_config(_config({"name": "s", "kind": "svm"}))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.get("mlp"))


def test_the_entries_answer_what_the_code_asks():
    assert registry.names() == ("mlp", "linear", "knn")
    assert [k for k in registry.names() if registry.get(k).seeded] == ["mlp", "knn"]
    assert [k for k in registry.names() if registry.get(k).has_history] == ["mlp"]
    assert [k for k in registry.names() if registry.get(k).fewshot] == ["linear"]
    # the SLURM profile's placement (rules/common.smk asks config.gains_from_gpu)
    assert [k for k in registry.names() if gains_from_gpu(k)] == ["mlp"]
    assert registry.defaults("linear")["refit"] == "train"  # like with like by default
    for k in registry.names():  # every fit function imports and has the one signature
        fn = registry.get(k).fit_function()
        n = fn.__code__.co_argcount
        assert list(fn.__code__.co_varnames[:n]) == ["p", "data", "ctx"]
    files = report_layout(["m"], ["genre"], ["a", "b"], {"a": "mlp", "b": "knn"})
    assert [f.id for f in files if f.id.startswith("curves.")] == ["curves.m.genre.a"]


def test_the_galleries_centre_as_the_registrys_neighbour_kind_does():
    """The report's neighbour galleries search the feature map of the first classifier whose
    kind the registry calls a nearest-neighbour probe; a ``center`` key of another kind
    (the old rule sniffed for the key) says nothing."""
    other = registry.register(
        registry.ProbeKind(
            name="centred", spec={"center": (True, lambda v: v)}, fit=fit_centroid, seeded=False
        )
    )
    try:
        kinds = {"c": "centred", "k": "knn", "k2": "knn"}
        params = {"c": {"center": True}, "k": {"center": False}, "k2": {"center": True}}
        assert [k for k in registry.names() if registry.get(k).neighbours] == ["knn"]
        assert registry.neighbour_center(kinds, params) is False  # the first knn's
        assert registry.neighbour_center({"k2": "knn"}, params) is True
        assert registry.neighbour_center({"c": "centred"}, params) is False  # no knn
    finally:
        registry.unregister(other.name)
