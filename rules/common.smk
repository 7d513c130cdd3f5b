# Helper functions, config validation and wildcard constraints. No rules here.

import functools
import os
from pathlib import Path
import sys

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)

from artprobe.config import check_config, demo_settings, is_local_source
from artprobe.data import shard_ranges
from artprobe.io import read_json
from artprobe.timm_names import check_timm_names
from artprobe.report.layout import layout_options, report_layout

validate(config, "../schemas/config.schema.yaml")

CLASSIFIER_PARAMS = check_config(config)
if workflow.is_main_process:  # jobs re-parse the workflow: importing timm there costs seconds
    check_timm_names(config["models"])
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


def demo_params(wildcards):
    return demo_settings(config)


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
    """Shard id -> row range. Called for every shard job: cached per manifest version."""
    manifest = checkpoints.manifest.get(dataset=wildcards.dataset).output[0]
    return _shard_table(manifest, os.stat(manifest).st_mtime_ns, config["shards"]["rows"])


@functools.cache
def _shard_table(manifest, mtime_ns, rows):
    return shard_ranges(read_json(manifest)["n_rows"], rows)


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
    """Only what can change an embedding (embed_runtime settings are read by the script).

    With ``precision: auto`` the device decides the dtype (bf16 on CUDA, fp32 on CPU), so
    ``embed_runtime.device`` is then part of what re-embeds; with a fixed precision it is not.
    """
    m = MODELS[wildcards.model]
    params = {
        "timm_name": m["timm"],
        "pretrained": m["pretrained"],
        "decode": config["embed"]["decode"],
        "precision": config["embed"]["precision"],
    }
    if params["precision"] == "auto":
        params["device"] = config["embed_runtime"]["device"]
    if m["weights"] is not None:
        params["weights"] = m["weights"]
    return params


def model_weights(wildcards):
    """A local weights file is an input of its model's embed jobs: changing it re-embeds."""
    weights = MODELS[wildcards.model]["weights"]
    return [] if weights is None else [weights]


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


# every report file (path, caption, category, subcategory, labels): artprobe.report.layout
REPORT = report_layout(
    MODELS, TARGETS, CLASSIFIERS, CLASSIFIERS, **layout_options(config["report"], TARGETS)
)


def report_params(wildcards):
    """build_report's settings; inputs and outputs come from the rule itself."""
    return {
        "n_boot": config["probe"]["bootstrap"],
        "seed": config["probe"]["seed"],
        "map_rows": config["report"]["map_rows"],
        "pairs_targets": config["report"].get("pairs_targets"),
        "map_target": config["report"].get("map_target"),
    }


def final_targets():
    return [f"{OUT}/report/{f.path}" for f in REPORT]


def report_ids():
    """The layout id of each report output, in the order of report_outputs()."""
    return [f.id for f in REPORT]


def report_outputs():
    """Every report file, wrapped in report() with its caption, category and labels."""
    out = []
    for f in REPORT:
        kw = dict(category=f.category, subcategory=f.subcategory, labels=f.labels)
        kw["caption"] = f"../report/{f.caption}"
        out.append(report(f"results/{{dataset}}/report/{f.path}", **kw))
    return out
