"""artprobe.common.timm_names: model names are checked against timm's registry, from a cache per timm
version after the first parse, so later parses never import timm (nor torch)."""

from __future__ import annotations

import sys
from importlib.metadata import version

import pytest

from artprobe.common import timm_names


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
    monkeypatch.setitem(sys.modules, "timm", None)  # importing timm now fails
    assert timm_names.timm_architectures() == {"only_this_net", "resnet18"}
    timm_names.check_timm_names(
        [{"name": "r", "timm": "resnet18.a1_in1k"}]
    )  # a pretrained tag is timm's
    with pytest.raises(
        ValueError, match=r"config models\[vit\].timm: 'test_vit' is not a timm model"
    ):
        timm_names.check_timm_names([{"name": "vit", "timm": "test_vit"}])


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
