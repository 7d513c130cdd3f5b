"""What parsing the workflow needs, without torch or pandas.

``rules/common.smk`` imports this module on every parse (``snakemake -n``, every SLURM job's
re-parse), so it holds only light code: the classifier hyper-parameters resolved
(:func:`resolve_params`), the checks a JSON schema cannot express (:func:`check_config`)
and names shared by several stages (``SPLITS``, ``FIT_FILES``). The probe kinds, their specs
and defaults are :mod:`artprobe.probes.registry`'s (re-exported here); each stage's typed
settings, built from the validated config, are :mod:`artprobe.settings`'.
The timm-name check lives in
:mod:`artprobe.common.timm_names` (it may import timm, so the stages' envs need not have it).
"""

from __future__ import annotations

import difflib
import os
import re

from artprobe.probes import registry
from artprobe.probes.registry import (  # noqa: F401 (re-exported)
    defaults,
    gains_from_gpu,
    neighbour_center,
    resolve_params,
)

SPLITS = ("train", "val", "test")
#: the files of one fit (``rules/classify.smk`` outputs, the report's inputs): key -> name
FIT_FILES = {
    "metrics": "metrics.json",
    "classification_report": "classification_report.txt",
    "predictions": "predictions.parquet",
    "history": "history.csv",
}
#: top-level keys of the single-dataset config, now items of ``datasets:``
LEGACY_KEYS = ("dataset", "split", "demo")
#: folders of results/ that are not datasets (the cross-dataset leaderboard)
RESERVED_NAMES = ("leaderboard",)
#: the kind few-shot curves fit (artprobe.probes.curve), the registry's few-shot kind
FEWSHOT_KIND = next(k for k in registry.names() if registry.get(k).fewshot)

# ---------------------------------------------------------------------------------
# Cross-key checks of the whole config
# ---------------------------------------------------------------------------------


