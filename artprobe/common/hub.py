"""The Hugging Face hub client: its failures as one sentence each, for the data and the weights,
and a repository's file list at a revision (:func:`hub_listing`).

``huggingface_hub`` reports an unreachable hub as an ``httpx`` ``ConnectError`` (its API
calls) or a ``LocalEntryNotFoundError`` raised from one (``hf_hub_download``, after five
retries); a missing repository or revision as ``RepositoryNotFoundError`` /
``RevisionNotFoundError``. :func:`hub_errors` turns each into a :class:`HubError` whose message
names the endpoint, the cause and the way out. Torch-free; the client is imported lazily.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from artprobe.common.logs import ClearError


class HubError(ClearError):
    """The hub (or the hub cache) cannot give what the config asks for."""


@dataclass(frozen=True)
class HubRequest:
    """What a job asks of the hub, in the words of the config: ``kind`` (``dataset``,
    ``model``), the repository, the revision and the config keys that choose them."""

    kind: str
    repo_id: str
    revision: str | None
    repo_key: str  # e.g. dataset.source, models[vit].timm
    revision_key: str  # e.g. dataset.revision, models[vit].revision

    @property
    def what(self) -> str:
        return f"{self.kind} {self.repo_id!r}"


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def hf_home() -> str:
    from huggingface_hub import constants

    return constants.HF_HOME


def has_token() -> bool:
    from huggingface_hub import get_token

    return get_token() is not None


def connection_cause(err: BaseException) -> str | None:
    """Why the hub could not be reached (``connection refused``, ``DNS lookup ... failed``,
    ``timed out``), read from the exception chain; None when ``err`` is no connection error."""
    seen = set()
    cause, transport = None, False
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        name = type(err).__name__
        if isinstance(err, socket.gaierror):
            return f"DNS lookup of the host failed: {err.strerror or err}"
        if isinstance(err, ConnectionRefusedError):
            return "connection refused"
        if isinstance(err, (TimeoutError, socket.timeout)) or "Timeout" in name:
            return "timed out"
        if name in (
            "ConnectError",
            "NetworkError",
            "ProxyError",
            "ReadError",
            "RemoteProtocolError",
        ):
            transport = True
            cause = cause or str(err) or name
        elif isinstance(err, OSError) and err.strerror and transport:
            cause = err.strerror
        err = err.__cause__ or err.__context__
    return cause.lower() if transport and cause else None


def unreachable_message(request: HubRequest, cause: str) -> str:
    """The one sentence: the endpoint, the cause, the way out."""
    return (
        f"The Hugging Face hub at {endpoint()} cannot be reached ({cause}) to fetch {request.what}: "
        f"with no network here, run with HF_HUB_OFFLINE=1 and a hub cache that holds it "
        f"(HF_HOME, now {hf_home()}), or set HF_ENDPOINT to a mirror that can be reached."
    )


def translate(err: BaseException, request: HubRequest) -> HubError | None:
    """The :class:`HubError` for a client error, or None when it is none of the known ones."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cause = connection_cause(err)
    if cause is not None:
        return HubError(unreachable_message(request, cause))
    where = request.what
    if isinstance(err, RevisionNotFoundError):
        return HubError(
            f"{where}: revision {request.revision!r} not found on {endpoint()}; check "
            f"{request.revision_key} (a commit hash, branch or tag"
            + (
                "; refs/convert/parquet for the automatic conversion)"
                if request.kind == "dataset"
                else ")"
            )
        )
    if isinstance(err, (RepositoryNotFoundError, GatedRepoError)):
        token = "an HF_TOKEN was sent" if has_token() else "no token was sent (HF_TOKEN unset)"
        return HubError(
            f"{where}: not found or not accessible on {endpoint()} ({token}). Check {request.repo_key}; "
            f"for a private or gated {request.kind} set HF_TOKEN to a token with read access "
            "(or run `hf auth login`)."
        )
    if isinstance(err, HfHubHTTPError):
        return HubError(f"{where}@{request.revision}: {' '.join(str(err).split())}")  # one line
    return None


@contextlib.contextmanager
def hub_errors(request: HubRequest) -> Iterator[None]:
    """Re-raise the client's known failures inside the block as one-sentence
    :class:`HubError` s (the original chained, for a debug log)."""
    try:
        yield
    except HubError:
        raise
    except Exception as err:
        clear = translate(err, request)
        if clear is None:
            raise
        raise clear from err


def dataset_request(repo_id: str, revision: str | None) -> HubRequest:
    return HubRequest("dataset", repo_id, revision, "dataset.source", "dataset.revision")


def hub_listing(
    repo_id: str,
    revision: str | None,
    repo_type: str = "dataset",
    request: HubRequest | None = None,
) -> tuple[str, dict[str, dict]]:
    """(commit, {path: {size, blob_id, lfs_sha256, lfs_size}}) from the hub's recursive tree.
    The client's failures become one-sentence errors in the words of ``request``."""
    from huggingface_hub import HfApi

    api = HfApi()
    with hub_errors(request or dataset_request(repo_id, revision)):
        commit = api.repo_info(repo_id, repo_type=repo_type, revision=revision or "main").sha
        tree = api.list_repo_tree(repo_id, repo_type=repo_type, revision=commit, recursive=True)
        listing = {}
        for f in tree:
            if not hasattr(f, "blob_id"):  # a folder
                continue
            entry = {"size": f.size, "blob_id": f.blob_id}
            if f.lfs is not None:
                entry.update(lfs_sha256=f.lfs.sha256, lfs_size=f.lfs.size)
            if f.xet_hash is not None:
                entry["xet_hash"] = f.xet_hash
            listing[f.path] = entry
    return commit, listing
