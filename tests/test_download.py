"""Download stage against a local hub (tests/fake_hub.py): the real ``huggingface_hub`` client,
pointed at it with HF_ENDPOINT, lists and fetches; errors are the ones a user needs.

Client calls run in a subprocess, as in a Snakemake job: the client reads HF_ENDPOINT,
HF_HOME, HF_TOKEN and HF_HUB_OFFLINE once, when it is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import ROOT, TINY_OVERLAY, VENV_BIN, copy_workflow, snakemake
from fake_hub import FakeHub, folder_files, make_repo

CARD = b"---\nlicense: mit\n---\n# a generated art dataset\n"
FILES = [f"data/train-{i:05d}-of-00003.parquet" for i in range(3)]


@pytest.fixture(scope="module")
def art_files(demo_source) -> dict[str, bytes]:
    return {**folder_files(demo_source), "README.md": CARD}


@pytest.fixture
def hub(art_files):
    images = {f"train/{c}/{i}.jpg": b"\xff\xd8jpeg" for c in ("a", "b") for i in range(2)}
    convert = {
        "default/train/0000.parquet": art_files[FILES[0]],
        "default/test/0000.parquet": art_files[FILES[1]],
    }
    repos = {
        "test/art": make_repo({"main": art_files}),
        "test/private": make_repo({"main": art_files}, private=True),
        "test/images": make_repo({"main": images, "refs/convert/parquet": convert}),
    }
    server = FakeHub(repos=repos).start()
    yield server
    server.stop()


def hub_env(hub: FakeHub, hf_home: Path, **extra: str) -> dict:
    return {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_XET": "1",
        "HF_TOKEN": "",
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_ETAG_TIMEOUT": "5",
        **extra,
    }


def client(env: dict, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` with the download stage's functions imported, in a fresh process."""
    prog = (
        "from artprobe.stages.download_list import download_list\n"
        "from artprobe.stages.download import download_file\n"
        "from artprobe.sources.hub_cache import check_offline_cache\n" + code
    )
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-c", prog], env=full, capture_output=True, text=True, timeout=120
    )


def fetch_all(
    env: dict, out: Path, repo: str = "test/art", revision: str | None = None, **select
) -> dict:
    code = (
        f"out = download_list({repo!r}, {revision!r}, {str(out / 'files.json')!r}, **{select!r})\n"
        f"for i in range(len(out['files'])): download_file({str(out / 'files.json')!r}, f'{{i:05d}}', "
        f"{str(out)!r} + f'/{{i:05d}}.json')\n"
    )
    proc = client(env, code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "files.json").read_text())


def blobs(hf_home: Path, repo: str = "test/art") -> Path:
    return hf_home / "hub" / f"datasets--{repo.replace('/', '--')}" / "blobs"


def test_clean_download_lists_fetches_and_verifies(hub, art_files, tmp_path):
    files = fetch_all(hub_env(hub, tmp_path / "hf"), tmp_path)
    assert [f["name"] for f in files["files"]] == [*FILES, "README.md"]
    assert files["commit"] == hub.repos["test/art"].refs["main"]
    assert [f["sha256"] for f in files["files"][:3]] == [
        hashlib.sha256(art_files[n]).hexdigest() for n in FILES
    ]
    for i, name in enumerate([*FILES, "README.md"]):
        marker = json.loads((tmp_path / f"{i:05d}.json").read_text())
        assert Path(marker["path"]).read_bytes() == art_files[name]
        assert hub.gets[name] == 1
    tree_pages = [r for r in hub.requests if "/tree/" in r]
    assert len(tree_pages) > 1  # the client followed the Link header through every page


