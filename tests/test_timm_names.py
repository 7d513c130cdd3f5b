"""artprobe.common.timm_names: model names (architecture and pretrained tag) are checked against
timm's registry, from a cache per timm version after the first parse, so later parses never
import timm (nor torch). And the model zoo overlay (overlays/zoo.yaml) passes that check, the
config schema and the embedding code's feature choices."""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import jsonschema
import pytest
import yaml

from artprobe.common import timm_names

ROOT = Path(__file__).resolve().parents[1]
ZOO = yaml.safe_load((ROOT / "overlays/zoo.yaml").read_text())


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "artprobe" / f"timm-{version('timm')}-models.txt"


def test_the_first_call_fills_the_cache_from_timm(cache):
    names = timm_names.timm_architectures()
    assert {"test_vit", "resnet18", "convnext_atto"} <= names
    assert set(cache.read_text().split()) == names


def test_later_calls_read_the_cache_without_timm(cache, monkeypatch):
    cache.parent.mkdir(parents=True)
    cache.write_text("only_this_net\nresnet18\n")
    table = {"resnet18.a1_in1k": ["timm/resnet18.a1_in1k", ["model.safetensors"], None]}
    cache.with_name(cache.name.replace("models.txt", "pretrained.json")).write_text(
        json.dumps(table)
    )
    monkeypatch.setitem(sys.modules, "timm", None)  # importing timm now fails
    assert timm_names.timm_architectures() == {"only_this_net", "resnet18"}
    timm_names.check_timm_names(
        [{"name": "r", "timm": "resnet18.a1_in1k"}, {"name": "o", "timm": "only_this_net"}]
    )
    with pytest.raises(
        ValueError, match=r"config models\[vit\].timm: 'test_vit' is not a timm model"
    ):
        timm_names.check_timm_names([{"name": "vit", "timm": "test_vit"}])
    with pytest.raises(ValueError, match=r"'resnet18.a2_in1k' is not .* close: resnet18.a1_in1k$"):
        timm_names.check_timm_names([{"name": "r", "timm": "resnet18.a2_in1k"}])


def _error(models: list[dict]) -> str:
    with pytest.raises(ValueError) as raised:
        timm_names.check_timm_names(models)
    message = str(raised.value)
    assert "\n" not in message  # one line: the parse error a user reads first
    return message


def test_a_misspelt_pretrained_tag_fails_naming_the_close_names(cache):
    zoo = [dict(m) for m in ZOO["models"]]
    dinov2 = next(m for m in zoo if m["timm"] == "vit_large_patch14_dinov2.lvd142m")
    dinov2["timm"] = "vit_large_patch14_dinov2.lvd124m"
    message = _error(zoo)
    assert message.startswith(
        f"config models[{dinov2['name']}].timm: 'vit_large_patch14_dinov2.lvd124m' is not a "
        "pretrained tag of vit_large_patch14_dinov2"
    )
    close = message.split("; close: ")[1].split(", ")
    assert close[0] == "vit_large_patch14_dinov2.lvd142m" and len(close) <= 5


def test_an_unknown_tag_fails_without_pretrained_too(cache):
    """timm.create_model('resnet18.bad_tag', pretrained=False) raises too: parse says it first,
    with that architecture's tags when no name is close."""
    message = _error([{"name": "r", "timm": "resnet18.zzzzzzzzzzzzzzzzzzzz", "pretrained": False}])
    close = message.split("; close: ")[1].split(", ")
    assert close and all(c.startswith("resnet18.") for c in close)


def test_a_misspelt_architecture_fails_naming_the_close_names(cache):
    message = _error([{"name": "cnx", "timm": "convnextv2_hug.fcmae"}])
    assert message.startswith("config models[cnx].timm: 'convnextv2_hug.fcmae' is not a timm model")
    assert "close: convnextv2_huge, " in message


def test_the_zoo_passes_the_name_check_offline(cache, monkeypatch):
    """Every architecture and tag is in the installed timm's registry; the check needs no
    network (the registry is local) and, once cached, not even timm."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    timm_names.check_timm_names(ZOO["models"])
    monkeypatch.setitem(sys.modules, "timm", None)
    timm_names.check_timm_names(ZOO["models"])


def test_the_zoo_is_a_models_list_the_schema_accepts():
    assert list(ZOO) == ["models"]  # an overlay of the models only
    schema = yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text())
    models_only = {
        "$schema": schema["$schema"],
        "type": "object",
        "properties": {"models": schema["properties"]["models"]},
    }
    jsonschema.validate(ZOO, models_only)
    names = [m["name"] for m in ZOO["models"]]
    assert 12 <= len(names) <= 20 and len(set(names)) == len(names)
    assert all(n == n.lower() for n in names)  # they name result files


def test_the_zoo_keeps_the_thesis_models_as_config_yaml_has_them():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert [m for m in config["models"] if m not in ZOO["models"]] == []


def test_every_zoo_model_gives_its_features(cache):
    """Each features choice is one the embedding code supports for that architecture (built
    on torch's meta device: no weights, no memory)."""
    torch, timm = pytest.importorskip("torch"), pytest.importorskip("timm")
    from artprobe.embedding.features import check_features, parse_features

    for m in ZOO["models"]:
        with torch.device("meta"):
            model = timm.create_model(m["timm"], pretrained=False, num_classes=0)
        check_features(model, parse_features(m.get("features", "pooled")), m["name"])


def test_pretrained_sources_come_from_timms_config_then_from_the_cache(tmp_path, monkeypatch):
    """The weights stage's question (which hub repository, which files) is answered like the
    name check: from timm's pretrained configs once, then from the cache without timm."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    files = ["model.safetensors", "pytorch_model.bin"]  # the order timm's hub loader tries
    assert timm_names.pretrained_source("test_vit") == ("timm/test_vit.r160_in1k", files, None)
    assert timm_names.pretrained_source("test_vit.r160_in1k")[0] == "timm/test_vit.r160_in1k"
    assert timm_names.pretrained_source("no_such_net") is None
    monkeypatch.setitem(sys.modules, "timm", None)  # importing timm now fails
    assert timm_names.pretrained_source("test_vit")[0] == "timm/test_vit.r160_in1k"
