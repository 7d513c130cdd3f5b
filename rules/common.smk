# Helper functions, config validation and wildcard constraints. No rules here.

import functools
import os
import re
import sys

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)

from artprobe.config import (
    FEWSHOT_KIND,
    FIT_FILES,
    all_targets,
    check_config,
    check_legacy_keys,
    embed_gpus,
    gains_from_gpu,
    is_local_source,
    neighbour_center,
    used_datasets,
)
from artprobe.sources.hub_cache import check_offline_cache
from artprobe.common.io import read_json
from artprobe.stages.shard import shard_ranges
from artprobe.sources import local_inputs
from artprobe.common.timm_names import check_timm_names
from artprobe.pretrained import check_offline_weights, fetches_weights
from artprobe.report.layout import layout_options, report_layout
from artprobe.settings import (
    compare_settings,
    demo_settings,
    embed_params,
    fewshot_settings,
    fewshot_spec,
    fit_spec,
    model_spec,
    report_settings,
    source_settings,
    split_settings,
    thumbnail_settings,
)

check_legacy_keys(config)  # the single-dataset keys: what to write instead, in one line
validate(config, "../schemas/config.schema.yaml")

CLASSIFIER_PARAMS = check_config(config)  # also gives each demo dataset its source folder
FEWSHOT = fewshot_settings(config, CLASSIFIER_PARAMS)  # None: no few-shot curves
if workflow.is_main_process:  # jobs re-parse the workflow: importing timm there costs seconds
    check_timm_names(config["models"])
MODELS = {m["name"]: m for m in config["models"]}
CLASSIFIER_KINDS = {c["name"]: c["kind"] for c in config["classifiers"]}  # name -> kind
DATASETS = used_datasets(config)  # name -> its settings, the ones use_datasets runs
TARGETS = {name: d["targets"] for name, d in DATASETS.items()}
ALL_TARGETS = all_targets(config)  # every dataset's, each once
SPLIT = {name: split_settings(d) for name, d in DATASETS.items()}
DEMOS = [name for name, d in DATASETS.items() if d["demo"] is not None]  # generated sources
# hub ids: the download stage runs for these
HUB = [n for n, d in DATASETS.items() if d["demo"] is None and not is_local_source(d["source"])]
EMBED_GPUS = embed_gpus(config)
if workflow.is_main_process:  # offline with an empty cache: one error, before any job
    for name in HUB:
        d = DATASETS[name]
        check_offline_cache(d["source"], **{k: d[k] for k in ("revision", "config", "splits")})
HUB_MODELS = {n: m for n, m in MODELS.items() if fetches_weights(m)}  # the weights stage's
if workflow.is_main_process:  # offline with weights missing: one error, before any job
    for name in DATASETS:
        markers = {n: f"results/{name}/weights/{n}.json" for n in HUB_MODELS}
        check_offline_weights(HUB_MODELS, markers)


