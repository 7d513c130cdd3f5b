"""Download-stage throughput over the local hub server (tests/fake_hub.py), in MB/s.

Serves ``--files`` random files of ``--mb`` MB each as an LFS dataset, then runs the stage's
own functions (``download_list`` + ``download_file`` per file, in a fresh process as a job
would, ``--parallel`` processes at once like ``downloads=N``):

1. clean: an empty cache, every file fetched and sha256-checked;
2. kill: the same into a new cache, SIGKILLed once half of the bytes were sent, then rerun;
   prints what was sent twice and the MB/s over both runs.

    .venv/bin/python bench/download_bench.py --files 8 --mb 16 --parallel 4
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT
from fake_hub import FakeHub, make_repo

JOB = """
import sys
from artprobe.stages.download import download_file
files, out = sys.argv[1], sys.argv[2]
for i in sys.argv[3:]:
    download_file(files, i, f"{out}/{i}.json")
"""


def env_for(hub: FakeHub, home: Path) -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_XET": "1",
        "HF_TOKEN": "",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def start(env: dict, work: Path, n: int, parallel: int) -> list[subprocess.Popen]:
    """List the repo, then ``parallel`` processes that fetch the files round-robin."""
    listing = "from artprobe.stages.download_list import download_list; download_list('bench/data', None, 'files.json')"
    subprocess.run([sys.executable, "-c", listing], cwd=work, env=env, check=True)
    ids = [f"{i:05d}" for i in range(n)]
    return [
        subprocess.Popen(
            [sys.executable, "-c", JOB, "files.json", str(work), *ids[k::parallel]],
            cwd=work,
            env=env,
            start_new_session=True,
            stderr=subprocess.DEVNULL,
        )
        for k in range(parallel)
    ]


def run(env: dict, work: Path, n: int, parallel: int) -> float:
    t = time.perf_counter()
    for p in start(env, work, n, parallel):
        assert p.wait() == 0
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--mb", type=int, default=16)
    ap.add_argument("--parallel", type=int, default=4)
    a = ap.parse_args()
    files = {
        f"data/train-{i:05d}-of-{a.files:05d}.parquet": os.urandom(a.mb << 20)
        for i in range(a.files)
    }
    total = sum(map(len, files.values())) / 1e6
    hub = FakeHub(repos={"bench/data": make_repo({"main": files})}).start()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for d in ("clean", "kill", "home1", "home2"):
            (tmp / d).mkdir()
        secs = run(env_for(hub, tmp / "home1"), tmp / "clean", a.files, a.parallel)
        print(
            f"clean: {total:.0f} MB in {secs:.2f} s = {total / secs:.1f} MB/s ({a.parallel} at once)"
        )

        hub.sent.clear()
        env = env_for(hub, tmp / "home2")
        t = time.perf_counter()
        procs = start(env, tmp / "kill", a.files, a.parallel)
        while sum(hub.sent.values()) < total * 1e6 / 2:
            time.sleep(0.01)
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        first = time.perf_counter() - t
        sent_first = sum(hub.sent.values()) / 1e6
        done = len(list((tmp / "kill").glob("0*.json")))
        second = run(env, tmp / "kill", a.files, a.parallel)
        again = sum(hub.sent.values()) / 1e6 - total
        print(
            f"kill: killed after {first:.2f} s ({sent_first:.0f} MB sent, {done} files done); "
            f"rerun {second:.2f} s; {again:.0f} MB sent twice; "
            f"{total / (first + second):.1f} MB/s over both runs"
        )
    hub.stop()


if __name__ == "__main__":
    main()
