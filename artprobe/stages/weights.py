"""One ``weights`` job: pin the model's weights (:mod:`artprobe.pretrained.pin`), fetch that file into the hub
cache with ``hf_hub_download`` (``HF_HOME``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``
as everywhere else; a file already cached at a pinned commit costs no request), check its
size and hash against the hub's listing, and write the marker the embed jobs read."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

from artprobe.common.hub import hub_errors
from artprobe.common.io import write_json
from artprobe.pretrained.pin import Pin, missing_message, pin_weights
from artprobe.pretrained.source import REPO_TYPE, WeightsError, weights_source
from artprobe.sources.hub_cache import is_offline, snapshot_path
from artprobe.stages.download import (
    CHUNK,
    LogBar,
    discard,
    remove_stale_partials,
    verify,
)

log = logging.getLogger(__name__)


def fetch_weights(
    model: str, timm_name: str, revision: str | None, out_path: str | os.PathLike
) -> dict:
    """Write ``weights/<model>.json``: repo, revision, commit, file, size, sha256 and the path
    of the checked file in the hub cache."""
    source = weights_source(model, timm_name, revision)
    log.info(
        "models[%s] (%s): %s@%s, the first of %s there",
        model,
        timm_name,
        source.repo_id,
        source.revision,
        list(source.files),
    )
    pin = pin_weights(source, out_path)
    remove_stale_partials(pin.repo_id, pin.blob, REPO_TYPE)
    if is_offline() and not snapshot_path(pin.repo_id, pin.commit, pin.file, REPO_TYPE).exists():
        raise WeightsError(missing_message([source], [os.fspath(out_path)]))
    start = time.perf_counter()
    with hub_errors(source.request()):
        path = Path(download(pin))
    seconds = time.perf_counter() - start
    check(path, pin)
    log.info(
        "%s: %s, %.1f MB in %.1f s, size and hash ok",
        pin.repo_id,
        pin.file,
        pin.size / 1e6,
        seconds,
    )
    marker = {
        "model": model,
        "timm_name": timm_name,
        "repo": pin.repo_id,
        "revision": pin.revision,
        "commit": pin.commit,
        "file": pin.file,
        "size": pin.size,
        "sha256": pin.sha256 or sha256(path),
        "path": str(path),
    }
    write_json(out_path, marker)
    return marker


def download(pin: Pin) -> str:
    from huggingface_hub import hf_hub_download

    return hf_hub_download(
        pin.repo_id, pin.file, repo_type=REPO_TYPE, revision=pin.commit, tqdm_class=LogBar
    )


def check(path: Path, pin: Pin) -> None:
    """Size and hash as the hub lists them; a bad file is removed from the cache."""
    size = path.stat().st_size
    if size != pin.size:
        discard(path)
        raise WeightsError(
            f"{pin.repo_id}: {pin.file} has {size} bytes in the hub cache, the hub lists {pin.size}; the file "
            "was removed from the cache, rerun to fetch it again"
        )
    verify(path, {"name": pin.file, "sha256": pin.sha256, "blob_id": pin.blob_id}, pin.repo_id)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
