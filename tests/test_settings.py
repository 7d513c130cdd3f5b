"""artprobe.settings: one typed settings object per stage, and the schema the only home of a
default. The objects carry no defaults; built from a config that validation filled, every
field is the schema's default; the rules' params keep the values they had (existing results
stay up to date); no package function of these stages repeats a default of the schema."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import yaml
from conftest import validated

from artprobe import settings as S
from artprobe.config import check_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())


def schema_defaults(*path: str) -> dict:
    """key -> default of the schema section at ``path`` (``then`` where defaults are filled
    into an object that may also be null; ``items``, ``additionalProperties``: the schema of
    a list's items, of a mapping's values)."""
    node = SCHEMA
    for key in path:
        node = node[key] if key in ("items", "additionalProperties") else node["properties"][key]
    node = node.get("then", node)
    return {k: v["default"] for k, v in node["properties"].items() if "default" in v}


def test_no_settings_class_carries_a_default():
    classes = [c for _, c in inspect.getmembers(S, dataclasses.is_dataclass)]
    assert len(classes) >= 8
    for cls in classes:
        for f in dataclasses.fields(cls):
            assert f.default is dataclasses.MISSING, f"{cls.__name__}.{f.name}"
            assert f.default_factory is dataclasses.MISSING, f"{cls.__name__}.{f.name}"


@pytest.fixture(scope="module")
def config() -> dict:
    """The required keys only (and the demo and few-shot curves switched on with {}), checked
    as the workflow's parse does (which gives the demo dataset its source folder)."""
    cfg = validated(demo={}, probe={"fewshot": {}})
    check_config(cfg)
    return cfg


@pytest.fixture(scope="module")
def dataset(config) -> dict:
    """The config's one dataset's settings."""
    return S.dataset_entry(config, config["use_datasets"][0])


def _agree(obj, defaults: dict, names: dict | None = None) -> list[str]:
    """The fields of ``obj`` whose value is not the schema's default of the key it comes from
    (``names``: field -> key where they differ); a null default is resolved (below)."""
    wrong = []
    for field in dataclasses.fields(obj):
        key = (names or {}).get(field.name, field.name)
        if defaults.get(key) is not None and getattr(obj, field.name) != defaults[key]:
            wrong.append(f"{field.name}={getattr(obj, field.name)!r}, schema {defaults[key]!r}")
    return wrong


def test_every_object_built_from_a_validated_config_has_the_schemas_defaults(config, dataset):
    probe = schema_defaults("probe")
    item = ("datasets", "additionalProperties")  # a dataset's keys: datasets.<name>
    cases = {
        "demo": (S.demo_settings(dataset), schema_defaults(*item, "demo"), None),
        "split": (S.split_settings(dataset), schema_defaults(*item, "split"), None),
        "source": (S.source_settings(dataset), schema_defaults(*item), None),
        "runtime": (S.embed_runtime(config, threads=4), schema_defaults("embed_runtime"), None),
        "model": (
            S.model_spec(config, "m", None),
            {**schema_defaults("models", "items"), **schema_defaults("embed")},
            None,
        ),
        "probe_runtime": (S.probe_runtime(config, threads=2), probe, None),
        "fewshot": (
            S.fewshot_settings(config, {"linear": {}}),
            schema_defaults("probe", "fewshot"),
            None,
        ),
    }
    fit = S.fit_spec(config, {"linear": {}}, "m", "genre", "linear")
    per_target = {"drop_labels": "", "min_class_count": ""}  # looked up in {} (checked below)
    cases["fit"] = (fit, probe, {"n_boot": "bootstrap", **per_target})
    checked = 0
    for name, (obj, defaults, names) in cases.items():
        assert not _agree(obj, defaults, names), name
        checked += sum(
            f.name in defaults or f.name in (names or {}) for f in dataclasses.fields(obj)
        )
    assert checked >= 20  # the comparison is not empty
    # what the schema leaves null is resolved, not defaulted: workers are the job's threads,
    # the seeds [seed], the few-shot classifier the first linear one
    assert S.embed_runtime(config, threads=4).workers == 4
    assert fit.seeds == [probe["seed"]]
    assert fit.drop_labels == [] and fit.min_class_count is None  # the target's, of {}
    assert S.fewshot_settings(config, {"linear": {}}).classifier == "linear"


def test_the_rules_params_keep_their_values(config, dataset):
    """The rerun trigger of each rule holds what it held before the settings objects, so a
    results folder made before them stays up to date (a pooled model has no ``features``
    key, a model without a weights file no ``weights``, a fixed precision no ``device``)."""
    model = S.model_spec(config, "m", None)
    assert S.embed_params(model, "auto") == {
        "timm_name": "resnet18",
        "pretrained": True,
        "decode": "fast",
        "precision": "auto",
        "device": "auto",
    }
    fixed = dataclasses.replace(model, precision="fp32", features="cls", weights="/w.pt")
    assert list(S.embed_params(fixed, "cpu")) == [
        "timm_name",
        "pretrained",
        "decode",
        "precision",
        "weights",
        "features",
    ]
    split = S.split_settings(dataset)
    assert list(split.rule_params()) == [
        "method",
        "seed",
        "val_fraction",
        "test_fraction",
        "stratify_by",
    ]
    group = dataclasses.replace(split, method="group", group_by="artist")
    assert list(group.rule_params())[-2:] == ["group_by", "ungrouped"]
    fit = S.fit_spec(config, {"linear": {"c": 1}}, "m", "genre", "linear")
    assert list(fit.rule_params()) == [
        "kind",
        "params",
        "drop_labels",
        "min_class_count",
        "seed",
        "seeds",
        "n_boot",
    ]
    assert S.FitSpec(model="m", target="genre", classifier="linear", **fit.rule_params()) == fit
    curve = S.fewshot_spec(S.fewshot_settings(config, {"linear": {}}), config, "m", "genre")
    assert list(curve.rule_params()) == [
        "shots",
        "trials",
        "params",
        "drop_labels",
        "min_class_count",
        "seed",
    ]
    assert S.demo_settings(dataset).rule_params() == {
        "rows": 360,
        "files": 3,
        "seed": 0,
        "broken": 2,
        "layout": "wikiart",
    }


