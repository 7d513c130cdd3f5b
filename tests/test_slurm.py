"""The demo through profiles/slurm on a real single-node SLURM cluster (.ci/slurm.sh).

One run, interrupted the way users interrupt it: Snakemake is SIGKILLed (a dropped login
session) while an embed job runs, then recovered as docs/slurm.md says (scancel the orphaned
jobs, --unlock, rerun with --rerun-incomplete). Checks that every job went through sbatch,
that embed jobs landed on the GPU partition with a GPU (a fake gres backed by /dev/null:
SLURM sets CUDA_VISIBLE_DEVICES=0), and that the recovered run ends where an uninterrupted
one would: nothing left to do, and embeddings equal to the shard embedded in one go.

Needs root and Debian's slurm packages; skipped without them unless ARTPROBE_REQUIRE_SLURM
is set (CI), in which case .ci/slurm.sh installs them and a missing cluster is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import ROOT, copy_workflow

from artprobe.report.tables import BASELINE_CLASSIFIER

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SLURM_SH = ROOT / ".ci" / "slurm.sh"
REQUIRED = bool(os.environ.get("ARTPROBE_REQUIRE_SLURM"))
RULES = [
    "generate_demo",
    "manifest",
    "split",
    "shard",
    "image_hash",
    "duplicates",
    "embed",
    "merge_embeddings",
    "classify",
    "fewshot",
    "compare",
    "thumbnails",
    "report_slurm",  # the report rule of the dataset slurm
    "leaderboard",
]
RUN_TIMEOUT = (
    600  # seconds for one Snakemake invocation (outer `timeout`): a hang fails, not blocks
)

# one model, one target, one probe, two shards: 15 sbatch jobs and the leaderboard's, two of
# them on the GPU
OVERLAY = """
use_datasets: [slurm]
datasets:
  slurm:
    targets: [genre]
    demo:
      rows: 96
      files: 2
      seed: 5
      broken: 1
shards:
  rows: 48
models:
  - name: vit
    timm: test_vit
    pretrained: false
embed:
  precision: fp32
embed_runtime:
  batch_size: 8
  workers: 0
  checkpoint_every: 1
classifiers:
  - name: linear
    kind: linear
probe:
  bootstrap: 20
  fewshot: {shots: [1, all], trials: 1}
report:
  map_rows: 50
"""

# what the test cluster needs on top of profiles/slurm: a small node without accounting
PROFILE_OVERRIDES = {
    "slurm-status-command": "squeue",  # no sacct here; MinJobAge=3600 >= 3 x 2 s
    "slurm-init-seconds-before-status-checks": 2,
    "slurm-no-account": True,
    "slurm-keep-successful-logs": True,  # the test reads every job's sbatch log
    "latency-wait": 5,
    "retries": 0,
}
SMALL = {
    "mem_mb": 1000,
    "runtime": 15,
}  # every rule, with one thread: jobs of a level run side by side


def _slurm_available() -> str | None:
    """None if the cluster can be started here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (munge, slurmctld, slurmd)"
    if not REQUIRED:
        missing = [
            b for b in ("slurmctld", "slurmd", "sbatch", "munged") if shutil.which(b) is None
        ]
        if missing:
            return f"SLURM not installed ({', '.join(missing)} missing); set ARTPROBE_REQUIRE_SLURM=1 to install"
    return None


def _sh(*args: str, check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def cluster():
    reason = _slurm_available()
    if reason:
        if REQUIRED:
            pytest.fail(f"ARTPROBE_REQUIRE_SLURM is set but {reason}")
        pytest.skip(reason)
    state = Path(tempfile.mkdtemp(prefix="artprobe-slurm-"))  # short: socket paths live here
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(SLURM_SH), "start", str(state)], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        subprocess.run(["bash", str(SLURM_SH), "stop", str(state)], capture_output=True)
        pytest.fail(f".ci/slurm.sh start failed:\n{proc.stdout}\n{proc.stderr}")
    print(f"cluster up in {time.monotonic() - t0:.1f} s ({state})")
    try:
        yield state
    finally:
        subprocess.run(
            ["bash", str(SLURM_SH), "stop", str(state)], capture_output=True, timeout=120
        )
        shutil.rmtree(state, ignore_errors=True)


def _test_profile(grouped: bool = False) -> dict:
    """profiles/slurm/config.yaml with the test cluster's overrides; GPU settings kept.

    Ungrouped unless ``grouped``: the kill-and-recover run checks one sbatch per job.
    """
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    profile.update(PROFILE_OVERRIDES)
    profile["cores"] = 1  # = every rule's threads here, as the profile's cores = embed's threads
    if not grouped:
        profile.pop("groups"), profile.pop("group-components")
    profile.setdefault("default-resources", {}).update(SMALL)
    set_resources = profile.setdefault("set-resources", {})
    for rule in RULES:
        set_resources.setdefault(rule, {}).update(SMALL)
    profile["set-threads"] = {rule: 1 for rule in RULES}
    return profile


