"""Each stage's settings: one typed, frozen object per stage, built from the validated config.

The schema (``schemas/config.schema.yaml``) is the only home of a default. Snakemake's
``validate`` fills every default into the config at parse time, the builders here read every
value from that config, and no class here carries a default of its own
(``tests/test_settings.py`` checks both). Torch-, pandas- and pyarrow-free: the workflow
imports this on every parse.

How an object reaches its job (``rules/common.smk``, ``scripts/``):

* Where a rule's params can hold the settings whole, they do (:meth:`DemoSettings.params`,
  :meth:`FitSpec.params`, :meth:`FewshotSpec.params`: the fields less the job's wildcards),
  and the script rebuilds the object from them (``FitSpec(**params, model=...)``).
* A rule's params are also Snakemake's rerun trigger, so they hold only what can change a
  result (STYLE.md, item 10), with the values they have always had, so existing results
  stay up to date. Where that leaves keys out (the embed job's model: ``features`` only when
  not pooled, the device only with ``precision: auto``; the split's group keys only with
  method ``group``) the params are :func:`embed_params` / :meth:`SplitSettings.rule_params`
  and the job builds the object
  with the same builder from ``snakemake.config`` (:func:`model_spec`, :func:`split_settings`).
* Runtime settings that cannot change a result (:class:`EmbedRuntime`, :class:`ProbeRuntime`:
  batch size, workers, device, threads) are never params; the job builds them from
  ``snakemake.config`` and its thread count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from artprobe.config import FEWSHOT_KIND
from artprobe.probes import registry

#: the value of ``probe.fewshot.shots`` that stands for every train row
ALL_SHOTS = "all"
#: ``models[].features``' value for the model's own pooled output (its forward without head)
POOLED = "pooled"


def _from(cls, values: dict, **extra):
    """``cls`` from the config section ``values`` (its fields' names), plus ``extra``."""
    names = {f.name for f in fields(cls)} - set(extra)
    return cls(**{k: values[k] for k in names}, **extra)


# ---------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class SourceSettings:
    """What the source is and which of it to read (a dataset's settings less its demo
    and split): the hub id or local folder, the revision, the targets, the layout's config
    and splits, the image column (the manifest and download stages)."""

    source: str
    revision: str | None
    targets: list[str]
    config: str | None
    splits: list[str] | None
    image_column: str

    def rule_params(self) -> dict:
        return asdict(self)


def dataset_entry(config: dict, name: str) -> dict:
    """The settings of the dataset ``name`` (``datasets.<name>``, validated and checked: its
    keys all there)."""
    return config["datasets"][name]


def source_settings(dataset: dict) -> SourceSettings:
    """``dataset``: a dataset's settings (:func:`dataset_entry`)."""
    return _from(SourceSettings, dataset)


@dataclass(frozen=True)
class DemoSettings:
    """The generated demo source (``demo:``; :func:`artprobe.stages.generate_demo.generate_demo`)."""

    rows: int
    files: int
    seed: int
    broken: int
    #: ``wikiart`` (genre, style, artist in data/train-*) or ``artbench`` (label; train and test)
    layout: str

    def rule_params(self) -> dict:
        return asdict(self)


def demo_settings(dataset: dict) -> DemoSettings:
    """``demo:`` of a dataset's settings that sets it (the schema fills the keys left out)."""
    return _from(DemoSettings, dataset["demo"])


@dataclass(frozen=True)
class SplitSettings:
    """How rows are assigned to train/val/test (``split:`` less the duplicate scan's keys)."""

    method: str
    seed: int
    val_fraction: float
    test_fraction: float
    stratify_by: str | None
    group_by: str | None
    ungrouped: list[str]

    @property
    def reads_labels(self) -> bool:
        """The method reads the rows' labels (stratified, group): the row index is an input."""
        return self.method != "seed-compatible"

    def rule_params(self) -> dict:
        """Only what assigns the rows: the group keys only with method ``group``, no test
        fraction with ``given``."""
        skip = set() if self.method == "group" else {"group_by", "ungrouped"}
        if self.method == "given":  # the source's test split: test_fraction does nothing
            skip.add("test_fraction")
        return {k: v for k, v in asdict(self).items() if k not in skip}


def split_settings(dataset: dict) -> SplitSettings:
    """``split:`` of a dataset's settings."""
    return _from(SplitSettings, dataset["split"])


# ---------------------------------------------------------------------------------- embed


@dataclass(frozen=True)
class ModelSpec:
    """Which model, which weights, which features, how its images are decoded and in which
    precision: everything of an embed job that can change an embedding."""

    timm_name: str
    pretrained: bool
    #: a local weights file (``models[].weights``), or None
    weights: str | None
    #: the weights stage's marker of hub weights (an input of the embed job), or None
    weights_marker: str | None
    features: str
    decode: str
    precision: str


@dataclass(frozen=True)
class EmbedRuntime:
    """How an embed job runs; nothing here changes an embedding but ``device`` where
    ``precision`` is ``auto`` (then :func:`embed_params` puts it into the rule's params)."""

    device: str
    batch_size: int
    #: DataLoader worker processes (``embed_runtime.workers``, null: the job's threads)
    workers: int
    compile: bool
    #: save the rows done every this many batches (0: never)
    checkpoint_every: int
    #: CPU threads the job may use in all (its ``threads:``)
    threads: int
    progress: bool


def model_spec(config: dict, name: str, weights_marker: str | None) -> ModelSpec:
    """Model ``name`` of ``models:`` with ``embed:``'s decode and precision."""
    m = next(m for m in config["models"] if m["name"] == name)
    return ModelSpec(
        timm_name=m["timm"],
        pretrained=m["pretrained"],
        weights=m["weights"],
        weights_marker=weights_marker,
        features=m["features"],
        decode=config["embed"]["decode"],
        precision=config["embed"]["precision"],
    )


def embed_runtime(config: dict, threads: int) -> EmbedRuntime:
    """``embed_runtime:`` for a job of ``threads`` threads."""
    r = config["embed_runtime"]
    workers = threads if r["workers"] is None else r["workers"]
    return _from(EmbedRuntime, r, workers=workers, threads=threads, progress=True)


def embed_params(model: ModelSpec, device: str) -> dict:
    """The embed rule's params: only what can change an embedding. Keys keep the values they
    had before each was added (no ``features`` when pooled, no ``weights`` when none), so
    existing embeddings stay up to date; with ``precision: auto`` the device decides the
    dtype (bf16 on CUDA, fp32 on CPU), so ``device`` is then part of it."""
    params = {
        "timm_name": model.timm_name,
        "pretrained": model.pretrained,
        "decode": model.decode,
        "precision": model.precision,
    }
    if model.precision == "auto":
        params["device"] = device
    if model.weights is not None:
        params["weights"] = model.weights
    if model.features != POOLED:
        params["features"] = model.features
    return params


# ---------------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class ProbeRuntime:
    """Where and with how many threads a classify or fewshot job fits (no result changes)."""

    device: str
    threads: int


def probe_runtime(config: dict, threads: int) -> ProbeRuntime:
    return ProbeRuntime(device=config["probe"]["device"], threads=threads)


@dataclass(frozen=True)
class FitSpec:
    """What one classify job fits: a classifier of ``kind`` with its resolved ``params`` on one
    model's embeddings for one target, the target's row filters, and the seeds.

    ``seeds``: a seeded kind (the probe registry says which) is fitted once per seed; the
    first fit's predictions, history and bootstrap intervals are the outputs, every seed's
    test predictions go to predictions.parquet (``y_pred_seeds``, with several seeds) for
    the seed-aware comparisons, and ``seeds`` in metrics.json holds the headline metrics per
    seed with their mean and sd. An unseeded kind is fitted once.
    """

    model: str
    target: str
    classifier: str
    kind: str
    params: dict
    drop_labels: list[str]
    min_class_count: int | None
    seed: int
    seeds: list[int]
    n_boot: int

    @property
    def name(self) -> str:
        return f"{self.model}/{self.target}/{self.classifier}"

    def fitted_seeds(self) -> list[int]:
        return list(self.seeds) if registry.get(self.kind).seeded else list(self.seeds[:1])

    def rule_params(self) -> dict:
        """The classify rule's params: every field but the job's wildcards."""
        return _without(self, "model", "target", "classifier")


def fit_spec(
    config: dict, classifier_params: dict, model: str, target: str, classifier: str
) -> FitSpec:
    """The fit of ``classifier`` (resolved hyper-parameters: ``classifier_params``, from
    :func:`artprobe.config.check_config`) on ``model``'s embeddings for ``target``."""
    p = config["probe"]
    kind = next(c["kind"] for c in config["classifiers"] if c["name"] == classifier)
    return FitSpec(
        model=model,
        target=target,
        classifier=classifier,
        kind=kind,
        params=classifier_params[classifier],
        drop_labels=p["drop_labels"].get(target, []),
        min_class_count=p["min_class_count"].get(target),
        seed=p["seed"],
        seeds=p["seeds"] or [p["seed"]],
        n_boot=p["bootstrap"],
    )


@dataclass(frozen=True)
class FewshotSettings:
    """``probe.fewshot`` resolved: the shots and trials, the linear classifier whose
    hyper-parameters the curves use (None: the kind's defaults), those ``params``, and the
    classifier whose classify fit *is* the curves' ``all`` point (``reuses``; None: the
    curves fit it themselves), decided here once (:func:`reused_fit`)."""

    shots: list
    trials: int
    classifier: str | None
    params: dict
    reuses: str | None


def fewshot_settings(config: dict, classifier_params: dict[str, dict]) -> FewshotSettings | None:
    """``probe.fewshot`` of a validated config (None: off). ``classifier_params``: the resolved
    hyper-parameters of every classifier (:func:`artprobe.config.check_config`)."""
    fs = config["probe"]["fewshot"]
    if fs is None:
        return None
    able = [c["name"] for c in config["classifiers"] if registry.get(c["kind"]).fewshot]
    name = fs["classifier"]
    if name is not None and name not in able:
        raise ValueError(
            f"config probe.fewshot.classifier: {name!r} is not a linear classifier (linear: {able})"
        )
    name = name or (able[0] if able else None)
    params = classifier_params[name] if name else registry.defaults(FEWSHOT_KIND)
    shots = list(fs["shots"])
    return FewshotSettings(shots, fs["trials"], name, params, reused_fit(name, params, shots))


def reused_fit(classifier: str | None, params: dict, shots: list) -> str | None:
    """The classifier whose classify fit *is* the few-shot curve's ``all`` point (the curve's
    own linear classifier, trained on train only: both stages fit the same rows, leaving out
    the same near-duplicates), or None: the curve then fits that point itself. Decided once,
    at parse time: the fewshot job gets that fit as an input, or none."""
    if classifier is None or ALL_SHOTS not in shots or params.get("refit", "train") != "train":
        return None
    return classifier


@dataclass(frozen=True)
class FewshotSpec:
    """One few-shot curve: the linear probe with ``params`` at each of ``shots`` train rows
    per class in ``trials`` seeded trials, on ``model``'s embeddings for ``target`` with the
    target's row filters (the classify stage's)."""

    model: str
    target: str
    shots: list
    trials: int
    params: dict
    drop_labels: list[str]
    min_class_count: int | None
    seed: int

    def rule_params(self) -> dict:
        """The fewshot rule's params: every field but the job's wildcards."""
        return _without(self, "model", "target")


def fewshot_spec(settings: FewshotSettings, config: dict, model: str, target: str) -> FewshotSpec:
    p = config["probe"]
    return FewshotSpec(
        model=model,
        target=target,
        shots=settings.shots,
        trials=settings.trials,
        params=settings.params,
        drop_labels=p["drop_labels"].get(target, []),
        min_class_count=p["min_class_count"].get(target),
        seed=p["seed"],
    )


def _without(obj, *names: str) -> dict:
    return {k: v for k, v in asdict(obj).items() if k not in names}


# ---------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class CompareSettings:
    """How the compare stage ranks the fits: the bootstrap resamples of the summary's seed
    means and the paired comparisons (``probe.bootstrap``), and their seed (``probe.seed``)."""

    n_boot: int
    seed: int

    def rule_params(self) -> dict:
        return asdict(self)


def compare_settings(config: dict) -> CompareSettings:
    return CompareSettings(n_boot=config["probe"]["bootstrap"], seed=config["probe"]["seed"])


@dataclass(frozen=True)
class ThumbnailSettings:
    """Which paintings the report shows (``report:``'s gallery, disagreements, confusions,
    map_rows, map_thumbnails, map_target) for the targets, seeded with ``probe.seed``, and
    what the kNN probe sees, so the galleries show its neighbours: its centring (``center``)
    and ``probe:``'s row filters per target."""

    targets: list[str]
    seed: int
    center: bool
    drop_labels: dict[str, list[str]]
    min_class_count: dict[str, int | None]
    map_target: str | None
    #: ``{"queries": test paintings per sheet, "k": neighbours per model}``
    gallery: dict[str, int]
    disagreements: int
    #: ``{"pairs": confused pairs per target, "examples": paintings per group}``
    confusions: dict[str, int]
    map_rows: int
    map_thumbnails: int
    #: the leaderboard's top models shown in the galleries, disagreements and confusions
    top_models: int
    #: models shown there whatever their rank
    show_models: list[str]

    def rule_params(self) -> dict:
        return asdict(self)


def thumbnail_settings(config: dict, targets: list[str], center: bool) -> ThumbnailSettings:
    """``report:``'s selection keys for a dataset's ``targets``; ``center``: the kNN probe's
    centring (:func:`artprobe.config.neighbour_center`)."""
    p, r = config["probe"], config["report"]
    return _from(
        ThumbnailSettings,
        r,
        targets=list(targets),
        map_target=r["map_target"] if r["map_target"] in targets else None,
        seed=p["seed"],
        center=center,
        drop_labels=p["drop_labels"],
        min_class_count=p["min_class_count"],
    )


@dataclass(frozen=True)
class ReportSettings:
    """How the report draws: the targets whose error plot is the top confused pairs
    (``pairs_targets``; None: chosen from the data), the maps' method and the map of
    paintings' cells per side, seeded with ``probe.seed``."""

    seed: int
    pairs_targets: list[str] | None
    map_method: str
    map_grid: int

    def rule_params(self) -> dict:
        return asdict(self)


def report_settings(config: dict) -> ReportSettings:
    return _from(ReportSettings, config["report"], seed=config["probe"]["seed"])
