"""The file list of a hub dataset at a pinned revision (the ``download_list`` checkpoint).

The revision is resolved to its commit (``dataset_info``) and the repository listed
recursively at that commit (``list_repo_tree``) with the real ``huggingface_hub`` client; the
data files of the configured layout (``artprobe.sources.hub_layout``) and the dataset card go to
``download/files.json`` with their sizes and hashes. Offline the list comes from the cache.
"""

from __future__ import annotations

import logging
import os

from artprobe.common.hub import hub_listing
from artprobe.common.io import write_json
from artprobe.sources.hub_cache import (
    cached_listing,
    check_cache_space,
    is_offline,
    save_listing,
)
from artprobe.sources.hub_layout import LayoutError, select

log = logging.getLogger(__name__)

CARD = "README.md"
NOT_PARQUET = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".tar")


def _entry(path: str, info: dict, **extra) -> dict:
    return {
        "name": path,
        "size": info.get("lfs_size") or info["size"],
        "sha256": info.get("lfs_sha256"),
        "blob_id": info["blob_id"],
        **extra,
    }


def select_remote(listing: dict[str, dict], config, splits, where: str) -> list[dict]:
    """The data files of the configured layout (plus the dataset card) as files.json entries."""
    try:
        chosen = select(listing, config, splits, where)
    except LayoutError:
        others = [p for p in listing if p.lower().endswith(NOT_PARQUET)]
        if others and not any(p.endswith(".parquet") for p in listing):
            raise LayoutError(
                f"{where}: no Parquet files, but {len(others)} image/WebDataset files. Use the hub's "
                "automatic Parquet conversion: dataset.revision: refs/convert/parquet"
            ) from None
        raise
    files = [_entry(f.path, listing[f.path], config=f.config, split=f.split) for f in chosen]
    for f in chosen:
        if f.partial:
            log.warning("%s: split %r is a partial conversion (%s)", where, f.split, f.path)
    if CARD in listing:
        files.append(_entry(CARD, listing[CARD], config=None, split=None))
    return files


def download_list(
    source: str,
    revision: str | None,
    out_path: str | os.PathLike,
    config: str | None = None,
    splits: list[str] | None = None,
) -> dict:
    """Write ``files.json``: the commit and the files to download, with sizes and hashes."""
    if is_offline():
        commit, listing = cached_listing(source, revision)
    else:
        commit, listing = hub_listing(source, revision)
        save_listing(source, revision, commit, listing)
    files = select_remote(listing, config, splits, f"{source}@{revision or 'main'}")
    check_cache_space(source, files)  # before any download job starts
    out = {"source": source, "revision": revision, "commit": commit, "files": files}
    write_json(out_path, out)
    total = sum(f["size"] for f in files)
    log.info(
        "%s@%s (commit %s): %d files, %.1f MB", source, revision, commit, len(files), total / 1e6
    )
    return out
