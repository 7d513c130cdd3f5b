"""Shared fixtures: a small generated dataset in the hub layout and an end-to-end demo run."""

from __future__ import annotations

import importlib.abc
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
#: test tiers, like timm's CI: ``make test-fast`` runs ``-m "unit and not slow"``; ``make test``
#: runs them all
TIERS = ("unit", "workflow", "slurm", "browser", "gpu")
_running: dict[str, object] = {}
UNIT_RAN_SNAKEMAKE = "a unit test ran Snakemake: mark it @pytest.mark.workflow"


def pytest_collection_modifyitems(config, items):
    """A test without a tier marker is a unit test (no Snakemake, no services, no GPU)."""
    for item in items:
        if not any(item.get_closest_marker(t) for t in TIERS[1:]):
            item.add_marker(pytest.mark.unit)


def starts_snakemake(args) -> bool:
    """Whether a subprocess command line starts Snakemake: its executable, ``python -m
    snakemake``, or Python code that uses ``snakemake.api``."""
    if isinstance(args, (str, bytes, os.PathLike)):
        tokens = (
            shlex.split(os.fsdecode(args)) if isinstance(args, (str, bytes)) else [os.fspath(args)]
        )
    else:
        tokens = [os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a) for a in args]
    if any(Path(t).name == "snakemake" for t in tokens):
        return True
    if any(a == "-m" and b.split(".")[0] == "snakemake" for a, b in zip(tokens, tokens[1:])):
        return True
    return any("snakemake.api" in t or "SnakemakeApi" in t for t in tokens)


class _GuardedPopen(subprocess.Popen):
    """``subprocess.Popen`` (and so ``run``, ``check_output`` …) that refuses Snakemake."""

    def __init__(self, args, *a, **kw):
        if starts_snakemake(args):
            raise AssertionError(UNIT_RAN_SNAKEMAKE)
        super().__init__(args, *a, **kw)


class _NoSnakemakeApi(importlib.abc.MetaPathFinder):
    """Refuses ``import snakemake.api`` (Snakemake in the test's own process)."""

    def find_spec(self, name, path=None, target=None):
        if name == "snakemake.api":
            raise AssertionError(UNIT_RAN_SNAKEMAKE)
        return None


def _refuse_api(*a, **kw):
    raise AssertionError(UNIT_RAN_SNAKEMAKE)


@pytest.fixture(autouse=True)
def _tier(request, monkeypatch):
    """A unit test that starts Snakemake fails: through ``snakemake()``, a subprocess, or
    ``snakemake.api`` (imported now, or already imported by an earlier test)."""
    unit = request.node.get_closest_marker("unit") is not None
    _running["unit"] = unit
    if unit:
        monkeypatch.setattr(subprocess, "Popen", _GuardedPopen)
        if "snakemake.api" in sys.modules:
            monkeypatch.setattr(sys.modules["snakemake.api"].SnakemakeApi, "__init__", _refuse_api)
        monkeypatch.setattr(sys, "meta_path", [_NoSnakemakeApi(), *sys.meta_path])
    yield
    _running.clear()


WORKFLOW_FILES = [
    "Snakefile",
    "config.yaml",
    "rules",
    "scripts",
    "schemas",
    "demo",
    "report",
    "envs",
    "profiles",
]


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory) -> Path:
    """A 96-row demo dataset (3 files, 2 broken images) in the hub layout."""
    from artprobe.settings import DemoSettings
    from artprobe.stages.generate_demo import generate_demo

    folder = tmp_path_factory.mktemp("demo_source")
    generate_demo(folder, DemoSettings(rows=96, files=3, seed=1, broken=2, layout="wikiart"))
    return folder


def validated(*, dataset=None, split=None, demo=None, **sections) -> dict:
    """A config as the workflow's parse leaves it: the required keys (one dataset from the
    hub, one model, the linear classifier) overridden by ``sections``, validated against the
    schema, which fills in every default (as rules/common.smk's ``validate`` does).
    ``dataset``, ``split`` and ``demo`` are the one dataset's (``datasets.t``) own keys
    (``name`` renames it), its ``split:`` and its ``demo:``."""
    from snakemake.utils import validate

    item = {"source": "huggan/wikiart", **(dataset or {})}
    name = item.pop("name", "t")
    if split is not None:
        item["split"] = split
    if demo is not None:
        item["demo"] = demo
        item.pop("source")
    config = {
        "datasets": {name: item},
        "use_datasets": [name],
        "models": [{"name": "m", "timm": "resnet18"}],
        "classifiers": [{"name": "linear", "kind": "linear"}],
        **sections,
    }
    validate(config, str(ROOT / "schemas" / "config.schema.yaml"))
    return config


def dataset_of(**sections) -> dict:
    """The one dataset's settings of :func:`validated` (same arguments)."""
    config = validated(**sections)
    return config["datasets"][config["use_datasets"][0]]


def source_of(folder, targets, **dataset):
    """The source settings (artprobe.settings.SourceSettings) of a config whose dataset is the
    local ``folder`` with ``targets``, ``dataset`` keys overridden (the schema's defaults
    for the rest: no revision, config or splits; the ``image`` column)."""
    from artprobe.settings import source_settings

    dataset = {"name": "t", "source": str(folder), "targets": list(targets), **dataset}
    return source_settings(dataset_of(dataset=dataset))


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (not results/) into ``dest`` so a test can run Snakemake there."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def snakemake(
    workdir: Path, *args: str, timeout: int = 900, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the venv's snakemake in ``workdir``; on failure show its output and the job logs."""
    if _running.get("unit"):
        raise AssertionError(UNIT_RAN_SNAKEMAKE)
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run(
        [str(VENV_BIN / "snakemake"), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-3000:]}"
            for p in sorted(workdir.glob("results/**/logs/**/*.log"))
        )
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-8000:]}\n{logs}"
        )
    return proc


def job_counts(stdout: str) -> dict[str, int]:
    """The job table a dry run prints (``Job stats:``): rule -> number of jobs."""
    table = stdout.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {
        w[0]: int(w[1])
        for w in map(str.split, table.splitlines())
        if len(w) == 2 and w[1].isdigit()
    }


TINY_OVERLAY = """
use_datasets: [tiny]
datasets:
  tiny:
    targets: [genre, style]
    demo:
      rows: 120
      files: 2
      seed: 3
      broken: 2
    split:
      method: stratified
      stratify_by: genre
shards:
  rows: 48
models:
  - name: vit
    timm: test_vit
    pretrained: false
  - name: convnext
    timm: test_convnext
    pretrained: false
embed:
  precision: fp32
embed_runtime:
  batch_size: 16
  workers: 0
classifiers:
  - name: mlp
    kind: mlp
    epochs: 4
    lr: 0.001
  - name: linear
    kind: linear
  - name: knn
    kind: knn
    k: 5
probe:
  bootstrap: 50
  drop_labels:
    genre: [cityscape]
  min_class_count:
    style: 5
report:
  map_rows: 100
"""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The workflow run end to end (two tiny timm models, two targets) in a temp copy."""
    work = copy_workflow(tmp_path_factory.mktemp("tiny_run"))
    (work / "tiny.yaml").write_text(TINY_OVERLAY)
    snakemake(work, "--cores", "2", "--configfile", "tiny.yaml")
    return work
