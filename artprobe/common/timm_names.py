"""What parsing the workflow asks of timm's registry, without importing torch on every parse:
the architecture names and pretrained tags (to check ``models[].timm``) and where each tag's weights
live on the hub (for the weights stage)."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable
from pathlib import Path


def _cached(kind: str, build: Callable[[], str]) -> str:
    """The text ``build()`` makes from timm's registry, cached per timm version.

    timm's registry exists only once ``import timm`` has imported torch (seconds). The text
    is written to ``$XDG_CACHE_HOME/artprobe/timm-<version>-<kind>`` the first time, so later
    parses read it without torch. The version comes from the installed package's metadata,
    so upgrading timm refreshes it.
    """
    from importlib.metadata import version

    cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "artprobe"
    path = cache_dir / f"timm-{version('timm')}-{kind}"
    try:
        return path.read_text()
    except OSError:
        pass
    text = build()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:  # a read-only home: build it again next time
        pass
    return text


def _architecture_list() -> str:
    import timm

    # list_models() leaves out deprecated names, which timm.is_model() still accepts
    deprecated = getattr(timm.models._registry, "_deprecated_models", {})
    names = frozenset(timm.list_models()) | frozenset(deprecated)
    return "\n".join(sorted(names)) + "\n"


def timm_architectures() -> frozenset[str]:
    """The architecture names timm registers (cached per timm version, see :func:`_cached`)."""
    return frozenset(_cached("models.txt", _architecture_list).split())


def _pretrained_table() -> str:
    """``{name: [hf_hub_id, files timm tries in order, url]}`` for every pretrained tag
    (``arch.tag``) and, under the bare ``arch``, its default tag's."""
    import timm  # noqa: F401  (fills the registry)
    from timm.models import _registry
    from timm.models._hub import HF_WEIGHTS_NAME, _get_safe_alternatives

    def files(cfg) -> list[str]:
        name = cfg.hf_hub_filename or HF_WEIGHTS_NAME
        return [name] if name.endswith(".safetensors") else [*_get_safe_alternatives(name), name]

    table = {}
    for name, cfg in _registry._model_pretrained_cfgs.items():
        table[name] = [cfg.hf_hub_id or None, files(cfg), cfg.url or None]
    for arch, default in _registry._model_default_cfgs.items():
        if default.tags and f"{arch}.{default.tags[0]}" in table:
            table[arch] = table[f"{arch}.{default.tags[0]}"]
    return json.dumps(table, sort_keys=True)


def pretrained_source(timm_name: str) -> tuple[str | None, list[str], str | None] | None:
    """``(hf_hub_id, weight files in the order timm tries them, url)`` of ``timm_name``'s
    pretrained weights (the default tag for a bare architecture), as timm's pretrained
    config says; None when timm knows no pretrained weights by that name. Cached per timm
    version, so the workflow's parse and the weights job decide it alike without torch."""
    found = json.loads(_cached("pretrained.json", _pretrained_table)).get(timm_name)
    return None if found is None else (found[0], list(found[1]), found[2])


def pretrained_names() -> frozenset[str]:
    """Every ``arch.tag`` timm has pretrained weights for (from :func:`pretrained_source`'s
    cache, so no torch once it exists)."""
    table = json.loads(_cached("pretrained.json", _pretrained_table))
    return frozenset(name for name in table if "." in name)


def _close(name: str, known: frozenset[str], fallback: tuple[str, ...] = ()) -> str:
    """'; close: a, b' with up to 5 of ``known`` nearest ``name`` (else ``fallback``'s first 5)."""
    close = difflib.get_close_matches(name, sorted(known), n=5) or sorted(fallback)[:5]
    return f"; close: {', '.join(close)}" if close else ""


def check_timm_names(models: list[dict]) -> None:
    """Every ``models[].timm`` names a timm architecture and, after a '.', one of its
    pretrained tags (``eva02_large_patch14_224.mim_m38m``); else a one-line ValueError naming
    the model, the name and up to 5 close names. The tag is checked with ``pretrained: false``
    too: ``timm.create_model`` rejects an unknown tag either way."""
    known = timm_architectures()
    tagged = pretrained_names() if any("." in m["timm"] for m in models) else frozenset()
    for m in models:
        name = m["timm"]
        arch, dot, _ = name.partition(".")
        where = f"config models[{m['name']}].timm: {name!r}"
        if arch not in known:
            raise ValueError(
                f"{where} is not a timm model (see timm.list_models()){_close(arch, known)}"
            )
        if dot and name not in tagged:
            same_arch = tuple(t for t in tagged if t.startswith(f"{arch}."))
            raise ValueError(
                f"{where} is not a pretrained tag of {arch} "
                f"(see timm.list_pretrained('{arch}.*')){_close(name, tagged, same_arch)}"
            )
