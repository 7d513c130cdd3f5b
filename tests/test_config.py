"""artprobe.config: the checks a JSON schema cannot express, each error naming its key, on the
shipped config.yaml (validated against the schema, defaults filled) with one thing changed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from artprobe import config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shipped() -> dict:
    from snakemake.utils import validate

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate(cfg, str(ROOT / "schemas" / "config.schema.yaml"))
    return cfg


def test_source_kinds():
    assert not config.is_local_source("huggan/wikiart")
    assert config.is_local_source("./results/demo/source")
    assert config.is_local_source("/data/wikiart")


def test_the_shipped_config_passes_and_resolves_every_classifier(shipped):
    resolved = config.check_config(copy.deepcopy(shipped))
    assert set(resolved) == {c["name"] for c in shipped["classifiers"]}
    for c in shipped["classifiers"]:
        assert set(config.defaults(c["kind"])) <= set(resolved[c["name"]])


def _same_names(cfg):
    cfg["models"][1]["name"] = cfg["models"][0]["name"]


def _weights_without_pretrained(cfg):
    cfg["models"][0].update(weights="/w.safetensors", pretrained=False)


@pytest.mark.parametrize(
    "edit,message",
    [
        (_same_names, r"config models: duplicate name\(s\)"),
        (_weights_without_pretrained, r"models\[.*\]\.weights: set, but pretrained is false"),
        (
            lambda c: c["classifiers"][0].update(epoch=3),
            r"config classifiers\[mlp\]: .*unknown key 'epoch'",
        ),
        (
            lambda c: c["probe"].update(drop_labels={"period": ["x"]}),
            r"probe.drop_labels: unknown target\(s\) \['period'\]",
        ),
        (
            lambda c: c["split"].update(stratify_by="period"),
            r"split.stratify_by: 'period' is not one of",
        ),
        (
            lambda c: c["split"].update(group_by="painter"),
            r"config split.group_by: set, but split.method is",
        ),
        (
            lambda c: c.update(demo={"rows": 10}),
            r"config demo: set, but dataset.source is a hub id",
        ),
    ],
)
def test_errors_name_the_key(shipped, edit, message):
    cfg = copy.deepcopy(shipped)
    edit(cfg)
    with pytest.raises(ValueError, match=message):
        config.check_config(cfg)


@pytest.mark.parametrize("device, held", [("auto", 1), ("cuda", 1), ("cuda:1", 1), ("cpu", 0)])
def test_embed_jobs_hold_a_gpu_unless_they_embed_on_the_cpu(shipped, device, held):
    """A CPU embed job does not queue for the one-GPU pool (the demo runs two at once);
    `auto` holds one, since only the job knows whether its node has a GPU."""
    cfg = copy.deepcopy(shipped)
    cfg["embed_runtime"]["device"] = device
    assert config.embed_gpus(cfg) == held
    assert config.embed_gpus(shipped) == 1  # config.yaml: auto
