"""README.md is a guide whose every concrete claim holds: it is short; every command's make
target, every path, every link and every config key it names exists; the results tree names
files the rules (or the report's layout) write; the overlay it shows is a valid config; the
probes and the demo's settings are where it says."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SCHEMA = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())


def _code_spans(text: str) -> list[str]:
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.findall(r"`([^`\n]+)`", prose)


def _blocks(text: str, lang: str = "") -> list[str]:
    """The fenced blocks whose fence names ``lang`` ("": none)."""
    blocks, lines, inside = [], [], None  # inside: None, or whether this block is wanted
    for line in text.splitlines():
        if line.startswith("```"):
            if inside is None:
                inside, lines = line[3:].strip() == lang, []
            else:
                if inside:
                    blocks.append("\n".join(lines) + "\n")
                inside = None
        elif inside:
            lines.append(line)
    return blocks


def _schema_node(dotted: str):
    """The schema node of ``a.b.c`` (``then``, list items and a mapping's values followed:
    ``datasets.wikiart`` is a dataset's settings), or None."""
    node = SCHEMA
    for key in dotted.split("."):
        node = node.get("then", node)
        node = node.get("items", node)
        values = node.get("additionalProperties")
        node = node.get("properties", {}).get(key, values if isinstance(values, dict) else None)
        if node is None:
            return None
    return node


def test_readme_is_a_short_guide():
    assert len(README.splitlines()) < 150
    for section in ("Quick start", "The real experiment", "Your own data", "The results"):
        assert f"## {section}" in README
    assert "## Resuming" in README and "## Where the reference lives" in README


def test_every_make_target_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"\bmake ([a-z][\w-]*)", README))
    assert {"demo", "test", "setup"} <= targets
    for t in targets:
        assert re.search(rf"^{re.escape(t)}:", makefile, re.M), f"make {t}"


def test_every_path_and_link_exists():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    paths = [p for p in _code_spans(README) if re.fullmatch(r"[\w.-]+(/[\w.-]+)*/?", p)]
    top = {p.name for p in ROOT.iterdir()}
    paths = [
        p
        for p in paths
        if p.split("/")[0] in top | {"results"} or p.endswith((".yaml", ".py", ".md"))
    ]
    paths += [p for b in _blocks(README, "bash") for p in re.findall(r"(?:profiles|demo)/\S+", b)]
    checked = 0
    for p in [link for link in links if not link.startswith("http")] + paths:
        if p.startswith("results/"):
            continue  # written by a run: test_the_results_tree_names_what_the_rules_write
        assert (ROOT / p).exists(), p
        checked += 1
    assert checked >= 15


def test_every_config_key_it_names_is_in_the_schema():
    keys = [
        k.rstrip(":")
        for k in _code_spans(README)
        if re.fullmatch(r"[a-z_]+(\.[a-z_]+)*:?", k)
        and k.split(".")[0].rstrip(":") in SCHEMA["properties"]
    ]
    assert {"datasets", "datasets.wikiart", "use_datasets", "models", "classifiers"} <= set(keys)
    assert _schema_node("datasets.wikiart.split.method") is not None
    assert _schema_node("datasets.wikiart.splitz") is None  # a typo is not a dataset's key
    for k in keys:
        assert _schema_node(k) is not None, k


def _rule_outputs() -> set[str]:
    """results/{dataset}/... outputs of the rules, placeholders written as <name>."""
    text = "".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    found = re.findall(r'"results/\{dataset\}/([^"]+)"', text)
    return {re.sub(r"\{(\w+)\}", r"<\1>", f) for f in found}


def _leaderboard_outputs() -> set[str]:
    """The files the leaderboard rule writes (results/leaderboard/...)."""
    folder = re.search(
        r'^LEADERBOARD = "([^"]+)"', (ROOT / "rules" / "common.smk").read_text(), re.M
    )
    text = (ROOT / "rules" / "report.smk").read_text()
    return {f"{folder.group(1)}/{f}" for f in re.findall(r'f"\{LEADERBOARD\}/([^"]+)"', text)}


def test_the_results_tree_names_what_the_rules_write():
    from artprobe.report.layout import report_files

    tree = next(b for b in _blocks(README) if b.startswith("results/<name>/"))
    outputs = _rule_outputs()
    report = set(report_files(["m"], ["t"], ["c"], {"c": "linear"}).values())
    lines = [line.split("#")[0] for line in tree.splitlines()[1:]]
    board = [line.split() for line in lines if line.startswith("results/")]  # another folder
    named = [p for line in lines if not line.startswith("results/") for p in line.split()]
    assert len(named) >= 10
    assert board, "the leaderboard's folder"
    for first, *rest in board:  # a path, then more files in its folder
        folder = first.rsplit("/", 1)[0]
        for p in [first, *(f"{folder}/{name}" for name in rest)]:
            assert p in _leaderboard_outputs(), p
    for p in named:
        if p.startswith("report/"):
            assert p.removeprefix("report/") in report, p
        elif p in ("logs/", "benchmarks/"):
            assert f"{p}<model>/<shard>.log" in outputs or any(o.startswith(p) for o in outputs), p
        else:
            assert p in outputs, p


def test_the_overlay_it_shows_is_a_valid_config():
    from snakemake.utils import update_config, validate

    from artprobe.config import check_config, used_datasets

    overlay = yaml.safe_load(next(b for b in _blocks(README, "yaml") if "mine.yaml" in b))
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text())
    # as its comment says: [mine] alone, or [wikiart, mine], both
    for names in (overlay["use_datasets"], ["wikiart", *overlay["use_datasets"]]):
        config = copy.deepcopy(shipped)
        update_config(config, {**overlay, "use_datasets": names})  # Snakemake's overlay merge
        validate(config, str(ROOT / "schemas" / "config.schema.yaml"))
        check_config(config)
        assert list(used_datasets(config)) == names
        assert config["datasets"]["mine"]["targets"] == ["label"]


def test_the_probes_and_the_demo_are_where_it_says():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert [c["name"] for c in config["classifiers"]] == ["mlp", "linear", "knn"]
    assert config["use_datasets"] == ["wikiart"]
    assert config["datasets"]["wikiart"]["source"] == "huggan/wikiart"
    demo = yaml.safe_load((ROOT / "demo" / "config.yaml").read_text())
    # two generated datasets, results/demo/ and results/artbench/, the second its own test split
    assert demo["use_datasets"] == ["demo", "artbench"]
    assert all(demo["datasets"][n]["demo"] is not None for n in demo["use_datasets"])
    assert demo["datasets"]["artbench"]["split"]["method"] == "given"
    artbench = yaml.safe_load((ROOT / "overlays" / "artbench.yaml").read_text())
    assert artbench["use_datasets"] == ["wikiart", "artbench"]  # "adds ArtBench-10"
    assert artbench["datasets"]["artbench"]["split"]["method"] == "given"
    makefile = (ROOT / "Makefile").read_text()
    assert "--report results/demo/report.html" in makefile and "demo/config.yaml" in makefile
    profile = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    assert profile["rerun-incomplete"] is True  # "rerun the same command"
