"""One ``download`` job: fetch one file of ``files.json`` into the hub cache and verify it.

``hf_hub_download`` does the transfer (``HF_HOME``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``,
``HF_ENDPOINT``, hf_xet as everywhere else); a file already in the cache costs nothing. The
client writes each attempt to ``blobs/<etag>.<8 hex>.incomplete`` and cannot remove it after a
SIGKILL: before fetching, the stale ones of this blob are removed while holding the client's
own lock of that blob (``.locks/<repo>/<etag>.lock``, held by every live download of it), so
a live download elsewhere is never touched. The file's sha256 (git blob sha1 for a small
non-LFS file) is checked against the hub's listing; a mismatch removes the blob and its
snapshot link, so the rerun fetches it again, and fails naming the file and both hashes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

from tqdm import tqdm

from artprobe.common.hub import dataset_request, hub_errors
from artprobe.common.io import read_json, write_json
from artprobe.sources.hub_cache import (
    REPO_TYPE,
    DownloadError,
    blob_name,
    check_cache_space,
    storage_folder,
)

log = logging.getLogger(__name__)
CHUNK = 1 << 20


class LogBar(tqdm):
    """The client's progress bar for a log file: MB/s, an update every few seconds."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("mininterval", 2.0)
        kwargs.setdefault("ascii", True)
        super().__init__(*args, **kwargs)


def remove_stale_partials(repo_id: str, blob: str, repo_type: str = REPO_TYPE) -> list[Path]:
    """Remove ``<blob>.*.incomplete`` files left by killed downloads of this blob."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name
    from huggingface_hub.utils import WeakFileLock

    blobs = storage_folder(repo_id, repo_type) / "blobs"
    lock = (
        Path(constants.HF_HUB_CACHE)
        / ".locks"
        / repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    )
    lock.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock / f"{blob}.lock"):
        stale = sorted(blobs.glob(f"{blob}.*.incomplete")) + sorted(
            blobs.glob(f"{blob}.incomplete")
        )
        for path in stale:
            log.info(
                "removing %s (%.1f MB) left by a killed download",
                path.name,
                path.stat().st_size / 1e6,
            )
            path.unlink(missing_ok=True)
    return stale


def file_hash(path: Path, entry: dict) -> tuple[str, str]:
    """(kind, hex digest) comparable with the listing: sha256, or git's blob sha1."""
    if entry["sha256"]:
        digest, kind = hashlib.sha256(), "sha256"
    else:
        digest, kind = hashlib.sha1(f"blob {path.stat().st_size}\0".encode()), "git-sha1"
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return kind, digest.hexdigest()


def discard(pointer: Path) -> None:
    """Remove a bad file from the cache: its blob and its snapshot link."""
    blob = pointer.resolve()
    pointer.unlink(missing_ok=True)
    if blob != pointer:
        blob.unlink(missing_ok=True)


def verify(pointer: Path, entry: dict, source: str) -> str:
    kind, got = file_hash(pointer, entry)
    want = entry["sha256"] or entry["blob_id"]
    if got != want:
        discard(pointer)
        raise DownloadError(
            f"{source}: {entry['name']}: {kind} mismatch, the hub lists {want} but the downloaded "
            f"file has {got}; the file was removed from the cache, rerun to fetch it again"
        )
    return got


def download_file(files_json: str | os.PathLike, file: str, out_path: str | os.PathLike) -> dict:
    """Fetch entry ``file`` (5 digits: its index) of ``files_json``; write its marker."""
    from huggingface_hub import hf_hub_download

    files = read_json(files_json)
    source, commit = files["source"], files["commit"]
    entry = files["files"][int(file)]
    remove_stale_partials(source, blob_name(entry))
    check_cache_space(source, [entry])
    start = time.perf_counter()
    with hub_errors(dataset_request(source, commit)):
        path = hf_hub_download(
            source, entry["name"], repo_type=REPO_TYPE, revision=commit, tqdm_class=LogBar
        )
    seconds = time.perf_counter() - start
    digest = verify(Path(path), entry, source)
    mb = entry["size"] / 1e6
    log.info(
        "%s: %.1f MB in %.1f s (%.1f MB/s), hash ok",
        entry["name"],
        mb,
        seconds,
        mb / max(seconds, 1e-9),
    )
    marker = {
        "name": entry["name"],
        "path": path,
        "size": entry["size"],
        "hash": digest,
        "commit": commit,
    }
    write_json(out_path, marker)
    return marker
