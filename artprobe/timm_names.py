"""Check config model names against timm's registry without importing torch on every parse."""

from __future__ import annotations

import os
from pathlib import Path


def timm_architectures() -> frozenset[str]:
    """The architecture names timm registers, cached per timm version.

    timm's registry exists only once ``import timm`` has imported torch (seconds). The names
    are written to ``$XDG_CACHE_HOME/artprobe/timm-<version>-models.txt`` the first time, so
    later parses check model names without torch. The version comes from the installed
    package's metadata, so upgrading timm refreshes the list.
    """
    from importlib.metadata import version

    cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "artprobe"
    path = cache_dir / f"timm-{version('timm')}-models.txt"
    try:
        return frozenset(path.read_text().split())
    except OSError:
        pass
    import timm

    # list_models() leaves out deprecated names, which timm.is_model() still accepts
    deprecated = getattr(timm.models._registry, "_deprecated_models", {})
    names = frozenset(timm.list_models()) | frozenset(deprecated)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text("\n".join(sorted(names)) + "\n")
        os.replace(tmp, path)
    except OSError:  # a read-only home: check without the cache next time too
        pass
    return names


def check_timm_names(models: list[dict]) -> None:
    """Every ``models[].timm`` names a timm architecture (a pretrained tag after '.' is
    timm's business: ``eva02_large_patch14_224.mim_m38m``)."""
    known = timm_architectures()
    for m in models:
        if m["timm"].split(".", 1)[0] not in known:
            raise ValueError(
                f"config models[{m['name']}].timm: {m['timm']!r} is not a timm model "
                "(see timm.list_models())"
            )
