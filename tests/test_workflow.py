"""End-to-end: the Snakemake workflow on generated data, config validation, overlays."""

from __future__ import annotations

import json
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, TINY_OVERLAY, copy_workflow, job_counts, snakemake

from artprobe.report.tables import BASELINE_CLASSIFIER

pytestmark = pytest.mark.workflow


@pytest.mark.slow
def test_end_to_end(tiny_run):
    out = tiny_run / "results" / "tiny"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_rows"] == 120 and manifest["targets"] == ["genre", "style"]
    assert sorted(p.name for p in (out / "shards").glob("*.parquet")) == [
        "00000.parquet",
        "00001.parquet",
        "00002.parquet",
    ]
    for model in ("vit", "convnext"):
        merged = pq.read_table(out / "embeddings" / f"{model}.parquet")
        failures = pq.read_table(out / "embeddings" / f"{model}.failures.parquet")
        assert merged.num_rows + failures.num_rows == 120 and failures.num_rows == 2
        assert set(merged.column_names) >= {"row_id", "split", "genre", "style", "embedding"}
        labels = {t: merged.column(t).to_numpy() for t in ("genre", "style")}
        for target in ("genre", "style"):
            for clf in ("mlp", "linear", "knn"):
                fit = out / "classify" / model / target / clf
                m = json.loads((fit / "metrics.json").read_text())
                pred = pq.read_table(fit / "predictions.parquet").to_pydict()
                correct = sum(a == b for a, b in zip(pred["y_true"], pred["y_pred"]))
                assert m["accuracy"]["value"] == pytest.approx(correct / len(pred["y_true"]))
                assert m["n_test"] == len(pred["y_true"])
                # probe.drop_labels / min_class_count: exactly the dropped rows are left out
                assert m["n_train"] + m["n_val"] + m["n_test"] == 118 - m["dropped"]["rows"]
                # like with like: every probe trains on the train rows only (config.yaml's
                # probe.seeds [0, 1, 2]: the seeded probes record every seed's predictions)
                assert m["trained_on"] == ["train"] and m["n_train_rows"] == m["n_train"]
                assert len(pred.get("y_pred_seeds", [[0]])[0]) == (3 if clf != "linear" else 1)
                if target == "genre":
                    cityscape = manifest["classes"]["genre"].index("cityscape")
                    assert m["dropped"]["rows"] == int((labels["genre"] == cityscape).sum()) > 0
                    assert cityscape not in pred["y_true"]
                else:
                    rare = {
                        manifest["classes"]["style"].index(c) for c in m["dropped"]["rare_classes"]
                    }
                    assert not rare & set(pred["y_true"])
    comparisons = pd.read_csv(out / "report" / "comparisons.csv")
    assert set(comparisons.seeds) == {"3 vs 3", "1 vs 1"}
    assert (comparisons.seeds == "3 vs 3").eq(comparisons.classifier != "linear").all()
    summary = pd.read_csv(out / "report" / "summary.csv")
    assert len(summary) == 2 * 2 * 3 + 2  # the fits, a majority baseline per target
    assert (summary.classifier == BASELINE_CLASSIFIER).sum() == 2
    # every rule wrote its log and benchmark
    assert (out / "logs" / "embed" / "vit" / "00000.log").stat().st_size > 0
    assert (out / "benchmarks" / "classify" / "convnext" / "style" / "linear.tsv").exists()


@pytest.mark.slow
def test_rerun_does_nothing(tiny_run):
    proc = snakemake(tiny_run, "-n", "--configfile", "tiny.yaml")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_html_report(tiny_run):
    snakemake(tiny_run, "--configfile", "tiny.yaml", "--report", "report.html")
    html = (tiny_run / "report.html").read_text()
    files = sorted((tiny_run / "results" / "tiny" / "report").rglob("*.*"))
    assert len(files) > 20
    board = sorted((tiny_run / "results" / "leaderboard").glob("*.*"))  # not its logs/
    assert [f.name for f in board] == ["leaderboard.csv", "leaderboard.html", "mean_ranks.csv"]
    files += board
    missing = [str(f.relative_to(tiny_run)) for f in files if f.name not in html]
    assert not missing, f"report files not in report.html: {missing}"
    assert (
        "The leaderboard over every dataset" in html
    )  # its caption (report/overall_leaderboard.rst)
    assert html.index("0. Leaderboard") < html.index("1. Leaderboard and verdict")  # it leads


def _dry_run(work, overlay: str, extra=()):
    (work / "overlay.yaml").write_text(overlay)
    return snakemake(work, "-n", "--configfile", "overlay.yaml", *extra, check=False)


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("wf"))


def test_overlay_replaces_models_targets_classifiers(workflow_copy):
    overlay = TINY_OVERLAY.replace(
        "  - name: convnext\n    timm: test_convnext\n    pretrained: false\n", ""
    )
    overlay = overlay.replace("  - name: linear\n    kind: linear\n", "")
    overlay = overlay.replace("  - name: knn\n    kind: knn\n    k: 5\n", "")
    overlay = overlay.replace("targets: [genre, style]", "targets: [style]")
    overlay = overlay.replace("  stratify_by: genre\n", "  stratify_by: style\n")
    overlay = overlay.replace("  drop_labels:\n    genre: [cityscape]\n", "")
    proc = _dry_run(workflow_copy, overlay)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    # the three default models, linear/knn and genre/artist are gone
    for gone in (
        "eva02",
        "convnextv2",
        "convnext_clip",
        "/convnext/",
        "/linear/",
        "/knn/",
        "/genre/",
        "/artist/",
    ):
        assert gone not in text, gone
    assert "classify/vit/style/mlp/metrics.json" in text


