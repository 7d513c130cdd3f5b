# Helper functions, config validation and wildcard constraints. No rules here.

import os
from pathlib import Path
import sys

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)

from artprobe import probes
from artprobe.data import is_local_source, shard_ranges
from artprobe.io import read_json
from artprobe.report import report_files, report_sections

validate(config, "../schemas/config.schema.yaml")


def _check_config():
    """Checks a JSON schema cannot express; each error names the offending key."""
    if workflow.is_main_process:
        import timm

    names = [m["name"] for m in config["models"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"config models: duplicate name(s) {dup}")
    for m in config["models"] if workflow.is_main_process else []:  # jobs re-parse: skip
        if not timm.is_model(m["timm"]):
            raise ValueError(
                f"config models[{m['name']}].timm: {m['timm']!r} is not a timm model "
                "(see timm.list_models())"
            )
    names = [c["name"] for c in config["classifiers"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"config classifiers: duplicate name(s) {dup}")
    resolved = {}
    for c in config["classifiers"]:
        spec = {k: v for k, v in c.items() if k not in ("name", "kind")}
        try:
            resolved[c["name"]] = probes.resolve_params(c["kind"], spec)
        except ValueError as err:
            raise ValueError(f"config classifiers[{c['name']}]: {err}") from None
    targets = config["dataset"]["targets"]
    for key in ("drop_labels", "min_class_count"):
        unknown = sorted(set(config["probe"][key]) - set(targets))
        if unknown:
            raise ValueError(
                f"config probe.{key}: unknown target(s) {unknown} (targets: {targets})"
            )
    strat = config["split"]["stratify_by"]
    if strat is not None and strat not in targets:
        raise ValueError(
            f"config split.stratify_by: {strat!r} is not one of dataset.targets {targets}"
        )
    if config["demo"] is not None and not is_local_source(config["dataset"]["source"]):
        raise ValueError("config demo: set, but dataset.source is a hub id, not a local folder")
    return resolved


CLASSIFIER_PARAMS = _check_config()
MODELS = {m["name"]: m for m in config["models"]}
CLASSIFIERS = {c["name"]: c["kind"] for c in config["classifiers"]}
TARGETS = config["dataset"]["targets"]
DATASET = config["dataset"]["name"]
OUT = f"results/{DATASET}"


wildcard_constraints:
    dataset=DATASET,
    model="|".join(MODELS),
    target="|".join(TARGETS),
    classifier="|".join(CLASSIFIERS),
    shard=r"\d{5}",


# ---------------------------------------------------------------- data


DEMO_DEFAULTS = {"rows": 360, "files": 3, "seed": 0, "broken": 2}


def demo_params(wildcards):
    return {**DEMO_DEFAULTS, **config["demo"]}


def manifest_input(wildcards):
    """A generated or local source is an input (its files' mtimes trigger reruns)."""
    source = config["dataset"]["source"]
    if config["demo"] is not None:
        return os.path.normpath(source)
    if is_local_source(source) and os.path.isdir(source):
        return sorted(str(p) for p in Path(source).glob("data/*.parquet"))
    return []


def source_params(wildcards):
    return {
        "source": config["dataset"]["source"],
        "revision": config["dataset"]["revision"],
        "targets": TARGETS,
    }


def split_params(wildcards):
    return dict(config["split"])


def _shards(wildcards):
    manifest = checkpoints.manifest.get(dataset=wildcards.dataset).output[0]
    return shard_ranges(read_json(manifest)["n_rows"], config["shards"]["rows"])


def shard_range(wildcards):
    start, stop = _shards(wildcards)[wildcards.shard]
    return {"row_start": start, "row_stop": stop}


def shard_files(wildcards):
    return expand(
        "results/{dataset}/shards/{shard}.parquet",
        dataset=wildcards.dataset,
        shard=_shards(wildcards),
    )


# ---------------------------------------------------------------- embed


def model_params(wildcards):
    """Only what can change an embedding (embed_runtime settings are read by the script)."""
    m = MODELS[wildcards.model]
    return {
        "timm_name": m["timm"],
        "pretrained": m["pretrained"],
        "decode": config["embed"]["decode"],
        "precision": config["embed"]["precision"],
    }


def embedding_shards(wildcards):
    return expand(
        "results/{dataset}/embeddings/{model}/{shard}.parquet",
        dataset=wildcards.dataset,
        model=wildcards.model,
        shard=_shards(wildcards),
    )


# ---------------------------------------------------------------- classify


def fit_params(wildcards):
    t = wildcards.target
    return {
        "kind": CLASSIFIERS[wildcards.classifier],
        "params": CLASSIFIER_PARAMS[wildcards.classifier],
        "drop_labels": config["probe"]["drop_labels"].get(t, []),
        "min_class_count": config["probe"]["min_class_count"].get(t),
        "seed": config["probe"]["seed"],
        "n_boot": config["probe"]["bootstrap"],
    }


FIT_FILES = ["metrics.json", "classification_report.txt", "predictions.parquet", "history.csv"]


def fit_dir(model, target, classifier):
    return f"{OUT}/classify/{model}/{target}/{classifier}"


def all_fits():
    return [
        {"model": m, "target": t, "classifier": c, "dir": fit_dir(m, t, c)}
        for m in MODELS
        for t in TARGETS
        for c in CLASSIFIERS
    ]


def fit_inputs(wildcards):
    return [f"{f['dir']}/{name}" for f in all_fits() for name in FIT_FILES]


# ---------------------------------------------------------------- report


REPORT_FILES = report_files(list(MODELS), TARGETS, list(CLASSIFIERS), CLASSIFIERS)


def report_params(wildcards):
    return {
        "fits": all_fits(),
        "embeddings": {m: f"{OUT}/embeddings/{m}.parquet" for m in MODELS},
        "failures": {m: f"{OUT}/embeddings/{m}.failures.parquet" for m in MODELS},
        "kinds": CLASSIFIERS,
        "n_boot": config["probe"]["bootstrap"],
        "seed": config["probe"]["seed"],
        "map_rows": config["report"]["map_rows"],
    }


def final_targets():
    return [f"{OUT}/report/{path}" for path in REPORT_FILES.values()]


# caption, category, subcategory and labels of every report file (artprobe.report)
REPORT_SECTIONS = report_sections(list(MODELS), TARGETS, list(CLASSIFIERS), CLASSIFIERS)


def report_outputs():
    """Every report file, wrapped in report() with its caption, category and labels."""
    out = []
    for file_id, path in REPORT_FILES.items():
        s = REPORT_SECTIONS[file_id]
        kw = dict(category=s["category"], subcategory=s["subcategory"], labels=s["labels"])
        kw["caption"] = f"../report/{s['caption']}"
        out.append(report(f"results/{{dataset}}/report/{path}", **kw))
    return out
