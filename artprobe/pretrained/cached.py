"""The weights in the hub cache as the workflow sees them before any job: the offline check
run when the workflow is parsed, and where an embed job finds the file a marker names."""

from __future__ import annotations

import os
from pathlib import Path

from artprobe.pretrained.pin import lock_path, missing_message, read_lock, resolve_offline
from artprobe.pretrained.source import REPO_TYPE, WeightsError, weights_source
from artprobe.sources.hub_cache import is_offline, snapshot_path


def cached_weights(
    model: str, timm_name: str, revision: str | None, marker: str | os.PathLike
) -> Path | None:
    """The cached file an offline ``weights`` job for ``marker`` would use, or None."""
    source = weights_source(model, timm_name, revision)
    pin = read_lock(lock_path(marker), source) or resolve_offline(source)
    if pin is None:
        return None
    path = snapshot_path(pin.repo_id, pin.commit, pin.file, REPO_TYPE)
    return path if path.exists() else None


def check_offline_weights(models: dict[str, dict], markers: dict[str, str]) -> None:
    """Offline, every model's weights (``{name: {"timm", "revision"}}``, markers by name)
    must be in the hub cache: else one error naming the models missing and the command that
    fetches them. Online it does nothing."""
    if not models or not is_offline():
        return
    missing = [name for name, m in models.items() if not _present(name, m, markers[name])]
    if missing:
        sources = [weights_source(n, models[n]["timm"], models[n]["revision"]) for n in missing]
        raise WeightsError(missing_message(sources, [markers[n] for n in missing]))


def _present(name: str, model: dict, marker: str) -> bool:
    """The weights an embed job of ``name`` will load are in the cache."""
    if Path(marker).exists():
        try:
            return marker_file(marker) is not None
        except (WeightsError, OSError, ValueError, KeyError):
            return False
    return cached_weights(name, model["timm"], model["revision"], marker) is not None


def marker_file(marker: str | os.PathLike) -> Path:
    """The weights file a marker names: its path, else the same file in this machine's hub
    cache (another HF_HOME), else an error saying how to fetch it."""
    from artprobe.common.io import read_json

    m = read_json(marker)
    for path in (Path(m["path"]), snapshot_path(m["repo"], m["commit"], m["file"], REPO_TYPE)):
        if path.exists():
            return path
    raise WeightsError(
        f"models[{m['model']}]: the weights {m['repo']}@{m['commit']} ({m['file']}) named by {marker} are not in "
        f"the hub cache (looked in {m['path']} and {snapshot_path(m['repo'], m['commit'], m['file'], REPO_TYPE)}); "
        f"delete {marker} and rerun to fetch them, or point HF_HOME at the cache that has them"
    )
