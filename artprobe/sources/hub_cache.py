"""The hub cache as the download stage uses it: where a repository lives, which commit a
revision is, the stored file list, the offline check run when the workflow is parsed, and the
disk check before downloading.

The file list is stored as ``trees/<commit>.json`` and the revision as ``refs/<revision>``
in the repository's cache folder, the formats ``huggingface_hub`` itself uses there, so with
``HF_HUB_OFFLINE=1`` the list comes from the cache. Torch- and pandas-free (parse time).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from artprobe.common.disk import check_free_space, human_bytes
from artprobe.common.hub import HubError
from artprobe.common.io import read_json, write_json, write_text
from artprobe.sources.hub_layout import select

log = logging.getLogger(__name__)

REPO_TYPE = "dataset"  #: the download stage reads hub *datasets* (the weights stage: models)
COMMIT = re.compile(r"[0-9a-f]{40}")


class DownloadError(HubError):
    """The hub (or the cache) cannot give what the config asks for."""


def storage_folder(repo_id: str, repo_type: str = REPO_TYPE) -> Path:
    """The repository's folder in the hub cache (``HF_HUB_CACHE``, from ``HF_HOME``)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type=repo_type)


def cached_commit(repo_id: str, revision: str | None, repo_type: str = REPO_TYPE) -> str | None:
    """The commit of ``revision`` as the cache knows it (a commit hash is its own)."""
    revision = revision or "main"
    if COMMIT.fullmatch(revision):
        return revision
    ref = storage_folder(repo_id, repo_type) / "refs" / revision
    return ref.read_text().strip() if ref.is_file() else None


def _tree_path(repo_id: str, commit: str) -> Path:
    return storage_folder(repo_id) / "trees" / f"{commit}.json"


def save_listing(repo_id: str, revision: str | None, commit: str, listing: dict[str, dict]) -> None:
    """Store the listing and ``revision -> commit`` in the cache, as the hub client does."""
    write_json(_tree_path(repo_id, commit), {"format_version": 1, "files": listing})
    if (revision or "main") != commit:
        write_text(storage_folder(repo_id) / "refs" / (revision or "main"), commit)


def cached_listing(repo_id: str, revision: str | None) -> tuple[str, dict[str, dict]]:
    """(commit, listing) from the cache, or the one error an offline run needs."""
    from huggingface_hub import constants

    commit = cached_commit(repo_id, revision)
    tree = _tree_path(repo_id, commit) if commit else None
    if tree is None or not tree.is_file():
        raise DownloadError(
            f"HF_HUB_OFFLINE is set and the hub cache holds no file list of dataset {repo_id!r} "
            f"at revision {revision or 'main'!r} (HF_HOME={constants.HF_HOME}, looked in "
            f"{storage_folder(repo_id)}). Download it once with network access (see docs/download.md, "
            "'Offline use'), or point HF_HOME at the cache that has it."
        )
    return commit, read_json(tree)["files"]


def snapshot_path(repo_id: str, commit: str, name: str, repo_type: str = REPO_TYPE) -> Path:
    return storage_folder(repo_id, repo_type) / "snapshots" / commit / name


def is_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def check_offline_cache(repo_id: str, revision: str | None, config=None, splits=None) -> None:
    """Offline, every data file of the selection must be in the cache: else one error naming
    the dataset, the revision, ``HF_HOME`` and what is missing. Online it does nothing."""
    if not is_offline():
        return
    from huggingface_hub import constants

    commit, listing = cached_listing(repo_id, revision)
    chosen = select(listing, config, splits, f"{repo_id}@{revision or 'main'}")
    missing = [f.path for f in chosen if not snapshot_path(repo_id, commit, f.path).exists()]
    if missing:
        raise DownloadError(
            f"HF_HUB_OFFLINE is set and {len(missing)} of {len(chosen)} data files of dataset "
            f"{repo_id!r} at revision {revision or 'main'!r} are not in the hub cache "
            f"(HF_HOME={constants.HF_HOME}), e.g. {missing[:3]}. Finish the download with network "
            "access (rerun without HF_HUB_OFFLINE), or point HF_HOME at the cache that has them."
        )


def blob_name(entry: dict) -> str:
    """The name the client gives a ``files.json`` entry's blob: the LFS sha256, else the git blob id."""
    return entry["sha256"] or entry["blob_id"]


def check_cache_space(repo_id: str, files: list[dict]) -> None:
    """Before downloading: the ``files.json`` entries not yet in the hub cache must fit in the
    free space of the file system that holds it (their partial downloads, which the fetch
    replaces, count back); else :class:`artprobe.common.disk.NotEnoughSpaceError` naming both
    figures, the cache folder and ``HF_HOME``. Offline nothing is fetched: nothing to check."""
    if is_offline():
        return
    from huggingface_hub import constants

    folder = storage_folder(repo_id)
    blobs = folder / "blobs"
    todo = [f for f in files if not (blobs / blob_name(f)).is_file()]
    need = sum(int(f["size"]) for f in todo)
    partial = sum(p.stat().st_size for f in todo for p in blobs.glob(f"{blob_name(f)}*.incomplete"))
    what = (
        f"{len(todo)} of {len(files)} files of dataset {repo_id!r} still to download into the hub "
        f"cache (HF_HOME={constants.HF_HOME}; point HF_HOME at a larger disk to move the cache)"
    )
    free = check_free_space(folder, need, what, reclaimable=partial)
    log.info("disk: %s need %s in %s; %s free", what, human_bytes(need), folder, human_bytes(free))
