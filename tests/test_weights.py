"""Weights stage against a local hub (tests/fake_hub.py) serving a tiny timm model's
repository, ``timm/test_vit.r160_in1k``, with weights written here from a random init: timm's
pretrained config names the repository, the real ``huggingface_hub`` client fetches it, and
embed jobs load the file through timm's pretrained path.

Client calls run in a subprocess, as in a Snakemake job: the client reads HF_ENDPOINT,
HF_HOME, HF_TOKEN and HF_HUB_OFFLINE once, when it is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, TINY_OVERLAY, copy_workflow, snakemake
from embed_helpers import embed
from fake_hub import FakeHub, make_repo

REPO = "timm/test_vit.r160_in1k"
FILE = "model.safetensors"


@pytest.fixture(scope="module")
def weight_files() -> dict[int, bytes]:
    """Two versions of test_vit's weights (random inits, seeds 0 and 1) as safetensors."""
    import timm
    import torch
    from safetensors.torch import save

    out = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = timm.create_model("test_vit", pretrained=False)
        out[seed] = save({k: v.contiguous() for k, v in model.state_dict().items()})
    return out


@pytest.fixture
def hub(weight_files):
    repo = make_repo(
        {"main": {FILE: weight_files[0], "config.json": b'{"architecture": "test_vit"}'}}
    )
    server = FakeHub(models={REPO: repo}).start()
    yield server
    server.stop()


def hub_env(hub_url: str, hf_home: Path, **extra: str) -> dict:
    return {
        "HF_ENDPOINT": hub_url,
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_XET": "1",
        "HF_TOKEN": "",
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_ETAG_TIMEOUT": "5",
        **extra,
    }


