"""The real config's DAG at ImageNet-21k size: a dry run over a 14 M-row manifest.

Planning ~27,000 jobs must stay quick (the input functions are called per job: see
``_shards`` in rules/common.smk) and give one embed job per (model, shard). The wall time is
printed, not asserted (timing belongs in figures; see the notes of the `gpus` branch).
"""

from __future__ import annotations

import json
import math
import re
import time

import pytest
import yaml
from conftest import ROOT, copy_workflow, snakemake

N_ROWS = 14_000_000


def _job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """The workflow with results/wikiart/manifest.json saying 14 M rows (what the checkpoint reads)."""
    work = copy_workflow(tmp_path_factory.mktemp("big"))
    (work / "results" / "wikiart").mkdir(parents=True)
    (work / "results" / "wikiart" / "manifest.json").write_text(json.dumps({"n_rows": N_ROWS}))
    (work / "results" / "wikiart" / "rows.parquet").write_bytes(b"")  # the manifest's row index
    return work


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.parametrize("profile", ["profiles/default", "profiles/slurm"])
def test_dry_run_of_14m_rows_plans_one_embed_job_per_model_and_shard(big, profile):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    n_shards = math.ceil(N_ROWS / config["shards"]["rows"])
    n_models = len(config["models"])
    assert config["use_datasets"] == ["wikiart"]  # whose manifest the fixture wrote
    targets = config["datasets"]["wikiart"]["targets"]
    n_fits = n_models * len(targets) * len(config["classifiers"])
    t0 = time.monotonic()
    proc = snakemake(big, "-n", "--quiet", "rules", "--workflow-profile", profile)
    print(f"dry run, {profile}: {time.monotonic() - t0:.1f} s wall")
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts["shard"] == n_shards
    assert counts["embed"] == n_models * n_shards
    assert counts["merge_embeddings"] == n_models and counts["classify"] == n_fits == 27
    assert "manifest" not in counts  # the checkpoint's output is there: its row count decides


def test_the_slurm_profile_bounds_submissions_per_model():
    """group-components embed jobs per sbatch: <= 200 submissions per model at 14 M rows."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["groups"] == ["embed=embed"]
    per_group = int(dict(g.split("=") for g in profile["group-components"])["embed"])
    assert math.ceil(math.ceil(N_ROWS / config["shards"]["rows"]) / per_group) <= 200
    # one job at a time in a group: its request is one job's GPU, CPUs and memory
    assert profile["cores"] == profile["set-threads"]["embed"]
