"""artprobe.config: what parsing the workflow needs (source kinds, probe specs, defaults)."""

from __future__ import annotations

from artprobe import config

def test_source_kinds():
    assert not config.is_local_source("huggan/wikiart")
    assert config.is_local_source("./results/demo/source")
    assert config.is_local_source("/data/wikiart")


