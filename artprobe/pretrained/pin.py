"""The commit a model's weights are taken from, resolved once and kept.

An explicit commit hash (``models[].revision``) is its own pin. A branch or tag (``main`` by
default) is resolved the first time (online: the hub's listing at that revision; offline: the
hub cache's ``refs/<revision>``) and written to a lock file beside the marker,
``weights/<model>.lock.json``, with the file chosen, its size and hashes. While that lock
names the same repository and revision, every rerun uses its commit: a new commit on the
hub's ``main`` is not picked up until the lock is deleted (with the marker, so the job reruns)
or another revision is set.
The lock is no Snakemake output, so rerunning the job (which deletes its outputs first)
keeps it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from artprobe.common.hub import hub_listing
from artprobe.common.io import read_json, write_json, write_text
from artprobe.pretrained.source import REPO_TYPE, WeightsError, WeightsSource
from artprobe.sources.hub_cache import (
    cached_commit,
    is_offline,
    snapshot_path,
    storage_folder,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pin:
    """One weights file at one commit, with what the hub says about it."""

    repo_id: str
    revision: str
    commit: str
    file: str
    size: int
    sha256: str | None  # the LFS sha256 (None for a small file kept in git)
    blob_id: str | None  # the git blob sha1

    @property
    def blob(self) -> str:
        """The blob's name in the hub cache (the client names it by its ETag)."""
        return self.sha256 or self.blob_id


def lock_path(marker: str | os.PathLike) -> Path:
    """``weights/<model>.json`` -> ``weights/<model>.lock.json``."""
    marker = Path(marker)
    return marker.with_name(f"{marker.stem}.lock.json")


def read_lock(path: Path, source: WeightsSource) -> Pin | None:
    """The lock's pin, if it pins this repository at this revision to a file timm loads."""
    try:
        pin = Pin(**read_json(path))
    except (OSError, ValueError, TypeError):
        return None
    if (pin.repo_id, pin.revision) != (
        source.repo_id,
        source.revision,
    ) or pin.file not in source.files:
        log.info(
            "%s pins %s@%s, not %s@%s: resolving again",
            path,
            pin.repo_id,
            pin.revision,
            source.repo_id,
            source.revision,
        )
        return None
    return pin


def resolve_online(source: WeightsSource) -> Pin:
    """The commit of the revision and the first file timm would load, from the hub's listing;
    ``refs/<revision>`` in the hub cache records the commit, as the client does, so an offline
    run with that cache (and no lock) finds it."""
    commit, listing = hub_listing(source.repo_id, source.revision, REPO_TYPE, source.request())
    if source.revision != commit:
        write_text(storage_folder(source.repo_id, REPO_TYPE) / "refs" / source.revision, commit)
    file = next((f for f in source.files if f in listing), None)
    if file is None:
        raise WeightsError(
            f"models[{source.model}]: {source.repo_id}@{commit} holds none of {list(source.files)}, the "
            f"files timm loads (it holds {sorted(listing)[:10]}); check models[{source.model}].revision"
        )
    entry = listing[file]
    size = entry.get("lfs_size") or entry["size"]
    return Pin(
        source.repo_id,
        source.revision,
        commit,
        file,
        size,
        entry.get("lfs_sha256"),
        entry["blob_id"],
    )


def resolve_offline(source: WeightsSource) -> Pin | None:
    """The pin the hub cache implies (``refs/<revision>``, the first file present), or None."""
    commit = cached_commit(source.repo_id, source.revision, REPO_TYPE)
    if commit is None:
        return None
    for file in source.files:
        path = snapshot_path(source.repo_id, commit, file, REPO_TYPE)
        if path.exists():
            blob = path.resolve().name  # the ETag: LFS sha256 (64 hex) or git sha1 (40 hex)
            sha256, blob_id = (blob, None) if len(blob) == 64 else (None, blob)
            return Pin(
                source.repo_id, source.revision, commit, file, path.stat().st_size, sha256, blob_id
            )
    return None


def pin_weights(source: WeightsSource, marker: str | os.PathLike) -> Pin:
    """The pin of the lock beside ``marker``, else the revision resolved now (and locked)."""
    lock = lock_path(marker)
    pin = read_lock(lock, source)
    if pin is not None:
        log.info(
            "%s@%s pinned to commit %s by %s", source.repo_id, source.revision, pin.commit, lock
        )
        return pin
    pin = resolve_offline(source) if is_offline() else resolve_online(source)
    if pin is None:
        raise WeightsError(missing_message([source], [os.fspath(marker)]))
    write_json(lock, asdict(pin))
    log.info(
        "%s@%s is commit %s: %s (%.1f MB), locked in %s",
        pin.repo_id,
        pin.revision,
        pin.commit,
        pin.file,
        pin.size / 1e6,
        lock,
    )
    return pin


def missing_message(sources: list[WeightsSource], targets: list[str]) -> str:
    """The one error of an offline run whose hub cache lacks weights: the models, the cache,
    and the command that fills it."""
    from huggingface_hub import constants

    names = ", ".join(f"models[{s.model}] ({s.repo_id}@{s.revision})" for s in sources)
    command = f"snakemake --cores 1 {' '.join(targets)}"
    return (
        f"HF_HUB_OFFLINE is set and the hub cache (HF_HOME={constants.HF_HOME}) lacks the pretrained "
        f"weights of {names}: fill it where the hub can be reached, with the same HF_HOME and without "
        f"HF_HUB_OFFLINE, by `{command}` (with this run's --configfile), or set models[].weights to a local file."
    )
