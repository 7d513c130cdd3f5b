"""artprobe.config: the checks a JSON schema cannot express, each error naming its key, on the
shipped config.yaml (validated against the schema, defaults filled) with one thing changed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from conftest import validated

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


def _leaderboard(cfg):
    """The dataset renamed leaderboard: results/leaderboard/ holds the cross-dataset one."""
    cfg["datasets"]["leaderboard"] = cfg["datasets"].pop("wikiart")
    cfg["use_datasets"] = ["leaderboard"]


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
            lambda c: c["datasets"]["wikiart"]["split"].update(stratify_by="period"),
            r"config datasets\.wikiart\.split\.stratify_by: 'period' is not one of",
        ),
        (
            lambda c: c["datasets"]["wikiart"]["split"].update(group_by="painter"),
            r"config datasets\.wikiart\.split\.group_by: set, but method is",
        ),
        (  # a demo is generated into results/<name>/source: a source elsewhere is a mistake
            lambda c: c["datasets"]["wikiart"].update(demo={"rows": 20}),
            r"config datasets\.wikiart\.source: a demo dataset is generated into "
            r"results/wikiart/source",
        ),
        (
            lambda c: c.update(use_datasets=["wikiart", "wikiarts"]),
            r"config use_datasets: 'wikiarts' is not under datasets: .*did you mean \['wikiart'\]",
        ),
        (_leaderboard, r"config datasets\.leaderboard: the name 'leaderboard' is taken"),
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


@pytest.mark.parametrize("key", ["dataset", "split", "demo"])
def test_the_single_dataset_keys_fail_in_one_line_naming_datasets(shipped, key):
    """A config (or overlay) of the single-dataset shape fails before the schema, whose message
    would only call the key unexpected: one line that says what to write instead."""
    config.check_legacy_keys(copy.deepcopy(shipped))  # the shipped shape passes
    old = {**copy.deepcopy(shipped), key: {}}
    with pytest.raises(ValueError) as err:
        config.check_legacy_keys(old)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"config {key}: replaced by `datasets:`")


def test_a_name_runs_once():
    """use_datasets names each dataset once (a second run of one would write its results
    folder twice)."""
    from snakemake_interface_common.exceptions import WorkflowError

    validated(use_datasets=["t"])
    with pytest.raises(WorkflowError, match="non-unique"):
        validated(use_datasets=["t", "t"])


def _two(**probe) -> dict:
    """A validated config of a hub dataset (genre, style) and a demo one (label), and a third
    defined but not used (its target: artist)."""
    return validated(
        datasets={
            "wikiart": {"source": "huggan/wikiart", "targets": ["genre", "style"]},
            "artbench": {"targets": ["label"], "demo": {"layout": "artbench"}},
            "other": {"source": "./other", "targets": ["artist"]},
        },
        use_datasets=["wikiart", "artbench"],
        probe=probe,
    )


def test_a_demo_dataset_is_generated_into_its_results_folder():
    cfg = _two()
    config.check_config(cfg)
    sources = {n: d["source"] for n, d in cfg["datasets"].items()}
    assert sources == {
        "wikiart": "huggan/wikiart",
        "artbench": "results/artbench/source",
        "other": "./other",
    }
    config.check_config(cfg)  # that source, now set, is the demo's own: still fine


@pytest.mark.parametrize("target", ["style", "label"])
def test_row_filters_may_name_a_target_of_any_dataset(target):
    config.check_config(_two(drop_labels={target: ["x"]}, min_class_count={target: 2}))


@pytest.mark.parametrize("target", ["artist", "period"])  # artist: only the unused dataset's
def test_row_filters_naming_no_used_datasets_target_fail(target):
    with pytest.raises(ValueError, match=rf"probe.drop_labels: unknown target\(s\) \['{target}'\]"):
        config.check_config(_two(drop_labels={target: ["x"]}))