def client(env: dict, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` with the weights stage's functions imported, in a fresh process."""
    prog = (
        "from artprobe.stages.weights import fetch_weights\n"
        "from artprobe.pretrained import check_offline_weights\n"
        "from artprobe.common.logs import to_log\n" + code
    )
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-c", prog],
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def fetch(
    env: dict, out: Path, revision: str | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """The weights job of model 'vit' (timm test_vit), logging to ``out``'s .log as a job does."""
    log = out.with_suffix(".log")
    proc = client(
        env,
        f"with to_log({str(log)!r}): fetch_weights('vit', 'test_vit', {revision!r}, {str(out)!r})",
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:] + (
            log.read_text()[-3000:] if log.exists() else ""
        )
    return proc


def closed_port_url() -> str:
    """An endpoint nothing listens on: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def cached_blob(hf_home: Path, sha: str) -> Path:
    return hf_home / "hub" / f"models--{REPO.replace('/', '--')}" / "blobs" / sha


def test_download_checks_and_writes_the_marker(hub, weight_files, tmp_path):
    fetch(hub_env(hub.url, tmp_path / "hf"), tmp_path / "vit.json")
    marker = json.loads((tmp_path / "vit.json").read_text())
    sha = hashlib.sha256(weight_files[0]).hexdigest()
    assert marker["repo"] == REPO and marker["file"] == FILE and marker["revision"] == "main"
    assert marker["commit"] == hub.models[REPO].refs["main"]
    assert marker["size"] == len(weight_files[0]) and marker["sha256"] == sha
    assert Path(marker["path"]).read_bytes() == weight_files[0]
    assert Path(marker["path"]).resolve() == cached_blob(tmp_path / "hf", sha)
    assert hub.gets[FILE] == 1 and hub.gets["config.json"] == 0  # only the file timm loads
    assert "size and hash ok" in (tmp_path / "vit.log").read_text()


def test_the_commit_is_pinned_until_the_lock_goes_and_a_revision_is_honoured(
    hub, weight_files, tmp_path
):
    env = hub_env(hub.url, tmp_path / "hf")
    out = tmp_path / "vit.json"
    fetch(env, out)
    first = json.loads(out.read_text())["commit"]
    newer = hub.models[REPO].push("main", {FILE: weight_files[1]})  # main moves on
    n = len(hub.requests)
    out.unlink()  # Snakemake deletes a job's output before it reruns
    fetch(env, out)
    assert json.loads(out.read_text())["commit"] == first
    assert len(hub.requests) == n  # the rerun asked the hub nothing
    assert hub.gets[FILE] == 1

    fetch(env, out, revision=newer)  # an explicit revision
    marker = json.loads(out.read_text())
    assert marker["commit"] == newer and marker["revision"] == newer
    assert Path(marker["path"]).read_bytes() == weight_files[1]

    fetch(env, out, revision=first)  # back to the first commit: cached, no request
    n = len(hub.requests)
    fetch(env, out, revision=first)
    assert json.loads(out.read_text())["commit"] == first and len(hub.requests) == n

    out.with_name("vit.lock.json").unlink()  # dropping the lock takes main's new head
    fetch(env, out)
    assert json.loads(out.read_text())["commit"] == newer


def test_a_corrupted_file_is_detected_removed_and_fetched_again(hub, weight_files, tmp_path):
    env = hub_env(hub.url, tmp_path / "hf")
    out = tmp_path / "vit.json"
    sha = hashlib.sha256(weight_files[0]).hexdigest()
    hub.corrupt.add(FILE)  # served with one byte flipped
    proc = fetch(env, out, check=False)
    assert proc.returncode != 0 and not out.exists()
    assert f"{FILE}: sha256 mismatch, the hub lists {sha}" in proc.stderr.strip().splitlines()[-1]
    assert not cached_blob(tmp_path / "hf", sha).exists()
    hub.corrupt.clear()
    fetch(env, out)
    assert hub.gets[FILE] == 2

    blob = cached_blob(tmp_path / "hf", sha)  # the cache goes bad after the download
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    out.unlink()
    proc = fetch(env, out, check=False)
    assert proc.returncode != 0 and "sha256 mismatch" in proc.stderr and not blob.exists()
    fetch(env, out)
    assert hub.gets[FILE] == 3 and blob.read_bytes() == weight_files[0]


def test_offline_a_filled_cache_needs_no_request_and_an_empty_one_names_model_and_command(
    hub, tmp_path
):
    env = hub_env(hub.url, tmp_path / "hf")
    out = tmp_path / "vit.json"
    fetch(env, out)
    commit = json.loads(out.read_text())["commit"]
    out.unlink()
    out.with_name("vit.lock.json").unlink()  # offline, the cache's refs/main says which commit
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    n = len(hub.requests)
    models = {"vit": {"timm": "test_vit", "revision": None}}
    check = f"check_offline_weights({models!r}, {{'vit': {str(out)!r}}})"
    assert client(offline, check).returncode == 0
    fetch(offline, out)
    assert json.loads(out.read_text())["commit"] == commit and len(hub.requests) == n

    empty = {**offline, "HF_HOME": str(tmp_path / "empty")}
    out.unlink()
    out.with_name("vit.lock.json").unlink()
    for proc in (client(empty, check), fetch(empty, out, check=False)):
        assert proc.returncode != 0
        last = proc.stderr.strip().splitlines()[-1]
        assert f"HF_HUB_OFFLINE is set and the hub cache (HF_HOME={tmp_path / 'empty'})" in last
        assert f"models[vit] ({REPO}@main)" in last
        assert f"`snakemake --cores 1 {out}`" in last
    assert len(hub.requests) == n


def test_unreachable_hub_is_one_sentence_at_the_end_of_the_log(tmp_path):
    url = closed_port_url()
    out = tmp_path / "vit.json"
    proc = fetch(hub_env(url, tmp_path / "hf"), out, check=False)
    want = (
        f"The Hugging Face hub at {url} cannot be reached (connection refused) to fetch model '{REPO}': "
        "with no network here, run with HF_HUB_OFFLINE=1 and a hub cache that holds it "
        f"(HF_HOME, now {tmp_path / 'hf'}), or set HF_ENDPOINT to a mirror that can be reached."
    )
    assert (
        proc.returncode != 0 and proc.stderr.strip() == want
    )  # the job's stderr: the sentence alone
    log = out.with_suffix(".log").read_text().strip().splitlines()
    assert log[-1].endswith(want) and "Traceback" not in "\n".join(log)


def test_a_model_without_hub_weights_is_named(tmp_path):
    proc = client(
        {}, f"fetch_weights('evos', 'regnetz_b16_evos', None, {str(tmp_path / 'w.json')!r})"
    )
    assert (
        "models[evos]: timm's pretrained config of 'regnetz_b16_evos' names no hub repository"
        in proc.stderr
    )
    assert "set models[evos].weights" in proc.stderr


def test_cuda_asked_for_on_a_cpu_machine_is_one_sentence_before_the_model_is_built(
    tmp_path, monkeypatch
):
    import torch

    from artprobe.common.device import DeviceError
    from artprobe.stages import embed as shard

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")

    def no_build(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr(shard, "load_model", no_build)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(DeviceError) as err:
            embed(tmp_path / "none.parquet", tmp_path / "out.parquet", device=device)
        message = str(err.value)
        assert message.startswith(
            f"embed_runtime.device is {device!r}, but {socket.gethostname()} has no such CUDA"
        )
        assert message.endswith(
            "run this job on a GPU node, or set embed_runtime.device to auto (the GPU when there is one) or cpu."
        )
        assert "\n" not in message


# ------------------------------------------------------------------ through the workflow

MODELS = """models:
  - name: hub
    timm: test_vit
  - name: local
    timm: test_vit
    weights: {weights}
"""


def weights_overlay(work: Path, weights: Path) -> None:
    start = TINY_OVERLAY.index("models:")
    end = TINY_OVERLAY.index("embed:")
    text = TINY_OVERLAY[:start] + MODELS.format(weights=weights) + TINY_OVERLAY[end:]
    (work / "overlay.yaml").write_text(text)


def embeddings(work: Path, model: str) -> np.ndarray:
    import pyarrow.parquet as pq

    from artprobe.common.io import embedding_matrix

    table = pq.read_table(work / "results" / "tiny" / "embeddings" / f"{model}.parquet")
    return embedding_matrix(table["embedding"].filter(table["embedding"].is_valid()))


@pytest.mark.workflow
def test_embeddings_of_hub_weights_name_them_and_equal_the_same_local_file(
    hub, weight_files, tmp_path
):
    """A pretrained model's weights come from the weights stage; the embeddings' provenance
    names repo, commit and sha256; they equal those of the same file given as models[].weights.
    Offline with an empty cache the run stops at parse, before any job; with the hub
    unreachable the job's sentence ends Snakemake's output for it."""
    from artprobe.common.io import read_meta

    local = tmp_path / "local.safetensors"
    local.write_bytes(weight_files[0])
    work = copy_workflow(tmp_path / "work")
    weights_overlay(work, local)
    env = hub_env(hub.url, tmp_path / "hf")
    targets = [f"results/tiny/embeddings/{m}.parquet" for m in ("hub", "local")]
    snakemake(work, *targets, "--cores", "2", "--configfile", "overlay.yaml", env=env)
    hub_emb, local_emb = embeddings(work, "hub"), embeddings(work, "local")
    assert hub_emb.shape[0] > 100 and np.array_equal(hub_emb, local_emb)
    meta = read_meta(work / "results" / "tiny" / "embeddings" / "hub" / "00000.parquet")
    sha = hashlib.sha256(weight_files[0]).hexdigest()
    assert (meta["weights_repo"], meta["weights_file"], meta["weights_sha256"]) == (REPO, FILE, sha)
    assert meta["weights_commit"] == hub.models[REPO].refs["main"]
    assert (
        read_meta(work / "results" / "tiny" / "embeddings" / "local" / "00000.parquet")[
            "weights_sha256"
        ]
        == sha
    )
    log = (work / "results" / "tiny" / "logs" / "embed" / "hub" / "00000.log").read_text()
    assert "meta device" not in log  # the fast meta-device load, as for a local file
    assert hub.gets[FILE] == 1

    offline = copy_workflow(tmp_path / "offline")
    weights_overlay(offline, local)
    none = {**env, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "none")}
    run = snakemake(
        offline, *targets, "--cores", "2", "--configfile", "overlay.yaml", env=none, check=False
    )
    out = run.stdout + run.stderr
    assert run.returncode != 0 and out.count("HF_HUB_OFFLINE is set") == 1
    assert (
        f"models[hub] ({REPO}@main)" in out
        and "`snakemake --cores 1 results/tiny/weights/hub.json`" in out
    )
    assert not (offline / "results").exists()  # no job ran

    url = closed_port_url()
    away = {**env, "HF_ENDPOINT": url, "HF_HOME": str(tmp_path / "away")}
    run = snakemake(
        offline,
        "results/tiny/weights/hub.json",
        "--cores",
        "1",
        "--configfile",
        "overlay.yaml",
        env=away,
        check=False,
    )
    sentence = f"The Hugging Face hub at {url} cannot be reached (connection refused) to fetch model '{REPO}'"
    assert run.returncode != 0 and sentence in run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    log = (
        (offline / "results" / "tiny" / "logs" / "weights" / "hub.log")
        .read_text()
        .strip()
        .splitlines()
    )
    assert sentence in log[-1]


def test_connection_causes_are_read_from_the_exception_chain():
    from artprobe.common.hub import connection_cause

    def chained(*errors):
        for outer, inner in zip(errors, errors[1:]):
            outer.__cause__ = inner
        return errors[0]

    class ConnectError(Exception):  # httpx's name for it
        pass

    dns = socket.gaierror(-2, "Name or service not known")
    assert connection_cause(chained(ConnectError("x"), dns)) == (
        "DNS lookup of the host failed: Name or service not known"
    )
    assert connection_cause(
        chained(RuntimeError("y"), ConnectError("z"), ConnectionRefusedError(111, "r"))
    ) == ("connection refused")
    assert (
        connection_cause(chained(ConnectError("Network is unreachable")))
        == "network is unreachable"
    )
    assert connection_cause(chained(ValueError("bad"), KeyError("k"))) is None


def test_an_embed_job_refuses_weights_whose_hash_changed_since_the_weights_job(
    hub, weight_files, tmp_path
):
    from artprobe.embedding.weight_loading import weights_file

    out = tmp_path / "vit.json"
    fetch(hub_env(hub.url, tmp_path / "hf"), out)
    marker = json.loads(out.read_text())
    path, provenance = weights_file(None, str(out))
    assert path == marker["path"] and provenance["weights_commit"] == marker["commit"]
    marker["sha256"] = "0" * 64  # the file is not what the weights job checked
    out.write_text(json.dumps(marker))
    from artprobe.pretrained import WeightsError

    with pytest.raises(WeightsError, match="the hub cache changed since; delete .* and rerun"):
        weights_file(None, str(out))
