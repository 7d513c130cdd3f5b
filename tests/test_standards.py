"""Workflow conventions (docs/design.md, STYLE.md) checked on the real workflow files.

Every rule declares log, benchmark, threads, resources (mem_mb, runtime; gpu for embed) and
a pinned conda env; `snakemake --lint` and `snakefmt --check` are clean; envs/*.yaml pin
what requirements.txt pins; and the deliverables of a run (merged embeddings, summary.csv)
open in pandas, polars and duckdb without artprobe.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, VENV_BIN, copy_workflow, snakemake

from artprobe.config import embed_gpus

RULE_FILES = sorted((ROOT / "rules").glob("*.smk"))
TARGET_RULES = {"all"}  # rules without outputs: nothing to log or benchmark
GPU_RULES = {"embed"}
# The GPUs the demo's embed jobs must hold (demo/config.yaml embeds on the CPU: none).
DEMO_CONFIG = yaml.safe_load((ROOT / "demo/config.yaml").read_text())
DEMO_GPUS = embed_gpus(DEMO_CONFIG)
DEMO_DATASETS = DEMO_CONFIG["use_datasets"]

# Loads the workflow through Snakemake's API in a child process (it changes directory and
# sets up logging) and prints what each rule declares.
RULES_PROBE = r"""
import json
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

def plain(value):  # snakemake 9 wraps resources in Resource objects
    if hasattr(value, "is_evaluable"):
        return "<function>" if value.is_evaluable() else value.value
    return value if isinstance(value, (int, str)) else "<function>"

with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(configfiles=[Path("demo/config.yaml")]),
        snakefile=Path("Snakefile"),
        workdir=Path.cwd(),
    )
    rules = {}
    for rule in wf._workflow.rules:
        rules[rule.name] = {
            "log": bool(rule.log),
            "benchmark": rule.benchmark is not None,
            "resources": {k: plain(v) for k, v in rule.resources.items() if not k.startswith("_")},
            "conda": str(rule.conda_env) if rule.conda_env is not None else None,
            "outputs": len(rule.output),
            "script": str(rule.script) if getattr(rule, "script", None) else None,
        }