def _schema_keys(node=SCHEMA) -> set[str]:
    """Every key the schema gives a default, at any depth."""
    keys = set()
    for key, sub in node.get("properties", {}).items():
        if "default" in sub and sub["default"] not in (None, {}, []):
            keys.add(key)
        values = sub.get("additionalProperties")  # a mapping's values (datasets.<name>)
        keys |= (
            _schema_keys(sub)
            | _schema_keys(sub.get("then", {}))
            | _schema_keys(sub.get("items", {}))
            | _schema_keys(values if isinstance(values, dict) else {})
        )
    return keys


#: the modules of the stages outside the report (artprobe/report/ and metrics are others')
STAGE_MODULES = [
    "artprobe.config",
    "artprobe.settings",
    "artprobe.stages.generate_demo",
    "artprobe.stages.manifest",
    "artprobe.stages.shard",
    "artprobe.stages.split",
    "artprobe.stages.classify",
    "artprobe.stages.fewshot",
    "artprobe.probes.curve",
    "artprobe.stages.embed",
    "artprobe.embedding.preprocess",
    "artprobe.embedding.features",
]


@pytest.mark.parametrize("module", STAGE_MODULES)
def test_no_stage_function_repeats_a_default_of_the_schema(module):
    """A parameter named like a schema key with a default (seed, batch_size, shots, decode...)
    has no default of its own: the value comes from the settings object."""
    import importlib

    mod = importlib.import_module(module)
    keys = _schema_keys()
    assert {"seed", "batch_size", "shots", "trials", "decode", "val_fraction", "layout"} <= keys
    found = []
    for name, fn in inspect.getmembers(mod, inspect.isfunction):
        if fn.__module__ != module:
            continue
        for p in inspect.signature(fn).parameters.values():
            if p.name in keys and p.default is not inspect.Parameter.empty:
                found.append(f"{name}({p.name}={p.default!r})")
    assert not found, found


# ---------------------------------------------------------------------------------- report


def test_the_report_settings_have_the_schemas_defaults(config, dataset):
    """ThumbnailSettings, ReportSettings and CompareSettings built from a validated config:
    every field the schema's default (``report:``, nested ``gallery`` / ``confusions``
    included, and ``probe:``'s seed, bootstrap and row filters)."""
    report = {
        **schema_defaults("report"),
        "gallery": schema_defaults("report", "gallery"),
        "confusions": schema_defaults("report", "confusions"),
    }
    probe = schema_defaults("probe")
    thumbs = S.thumbnail_settings(config, dataset["targets"], center=False)
    assert not _agree(thumbs, {**report, **probe})
    assert thumbs.gallery == {"queries": 12, "k": 5} and thumbs.map_rows == 2000
    targets = schema_defaults("datasets", "additionalProperties")["targets"]
    assert thumbs.targets == dataset["targets"] == targets
    drawing = S.report_settings(config)
    assert not _agree(drawing, {**report, **probe})
    assert (drawing.map_method, drawing.map_grid, drawing.pairs_targets) == ("tsne", 32, None)
    compare = S.compare_settings(config)
    assert not _agree(compare, probe, {"n_boot": "bootstrap"})
    assert compare.n_boot == probe["bootstrap"]


def test_the_report_rules_params_are_plain_values(config, dataset):
    """Each report rule's params (its rerun trigger) are its settings object as plain values,
    and the job rebuilds the object from them unchanged."""
    import json

    for obj in (
        S.thumbnail_settings(config, dataset["targets"], center=True),
        S.report_settings(config),
        S.compare_settings(config),
    ):
        params = obj.rule_params()
        assert json.loads(json.dumps(params)) == params
        assert type(obj)(**params) == obj


REPORT_MODULES = [
    "artprobe.report.compare",
    "artprobe.report.select",
    "artprobe.report.thumbnails",
    "artprobe.report.build",
    "artprobe.report.tables",
    "artprobe.report.verdict",
    "artprobe.report.atlas",
    "artprobe.report.plots",
    "artprobe.report.sheets",
    "artprobe.report.html",
]


@pytest.mark.parametrize("module", REPORT_MODULES)
def test_no_report_function_repeats_a_default_of_the_schema(module):
    test_no_stage_function_repeats_a_default_of_the_schema(module)
    import importlib

    assert not hasattr(importlib.import_module(module), "DEFAULTS")