@pytest.mark.parametrize(
    "edit,message",
    [
        (("  rows: 48", "  rowz: 48"), "rowz"),
        (("timm: test_vit", "timm: no_such_net"), "no_such_net"),
        (("    epochs: 4", "    epoch: 4"), "epoch"),
        (("  precision: fp32", "  precision: fp8"), "fp8"),
        (("targets: [genre, style]", "targets: [genre, genre]"), "targets"),
        (
            ("timm: test_vit\n", "timm: test_vit\n    weights: /w.safetensors\n"),
            "models[vit].weights",
        ),
        (
            ("timm: test_vit\n", "timm: test_vit\n    revision: main\n"),
            "models[vit].revision: set, but pretrained is false",
        ),
        (("timm: test_vit\n", "timm: test_vit\n    features: last_cls\n"), "last_cls"),
        (
            ("  bootstrap: 50\n", "  bootstrap: 50\n  fewshot: {classifier: mlp}\n"),
            "probe.fewshot.classifier",
        ),
        (("  bootstrap: 50\n", "  bootstrap: 50\n  fewshot: {shots: [0]}\n"), "shots"),
        (("    kind: knn", "    kind: svm"), "unknown classifier kind 'svm'"),
        (("use_datasets: [tiny]", "use_datasets: [tiny, tinny]"), "did you mean ['tiny']"),
        (("shards:\n", "split: {seed: 1}\nshards:\n"), "config split: replaced by `datasets:`"),
    ],
)
def test_config_errors_name_the_key(workflow_copy, edit, message):
    proc = _dry_run(workflow_copy, TINY_OVERLAY.replace(*edit))
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_real_config_parses(workflow_copy):
    """The shipped config.yaml (WikiArt, three pretrained models) is valid and builds a DAG."""
    counts = job_counts(snakemake(workflow_copy, "-n", "--workflow-profile", "none").stdout)
    # a hub source: its file list first, then the manifest; the fits of 3 models x 3 targets x 3 probes
    assert counts["download_list"] == counts["manifest"] == counts["all"] == 1
    assert counts["classify"] == 27 and counts["merge_embeddings"] == 3


def test_real_config_dag_once_manifest_exists(workflow_copy):
    """With WikiArt's manifest in place, the dry run lists the real experiment's jobs."""
    from artprobe.stages.generate_demo import CLASSES

    out = workflow_copy / "results" / "wikiart"
    out.mkdir(parents=True, exist_ok=True)
    files = [
        {"name": f"data/train-{i:05d}-of-00072.parquet", "rows": 1131, "row_start": 1131 * i}
        for i in range(72)
    ]
    files[-1]["rows"] = 81444 - 1131 * 71
    manifest = {
        "source": "huggan/wikiart",
        "revision": "d559852d2b232e0fcf195e775866964f0564f2b5",
        "local_dir": "/nonexistent",
        "files": files,
        "n_rows": 81444,
        "targets": ["genre", "style", "artist"],
        "classes": CLASSES,
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "rows.parquet").write_bytes(b"")  # the manifest job's other output, the row index
    proc = snakemake(workflow_copy, "-n", "--workflow-profile", "none")
    counts = job_counts(proc.stdout)
    assert counts["shard"] == 3  # 81,444 rows / 32,768 per shard
    assert counts["embed"] == 9  # 3 models x 3 shards
    assert counts["merge_embeddings"] == 3
    assert counts["classify"] == 27  # 3 models x 3 targets x 3 classifiers
    assert counts["split"] == 1 and counts["report_wikiart"] == 1  # a report rule per dataset
    assert counts["leaderboard"] == 1
    assert "manifest" not in counts


POISON = "raise ImportError('torch imported while parsing the workflow')\n"


def test_parsing_does_not_import_torch(workflow_copy, tmp_path):
    """Every dry run, dry-run test and SLURM job re-parses the workflow: it must stay cheap.
    torch is shadowed by a package that fails on import; the first parse may fill the
    timm-name cache (that one imports timm), every later one must not import torch. (pandas
    cannot be shadowed here: Snakemake's SLURM plugin imports it on start-up; the modules
    the workflow imports are checked for pandas in test_parse_modules_are_light.)"""
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    (workflow_copy / "overlay.yaml").write_text(TINY_OVERLAY)
    snakemake(workflow_copy, "-n", "--configfile", "overlay.yaml", env=cache)  # fills the cache
    (tmp_path / "poison" / "torch").mkdir(parents=True)
    (tmp_path / "poison" / "torch" / "__init__.py").write_text(POISON)
    poisoned = dict(cache, PYTHONPATH=f"{tmp_path / 'poison'}{os.pathsep}{ROOT}")
    proc = snakemake(workflow_copy, "-n", "--configfile", "overlay.yaml", env=poisoned, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "classify" in proc.stdout
