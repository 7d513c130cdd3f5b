"""Where profiles/slurm places the probe jobs, read from a dry run (no cluster needed; the
real submission is tests/test_slurm.py): fits whose kind gains from a GPU ask for one on the
GPU partition, the others stay on the CPU partition; `--config gpu_probes=` turns it off,
and the local profile never holds a GPU for a fit."""

from __future__ import annotations

import re

import pytest
from conftest import copy_workflow, snakemake

pytestmark = pytest.mark.workflow

JOB = re.compile(
    r"^(?:local)?rule (\w+):\n((?:    .*\n?)*)", re.M
)  # the header and its indented lines


def _placement(output: str) -> dict[tuple[str, str], set]:
    """{(rule, classifier or target): {(partition, gpu)}} of the classify and fewshot jobs."""
    out: dict = {}
    for rule, body in JOB.findall(output):
        if rule not in ("classify", "fewshot"):
            continue
        wc = dict(re.findall(r"(\w+)=([\w-]+)", re.search(r"wildcards: (.*)", body).group(1)))
        res = re.search(r"resources: (.*)", body).group(1)
        part = re.search(r"slurm_partition=(\w+)", res)
        gpu = re.search(r"\bgpu=(\d+)", res)
        key = (rule, wc["classifier"] if rule == "classify" else "curve")
        out.setdefault(key, set()).add((part and part.group(1), gpu and int(gpu.group(1))))
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("placement"))


def _dry_run(work, *args: str) -> dict:
    proc = snakemake(work, "-n", "--configfile", "demo/config.yaml", *args)
    return _placement(proc.stdout + proc.stderr)


def test_the_slurm_profile_sends_gpu_gaining_fits_to_the_gpu_partition(work):
    placed = _dry_run(work, "--workflow-profile", "profiles/slurm")
    # the demo's classifiers: mlp, linear, knn (one job per model x target each)
    assert placed == {
        ("classify", "mlp"): {("gpu", 1)},
        ("classify", "linear"): {("cpu", 0)},
        ("classify", "knn"): {("cpu", 0)},
        ("fewshot", "curve"): {("cpu", 0)},
    }


def test_one_setting_keeps_every_fit_on_the_cpu_partition(work):
    placed = _dry_run(work, "--workflow-profile", "profiles/slurm", "--config", "gpu_probes=")
    assert set(placed) == {
        ("classify", "mlp"),
        ("classify", "linear"),
        ("classify", "knn"),
        ("fewshot", "curve"),
    }
    assert all(v == {("cpu", None)} for v in placed.values()), (
        placed
    )  # default-resources' partition, no GPU


def test_local_runs_hold_no_gpu_for_a_fit(work):
    placed = _dry_run(work)  # profiles/default: gpu=1 is the embed jobs' pool
    assert placed and all(v == {(None, None)} for v in placed.values()), placed
