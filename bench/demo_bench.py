"""`make demo` as a newcomer runs it, timed, in a scratch copy of this checkout.

    python bench/demo_bench.py                      # committed HEAD, in a temp dir (kept)
    python bench/demo_bench.py --work /tmp/demo-x   # there (must not exist yet)
    python bench/demo_bench.py --worktree           # the working tree, uncommitted edits too

Copies the checkout (``git archive HEAD``, or the tracked and untracked files of the working
tree), links this venv as ``.venv`` (nothing is installed), runs the snakemake commands the
Makefile's ``demo`` target runs (read from ``make -n``, so the two never drift apart), and
prints the load before and after, the wall seconds of each command, and the per-rule table of
the run's ``benchmark:`` files (:func:`rule_table.rule_table`). Compare CPU seconds between
runs on a loaded machine; wall seconds only on a quiet one.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, say
from rule_table import format_table, rule_table


def demo_commands() -> list[list[str]]:
    """The snakemake command lines of ``make demo`` (its setup step left out)."""
    out = subprocess.run(
        ["make", "-n", "-s", "demo", "SNAKEMAKE=snakemake", "VENV=/nonexistent-venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cmds = [shlex.split(line) for line in out.splitlines() if line.startswith("snakemake ")]
    if not cmds:
        raise SystemExit(f"make -n demo printed no snakemake command:\n{out}")
    return cmds


def _copied(name: bytes) -> bool:
    """A working-tree file to copy: not the venv link, not deleted since it was staged."""
    return bool(name) and name != b".venv" and (ROOT / name.decode()).exists()


def copy_checkout(work: Path, worktree: bool) -> None:
    """HEAD (or the working tree's tracked and untracked, not ignored, files) into ``work``."""
    work.mkdir(parents=True)
    if worktree:
        files = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
        tar = subprocess.run(
            ["tar", "-c", "--null", "-T", "-"],
            cwd=ROOT,
            input=b"\0".join(f for f in files if _copied(f)),
            capture_output=True,
            check=True,
        ).stdout
    else:
        tar = subprocess.run(
            ["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=tar, check=True)
    venv = Path(sys.prefix)
    (work / ".venv").symlink_to(venv)


def load() -> str:
    return "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="scratch folder (default: a new temp dir)",
    )
    ap.add_argument("--worktree", action="store_true", help="copy the working tree, not HEAD")
    a = ap.parse_args(argv)
    work = a.work or Path(tempfile.mkdtemp(prefix="demo-bench-")) / "checkout"
    copy_checkout(work, a.worktree)
    snakemake = str(work / ".venv" / "bin" / "snakemake")
    say(f"checkout copied to {work}; {os.cpu_count()} CPUs; load {load()}")
    for cmd in demo_commands():
        t0 = time.perf_counter()
        proc = subprocess.run(
            [snakemake, *cmd[1:]], check=False, cwd=work, capture_output=True, text=True
        )
        wall = time.perf_counter() - t0
        say(f"{wall:7.1f} s wall  {' '.join(cmd)}   (load after: {load()})")
        if proc.returncode:
            raise SystemExit(f"failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    say(format_table(rule_table(work / "results" / "demo")))


if __name__ == "__main__":
    main()