def _prepare(dest: Path, grouped: bool = False) -> Path:
    work = copy_workflow(dest)
    # the package too (used through PYTHONPATH): jobs then run this snapshot even while
    # the repository changes under a long test
    shutil.copytree(
        ROOT / "artprobe", work / "artprobe", ignore=shutil.ignore_patterns("__pycache__")
    )
    (work / "slurm-test.yaml").write_text(OVERLAY)
    folder = work / "profiles" / "slurm-test"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(_test_profile(grouped), sort_keys=False))
    return work


def _cmd(*extra: str) -> list[str]:
    return [
        "timeout",
        "--kill-after=20",
        str(RUN_TIMEOUT),
        sys.executable,
        "-m",
        "snakemake",
        "--workflow-profile",
        "profiles/slurm-test",
        "--configfile",
        "slurm-test.yaml",
        *extra,
    ]


def _env(work: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(work))  # the snapshot of artprobe (see _prepare)


def _run(work: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        _cmd(*extra),
        cwd=work,
        env=_env(work),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT + 60,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(extra)} failed ({proc.returncode}):\n{proc.stderr[-8000:]}\n{_debug(work)}"
        )
    return proc


def _debug(work: Path) -> str:
    squeue = _sh("squeue", "-a", check=False).stdout
    logs = sorted(work.glob(".snakemake/slurm_logs/**/*.log"))[-3:]
    tails = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in logs)
    return f"squeue:\n{squeue}\n{tails}"


SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: .*/rule_(\w+)/")
HEADER = re.compile(r"^(local)?(rule|checkpoint) (\w+):$", re.M)


def _submissions(log: str) -> list[tuple[str, str]]:
    """(slurm job id, rule) for every sbatch submission in a Snakemake log."""
    return [(m.group(1), m.group(2)) for m in SUBMITTED.finditer(log)]