print("RULES=" + json.dumps(rules))
"""


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("standards"))


@pytest.fixture(scope="module")
def rules(workflow_copy) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", RULES_PROBE],
        cwd=workflow_copy,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RULES=")), None)
    assert proc.returncode == 0 and line, proc.stderr[-5000:]
    return json.loads(line[len("RULES=") :])


#: rules written once in a loop over the datasets, named ``<rule>_<dataset>``
PER_DATASET = ("report",)


def stage_of(rule_name: str) -> str:
    """The rule as rules/*.smk writes it: ``report_demo`` is the ``report`` rule's demo copy."""
    return next((r for r in PER_DATASET if rule_name.startswith(f"{r}_")), rule_name)


def _looped_name(lines: list[str], i: int) -> str | None:
    """The rule a ``for`` loop's anonymous ``rule:`` at line ``i`` defines: its ``name:``
    value, an f-string ``"<rule>_{...}"``."""
    if lines[i + 1].strip() == "name:":
        m = re.match(r'\s+f"(\w+?)_\{', lines[i + 2])
        return m.group(1) if m else None
    return None


def rule_blocks() -> dict[str, tuple[Path, list[str]]]:
    """rule name -> (its rule file, the lines of its block, a loop's indent taken off) as
    rules/*.smk write them."""
    found = {}
    for path in RULE_FILES:
        name, indent = None, 0
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"(?:rule|checkpoint) (\w+):", line)
            looped = _looped_name(lines, i) if line.strip() == "rule:" else None
            if m or looped:
                name, indent = (m.group(1), 0) if m else (looped, len(line) - len(line.lstrip()))
                found[name] = (path, [])
            elif line and not line.startswith((" ", "#")):
                name = None
            elif name:
                found[name][1].append(line[indent:])
    return found


def declared_directives() -> dict[str, set[str]]:
    """rule name -> directives written in rules/*.smk (threads cannot be told from a default)."""
    return {
        name: {m.group(1) for line in lines if (m := re.match(r"    (\w+):", line))}
        for name, (_, lines) in rule_blocks().items()
    }


@pytest.mark.workflow
def test_every_rule_logs_benchmarks_and_declares_resources(rules):
    written = declared_directives()
    stages = {stage_of(name) for name in rules} - TARGET_RULES
    assert stages == set(written), "rules outside rules/*.smk, or a parse miss"
    assert {f"report_{d}" for d in DEMO_DATASETS} <= set(rules), "a report rule each"
    problems = []
    for name, rule in sorted(rules.items()):
        if name in TARGET_RULES:
            assert rule["outputs"] == 0, f"{name}: a target rule with outputs"
            continue
        missing = [d for d in ("log", "benchmark") if not rule[d]]
        missing += [
            d for d in ("threads", "resources", "conda") if d not in written[stage_of(name)]
        ]
        missing += [f"resources.{r}" for r in ("mem_mb", "runtime") if r not in rule["resources"]]
        if name in GPU_RULES and rule["resources"].get("gpu") != DEMO_GPUS:
            missing.append(f"resources.gpu={DEMO_GPUS}")
        if name not in GPU_RULES and "gpu" in rule["resources"]:
            missing.append("(no gpu: not a GPU rule)")
        if missing:
            problems.append(f"{name}: {', '.join(missing)}")
    assert not problems, problems


@pytest.mark.workflow
def test_every_rule_uses_an_existing_stage_env(rules):
    envs = {p.name for p in (ROOT / "envs").glob("*.yaml")}
    used = set()
    for name, rule in rules.items():
        if name in TARGET_RULES:
            continue
        assert rule["conda"], f"{name}: no conda env"
        env = Path(rule["conda"]).name
        assert env in envs, f"{name}: {rule['conda']} is not in envs/"
        used.add(env)
    assert used == envs, f"envs/ files no rule uses: {sorted(envs - used)}"


@pytest.mark.workflow
def test_lint_is_clean(workflow_copy):
    proc = snakemake(
        workflow_copy, "--lint", "--configfile", "demo/config.yaml", check=False, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]


def test_snakefmt_is_clean():
    proc = subprocess.run(
        [str(VENV_BIN / "snakefmt"), "--check", "--diff", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "--diff", "."]])
def test_ruff_is_clean(command):
    """The Python side's formatter and linter, as snakefmt is the Snakemake side's
    (settings in pyproject.toml; ``make format`` applies them)."""
    proc = subprocess.run(
        [str(VENV_BIN / "ruff"), *command], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]


@pytest.mark.parametrize(
    "command",
    [
        [str(VENV_BIN / "snakemake"), "--version"],
        [sys.executable, "-m", "snakemake", "--version"],
        "snakemake --version",
        [sys.executable, "-c", "from snakemake.api import SnakemakeApi"],
    ],
)
def test_a_unit_test_cannot_start_snakemake(command):
    """The tier guard (conftest): Snakemake in a unit test fails it, however it is started."""
    with pytest.raises(AssertionError, match="a unit test ran Snakemake"):
        subprocess.run(command, shell=isinstance(command, str), capture_output=True, timeout=120)
    with pytest.raises(AssertionError, match="a unit test ran Snakemake"):
        from snakemake.api import SnakemakeApi

        SnakemakeApi()  # reached only if an earlier test imported it: then creating one fails
    done = subprocess.run(
        [sys.executable, "-c", "print('other programs run')"], capture_output=True, text=True
    )
    assert done.stdout.strip() == "other programs run"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*==\s*([^\s;]+)", line)
        if m:
            pins[_norm(m.group(1))] = m.group(2)
    return pins


@pytest.mark.parametrize("env", sorted(p.name for p in (ROOT / "envs").glob("*.yaml")))
def test_env_pins_agree_with_requirements(env):
    pins = requirement_pins()
    spec = yaml.safe_load((ROOT / "envs" / env).read_text())
    problems = []
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            for req in dep.get("pip", []):
                m = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", req.replace(" ", ""))
                if not m:
                    problems.append(f"pip {req!r}: not pinned with ==")
                elif pins.get(_norm(m.group(1))) != m.group(2):
                    problems.append(
                        f"pip {req}: requirements.txt has {pins.get(_norm(m.group(1)))}"
                    )
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(?:==?\s*(\S+))?", dep)
        name, version = m.group(1), m.group(2)
        if name == "pip":
            continue
        if name == "python":
            want = f"{sys.version_info.major}.{sys.version_info.minor}"
            if version != want:
                problems.append(f"python={version}: the tests run on {want}")
        elif pins.get(_norm(name)) != version:
            problems.append(f"conda {dep}: requirements.txt has {pins.get(_norm(name))}")
    assert not problems, problems


READERS = r"""
import json, sys
import duckdb
import pandas as pd
import polars as pl

out = {}
for path in sys.argv[1:]:
    if path.endswith(".csv"):
        shapes = [pd.read_csv(path).shape, pl.read_csv(path).shape,
                  duckdb.sql(f"select * from read_csv_auto('{path}')").df().shape]
        out[path] = {"shapes": [list(s) for s in shapes]}
    else:
        a = pd.read_parquet(path)
        b = pl.read_parquet(path)
        c = duckdb.sql(f"select * from read_parquet('{path}')").df()
        d = duckdb.sql(f"select min(len(embedding)), max(len(embedding)) from read_parquet('{path}')").fetchall()[0]
        out[path] = {
            "shapes": [list(a.shape), list(b.shape), list(c.shape)],
            "dims": [len(a["embedding"].iloc[0]), b["embedding"].to_numpy().shape[1], d[0], d[1]],
            "row_ids": [a["row_id"].is_monotonic_increasing, b["row_id"].is_sorted()],
        }
out["artprobe_imported"] = any(m == "artprobe" or m.startswith("artprobe.") for m in sys.modules)
print(json.dumps(out))
"""


@pytest.mark.workflow
@pytest.mark.slow
def test_deliverables_open_without_artprobe(tiny_run, tmp_path):
    results = next((tiny_run / "results").glob("*/report/summary.csv")).parents[1]
    merged = sorted(
        p
        for p in (results / "embeddings").glob("*.parquet")
        if not p.name.endswith(".failures.parquet")
    )
    assert merged
    paths = [str(p) for p in [*merged, results / "report" / "summary.csv"]]
    proc = subprocess.run(
        [sys.executable, "-c", READERS, *paths],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    out = json.loads(proc.stdout)
    assert out.pop("artprobe_imported") is False
    for path, got in out.items():
        shapes = got["shapes"]
        assert shapes[0][0] > 0 and all(s[0] == shapes[0][0] for s in shapes), (path, shapes)
        if "dims" in got:
            assert len(set(got["dims"])) == 1 and got["dims"][0] > 0, (path, got["dims"])
            assert all(got["row_ids"]), path


# A rule's script as Snakemake runs it under --software-deployment-method conda: only the
# script's folder on sys.path, no PYTHONPATH, no artprobe installed (``-S``: no site-packages,
# so not even this venv's editable install is seen).
SCRIPT_PATH_PROBE = r"""
import sys
sys.path.insert(0, sys.argv[1])
import _checkout
import artprobe, artprobe.common.logs
print(artprobe.__file__)
"""


def test_scripts_find_the_checkouts_package_without_pythonpath(tmp_path):
    work = copy_workflow(tmp_path / "checkout")
    shutil.copytree(
        ROOT / "artprobe", work / "artprobe", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-S", "-c", SCRIPT_PATH_PROBE, str(work / "scripts")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve() == (work / "artprobe" / "__init__.py").resolve()
    for script in sorted((ROOT / "scripts").glob("*.py")):
        if script.name != "_checkout.py":
            first = [
                ln for ln in script.read_text().splitlines() if ln.startswith(("import", "from"))
            ][0]
            assert first.startswith("import _checkout"), f"{script.name}: imports before _checkout"


def _installed_closure(names: set[str]) -> set[str]:
    """``names`` and every distribution pip installs with them (extras left out)."""
    from importlib.metadata import PackageNotFoundError, requires

    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        for req in reqs:
            if "extra ==" not in req:
                todo.append(_norm(re.match(r"[A-Za-z0-9_.-]+", req).group(0)))
    return seen


def _imported_dists(script: Path) -> set[str]:
    """Distributions a script imports, directly or through the artprobe modules it uses
    (lazy imports inside functions included; optional imports of libraries are theirs)."""
    import ast
    from importlib.metadata import packages_distributions

    dists, seen, todo = packages_distributions(), set(), [script]
    found = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                top = name.split(".")[0]
                if top == "artprobe":
                    parts = ROOT.joinpath(*name.split("."))
                    todo += [
                        q for q in (parts.with_suffix(".py"), parts / "__init__.py") if q.exists()
                    ]
                elif top not in sys.stdlib_module_names and top != "_checkout":
                    found.update(_norm(d) for d in dists.get(top, [top]))
    return found


@pytest.mark.workflow
def test_each_env_has_what_its_scripts_import(rules):
    """A script run in its rule's env finds every package its imports need (conda env ==
    exactly the pip list of envs/<stage>.yaml)."""
    problems = []
    for name, rule in rules.items():
        if name in TARGET_RULES or not rule.get("script"):
            continue
        spec = yaml.safe_load((ROOT / "envs" / Path(rule["conda"]).name).read_text())
        pins = {
            _norm(re.split("[=<>]", r)[0])
            for d in spec["dependencies"]
            if isinstance(d, dict)
            for r in d["pip"]
        }
        pins = _installed_closure(pins)
        script = ROOT / "scripts" / Path(rule["script"]).name
        missing = sorted(_imported_dists(script) - pins)
        if missing:
            problems.append(
                f"rule {name} ({script.name}) imports {missing}, not in {rule['conda']}"
            )
    assert not problems, problems


def test_parse_modules_are_light():
    """The artprobe modules rules/*.smk import load neither torch nor pandas."""
    text = "".join(p.read_text() for p in RULE_FILES)
    modules = sorted(set(re.findall(r"^from (artprobe[\w.]*) import", text, re.M)))
    assert "artprobe.config" in modules
    heavy = "{'torch', 'pandas', 'timm'}"
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint(sorted({heavy} & set(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"parse-time imports load {proc.stdout.strip()}"


# ---------------------------------------------------------------- the design table


def _rule_files_scripts_envs() -> dict[str, tuple[str, str | None, str | None]]:
    """rule name -> (its rule file, script, env) as rules/*.smk write them."""
    found = {}
    for name, (path, lines) in rule_blocks().items():
        named = [
            m.group(1)
            for ln in lines
            if (m := re.match(r'\s+"\.\./((?:scripts|envs)/[\w.]+)"', ln))
        ]
        script = next((n for n in named if n.startswith("scripts/")), None)
        env = next((n for n in named if n.startswith("envs/")), None)
        found[name] = (f"rules/{path.name}", script, env)
    return {k: v for k, v in found.items() if k not in TARGET_RULES}


def _design_tables() -> tuple[dict[str, list[str]], dict[str, str]]:
    """docs/design.md's rule table (rule -> its cells) and module table (first cell -> job)."""
    rules, modules = {}, {}
    for line in (ROOT / "docs" / "design.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and (m := re.match(r"`(\w+)`", cells[0])):
            rules[m.group(1)] = cells
        elif len(cells) == 2 and cells[0].startswith("`artprobe/"):
            modules[cells[0]] = cells[1]
    return rules, modules


def test_design_table_maps_every_rule_script_and_module():
    """docs/design.md ("Package layout"): one row per rule naming its rule file, script, env,
    modules and tests as they are; every script has a rule's row, every artprobe module a
    row (a subpackage's modules are each named in its row)."""
    rules, modules = _design_tables()
    declared = _rule_files_scripts_envs()
    assert set(rules) == set(declared), "rules without a row / rows without a rule"
    problems = []
    for name, (rule_file, script, env) in sorted(declared.items()):
        cells = rules[name]
        for got, want in zip(cells[1:4], (rule_file, script, env)):
            if got != f"`{want}`":
                problems.append(f"{name}: the table says {got}, rules/*.smk {want}")
        for path in re.findall(r"`([\w/.]+)`", cells[4] + " " + cells[5]):
            if not (ROOT / path).exists():
                problems.append(f"{name}: {path} does not exist")
    scripts = {f"scripts/{p.name}" for p in (ROOT / "scripts").glob("[!_]*.py")}
    problems += [
        f"{s}: no rule's row" for s in sorted(scripts - {s for _, s, _ in declared.values()})
    ]
    named = " ".join(c[4] for c in rules.values()) + " " + " ".join(modules)
    for path in sorted((ROOT / "artprobe").glob("*.py")):
        if path.name != "__init__.py" and f"`artprobe/{path.name}`" not in named:
            problems.append(f"artprobe/{path.name}: in no row")
    for pkg in sorted(p for p in (ROOT / "artprobe").iterdir() if (p / "__init__.py").exists()):
        rows = [job for first, job in modules.items() if f"`artprobe/{pkg.name}/`" in first]
        if not rows:
            problems.append(f"artprobe/{pkg.name}/: no module row")
        for mod in sorted(pkg.glob("*.py")):
            if mod.name != "__init__.py" and not any(f"`{mod.stem}`" in job for job in rows):
                problems.append(f"artprobe/{pkg.name}/{mod.name}: not named in its package's row")
    assert not problems, "\n".join(problems)


def test_every_env_is_named_after_its_rule_or_its_rule_file():
    """envs/ follow the stages (issue 26): a rule's env is envs/<rule>.yaml, or
    envs/<rule file>.yaml where one env serves every rule of that file."""
    wrong = [
        f"{name} ({rule_file}): {env}"
        for name, (rule_file, _, env) in sorted(_rule_files_scripts_envs().items())
        if Path(env).stem not in (name, Path(rule_file).stem)
    ]
    assert not wrong, wrong


def test_every_log_and_benchmark_is_under_the_datasets_folder():
    """README: logs and benchmarks live under results/<dataset>/ (generate_demo's too), the
    leaderboard's (over every dataset) under results/leaderboard/."""
    wrong = []
    for path in RULE_FILES:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() in ("log:", "benchmark:"):
                where = lines[i + 1].strip()
                if not where.startswith(('"results/{dataset}/', 'f"{LEADERBOARD}/')):
                    wrong.append(f"{path.name}: {line.strip()} {where}")
    assert not wrong, wrong