def _duplicates(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


def check_config(config: dict) -> dict[str, dict]:
    """Checks a JSON schema cannot express; each error names the offending key.

    ``config`` is already validated against ``schemas/config.schema.yaml`` (defaults filled).
    Returns the resolved hyper-parameters of every classifier, by classifier name.
    """
    dup = _duplicates([m["name"] for m in config["models"]])
    if dup:
        raise ValueError(f"config models: duplicate name(s) {dup}")
    for m in config["models"]:
        if m.get("weights") is not None and not m["pretrained"]:
            raise ValueError(f"config models[{m['name']}].weights: set, but pretrained is false")
        if m.get("revision") is not None and (m.get("weights") is not None or not m["pretrained"]):
            why = (
                "weights is set (a local file)"
                if m.get("weights") is not None
                else "pretrained is false"
            )
            raise ValueError(f"config models[{m['name']}].revision: set, but {why}")
    dup = _duplicates([c["name"] for c in config["classifiers"]])
    if dup:
        raise ValueError(f"config classifiers: duplicate name(s) {dup}")
    resolved = {}
    for c in config["classifiers"]:
        spec = {k: v for k, v in c.items() if k not in ("name", "kind")}
        try:
            resolved[c["name"]] = resolve_params(c["kind"], spec)
        except ValueError as err:
            raise ValueError(f"config classifiers[{c['name']}]: {err}") from None
    _check_datasets(config)
    targets = all_targets(config)
    for key in ("drop_labels", "min_class_count"):
        unknown = sorted(set(config["probe"][key]) - set(targets))
        if unknown:
            raise ValueError(
                f"config probe.{key}: unknown target(s) {unknown} (targets: {targets})"
            )
    return resolved


def check_legacy_keys(config: dict) -> None:
    """The single-dataset keys of earlier versions fail with what to write instead (checked
    before the schema, whose message would only say the key is unexpected)."""
    old = [k for k in LEGACY_KEYS if k in config]
    if old:
        keys = ", ".join(f"{k}:" for k in old)
        raise ValueError(
            f"config {keys} replaced by `datasets:` (name -> its source, targets, split: and "
            "demo:) and `use_datasets:` (the names to run), e.g. datasets: {mine: {source: "
            "./my_art, targets: [style]}} and use_datasets: [mine] (config.yaml shows the form)"
        )


def demo_source(name: str) -> str:
    """Where a demo dataset's source is generated (the generate_demo rule's output)."""
    return f"results/{name}/source"


def used_datasets(config: dict) -> dict[str, dict]:
    """The datasets this run runs (``use_datasets``, in its order): name -> its settings."""
    return {name: config["datasets"][name] for name in config["use_datasets"]}


def all_targets(config: dict) -> list[str]:
    """Every used dataset's targets, each once, in the datasets' order."""
    return list(dict.fromkeys(t for d in used_datasets(config).values() for t in d["targets"]))


def _check_datasets(config: dict) -> None:
    """Every used name defined and not a folder of results/ itself; a source for every real
    dataset, a generated one for every demo (filled in here); each dataset's split keys."""
    known = list(config["datasets"])
    for name in config["use_datasets"]:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(
                f"config use_datasets: {name!r} is not under datasets: (it has {known}){hint}"
            )
    for name, d in used_datasets(config).items():
        where = f"config datasets.{name}"
        if name in RESERVED_NAMES:
            raise ValueError(f"{where}: the name {name!r} is taken by results/{name}/")
        if d["demo"] is not None:
            if d.get("source", demo_source(name)) != demo_source(name):
                raise ValueError(
                    f"{where}.source: a demo dataset is generated into {demo_source(name)}; "
                    "leave source out (or set demo: null for a real source)"
                )
            d["source"] = demo_source(name)
        elif "source" not in d:
            raise ValueError(f"{where}.source: required (a hub id or a local folder)")
        strat = d["split"]["stratify_by"]
        if strat is not None and strat not in d["targets"]:
            raise ValueError(
                f"{where}.split.stratify_by: {strat!r} is not one of its targets {d['targets']}"
            )
        _check_split(d["split"], d["targets"], f"{where}.split")


def _check_split(split: dict, targets: list[str], where: str) -> None:
    """group_by goes with method group and is no target; drop_duplicates needs the scan."""
    group_by = split.get("group_by")
    if split["method"] == "group" and group_by is None:
        raise ValueError(f"{where}.group_by: required with method 'group' (e.g. artist)")
    if group_by is not None and split["method"] != "group":
        raise ValueError(f"{where}.group_by: set, but method is {split['method']!r}, not 'group'")
    if group_by in targets:
        raise ValueError(
            f"{where}.group_by: {group_by!r} is also one of the targets; with every {group_by} "
            f"on one side no test {group_by} is seen in training, so its fits mean nothing. "
            f"Remove {group_by!r} from targets (group_by reads the source column itself)"
        )
    if split.get("drop_duplicates") and split.get("duplicate_distance") is None:
        raise ValueError(f"{where}.drop_duplicates: true, but duplicate_distance is null (no scan)")


def embed_gpus(config: dict) -> int:
    """The GPUs an embed job holds (its ``gpu`` resource): none when ``embed_runtime.device`` is
    ``cpu``, so CPU embed jobs run side by side as ``--cores`` allows instead of queueing for the
    ``gpu`` pool (profiles/default: 1); one otherwise (``auto`` included: the device is only
    known inside the job, which may run on a GPU node)."""
    return 0 if config["embed_runtime"]["device"] == "cpu" else 1


def is_local_source(source: str) -> bool:
    """Local if it exists on disk or is written as a path (``/…``, ``./…``, ``~/…``);
    otherwise a hub id ``owner/name``."""
    if os.path.exists(os.path.expanduser(source)) or source.startswith(("/", ".", "~")):
        return True
    return not re.fullmatch(r"[\w.-]+/[\w.-]+", source)
