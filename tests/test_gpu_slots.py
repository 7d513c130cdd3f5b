"""GPU slots for local jobs, on CPU with fake GPU ids: separate processes, as Snakemake runs jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from artprobe.embedding import gpu_slots

# claims a slot, prints the GPU it got (and a forked child's pid), holds it until stdin closes
HOLDER = """
import os, sys, time
from artprobe.embedding.gpu_slots import claim_gpu
claim_gpu(sys.argv[1], poll=0.05)
child = 0
if sys.argv[2] == "fork":
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
print(os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("ARTPROBE_GPU_SLOT"), child, flush=True)
sys.stdin.read()
"""


@pytest.fixture
def fake_gpus(tmp_path, monkeypatch):
    """Four fake GPUs and a private slot folder, for this test and the processes it starts."""
    env = dict(
        os.environ, ARTPROBE_GPU_IDS="0,1,2,3", ARTPROBE_GPU_SLOTS_DIR=str(tmp_path / "slots")
    )
    env.pop("SLURM_JOB_ID", None)
    env["PYTHONPATH"] = str(ROOT)
    return env


def _holder(env, device="auto", fork=False) -> subprocess.Popen:
    cmd = [sys.executable, "-c", HOLDER, device, "fork" if fork else "-"]
    return subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _answer(proc: subprocess.Popen) -> tuple[str, str, int]:
    gpu, slot, child = proc.stdout.readline().split()
    return gpu, slot, int(child)


def _stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.stdin.close()
            p.wait(timeout=30)


def test_gpu_ids_come_from_the_override_then_cuda_visible_devices():
    assert gpu_slots.gpu_ids({"ARTPROBE_GPU_IDS": "0, 2", "CUDA_VISIBLE_DEVICES": "5"}) == [
        "0",
        "2",
    ]
    assert gpu_slots.gpu_ids({"CUDA_VISIBLE_DEVICES": "3,1"}) == ["3", "1"]
    assert gpu_slots.gpu_ids({"CUDA_VISIBLE_DEVICES": ""}) == []  # no GPU: no slot


def test_cpu_runs_slurm_jobs_and_explicit_devices_take_no_slot(tmp_path):
    env = {"ARTPROBE_GPU_IDS": "0,1", "ARTPROBE_GPU_SLOTS_DIR": str(tmp_path)}
    assert gpu_slots.claim_gpu("cpu", env=env) is None
    assert gpu_slots.claim_gpu("cuda:1", env=env) is None
    slurm = dict(env, SLURM_JOB_ID="17", CUDA_VISIBLE_DEVICES="0")
    assert gpu_slots.claim_gpu("auto", env=slurm) is None
    assert slurm["CUDA_VISIBLE_DEVICES"] == "0"  # what SLURM assigned stays
    assert gpu_slots.claim_gpu("auto", env={"CUDA_VISIBLE_DEVICES": ""}) is None
    assert not list(tmp_path.iterdir())  # no lock taken


def test_concurrent_jobs_get_distinct_gpus(fake_gpus):
    procs = [_holder(fake_gpus) for _ in range(4)]
    try:
        answers = [_answer(p) for p in procs]
    finally:
        _stop(*procs)
    assert sorted(gpu for gpu, _, _ in answers) == ["0", "1", "2", "3"]
    assert all(slot.endswith(":" + gpu) for gpu, slot, _ in answers)


def test_a_job_waits_while_every_gpu_is_busy_and_gets_the_first_freed(fake_gpus):
    procs = [_holder(fake_gpus) for _ in range(4)]
    waiter = None
    try:
        gpus = [_answer(p)[0] for p in procs]
        waiter = _holder(fake_gpus)
        time.sleep(1.0)
        assert waiter.poll() is None and not _readable(waiter), (
            "took a slot while all four were held"
        )
        _stop(procs[2])  # the job on gpus[2] ends
        assert _answer(waiter)[0] == gpus[2]
    finally:
        _stop(*procs, *([waiter] if waiter else []))


def test_a_sigkilled_jobs_gpu_is_free_again_even_with_a_forked_worker_alive(fake_gpus):
    env = dict(fake_gpus, ARTPROBE_GPU_IDS="0")
    holder = _holder(env, fork=True)  # like a DataLoader worker, the child outlives its parent
    waiter = None
    gpu, _, child = _answer(holder)
    try:
        waiter = _holder(env)
        time.sleep(0.5)
        assert not _readable(waiter)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        os.kill(child, 0)  # the forked worker still runs
        t0 = time.monotonic()
        assert _answer(waiter)[0] == gpu == "0"
        assert time.monotonic() - t0 < 5
    finally:
        os.kill(child, signal.SIGKILL)
        _stop(holder, *([waiter] if waiter else []))


def test_acquire_times_out_naming_the_gpus(fake_gpus, tmp_path):
    folder = tmp_path / "slots"
    env = dict(fake_gpus, ARTPROBE_GPU_IDS="1")
    holder = _holder(env)
    try:
        _answer(holder)
        with pytest.raises(TimeoutError, match=r"no free GPU among \['1'\]"):
            gpu_slots.acquire(folder, ["1"], poll=0.05, timeout=0.3)
        slot = gpu_slots.acquire(folder, ["1", "2"], poll=0.05, timeout=0.3)
        assert slot.gpu == "2"
        # the same process never gets a slot it holds twice (POSIX locks do not exclude it)
        with pytest.raises(TimeoutError):
            gpu_slots.acquire(folder, ["2"], poll=0.05, timeout=0.2)
        gpu_slots.release(slot)
        again = gpu_slots.acquire(folder, ["2"], timeout=0.2)
        assert again.gpu == "2"
        gpu_slots.release(again)
    finally:
        _stop(holder)


def _readable(proc: subprocess.Popen) -> bool:
    import select

    return bool(select.select([proc.stdout], [], [], 0)[0])


@pytest.mark.workflow
def test_snakemake_runs_two_embed_jobs_at_once_on_two_gpus(tmp_path):
    """`--resources gpu=2`: overlapping embed jobs record different GPUs, none a third one."""
    import datetime as dt
    import json
    import re

    import pyarrow.parquet as pq
    from conftest import TINY_OVERLAY, copy_workflow, snakemake

    work = copy_workflow(tmp_path / "work")
    (work / "tiny.yaml").write_text(TINY_OVERLAY)
    env = {"ARTPROBE_GPU_IDS": "0,1", "ARTPROBE_GPU_SLOTS_DIR": str(tmp_path / "slots")}
    targets = [f"results/tiny/embeddings/{m}.parquet" for m in ("vit", "convnext")]
    snakemake(
        work,
        *targets,
        "--cores",
        "2",
        "--resources",
        "gpu=2",
        "--set-threads",
        "embed=1",
        "--configfile",
        "tiny.yaml",
        env=env,
    )
    jobs = []
    for out in sorted((work / "results" / "tiny" / "embeddings").glob("*/*.parquet")):
        meta = json.loads(pq.read_schema(out).metadata[b"artprobe"])
        log = work / "results" / "tiny" / "logs" / "embed" / out.parent.name / (out.stem + ".log")
        started = re.search(
            r"^(\S+ \S+) INFO artprobe.embedding.gpu_slots: GPU slot (\S+)", log.read_text(), re.M
        )
        t0 = dt.datetime.strptime(started.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        assert meta["gpu_slot"] == started.group(2) and meta["gpu_slot"].endswith(
            ":" + meta["cuda_visible_devices"]
        )
        jobs.append((t0, out.stat().st_mtime, meta["cuda_visible_devices"]))
    assert len(jobs) == 6 and {gpu for *_, gpu in jobs} == {"0", "1"}
    overlapping = [
        (a, b) for i, a in enumerate(jobs) for b in jobs[i + 1 :] if a[0] < b[1] and b[0] < a[1]
    ]
    assert overlapping, jobs  # two at a time, as --resources gpu=2 allows
    assert all(a[2] != b[2] for a, b in overlapping), overlapping
