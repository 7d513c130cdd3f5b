"""What a config change reruns, read from `snakemake -n` after a complete run.

Settings that cannot change a result must not rerun anything, and a change must rerun
exactly what depends on it: a probe hyper-parameter never re-embeds, a new model embeds
only itself, a new split never re-embeds or re-shards. The complete run is the session's
``tiny_run`` (tests/conftest.py), copied with its metadata so each case starts from it.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]
#: the report rule of tiny_run's one dataset, ``tiny`` (one report rule per dataset)
REPORT = "report_tiny"


@pytest.fixture(scope="module")
def done(tiny_run, tmp_path_factory) -> Path:
    """A copy of the completed tiny run: results, .snakemake metadata and mtimes kept."""
    work = tmp_path_factory.mktemp("reruns") / "work"
    shutil.copytree(
        tiny_run, work, symlinks=True, ignore=shutil.ignore_patterns("locks", "__pycache__")
    )
    return work


@pytest.fixture(scope="module")
def base(done) -> dict:
    cfg = yaml.safe_load((done / "tiny.yaml").read_text())
    assert cfg["use_datasets"] == ["tiny"]  # whose report rule is REPORT
    return cfg


def split_of(overlay: dict) -> dict:
    """The ``split:`` of the overlay's one dataset (added if it has none)."""
    (name,) = overlay["use_datasets"]
    return overlay["datasets"][name].setdefault("split", {})


@pytest.fixture(scope="module")
def sizes(done, base) -> dict:
    cfg = yaml.safe_load((done / "config.yaml").read_text())
    cfg.update(base)
    (name,) = base["use_datasets"]
    shards = list((done / "results" / name / "shards").glob("*.parquet"))
    return {
        "models": len(cfg["models"]),
        "targets": len(cfg["datasets"][name]["targets"]),
        "classifiers": len(cfg["classifiers"]),
        "shards": len(shards),
        "mlps": sum(c["kind"] == "mlp" for c in cfg["classifiers"]),
    }