def test_cached_file_is_not_fetched_again_and_stale_partials_go(hub, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    files = fetch_all(env, tmp_path / "a")
    sha = files["files"][1]["sha256"]
    stale = blobs(tmp_path / "hf") / f"{sha}.0badc0de.incomplete"  # what a SIGKILL leaves
    stale.write_bytes(b"x" * 1000)
    fetch_all(env, tmp_path / "b")
    assert all(hub.gets[n] == 1 for n in FILES)
    assert not stale.exists()


def test_corrupted_file_fails_naming_file_and_hashes_and_is_not_kept(hub, art_files, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    hub.corrupt.add(FILES[2])
    proc = client(
        env,
        f"download_list('test/art', None, {str(tmp_path / 'f.json')!r})\n"
        f"download_file({str(tmp_path / 'f.json')!r}, '00002', {str(tmp_path / 'm.json')!r})",
    )
    want = hashlib.sha256(art_files[FILES[2]]).hexdigest()
    bad = bytearray(art_files[FILES[2]])
    bad[-1] ^= 0xFF
    got = hashlib.sha256(bytes(bad)).hexdigest()
    assert proc.returncode != 0
    assert (
        f"{FILES[2]}: sha256 mismatch, the hub lists {want} but the downloaded file has {got}"
        in proc.stderr
    )
    assert not (tmp_path / "m.json").exists()
    assert list(blobs(tmp_path / "hf").iterdir()) == []  # no blob, no partial
    snap = tmp_path / "hf" / "hub" / "datasets--test--art" / "snapshots"
    assert not list(snap.rglob("*.parquet"))
    hub.corrupt.clear()  # the hub is fixed: the rerun fetches it again
    proc = client(
        env, f"download_file({str(tmp_path / 'f.json')!r}, '00002', {str(tmp_path / 'm.json')!r})"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert hub.gets[FILES[2]] == 2


def test_wrong_revision_is_a_clear_error(hub, tmp_path):
    proc = client(
        hub_env(hub, tmp_path / "hf"),
        f"download_list('test/art', 'v9.9', {str(tmp_path / 'f.json')!r})",
    )
    assert proc.returncode != 0
    assert "dataset 'test/art': revision 'v9.9' not found on http://127.0.0.1" in proc.stderr
    assert "check dataset.revision" in proc.stderr


def test_private_repo_without_token_names_hf_token(hub, tmp_path):
    out = str(tmp_path / "f.json")
    proc = client(hub_env(hub, tmp_path / "hf"), f"download_list('test/private', None, {out!r})")
    assert proc.returncode != 0
    assert "not found or not accessible" in proc.stderr and "(HF_TOKEN unset)" in proc.stderr
    assert "set HF_TOKEN to a token with read access" in proc.stderr
    files = fetch_all(hub_env(hub, tmp_path / "hf", HF_TOKEN=hub.token), tmp_path, "test/private")
    assert len(files["files"]) == 4


def test_image_folder_repo_points_to_the_parquet_conversion(hub, art_files, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    proc = client(env, f"download_list('test/images', None, {str(tmp_path / 'f.json')!r})")
    assert (
        "4 image/WebDataset files" in proc.stderr
        and "dataset.revision: refs/convert/parquet" in proc.stderr
    )
    files = fetch_all(env, tmp_path, "test/images", "refs/convert/parquet", splits=["test"])
    assert [f["name"] for f in files["files"]] == ["default/test/0000.parquet"]
    marker = json.loads((tmp_path / "00000.json").read_text())
    assert Path(marker["path"]).read_bytes() == art_files[FILES[1]]
    ref = (
        tmp_path / "hf" / "hub" / "datasets--test--images" / "refs" / "refs" / "convert" / "parquet"
    )
    assert (
        ref.read_text() == files["commit"] == hub.repos["test/images"].refs["refs/convert/parquet"]
    )


def test_offline_uses_the_cache_and_an_empty_cache_names_dataset_revision_hf_home(hub, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    fetch_all(env, tmp_path / "online")
    n = len(hub.requests)
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    files = fetch_all(offline, tmp_path / "offline")
    assert len(files["files"]) == 4 and len(hub.requests) == n  # nothing asked of the hub
    assert client(offline, "check_offline_cache('test/art', None)").returncode == 0
    snapshot = tmp_path / "hf" / "hub" / "datasets--test--art" / "snapshots" / files["commit"]
    (snapshot / FILES[2]).unlink()
    proc = client(offline, "check_offline_cache('test/art', None)")
    assert (
        "1 of 3 data files of dataset 'test/art' at revision 'main' are not in the hub cache"
        in proc.stderr
    )
    assert FILES[2] in proc.stderr
    empty = {**offline, "HF_HOME": str(tmp_path / "empty")}
    proc = client(empty, "check_offline_cache('test/art', 'main')")
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    assert "dataset 'test/art'" in message and "revision 'main'" in message
    assert f"HF_HOME={tmp_path / 'empty'}" in message


def closed_port_url() -> str:
    """An endpoint nothing listens on: connections are refused."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_unreachable_hub_is_one_sentence_naming_endpoint_cause_and_way_out(hub, tmp_path):
    """download_list (the first contact) and download_file (after the client's retries) end
    the job's log and stderr with the one sentence, no traceback."""
    url = closed_port_url()
    env = hub_env(hub, tmp_path / "hf", HF_ENDPOINT=url)
    files = tmp_path / "files.json"
    files.write_text(
        json.dumps(
            {
                "source": "test/art",
                "commit": "0" * 40,
                "files": [
                    {"name": FILES[0], "size": 10, "sha256": "ab" * 32, "blob_id": "cd" * 20}
                ],
            }
        )
    )
    want = (
        f"The Hugging Face hub at {url} cannot be reached (connection refused) to fetch dataset 'test/art': "
        "with no network here, run with HF_HUB_OFFLINE=1 and a hub cache that holds it "
        f"(HF_HOME, now {tmp_path / 'hf'}), or set HF_ENDPOINT to a mirror that can be reached."
    )
    calls = {
        "download_list": f"download_list('test/art', None, {str(tmp_path / 'f.json')!r})",
        "download": f"download_file({str(files)!r}, '00000', {str(tmp_path / 'm.json')!r})",
    }
    for name, call in calls.items():
        log = tmp_path / f"{name}.log"
        proc = client(
            env, f"from artprobe.common.logs import to_log\nwith to_log({str(log)!r}): {call}"
        )
        assert proc.returncode != 0 and proc.stderr.strip() == want, name
        lines = log.read_text().strip().splitlines()
        assert lines[-1].endswith(want) and "Traceback" not in log.read_text(), name


def test_stale_partials_wait_for_a_live_download(tmp_path, monkeypatch):
    """A partial file is removed only once no download of that blob holds the client's lock."""
    import threading

    from huggingface_hub import constants
    from huggingface_hub.utils import WeakFileLock

    from artprobe.stages.download import remove_stale_partials

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    blob = "ab" * 32
    partial = tmp_path / "datasets--test--art" / "blobs" / f"{blob}.1234abcd.incomplete"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"partial")
    lock = tmp_path / ".locks" / "datasets--test--art" / f"{blob}.lock"
    lock.parent.mkdir(parents=True)
    with WeakFileLock(lock):  # a live download elsewhere
        cleaner = threading.Thread(target=remove_stale_partials, args=("test/art", blob))
        cleaner.start()
        cleaner.join(1.0)
        assert cleaner.is_alive() and partial.exists()
    cleaner.join(10)
    assert not cleaner.is_alive() and not partial.exists()


# ------------------------------------------------------------------ through the workflow

TINY_DATASET = """use_datasets: [tiny]
datasets:
  tiny:
    targets: [genre, style]
    demo:
      rows: 120
      files: 2
      seed: 3
      broken: 2
"""
assert TINY_DATASET in TINY_OVERLAY
HUB_OVERLAY = TINY_OVERLAY.replace(
    TINY_DATASET,
    """use_datasets: [{name}]
datasets:
  {name}:
    source: {source}
    revision: {revision}
    targets: [genre, style]
""",
)


def until_shards(name: str, overlay: str = "overlay.yaml") -> tuple[str, ...]:
    """The command: the shards of the 96-row source (shards.rows 48), not the embeddings."""
    shards = [f"results/{name}/shards/{s:05d}.parquet" for s in (0, 1)]
    return (*shards, "--cores", "2", "--configfile", overlay)


UNTIL = until_shards("hub")


def overlay(
    work: Path, name: str = "hub", source: str = "test/art", revision: str = "main"
) -> None:
    (work / "overlay.yaml").write_text(
        HUB_OVERLAY.format(name=name, source=source, revision=revision)
    )


def start_snakemake(work: Path, env: dict) -> subprocess.Popen:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.Popen(
        [str(VENV_BIN / "snakemake"), *UNTIL],
        cwd=work,
        env=full,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None or time.monotonic() > end:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(
                f"snakemake ended or timed out early:\n{proc.communicate()[0][-5000:]}"
            )
        time.sleep(0.2)


def shard_tables(work: Path, name: str) -> list:
    return [
        pq.read_table(p).select(["row_id", "image", "genre", "style"])
        for p in sorted((work / "results" / name / "shards").glob("*.parquet"))
    ]


@pytest.mark.workflow
@pytest.mark.slow
def test_killed_download_recovers_and_offline_runs(hub, art_files, demo_source, tmp_path):
    """SIGKILL while one file streams; the same command again finishes, fetching only what
    was in flight; no partial file is left; shards equal those of the local source. Then the
    workflow runs offline from the filled cache, and fails at parse with an empty one."""
    work = copy_workflow(tmp_path / "work")
    overlay(work)
    env = hub_env(hub, tmp_path / "hf")
    slow = FILES[1]
    hub.throttle[slow] = 200_000  # bytes/s: the kill lands mid-file
    proc = start_snakemake(work, env)
    download = work / "results" / "hub" / "download"
    others = [f"{i:05d}.json" for i in (0, 2, 3)]
    wait_for(
        lambda: all((download / m).exists() for m in others) and hub.sent[slow] > 100_000, proc
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    partials = list(blobs(tmp_path / "hf").glob("*.incomplete"))
    assert len(partials) == 1 and not (download / "00001.json").exists()

    del hub.throttle[slow]
    snakemake(work, *UNTIL, "--unlock", env=env)  # docs/resuming.md: unlock, the same command
    snakemake(work, *UNTIL, env=env)
    assert {n: hub.gets[n] for n in [*FILES, "README.md"]} == {
        FILES[0]: 1,
        slow: 2,
        FILES[2]: 1,
        "README.md": 1,
    }
    assert list(blobs(tmp_path / "hf").glob("*.incomplete")) == []
    log = (work / "results" / "hub" / "logs" / "download" / "00001.log").read_text()
    assert "left by a killed download" in log and "MB/s" in log
    for name in FILES:
        cached = (
            tmp_path
            / "hf"
            / "hub"
            / "datasets--test--art"
            / "snapshots"
            / hub.repos["test/art"].refs["main"]
            / name
        )
        assert cached.read_bytes() == art_files[name]

    (work / "local.yaml").write_text(
        HUB_OVERLAY.format(name="local", source=demo_source, revision="null")
    )
    snakemake(work, *until_shards("local", "local.yaml"))
    hub_shards, local_shards = shard_tables(work, "hub"), shard_tables(work, "local")
    assert len(hub_shards) == len(local_shards) == 2
    assert all(a.equals(b) for a, b in zip(hub_shards, local_shards, strict=True))

    offline = copy_workflow(tmp_path / "offline")
    overlay(offline)
    n = len(hub.requests)
    snakemake(offline, *UNTIL, env={**env, "HF_HUB_OFFLINE": "1"})
    assert len(shard_tables(offline, "hub")) == 2 and len(hub.requests) == n

    empty = copy_workflow(tmp_path / "empty")
    overlay(empty)
    run = snakemake(
        empty,
        *UNTIL,
        env={**env, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "none")},
        check=False,
    )
    out = run.stdout + run.stderr
    assert run.returncode != 0 and out.count("HF_HUB_OFFLINE is set") == 1
    assert (
        "dataset 'test/art'" in out
        and "revision 'main'" in out
        and f"HF_HOME={tmp_path / 'none'}" in out
    )
    assert not (empty / "results").exists()  # no job ran


SMALL_DISK = (
    "import collections, shutil\n"
    "usage = collections.namedtuple('usage', 'total used free')\n"
    "shutil.disk_usage = lambda path: usage(10**6, 10**6 - {free}, {free})\n"
)  # the hub cache's file system, as artprobe.common.disk sees it, with {free} bytes free


def test_a_hub_cache_without_room_fails_before_downloading_naming_both_sizes_and_hf_home(
    hub, art_files, tmp_path
):
    hf_home = tmp_path / "hf"
    need = sum(len(art_files[n]) for n in [*FILES, "README.md"])
    code = (
        SMALL_DISK.format(free=1000)
        + f"download_list('test/art', None, {str(tmp_path / 'files.json')!r})\n"
    )
    proc = client(hub_env(hub, hf_home), code)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert (
        "NotEnoughSpaceError" in last
        and "not enough disk space for 4 of 4 files of dataset 'test/art'" in last
    )
    assert f"({need:,} bytes)" in last and "(1,000 bytes) free" in last, last
    assert f"HF_HOME={hf_home}" in last and str(hf_home / "hub" / "datasets--test--art") in last, (
        last
    )
    assert not (tmp_path / "files.json").exists()  # the checkpoint failed: no download job starts
    assert not any(hub.gets[n] for n in FILES)


def test_only_the_bytes_still_to_fetch_count(hub, art_files, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    fetch_all(env, tmp_path / "a")  # everything cached
    code = (
        SMALL_DISK.format(free=0)
        + f"download_list('test/art', None, {str(tmp_path / 'files.json')!r})\n"
    )
    proc = client(env, code)
    assert proc.returncode == 0, proc.stderr[-3000:]  # nothing left to fetch: no space needed
    # one blob gone: its bytes are needed again, and the download job checks them first
    sha = json.loads((tmp_path / "files.json").read_text())["files"][2]["sha256"]
    (blobs(tmp_path / "hf") / sha).unlink()
    size = len(art_files[FILES[2]])
    code = SMALL_DISK.format(free=size - 1) + (
        f"download_file({str(tmp_path / 'files.json')!r}, '00002', {str(tmp_path / 'm.json')!r})\n"
    )
    proc = client(env, code)
    assert proc.returncode != 0 and "1 of 1 files of dataset 'test/art'" in proc.stderr
    assert (
        f"({size:,} bytes)" in proc.stderr and hub.gets[FILES[2]] == 1
    )  # not fetched a second time