def _scontrol(jobid: str) -> str:
    return _sh("scontrol", "show", "job", "-d", jobid).stdout


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The interrupted and recovered run: its work dir, both Snakemake logs and what the user saw."""
    work = _prepare(tmp_path_factory.mktemp("slurm_run"))
    t0 = time.monotonic()
    first = work / "first.log"
    with open(first, "w") as out:
        proc = subprocess.Popen(
            _cmd(), cwd=work, env=_env(work), stdout=out, stderr=subprocess.STDOUT
        )
        try:
            run_id = _wait_for_running_gpu_job(proc, first)
            # kill snakemake itself (the child of `timeout`), as a dropped login session does
            children = _sh("pgrep", "-P", str(proc.pid)).stdout.split()
            assert len(children) == 1, children
            os.kill(int(children[0]), signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    killed_at = time.monotonic() - t0
    # what the user sees: the dead run's jobs still queued or running, and a locked directory
    orphans = _sh("squeue", "-h", "-n", run_id, "-o", "%i %P %T").stdout.splitlines()
    locked = _run(work, check=False)
    # recovery, as docs/slurm.md says
    _sh("scancel", "--name", run_id)
    _run(work, "--unlock")
    rerun = _run(work, "--rerun-incomplete")
    print(f"killed after {killed_at:.0f} s, recovered after {time.monotonic() - t0:.0f} s")
    return {
        "work": work,
        "first": first.read_text(),
        "first_rc": proc.returncode,
        "orphans": orphans,
        "locked": locked,
        "rerun": rerun.stderr,
    }


def _wait_for_running_gpu_job(
    proc: subprocess.Popen, logfile: Path, timeout: float = RUN_TIMEOUT
) -> str:
    """Wait until an embed job of this run is RUNNING in SLURM; return the SLURM run id."""
    deadline = time.monotonic() + timeout
    run_id = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, (
            f"snakemake ended before an embed job ran:\n{logfile.read_text()[-5000:]}"
        )
        if run_id is None:
            m = re.search(r"SLURM run ID: (\S+)", logfile.read_text())
            run_id = m.group(1) if m else None
        if run_id:
            jobs = _sh(
                "squeue", "-h", "-n", run_id, "-t", "R", "-o", "%i %P", check=False
            ).stdout.splitlines()
            if any(line.endswith(" gpu") for line in jobs):
                return run_id
        time.sleep(0.5)
    raise AssertionError(f"no embed job running after {timeout} s:\n{logfile.read_text()[-5000:]}")


def test_every_job_goes_through_sbatch(slurm_run):
    work = slurm_run["work"]
    seen = set()
    for name in ("first", "rerun"):
        log = slurm_run[name]
        headers = [(m.group(1) is not None, m.group(3)) for m in HEADER.finditer(log)]
        remote = sorted(rule for local, rule in headers if not local)
        submitted = _submissions(log)
        assert {rule for local, rule in headers if local} <= {"all"}, headers
        if name == "rerun":
            assert sorted(rule for _, rule in submitted) == remote, name
        else:  # killed: a job announced in the last instant may not have reached sbatch
            assert set(rule for _, rule in submitted) <= set(remote), name
        for jobid, rule in submitted:  # the plugin names a job's sbatch log after its SLURM id
            if name == "rerun" or "JobState=COMPLETED" in _scontrol(
                jobid
            ):  # not: cancelled while pending
                assert list(
                    (work / ".snakemake" / "slurm_logs" / f"rule_{rule}").glob(f"**/{jobid}.log")
                ), (rule, jobid)
        seen |= {rule for _, rule in submitted}
    assert seen == set(RULES)
    assert (work / "results" / "slurm" / "report" / "summary.csv").exists()


def test_embed_jobs_get_the_gpu(slurm_run, cluster):
    submitted = _submissions(slurm_run["first"]) + _submissions(slurm_run["rerun"])
    assert sum(rule == "embed" for _, rule in submitted) >= 2
    # the job step that ran the rule: the cluster's TaskProlog logs
    # "job step CUDA_VISIBLE_DEVICES" for every step (.ci/slurm.sh)
    steps = {}
    for line in (cluster / "log" / "tasks.log").read_text().splitlines():
        job, step, cvd = line.split()
        steps.setdefault(job, {})[step] = cvd
    rerun_ids = {jobid for jobid, _ in _submissions(slurm_run["rerun"])}
    for jobid, rule in submitted:
        info = _scontrol(jobid)
        assert "Requeue=1" in info, info  # slurm-requeue: true in the profile
        ran = jobid in rerun_ids or "JobState=COMPLETED" in info  # not: cancelled while pending
        if rule == "embed":
            assert "Partition=gpu" in info and "TresPerJob=gres:gpu:1" in info, info  # asked for
            assert not ran or "JOB_GRES=gpu:1" in info, info  # and got
        else:
            assert "Partition=cpu" in info and (not ran or "JOB_GRES=(null)" in info), info
        if ran:
            assert "JobState=COMPLETED" in info, info
            assert steps[jobid]["0"] == ("0" if rule == "embed" else "none"), (rule, steps[jobid])
    # what the embed step recorded about its device, where it records it
    for path in sorted(
        (slurm_run["work"] / "results" / "slurm" / "embeddings" / "vit").glob("*.parquet")
    ):
        meta = json.loads(pq.read_schema(path).metadata[b"artprobe"])
        if "cuda_visible_devices" in meta:
            assert meta["cuda_visible_devices"] == "0", meta


def test_kill_unlock_rerun_incomplete(slurm_run, tmp_path):
    work = slurm_run["work"]
    out = work / "results" / "slurm"
    # what the user hit
    assert slurm_run["first_rc"] != 0
    assert any(line.split()[1] == "gpu" for line in slurm_run["orphans"]), slurm_run["orphans"]
    locked = slurm_run["locked"]
    assert locked.returncode != 0 and "cannot be locked" in locked.stderr, locked.stderr[-3000:]
    # the recovered run ends where an uninterrupted one ends
    dry = _run(work, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stderr[-3000:]
    # the shards embedded again in one go, by the same code (the snapshot) in a fresh process
    shards = sorted((out / "shards").glob("*.parquet"))
    reference = (
        "import sys\n"
        "from artprobe.settings import EmbedRuntime, ModelSpec\n"
        "from artprobe.stages.embed import embed_shard\n"
        "model = ModelSpec(timm_name='test_vit', pretrained=False, weights=None,\n"
        "    weights_marker=None, features='pooled', decode='fast', precision='fp32')\n"
        "runtime = EmbedRuntime(device='cpu', batch_size=8, workers=0, compile=False,\n"
        "    checkpoint_every=1, threads=1, progress=False)\n"
        "for shard in sys.argv[2:]:\n"
        "    embed_shard(shard, sys.argv[1] + '/' + shard.rsplit('/', 1)[1], model, runtime)\n"
    )
    subprocess.run(
        [sys.executable, "-c", reference, str(tmp_path), *map(str, shards)],
        env=_env(work),
        check=True,
        timeout=300,
    )
    merged = pq.read_table(out / "embeddings" / "vit.parquet").to_pandas()
    failures = pq.read_table(out / "embeddings" / "vit.failures.parquet").to_pandas()
    fresh = []
    for shard in shards:
        part = pq.read_table(out / "embeddings" / "vit" / shard.name).to_pandas()
        ref = pq.read_table(tmp_path / shard.name).to_pandas()
        assert part["row_id"].tolist() == ref["row_id"].tolist()
        assert part["error"].isna().tolist() == ref["error"].isna().tolist()
        ok = ref["error"].isna()
        np.testing.assert_allclose(
            np.stack(part.loc[ok, "embedding"]),
            np.stack(ref.loc[ok, "embedding"]),
            rtol=1e-5,
            atol=1e-6,
        )
        fresh.append(ref)
    fresh = pd.concat(fresh, ignore_index=True)
    ok = fresh["error"].isna()
    assert merged["row_id"].tolist() == fresh.loc[ok, "row_id"].tolist()
    assert sorted(failures["row_id"]) == sorted(fresh.loc[~ok, "row_id"])
    np.testing.assert_allclose(
        np.stack(merged["embedding"]), np.stack(fresh.loc[ok, "embedding"]), rtol=1e-5, atol=1e-6
    )
    summary = pd.read_csv(out / "report" / "summary.csv")
    fits = summary[summary["classifier"] != BASELINE_CLASSIFIER]
    assert len(fits) == 1, summary  # vit x genre x linear (+ the baseline row)


# ---------------------------------------------------------------- grouped embed jobs
GROUP_SUBMITTED = re.compile(
    r"Job \S+ has been submitted with SLURM jobid (\d+) \(log: .*/group_embed_embed/"
)
GROUPED_TARGET = "results/slurm/embeddings/vit.parquet"


@pytest.fixture(scope="module")
def grouped_run(cluster, tmp_path_factory):
    """The profile's grouping, scaled down: six shards, three embed jobs per sbatch."""
    work = _prepare(tmp_path_factory.mktemp("grouped_run"), grouped=True)
    (work / "slurm-test.yaml").write_text(OVERLAY.replace("rows: 48", "rows: 16"))
    profile_file = work / "profiles" / "slurm-test" / "config.yaml"
    profile = yaml.safe_load(profile_file.read_text())
    assert profile["groups"] == ["embed=embed"]  # what profiles/slurm sets
    profile["group-components"] = ["embed=3"]
    profile_file.write_text(yaml.safe_dump(profile, sort_keys=False))
    first = _run(work, "--keep-going", GROUPED_TARGET)
    outputs = sorted(
        p.name for p in (work / "results" / "slurm" / "embeddings" / "vit").glob("*.parquet")
    )
    redo = work / "results" / "slurm" / "embeddings" / "vit" / "00003.parquet"
    kept = {p.name: p.stat().st_mtime_ns for p in redo.parent.glob("*.parquet") if p != redo}
    shard = work / "results" / "slurm" / "shards" / "00003.parquet"
    # the same rows, re-encoded: a changed file (Snakemake compares small inputs by checksum)
    pq.write_table(pq.read_table(shard), shard, compression="gzip")
    again = _run(work, "--keep-going", GROUPED_TARGET)
    return {
        "work": work,
        "first": first.stderr,
        "again": again.stderr,
        "outputs": outputs,
        "kept": kept,
    }