def one_of(names):
    """A wildcard pattern matching exactly ``names`` (nothing when there are none)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    dataset=one_of(DATASETS),
    model="|".join(MODELS),
    target=one_of(ALL_TARGETS),
    classifier="|".join(CLASSIFIER_KINDS),
    shard=r"\d{5}",
    file=r"\d{5}",


# ---------------------------------------------------------------- data


# A rule's params are its settings object (artprobe.settings) as plain values: whole where
# they can be, else only what can change its result (they are Snakemake's rerun trigger).


def demo_params(wildcards):
    return demo_settings(DATASETS[wildcards.dataset]).rule_params()


# ---------------------------------------------------------------- download


def hub_params(wildcards):
    d = DATASETS[wildcards.dataset]
    return {
        "source": d["source"],
        "revision": d["revision"],
        "config": d["config"],
        "splits": d["splits"],
    }


def download_markers(wildcards):
    """One marker per file of the hub file list (known once download_list ran)."""
    files = checkpoints.download_list.get(dataset=wildcards.dataset).output[0]
    n = len(read_json(files)["files"])
    ids = [f"{i:05d}" for i in range(n)]
    return expand("results/{dataset}/download/{file}.json", dataset=wildcards.dataset, file=ids)


def manifest_input(wildcards):
    """A hub source: its download markers. A generated or local source is itself an input
    (its files' mtimes trigger reruns): the Parquet files of the configured layout, or an
    image folder's metadata files (artprobe.sources.local_inputs)."""
    d = DATASETS[wildcards.dataset]
    if d["demo"] is not None:
        return d["source"]
    if wildcards.dataset in HUB:
        return download_markers(wildcards)
    return local_inputs(d["source"], d["config"], d["splits"])  # what the manifest job reads


def source_params(wildcards):
    return source_settings(DATASETS[wildcards.dataset]).rule_params()


def split_index(wildcards):
    """The row index, an input of the split methods that read labels (stratified, group)."""
    if not SPLIT[wildcards.dataset].reads_labels:
        return []
    return f"results/{wildcards.dataset}/rows.parquet"


def split_params(wildcards):
    """Only what assigns the rows: the duplicate keys never re-split, group keys only when used."""
    return SPLIT[wildcards.dataset].rule_params()


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


def per_shard(pattern):
    """An input function: ``pattern`` for every shard (known once the manifest ran); its other
    wildcards ({dataset}, {model}) are the job's."""

    def files(wildcards):
        return expand(pattern, **dict(wildcards.items()), shard=list(_shards(wildcards)))

    return files


def duplicate_distance(wildcards):
    return DATASETS[wildcards.dataset]["split"]["duplicate_distance"]


def duplicates_scan(wildcards):
    """The scan's file for the report; none with split.duplicate_distance null."""
    if duplicate_distance(wildcards) is None:
        return []
    return f"results/{wildcards.dataset}/duplicates.parquet"


def duplicates_dropped(wildcards):
    """An input of the fits only with split.drop_duplicates (else the DAG is unchanged)."""
    if not DATASETS[wildcards.dataset]["split"]["drop_duplicates"]:
        return []
    return f"results/{wildcards.dataset}/duplicates.parquet"


# ---------------------------------------------------------------- embed


def model_params(wildcards):
    """Only what can change an embedding (artprobe.settings.embed_params); the job builds the
    model's spec and its runtime settings from the config (scripts/embed.py)."""
    model = model_spec(config, wildcards.model, weights_marker=None)
    return embed_params(model, config["embed_runtime"]["device"])


def model_weights(wildcards):
    """A local weights file is an input of its model's embed jobs: changing it re-embeds."""
    weights = MODELS[wildcards.model]["weights"]
    return [] if weights is None else [weights]


def weights_marker(wildcards):
    """Hub weights: the weights stage's marker is an input of the model's embed jobs."""
    if wildcards.model not in HUB_MODELS:
        return []
    return [f"results/{wildcards.dataset}/weights/{wildcards.model}.json"]


def dataset_targets(wildcards):
    """The targets of the job's dataset (the label columns its embeddings carry)."""
    return TARGETS[wildcards.dataset]


# ---------------------------------------------------------------- weights


def weights_targets():
    """The marker of every model whose weights come from the hub, per dataset (a marker is
    an input of that dataset's embed jobs; the weights themselves are fetched once)."""
    return [f"results/{d}/weights/{n}.json" for d in DATASETS for n in HUB_MODELS]


def weights_params(wildcards):
    m = MODELS[wildcards.model]
    return {"model": wildcards.model, "timm_name": m["timm"], "revision": m["revision"]}


# ---------------------------------------------------------------- classify


def fit_params(wildcards):
    """The fit whole (artprobe.settings.FitSpec) but for its wildcards."""
    w = wildcards
    return fit_spec(config, CLASSIFIER_PARAMS, w.model, w.target, w.classifier).rule_params()


def classifier_kind(wildcards):
    return CLASSIFIER_KINDS[wildcards.classifier]


def probe_gpu_resources(kind_of):
    """The resources that place a probe job on a cluster (config ``gpu_probes``, set by
    profiles/slurm): the fits of kinds that gain from a GPU get one on the GPU partition, the
    others the CPU partition. ``{}`` when it is off: local runs hold no GPU for a fit."""
    where = config["gpu_probes"]
    if not where:
        return {}

    def gpu(wildcards):
        return int(gains_from_gpu(kind_of(wildcards)))

    def slurm_partition(wildcards):
        return where["gpu_partition" if gpu(wildcards) else "cpu_partition"]

    return {"gpu": gpu, "slurm_partition": slurm_partition}


def fit_dir(dataset, model, target, classifier):
    return f"results/{dataset}/classify/{model}/{target}/{classifier}"


def dataset_fits(dataset):
    """Every fit file of ``dataset``: each model × its target × classifier."""
    return [
        f"{fit_dir(dataset, m, t, c)}/{name}"
        for m in MODELS
        for t in TARGETS[dataset]
        for c in CLASSIFIER_KINDS
        for name in FIT_FILES.values()
    ]


def fit_inputs(wildcards):
    return dataset_fits(wildcards.dataset)


# ---------------------------------------------------------------- fewshot


def fewshot_params(wildcards):
    """The curve whole (artprobe.settings.FewshotSpec) but for its wildcards."""
    return fewshot_spec(FEWSHOT, config, wildcards.model, wildcards.target).rule_params()


def fewshot_reused_fit(wildcards):
    """The classify fit that is the curve's ``all`` point (decided once:
    artprobe.settings.reused_fit): its metrics and predictions, or nothing (the curve fits
    that point itself)."""
    if FEWSHOT is None or FEWSHOT.reuses is None:
        return {}
    d = fit_dir(wildcards.dataset, wildcards.model, wildcards.target, FEWSHOT.reuses)
    return {
        "fit_metrics": f"{d}/{FIT_FILES['metrics']}",
        "fit_predictions": f"{d}/{FIT_FILES['predictions']}",
    }


def fewshot_kind(wildcards):
    return FEWSHOT_KIND  # the registry's few-shot kind (artprobe.probes.curve)


def fewshot_inputs(wildcards):
    """Every few-shot curve of the dataset (none when probe.fewshot is null)."""
    if FEWSHOT is None:
        return []
    d = wildcards.dataset
    return [f"results/{d}/fewshot/{m}/{t}.json" for m in MODELS for t in TARGETS[d]]


# ---------------------------------------------------------------- report


# every report file of each dataset (path, caption, category, subcategory, labels):
# artprobe.report.layout; the report options are checked against every dataset's targets
LAYOUT_OPTIONS = layout_options(config["report"], ALL_TARGETS)


def dataset_layout(dataset):
    """The report's files of ``dataset``: the options' targets narrowed to its own."""
    targets = TARGETS[dataset]
    options = {
        k: None if v is None else [t for t in v if t in targets] for k, v in LAYOUT_OPTIONS.items()
    }
    labels = {"dataset": dataset} if len(DATASETS) > 1 else {}
    return report_layout(
        list(MODELS),
        targets,
        list(CLASSIFIER_KINDS),
        CLASSIFIER_KINDS,
        **options,
        fewshot=FEWSHOT is not None,
        labels=labels,
    )


REPORT = {name: dataset_layout(name) for name in DATASETS}


# the report's three stages' settings (artprobe.settings), built once; params: plain values
COMPARE = compare_settings(config)
CENTER = neighbour_center(CLASSIFIER_KINDS, CLASSIFIER_PARAMS)
THUMBNAILS = {name: thumbnail_settings(config, TARGETS[name], CENTER) for name in DATASETS}
DRAWING = report_settings(config)


def compare_params(wildcards):
    """The summary's and comparisons' resamples and seed (CompareSettings)."""
    return COMPARE.rule_params()


def thumbnail_params(wildcards):
    """Which paintings the report shows (ThumbnailSettings)."""
    return THUMBNAILS[wildcards.dataset].rule_params()


def report_params(wildcards):
    """How the report draws (ReportSettings); inputs and outputs come from the rule itself."""
    return DRAWING.rule_params()


def leaderboard_inputs(wildcards):
    """Every dataset's fits (the leaderboard ranks them all at once; results/<dataset>/ in
    each path says whose)."""
    return [f for name in DATASETS for f in dataset_fits(name)]


LEADERBOARD = "results/leaderboard"


def final_targets():
    reports = [f"results/{d}/report/{f.path}" for d in DATASETS for f in REPORT[d]]
    return reports + [f"{LEADERBOARD}/leaderboard.html"]


def report_ids(dataset):
    """The layout id of each report output, in the order of report_outputs()."""
    return [f.id for f in REPORT[dataset]]


def report_outputs(dataset):
    """Every report file of ``dataset`` (its report rule's outputs, the dataset a wildcard
    the rule constrains to it), wrapped in report() with its caption, category and labels."""
    out = []
    for f in REPORT[dataset]:
        kw = dict(category=f.category, subcategory=f.subcategory, labels=f.labels)
        kw["caption"] = f"../report/{f.caption}"
        out.append(report(f"results/{{dataset}}/report/{f.path}", **kw))
    return out