def planned(work: Path, overlay: dict) -> dict[str, int]:
    """Jobs `snakemake -n` plans with ``overlay`` as config (rule -> count; `all` left out)."""
    (work / "change.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    proc = snakemake(work, "-n", "--cores", "2", "--configfile", "change.yaml", timeout=300)
    out = proc.stdout + proc.stderr
    (work / "dry_run.txt").write_text(out)  # the planned jobs, for tests that read their outputs
    if "Nothing to be done" in out:
        return {}
    m = re.search(r"Job stats:\njob\s+count\n-+\s+-+\n((?:\S+\s+\d+\n)+)", out)
    assert m, out[-5000:]
    jobs = dict((name, int(n)) for name, n in (line.split() for line in m.group(1).splitlines()))
    jobs.pop("total")
    jobs.pop("all", None)
    return jobs


def test_nothing_changed_nothing_to_do(done, base):
    assert planned(done, base) == {}


def test_runtime_settings_rerun_nothing(done, base):
    changed = copy.deepcopy(base)
    runtime = changed.setdefault("embed_runtime", {})
    runtime["batch_size"] = runtime.get("batch_size", 32) + 3
    runtime["workers"] = (runtime.get("workers") or 0) + 1
    runtime["checkpoint_every"] = 7
    runtime["device"] = "cpu"  # the tiny run's precision is fixed (fp32): the device cannot matter
    assert planned(done, changed) == {}


def test_mlp_hyper_parameter_refits_only_the_mlps(done, base, sizes):
    changed = copy.deepcopy(base)
    mlp = next(c for c in changed["classifiers"] if c["kind"] == "mlp")
    mlp["epochs"] = mlp.get("epochs", 4) + 1
    fits = sizes["models"] * sizes["targets"] * sizes["mlps"]
    assert planned(done, changed) == {
        "classify": fits,
        "compare": 1,
        "thumbnails": 1,
        REPORT: 1,
        "leaderboard": 1,
    }


def test_new_model_embeds_and_fits_only_itself(done, base, sizes):
    changed = copy.deepcopy(base)
    changed["models"] = [
        *changed["models"],
        {"name": "extra", "timm": "test_resnet", "pretrained": False},
    ]
    assert planned(done, changed) == {
        "embed": sizes["shards"],
        "merge_embeddings": 1,
        "classify": sizes["targets"] * sizes["classifiers"],
        "fewshot": sizes["targets"],
        "compare": 1,
        "thumbnails": 1,
        REPORT: 1,
        "leaderboard": 1,
    }


def test_decode_change_re_embeds_everything_downstream(done, base, sizes):
    changed = copy.deepcopy(base)
    embed = changed.setdefault("embed", {})
    embed["decode"] = "exact" if embed.get("decode", "fast") == "fast" else "fast"
    assert planned(done, changed) == {
        "embed": sizes["models"] * sizes["shards"],
        "merge_embeddings": sizes["models"],
        "classify": sizes["models"] * sizes["targets"] * sizes["classifiers"],
        "fewshot": sizes["models"] * sizes["targets"],
        "compare": 1,
        "thumbnails": 1,
        REPORT: 1,
        "leaderboard": 1,
    }


def test_split_seed_change_never_re_embeds(done, base, sizes):
    changed = copy.deepcopy(base)
    split = split_of(changed)
    split["seed"] = split.get("seed", 2830) + 1
    assert planned(done, changed) == {
        "split": 1,
        "duplicates": 1,  # the near-duplicate scan compares val/test with the new train part
        "merge_embeddings": sizes["models"],
        "classify": sizes["models"] * sizes["targets"] * sizes["classifiers"],
        "fewshot": sizes["models"] * sizes["targets"],
        "compare": 1,
        "thumbnails": 1,
        REPORT: 1,
        "leaderboard": 1,
    }


def test_duplicate_distance_rescans_without_refitting(done, base):
    changed = copy.deepcopy(base)
    split_of(changed)["duplicate_distance"] = 2
    assert planned(done, changed) == {"duplicates": 1, REPORT: 1}  # no fit: the same leaderboard


def test_drop_duplicates_refits_without_re_splitting(done, base, sizes):
    changed = copy.deepcopy(base)
    split_of(changed)["drop_duplicates"] = True
    fits = sizes["models"] * sizes["targets"] * sizes["classifiers"]
    curves = sizes["models"] * sizes["targets"]  # the few-shot curves leave them out too
    expected = {"classify": fits, "fewshot": curves, "compare": 1, "thumbnails": 1, REPORT: 1}
    expected["leaderboard"] = 1
    assert planned(done, changed) == expected


def test_sizes_are_not_trivial(sizes):
    """The cases above only mean something with several shards, models and targets."""
    assert (
        sizes["shards"] >= 2
        and sizes["models"] >= 2
        and sizes["targets"] >= 2
        and sizes["mlps"] >= 1
    )


def test_new_dataset_runs_only_its_own_jobs_and_the_leaderboard(done, base, sizes):
    """A dataset added to a finished run (its name in use_datasets): every planned job writes
    under results/<that dataset>/ or is the leaderboard's; nothing of the first reruns."""
    changed = copy.deepcopy(base)
    changed["use_datasets"] = [*base["use_datasets"], "bench"]
    changed["datasets"]["bench"] = {
        "targets": ["label"],
        "demo": {"layout": "artbench", "rows": 120, "files": 2, "seed": 2},
        "split": {"method": "given"},
    }
    jobs = planned(done, changed)
    out = (done / "dry_run.txt").read_text()
    outputs = [
        o.strip() for line in re.findall(r"^\s+output: (.+)$", out, re.M) for o in line.split(",")
    ]
    assert outputs, out[-3000:]
    elsewhere = [o for o in outputs if not o.startswith(("results/bench/", "results/leaderboard/"))]
    assert not elsewhere, elsewhere
    per_model = {"merge_embeddings": 1, "classify": sizes["classifiers"], "fewshot": 1}
    assert jobs == {
        **{rule: 1 for rule in ("generate_demo", "manifest", "split", "duplicates")},
        **{rule: n * sizes["models"] for rule, n in per_model.items()},
        **{rule: 1 for rule in ("compare", "thumbnails", "report_bench", "leaderboard")},
    }