def test_grouped_embed_jobs_share_a_submission_and_one_gpu(grouped_run):
    log = grouped_run["first"]
    groups = GROUP_SUBMITTED.findall(log)
    assert len(re.findall(r"^\s*rule embed:$", log, re.M)) == 6
    assert len(groups) == 2, log[-5000:]  # 6 embed jobs, 3 per submission
    assert not [rule for _, rule in _submissions(log) if rule == "embed"]  # none on its own
    for jobid in groups:
        info = _scontrol(jobid)
        assert "JobState=COMPLETED" in info and "Partition=gpu" in info, info
        # three jobs one after another: one job's GPU, CPUs and memory, three jobs' time
        assert "TresPerJob=gres:gpu:1" in info and "NumCPUs=1 " in info, info
        assert "MinMemoryNode=1000M" in info and "TimeLimit=00:45:00" in info, info
    out = grouped_run["work"] / "results" / "slurm" / "embeddings"
    assert grouped_run["outputs"] == [f"{i:05d}.parquet" for i in range(6)]  # one per shard
    assert (
        pq.read_table(out / "vit.parquet").num_rows
        + pq.read_table(out / "vit.failures.parquet").num_rows
        == 96
    )


def test_a_grouped_shard_reruns_alone(grouped_run):
    """Staleness stays per shard: one shard changed, one embed job; the others untouched."""
    log = grouped_run["again"]
    assert re.findall(r"wildcards: dataset=slurm, model=vit, shard=(\d+)", log) == ["00003"], log[
        -5000:
    ]
    assert len(GROUP_SUBMITTED.findall(log)) == 1
    folder = grouped_run["work"] / "results" / "slurm" / "embeddings" / "vit"
    assert {
        p.name: p.stat().st_mtime_ns for p in folder.glob("*.parquet") if p.name != "00003.parquet"
    } == grouped_run["kept"]
