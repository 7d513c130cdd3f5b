"""A local HTTP server speaking the part of the Hugging Face hub API that ``huggingface_hub``
2.x uses to list and download a dataset or a model, so the real client can be pointed at it
with ``HF_ENDPOINT``. Requests, as read from the client's source (a model repository's are the
same without ``datasets``: ``/api/models/{repo}/...``, ``/{repo}/resolve/...``):

- ``HfApi.dataset_info``: ``GET /api/datasets/{repo}/revision/{rev}`` -> ``{"id", "sha", ...}``
  (``rev`` percent-quoted: ``refs%2Fconvert%2Fparquet``);
- ``HfApi.list_repo_tree``: ``GET /api/datasets/{repo}/tree/{rev}[/{path}]?recursive=&expand=``,
  paginated with a ``Link: <url>; rel="next"`` header (``PAGE`` entries a page here, to
  exercise it);
- ``hf_hub_download``: ``HEAD /datasets/{repo}/resolve/{rev}/{path}`` for ``X-Repo-Commit``,
  ``ETag`` / ``X-Linked-Etag`` (LFS sha256, git blob sha1 otherwise) and ``X-Linked-Size``, then
  ``GET`` (``Range: bytes=N-`` when it resumes after a broken connection) -> 206.

Errors as the hub sends them: 404 with ``X-Error-Code: RevisionNotFound`` / ``EntryNotFound`` /
``RepoNotFound``, and 401 + ``RepoNotFound`` for a private repository without a valid token.
No Xet headers are sent, so the client uses plain HTTP. Test hooks: ``throttle`` (bytes/s per
path), ``corrupt`` (paths served with one byte flipped, same size), ``gets`` (GET count per
path), ``sent`` (bytes sent per path), ``requests`` (every request), :meth:`Repo.push` (a new
commit on a branch).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

PAGE = 2  # tree entries per page
LFS_SUFFIXES = (".parquet", ".safetensors", ".bin")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    files: dict[str, dict[str, bytes]]  # commit -> {path: bytes}
    refs: dict[str, str]  # branch / tag / refs/convert/parquet -> commit
    private: bool = False

    def commit_of(self, rev: str) -> str | None:
        return rev if rev in self.files else self.refs.get(rev)

    def push(self, ref: str, content: dict[str, bytes]) -> str:
        """A new commit holding ``content``, made the head of ``ref``; its hash."""
        digest = hashlib.sha1(f"{ref}:{len(self.files)}".encode())
        for path in sorted(content):
            digest.update(path.encode() + hashlib.sha256(content[path]).digest())
        self.files[digest.hexdigest()] = content
        self.refs[ref] = digest.hexdigest()
        return digest.hexdigest()


def make_repo(revisions: dict[str, dict[str, bytes]], private: bool = False) -> Repo:
    """``{ref name: {path: bytes}}`` -> a repo with one commit per ref (sha1 of its content)."""
    files, refs = {}, {}
    for ref, content in revisions.items():
        digest = hashlib.sha1(ref.encode())
        for path in sorted(content):
            digest.update(path.encode() + hashlib.sha256(content[path]).digest())
        files[digest.hexdigest()] = content
        refs[ref] = digest.hexdigest()
    return Repo(files, refs, private)


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` as ``{relative path: bytes}``."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def tree_entry(path: str, data: bytes) -> dict:
    entry = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}
    if path.endswith(LFS_SUFFIXES):
        entry["lfs"] = {
            "oid": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "pointerSize": 134,
        }
    return entry


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)  # datasets
    models: dict[str, Repo] = field(default_factory=dict)
    token: str = "hf_test_token"
    throttle: dict[str, float] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    gets: Counter = field(default_factory=Counter)
    sent: Counter = field(default_factory=Counter)
    requests: list[str] = field(default_factory=list)
    url: str = ""

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    # ---------------------------------------------------------------- routing

    def _route(self, head: bool) -> None:
        url = urlsplit(self.path)
        parts = url.path.split("/")
        self.fake.requests.append(f"{self.command} {url.path}")
        kinds = {"datasets": self.fake.repos, "models": self.fake.models}
        try:
            if (
                parts[1] == "api"
                and parts[2] in kinds
                and len(parts) >= 7
                and parts[5] in ("revision", "tree")
            ):
                repo_id, kind, rev = "/".join(parts[3:5]), parts[5], unquote(parts[6])
                repo, commit = self._repo_at(kinds[parts[2]], repo_id, rev)
                if kind == "revision":
                    return self._json({"id": repo_id, "sha": commit, "private": repo.private})
                return self._tree(repo, commit, unquote("/".join(parts[7:])), parse_qs(url.query))
            if parts[1] == "datasets" and len(parts) >= 7 and parts[4] == "resolve":
                repo_id, rev, path = (
                    "/".join(parts[2:4]),
                    unquote(parts[5]),
                    unquote("/".join(parts[6:])),
                )
                repo, commit = self._repo_at(self.fake.repos, repo_id, rev)
                return self._file(repo, commit, path, head)
            if len(parts) >= 6 and parts[3] == "resolve":
                repo_id, rev, path = (
                    "/".join(parts[1:3]),
                    unquote(parts[4]),
                    unquote("/".join(parts[5:])),
                )
                repo, commit = self._repo_at(self.fake.models, repo_id, rev)
                return self._file(repo, commit, path, head)
            self._error(404, "EntryNotFound", "no such route")
        except _HubError as err:
            self._error(*err.args)

    def _repo_at(self, repos: dict[str, Repo], repo_id: str, rev: str) -> tuple[Repo, str]:
        repo = repos.get(repo_id)
        if repo is None:
            raise _HubError(404, "RepoNotFound", "Repository not found")
        if repo.private and self.headers.get("Authorization") != f"Bearer {self.fake.token}":
            raise _HubError(401, "RepoNotFound", "Invalid username or password.")
        commit = repo.commit_of(rev)
        if commit is None:
            raise _HubError(404, "RevisionNotFound", "Invalid rev id")
        return repo, commit

    # ---------------------------------------------------------------- answers

    def _tree(self, repo: Repo, commit: str, prefix: str, query: dict) -> None:
        recursive = query.get("recursive", ["False"])[0].lower() == "true"
        files = repo.files[commit]
        base = f"{prefix}/" if prefix else ""
        entries, folders = [], set()
        for path in sorted(files):
            if not path.startswith(base):
                continue
            rest = path[len(base) :].split("/")
            for i in range(1, len(rest) if recursive else min(2, len(rest))):
                folders.add(base + "/".join(rest[:i]))
            if recursive or len(rest) == 1:
                entries.append(tree_entry(path, files[path]))
        if prefix and not entries and not folders:
            raise _HubError(404, "EntryNotFound", f"{prefix} does not exist")
        entries += [
            {"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)
        ]
        cursor = int(query.get("cursor", ["0"])[0])
        page = entries[cursor : cursor + PAGE]
        headers = {}
        if cursor + PAGE < len(entries):
            q = f"recursive={recursive}&expand=False&cursor={cursor + PAGE}"
            headers["Link"] = f'<{self.fake.url}{quote(urlsplit(self.path).path)}?{q}>; rel="next"'
        self._json(page, headers)

    def _file(self, repo: Repo, commit: str, path: str, head: bool) -> None:
        data = repo.files[commit].get(path)
        if data is None:
            raise _HubError(404, "EntryNotFound", f"{path} does not exist", commit)
        entry = tree_entry(path, data)
        etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if "lfs" in entry:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        if head:
            return self._send(200, b"", {**headers, "Content-Length": str(len(data))}, body=False)
        if path in self.fake.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        self.fake.gets[path] += 1
        start, status = self._range_start(), 200
        if start:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        self._send(status, data[start:], headers, path=path)

    def _range_start(self) -> int:
        value = self.headers.get("Range", "")
        return int(value[len("bytes=") :].split("-")[0]) if value.startswith("bytes=") else 0

    def _json(self, obj, headers: dict | None = None) -> None:
        self._send(
            200, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})}
        )

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message}
        if commit:
            headers["X-Repo-Commit"] = commit
        body = json.dumps({"error": message}).encode()
        self._send(
            status,
            body,
            {"Content-Type": "application/json", **headers},
            body=self.command != "HEAD",
        )

    def _send(
        self, status: int, data: bytes, headers: dict, body: bool = True, path: str | None = None
    ) -> None:
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not body:
            return
        rate = self.fake.throttle.get(path) if path else None
        step = 16384 if rate else 1 << 20
        try:
            for i in range(0, len(data), step):
                self.wfile.write(data[i : i + step])
                if path:
                    self.fake.sent[path] += len(data[i : i + step])
                if rate:
                    time.sleep(step / rate)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _HubError(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client killed mid-request (what the tests do) is not a server error."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)
