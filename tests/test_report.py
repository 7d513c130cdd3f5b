"""artprobe.report on fits made by the real classify stage (2 models × 3 targets × 3 probes).

The embeddings are synthetic with known structure: "good" separates every target's classes,
"weak" barely does, and weak maps artist-01 onto the (more frequent) artist-02, a systematic
confusion the pairs table must find first. Every fit is ``artprobe.stages.classify.run_fit`` on
them, so metrics.json, predictions and history are what the workflow writes.
``make_results`` is shared with test_report_html.py.
"""

from __future__ import annotations

import json
import re
import struct
from html import unescape as html_unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import validated

from artprobe.common.io import with_meta, write_json, write_parquet
from artprobe.config import FIT_FILES
from artprobe.report import tables, verdict
from artprobe.report.build import ReportInputs, build_report
from artprobe.report.choices import MATRIX_MAX_CLASSES, readable_target, shows_pairs
from artprobe.report.compare import TABLES, StandingsFiles, run_compare
from artprobe.report.escape import text as html_text
from artprobe.report.layout import CATEGORIES, report_files, report_sections
from artprobe.report.tables import comparison_table, summary_table
from artprobe.report.thumbnails import ThumbnailInputs, run_thumbnails
from artprobe.settings import (
    CompareSettings,
    FewshotSpec,
    FitSpec,
    ProbeRuntime,
    ReportSettings,
    ThumbnailSettings,
)
from artprobe.stages.classify import fit_paths, run_fit
from artprobe.stages.fewshot import run_fewshot
from artprobe.stages.image_hash import hash_shard

CPU = ProbeRuntime(device="cpu", threads=1)

MODELS = ["good", "weak"]
TARGETS = {"genre": 5, "style": 8, "artist": 30}
CLASSIFIERS = ["mlp", "lin", "knn"]
KINDS = {"mlp": "mlp", "lin": "linear", "knn": "knn"}
# small, fast settings of the real probes
PARAMS = {
    "mlp": {"hidden": 64, "lr": 1e-3, "epochs": 8, "batch_size": 64, "patience": 3},
    # the train+val refit (an explicit option), so the report's "trained on" label is exercised
    "lin": {"n_c": 3, "c_min": 1e-4, "c_max": 1e2, "refine": 1, "refit": "train+val"},
    "knn": {"k": 10},
}
# noise around the class centres (centres have scale 3): good separates, weak barely
NOISE = {"good": 0.3, "weak": 2.5}
DIMS = {"genre": 4, "style": 6, "artist": 6}  # embedding dims that carry each target
N_ROWS, N_TEST, N_VAL = 1000, 300, 100
FAILED = {"good": [3, 500, 998], "weak": []}  # rows each model failed to embed (val, test, train)
# shard timings: good 250 img/s from shard totals, weak 100 img/s from nested provenance
# (as artprobe.embedding.merge_embeddings writes them; the second shard resumed 100 rows, so its
# rows / seconds would overstate the speed)
GOOD_SHARDS = [
    {"shard": "0000", "rows": 500, "seconds": 2.0, "img_per_s": 250.0, "device_name": "Test GPU"},
    {"shard": "0001", "rows": 597, "seconds": 1.988, "img_per_s": 250.0, "device_name": "Test GPU"},
]
# config report:, as for WikiArt; probe.fewshot on
CHOICES = {"pairs_targets": ["artist"], "f1_targets": ["style"], "fewshot": True}
FEWSHOT = {"shots": [1, 5, "all"], "trials": 2}


def _names(target: str, n: int) -> list[str]:
    if target == "style":  # long names, as in WikiArt, to exercise label layout
        base = [
            "Abstract_Expressionism",
            "Northern_Renaissance",
            "Post_Impressionism",
            "Ukiyo_e",
            "Baroque",
            "Rococo",
            "Color_Field_Painting",
            "Naive_Art_Primitivism",
        ]
        return base[:n]
    return [f"{target}-{i:02d}" for i in range(n)]


def _labels(rng, n_rows: int) -> dict[str, np.ndarray]:
    out = {t: rng.integers(0, n, n_rows) for t, n in TARGETS.items()}
    weight = np.ones(TARGETS["artist"])
    weight[2] = 4.0  # artist-02 is frequent, so rows that look like it are called artist-02
    out["artist"] = rng.choice(TARGETS["artist"], n_rows, p=weight / weight.sum())
    return out


def _embeddings(rng, model: str, labels: dict) -> np.ndarray:
    """One block of dims per target: the row's class centre plus the model's noise."""
    blocks = []
    for t, n in TARGETS.items():
        centers = rng.normal(0, 3, (n, DIMS[t]))
        if model == "weak" and t == "artist":
            centers[1] = centers[2]  # weak cannot tell artist-01 from artist-02
        noise = rng.normal(0, NOISE[model], (len(labels[t]), DIMS[t]))
        blocks.append(centers[labels[t]] + noise)
    return np.hstack(blocks).astype(np.float32)


def _write_embeddings(root: Path, rng, m: str, row_id, split, labels, classes) -> tuple[str, str]:
    ok = ~np.isin(row_id, FAILED[m])
    emb = _embeddings(rng, m, labels)[ok]
    meta = {"classes": classes, "timm_name": f"timm/{m}", "model": m}
    if m == "good":
        meta.update(device="cuda:0", shards=GOOD_SHARDS)
    else:
        meta["provenance"] = {"img_per_s": 100.0, "device": "cpu"}
    dim = emb.shape[1]
    table = pa.table(
        {
            "row_id": row_id[ok],
            "split": split[ok].tolist(),
            **{t: pa.array(labels[t][ok], pa.int16()) for t in TARGETS},
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), dim),
        }
    )
    emb_path, fail_path = (
        root / f"embeddings/{m}.parquet",
        root / f"embeddings/{m}.failures.parquet",
    )
    write_parquet(with_meta(table, meta), emb_path)
    reasons = pa.array(["decode error: truncated"] * len(FAILED[m]), pa.string())
    write_parquet(
        pa.table({"row_id": pa.array(FAILED[m], pa.int64()), "reason": reasons}), fail_path
    )
    return str(emb_path), str(fail_path)


# the thumbnail stage's settings (config report:), kept small
THUMBS = {"map_rows": 400, "map_thumbnails": 200, "gallery": {"queries": 8, "k": 4}}
SHARD_ROWS, GROUP_ROWS = 500, 100


def _painting(style: int, genre: int, rng) -> bytes:
    """A small JPEG whose colour says the style and whose stripes say the genre."""
    import io

    from PIL import Image

    hue = np.array(
        [(style * 37) % 256, (style * 91 + 60) % 256, (style * 53 + 120) % 256], np.float32
    )
    img = np.tile(hue, (40, 48, 1)) + rng.normal(0, 12, (40, 48, 3))
    img[:: 2 + genre] *= 0.6
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def write_shards(root: Path, labels: dict, rng) -> list[str]:
    """Image shards as the shard stage writes them (row_id, image bytes, class ids; rows in
    order, ``GROUP_ROWS`` rows per row group) and the previews the image_hash job writes of
    them; returns the previews' paths (the thumbnail stage's input)."""
    paths = []
    for i, start in enumerate(range(0, N_ROWS, SHARD_ROWS)):
        ids = np.arange(start, min(start + SHARD_ROWS, N_ROWS))
        table = pa.table(
            {
                "row_id": pa.array(ids, pa.int64()),
                "image": pa.array(
                    [_painting(labels["style"][r], labels["genre"][r], rng) for r in ids],
                    pa.large_binary(),
                ),
                **{t: pa.array(labels[t][ids], pa.int16()) for t in TARGETS},
            }
        )
        shard = root / "shards" / f"{i:05d}.parquet"
        write_parquet(table, shard, row_group_size=GROUP_ROWS)
        paths.append(str(root / "previews" / f"{i:05d}.arrow"))
        hash_shard(shard, root / "hashes" / f"{i:05d}.parquet", paths[-1])
    return paths


def make_results(root: Path, seed: int = 0, n_boot: int = 1500) -> dict:
    """Write manifest, split, embeddings, failures, every fit (run_fit), the compare stage's
    tables (``n_boot`` resamples; 1500: the smallest bootstrap p, 2 / 1501, survives Holm
    over the 27 tests) and the thumbnail stage's files.

    Returns :class:`ReportInputs`' fields: ``fits`` is the flat list of fit files, as the
    rule has; ``standings`` the compare stage's files.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    classes = {t: _names(t, n) for t, n in TARGETS.items()}
    row_id = np.arange(N_ROWS, dtype=np.int64)
    split = np.array(
        ["test" if i % 10 < 3 else "val" if i % 10 == 3 else "train" for i in row_id], dtype=object
    )
    labels = _labels(rng, N_ROWS)
    manifest = {"source": "synthetic", "revision": "test", "n_rows": N_ROWS}
    write_json(root / "manifest.json", {**manifest, "targets": list(TARGETS), "classes": classes})
    write_parquet(pa.table({"row_id": row_id, "split": split.tolist()}), root / "split.parquet")
    embeddings, failures = {}, {}
    for m in MODELS:
        embeddings[m], failures[m] = _write_embeddings(root, rng, m, row_id, split, labels, classes)
    fits = []
    for m in MODELS:
        for t in TARGETS:
            for c in CLASSIFIERS:
                d = root / "classify" / m / t / c
                spec = FitSpec(
                    model=m,
                    target=t,
                    classifier=c,
                    kind=KINDS[c],
                    params=PARAMS[c],
                    drop_labels=[],
                    min_class_count=None,
                    seed=seed,
                    seeds=[seed],
                    n_boot=200,
                )
                run_fit(embeddings[m], spec, fit_paths(d), CPU)
                fits += [str(d / name) for name in FIT_FILES.values()]
    standings = StandingsFiles(*[str(root / "compare" / f"{n}.parquet") for n in TABLES])
    run_compare(fits, MODELS, CompareSettings(n_boot=n_boot, seed=seed), standings)
    shards = write_shards(root, labels, rng)
    rows, thumbs = (
        str(root / "thumbnails" / "rows.json"),
        str(root / "thumbnails" / "thumbnails.parquet"),
    )
    inputs = ThumbnailInputs(fits, embeddings, shards, standings.verdict, standings.mean_ranks)
    run_thumbnails(inputs, thumbnail_settings(seed), rows, thumbs)
    curves = [str(root / "fewshot" / m / f"{t}.json") for m in MODELS for t in TARGETS]
    for path, (m, t) in zip(curves, [(m, t) for m in MODELS for t in TARGETS]):
        spec = FewshotSpec(
            model=m,
            target=t,
            params=PARAMS["lin"],
            drop_labels=[],
            min_class_count=None,
            seed=seed,
            **FEWSHOT,
        )
        run_fewshot(embeddings[m], path, spec, CPU)
    return {
        "fits": fits,
        "fewshot": curves,
        "embeddings": embeddings,
        "failures": failures,
        "manifest": str(root / "manifest.json"),
        "split": str(root / "split.parquet"),
        "duplicates": None,
        "rows": rows,
        "thumbnails": thumbs,
        "standings": standings,
    }


def thumbnail_settings(seed: int = 0, **changes) -> ThumbnailSettings:
    """The thumbnail stage's settings: the schema's defaults (config ``report:``), kept small
    (:data:`THUMBS`), the map coloured by style, the kNN probe uncentred."""
    report = validated()["report"]
    keys = ("disagreements", "confusions", "map_target", "top_models", "show_models")
    values = {k: report[k] for k in keys}
    return ThumbnailSettings(
        targets=list(TARGETS),
        seed=seed,
        center=False,
        drop_labels={},
        min_class_count={},
        **{**values, **THUMBS, "map_target": "style", **changes},
    )


def drawing(**changes) -> ReportSettings:
    """The report's settings: the schema's defaults with this test's pairs targets."""
    report = validated()["report"]
    values = {k: report[k] for k in ("map_method", "map_grid")}
    values["pairs_targets"] = CHOICES["pairs_targets"]
    return ReportSettings(seed=0, **{**values, **changes})


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG, checking its signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    kw = make_results(root)
    out = root / "report"
    files = report_files(MODELS, list(TARGETS), CLASSIFIERS, KINDS, **CHOICES)
    outputs = {fid: str(out / path) for fid, path in files.items()}
    with pytest.MonkeyPatch.context() as mp:  # the standings are the compare stage's alone
        for module, name in STANDINGS:
            mp.setattr(module, name, _computed_again)
        build_report(ReportInputs(**kw), drawing(), outputs)
    return out, kw


def _computed_again(*args, **kwargs):
    raise AssertionError("the summary, comparisons or verdict computed outside the compare stage")


#: what computes the standings (summary, comparisons, verdict): the compare stage alone calls them
STANDINGS = [
    (tables, "summary_table"),
    (tables, "comparison_table"),
    (verdict, "verdict_table"),
]


def _split_rows(model: str) -> dict[str, int]:
    """Rows per split that ``model`` embedded (the fits' n_train / n_val / n_test)."""
    ids = np.arange(N_ROWS)
    part = np.where(ids % 10 < 3, "test", np.where(ids % 10 == 3, "val", "train"))
    ok = ~np.isin(ids, FAILED[model])
    return {s: int(((part == s) & ok).sum()) for s in ("train", "val", "test")}


def test_report_files_layout():
    files = report_files(MODELS, list(TARGETS), CLASSIFIERS, KINDS, **CHOICES)
    assert len(set(files.values())) == len(files), "two ids share a path"
    assert files["summary"] == "summary.csv" and files["accuracy_plot"] == "accuracy.png"
    assert files["confusion.good.genre.mlp"] == "confusion/good.genre.mlp.png"
    assert files["pairs.weak.artist.lin"] == "confused_pairs/weak.artist.lin.png"
    assert "confusion.good.artist.mlp" not in files  # artist gets pairs, not a 129×129 matrix
    assert {k for k in files if k.startswith("curves.")} == {
        f"curves.{m}.{t}.mlp" for m in MODELS for t in TARGETS
    }
    assert {k for k in files if k.startswith("f1.")} == {f"f1.style.{c}" for c in CLASSIFIERS}
    assert {k for k in files if k.startswith("map.")} == {"map.good", "map.weak"}
    # the same config on a dataset without style/artist: no per-class F1 plot, only matrices
    small = report_files(["a"], ["genre"], ["knn"], {"knn": "knn"}, **CHOICES)
    assert not any(k.startswith(("f1.", "pairs.", "curves.")) for k in small)


def test_layout_left_to_the_data():
    """report: pairs_targets / f1_targets null: one error plot per fit, one F1 plot per probe."""
    files = report_files(MODELS, list(TARGETS), CLASSIFIERS, KINDS)
    keys = [f"{m}.{t}.{c}" for m in MODELS for t in TARGETS for c in CLASSIFIERS]
    assert {k for k in files if k.startswith("confusion.")} == {f"confusion.{k}" for k in keys}
    assert not any(k.startswith("pairs.") for k in files)
    assert {k: v for k, v in files.items() if k.startswith("f1.")} == {
        f"f1.{c}": f"per_class_f1/{c}.png" for c in CLASSIFIERS
    }
    assert len(set(files.values())) == len(files)


def test_every_declared_file_is_written(built):
    out, _ = built
    files = report_files(MODELS, list(TARGETS), CLASSIFIERS, KINDS, **CHOICES)
    missing = [p for p in files.values() if not (out / p).is_file()]
    assert not missing
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == set(files.values()), "build_report wrote files report_files does not declare"
    for rel in files.values():
        if rel.endswith(".png"):
            w, h = png_size(out / rel)
            assert 400 <= w <= 2200 and 250 <= h <= 4000, f"{rel}: {w}×{h}"
    assert not list(out.rglob(".*.tmp")), "temporary files left behind"


def test_summary_values_and_best_flags(built):
    out, kw = built
    s = pd.read_csv(out / "summary.csv")
    metrics = [json.loads(Path(p).read_text()) for p in kw["fits"] if p.endswith("metrics.json")]
    # one majority-class baseline row per target, from the fits' own baseline, never "best"
    base = s[s.kind == "majority"].set_index("target")
    assert sorted(base.index) == sorted(TARGETS) and (base.model == "(baseline)").all()
    assert not base.best_in_target.any() and not base.best_model.any()
    for t in TARGETS:
        first = next(m for m in metrics if m["target"] == t)
        assert base.loc[t, "accuracy"] == pytest.approx(first["baseline"]["accuracy"]["value"])
        assert base.loc[t, "chosen"] == f"always {first['baseline']['class']}"
    s = s[s.kind != "majority"]
    assert len(s) == len(MODELS) * len(TARGETS) * len(CLASSIFIERS)
    assert (s.n_seeds == 1).all() and (s.accuracy_seed_mean == s.accuracy).all()
    for m in metrics:
        fit = m
        row = s[
            (s.model == fit["model"])
            & (s.target == fit["target"])
            & (s.classifier == fit["classifier"])
        ]
        assert len(row) == 1
        row = row.iloc[0]
        for name in ("accuracy", "top5_accuracy", "macro_f1", "balanced_accuracy"):
            assert row[name] == pytest.approx(m[name]["value"], abs=1e-5)
            assert row[f"{name}_ci_low"] == pytest.approx(m[name]["ci_low"], abs=1e-5)
            assert row[f"{name}_ci_high"] == pytest.approx(m[name]["ci_high"], abs=1e-5)
        rows = _split_rows(fit["model"])
        assert (row.n_train, row.n_val, row.n_test, row.n_classes) == (
            rows["train"],
            rows["val"],
            rows["test"],
            TARGETS[fit["target"]],
        )
        assert row.kind == KINDS[fit["classifier"]]
        assert row.fit_seconds == pytest.approx(m["seconds"])
        refit = fit["classifier"] == "lin"  # the rows each fit trained on, as recorded
        assert row.trained_on == ("train+val" if refit else "train") == "+".join(m["trained_on"])
        assert (
            row.n_train_rows == rows["train"] + (rows["val"] if refit else 0) == m["n_train_rows"]
        )
    # the linear probe separates good's classes perfectly: the best fit of every target;
    # good beats weak per classifier
    assert set(s[s.best_in_target].apply(lambda r: (r.model, r.classifier), axis=1)) == {
        ("good", "lin")
    }
    assert (s[s.best_in_target].accuracy == 1.0).all()
    assert s.groupby("target").best_in_target.sum().eq(1).all()
    assert set(s[s.best_model].model) == {"good"}
    assert s.best_model.sum() == len(TARGETS) * len(CLASSIFIERS)
    # chosen hyper-parameters without bookkeeping (sizes, devices, timings, grids)
    chosen = s.set_index("classifier").chosen
    knn = r"k=10; temperature=0.\d+; val_accuracy=[\d.]+; center=False"
    assert all(re.fullmatch(knn, c) for c in chosen["knn"]), set(chosen["knn"])
    lin = (
        r"C=[\d.e+-]+; C_at_grid_edge=(True|False); converged=(True|False); "
        r"select_by=accuracy; val_accuracy=[\d.]+"
    )
    assert all(re.fullmatch(lin, c) for c in chosen["lin"]), set(chosen["lin"])
    assert all(
        c.startswith("epochs_run=8; best_epoch=") and "stopped_early=False" in c
        for c in chosen["mlp"]
    ), set(chosen["mlp"])
    bookkeeping = r"(?:^|; )(?:\w*seconds|device\w*|n_\w+|torch|grid|params|refit)="
    assert not s.chosen.str.contains(bookkeeping).any()


def test_comparisons_find_the_better_model(built):
    out, _ = built
    c = pd.read_csv(out / "comparisons.csv", keep_default_na=False)
    assert len(c) == len(TARGETS) * len(CLASSIFIERS) * 3  # one pair, three metrics
    assert set(zip(c.model_a, c.model_b)) == {("good", "weak")}
    assert set(c.metric) == {"balanced_accuracy", "accuracy", "macro_f1"}
    assert (c.better == "good").all()
    from artprobe.report.tables import holm

    np.testing.assert_allclose(c.p_holm, holm(c.p_value))  # one family: the whole table
    assert (c.p_holm >= c.p_value).all() and (c.p_holm < 0.05).all()
    for r in c.itertuples():
        assert r.a > r.b
        assert r.ci_low <= r.diff <= r.ci_high
        assert r.diff == pytest.approx(r.a - r.b)  # A − B, as the HTML table heads it
        assert r.ci_low > 0  # significant: good (A) better
        assert r.verdict
    # good failed to embed one test row (500): compared on the intersection, and said so
    assert (c.n_rows == N_TEST - 1).all()
    assert c.note.str.contains("299 shared rows").all()


def test_cost_arithmetic(built):
    out, kw = built
    cost = pd.read_csv(out / "cost.csv").set_index("model")
    assert cost.loc["good", "img_per_s"] == pytest.approx(997 / 3.988)
    assert cost.loc["good", "device"] == "cuda:0"
    assert cost.loc["good", "device_name"] == "Test GPU"
    # GPU-hours for this dataset's size (the manifest's rows), not for some other dataset
    assert cost.loc["good", "gpu_hours_this_dataset"] == pytest.approx(
        N_ROWS / (997 / 3.988) / 3600
    )
    assert cost.loc["weak", "img_per_s"] == pytest.approx(100.0)
    assert cost.loc["weak", "device"] == "cpu"
    assert cost.loc["weak", "gpu_hours_this_dataset"] == pytest.approx(N_ROWS / 100 / 3600)
    assert not any("wikiart" in c for c in cost.columns)
    assert cost.loc["good", "timm_name"] == "timm/good"
    assert (cost.embedding_dim == 16).all()
    assert cost.loc["good", "rows_embedded"] == N_ROWS - len(FAILED["good"])
    seconds = [
        json.loads(Path(p).read_text())["seconds"]
        for p in kw["fits"]
        if p.endswith("metrics.json") and "/good/" in p
    ]
    assert len(seconds) == len(TARGETS) * len(CLASSIFIERS)
    assert cost.loc["good", "fit_seconds_total"] == pytest.approx(sum(seconds))


def test_dataset_failures_and_pairs(built):
    out, kw = built
    splits = pd.read_csv(out / "splits.csv").set_index("split")
    assert splits.loc["test", "rows"] == N_TEST and splits.loc["val", "rows"] == N_VAL
    assert splits["rows"].sum() == N_ROWS
    ds = pd.read_csv(out / "dataset.csv")
    for t, n in TARGETS.items():
        sub = ds[ds.target == t]
        assert len(sub) <= n and sub.total.sum() == N_ROWS  # weak embedded every row
        assert (sub[["train", "val", "test"]].sum(axis=1) == sub.total).all()
    assert set(ds[ds.target == "style"]["class"]) <= set(_names("style", 8))
    fails = pd.read_csv(out / "failures.csv").set_index("model")
    assert fails.loc["good", "failed"] == 3 and fails.loc["weak", "failed"] == 0
    assert "decode error" in fails.loc["good", "top_reasons"]
    pairs = pd.read_csv(out / "confused_pairs.csv")
    first = pairs[(pairs.model == "weak") & (pairs.target == "artist") & (pairs["rank"] == 1)].iloc[
        0
    ]
    assert (first.true_class, first.predicted_class) == ("artist-01", "artist-02")
    per = pd.read_csv(out / "per_class.csv")
    assert len(per) == len(MODELS) * len(CLASSIFIERS) * sum(TARGETS.values())


def test_html_tables(built):
    out, _ = built
    summary = (out / "tables/summary.html").read_text()
    assert "<table>" in summary and "good" in summary and "target: style" in summary
    assert "class='best'" in summary
    comparisons = (out / "tables/comparisons.html").read_text()
    assert "good" in comparisons
    assert summary.count("class='best'") == len(TARGETS)  # one best fit per target
    # which rows each probe trained on, and how the comparisons treated seeds (methods text)
    assert summary.count("<b>train+val (") == len(MODELS) * len(TARGETS)  # the lin fits only
    assert "Trained on:" in summary and "Trained on:" in comparisons
    assert comparisons.count("(one fit per model: unseeded, or probe.seeds has one seed)") == len(
        TARGETS
    ) * len(CLASSIFIERS)
    assert all(f"target: {t}" in summary for t in TARGETS)
    cost = (out / "tables/cost.html").read_text()
    assert "gpu_hours_this_dataset = 1,000 rows (the manifest)" in cost
    assert "wikiart" not in cost.lower()
    assert "Abstract_Expressionism" in (out / "tables/dataset.html").read_text()


@pytest.mark.parametrize("choices", [{}, CHOICES], ids=["from-data", "from-config"])
def test_report_sections_cover_every_file(choices):
    root = Path(__file__).resolve().parents[1]
    files = report_files(MODELS, list(TARGETS), CLASSIFIERS, KINDS, **choices)
    sections = report_sections(MODELS, list(TARGETS), CLASSIFIERS, KINDS, **choices)
    assert set(sections) == set(files)
    for fid, s in sections.items():
        assert (root / "report" / s["caption"]).is_file(), (
            f"{fid}: no caption report/{s['caption']}"
        )
        assert s["category"] in CATEGORIES.values()
        assert s["labels"] and all(isinstance(v, str) for v in s["labels"].values())
    # within one category/subcategory every file has the same label keys and a unique label set
    groups: dict = {}
    for s in sections.values():
        groups.setdefault((s["category"], s["subcategory"]), []).append(s["labels"])
    for key, labels in groups.items():
        assert len({tuple(sorted(lab)) for lab in labels}) == 1, key
        assert len({tuple(sorted(lab.items())) for lab in labels}) == len(labels), key
    assert sections["confusion.good.genre.mlp"] == {
        "caption": "confusion.rst",
        "category": CATEGORIES["errors"],
        "subcategory": "genre",
        "labels": {"model": "good", "classifier": "mlp"},
    }
    # dotted names still split into model / target / classifier
    odd = report_sections(["vit.b16"], ["style"], ["k.nn"], {"k.nn": "mlp"})
    assert odd["curves.vit.b16.style.k.nn"]["labels"] == {"model": "vit.b16", "classifier": "k.nn"}


def test_choices_from_the_data():
    wikiart = {"genre": 11, "style": 27, "artist": 129}
    assert readable_target(wikiart) == "style"  # most classes that still fit a plot
    assert readable_target({"a": 200, "b": 90}) == "b"  # none fits: the fewest
    assert readable_target({}) is None
    assert [t for t in wikiart if shows_pairs(t, wikiart, None)] == ["artist"]
    assert not shows_pairs("artist", wikiart, [])  # config report.pairs_targets wins
    assert shows_pairs("genre", wikiart, ["genre"])
    assert MATRIX_MAX_CLASSES == 30


def test_build_with_layout_left_to_the_data(built, tmp_path):
    """The default layout (report: keys null) is written in full, F1 plots per classifier."""
    _, kw = built
    files = report_files(MODELS, list(TARGETS), CLASSIFIERS, KINDS)
    outputs = {fid: str(tmp_path / path) for fid, path in files.items()}
    build_report(ReportInputs(**kw), drawing(pairs_targets=None, map_method="pca"), outputs)
    written = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert written == set(files.values())
    assert {p for p in written if p.startswith("per_class_f1/")} == {
        f"per_class_f1/{c}.png" for c in CLASSIFIERS
    }


def test_layout_imports_neither_pandas_nor_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys; import artprobe.report, artprobe.report.layout, artprobe.report.choices; "
        "print(sorted(m for m in ('pandas', 'matplotlib', 'numpy', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_layout_options_check_the_targets():
    from artprobe.report.layout import layout_options

    assert layout_options({"map_rows": 10}, ["genre"]) == {
        "pairs_targets": None,
        "f1_targets": None,
    }
    assert layout_options({"pairs_targets": ["genre"], "map_target": "genre"}, ["genre"]) == {
        "pairs_targets": ["genre"],
        "f1_targets": None,
    }
    for key, value in (("pairs_targets", ["artist"]), ("f1_targets", ["x"]), ("map_target", "x")):
        with pytest.raises(ValueError, match=rf"config report\.{key}: unknown target"):
            layout_options({key: value}, ["genre"])


def test_dataset_overview_counts_rows_without_a_label_per_target(tmp_path):
    # id -1: no label for that target; such rows are under no class, and counted per split
    from artprobe.report.tables import dataset_tables

    split = ["train"] * 6 + ["val", "test"]
    write_parquet(
        pa.table({"row_id": pa.array(range(8), pa.int64()), "split": split}),
        tmp_path / "split.parquet",
    )
    emb = pa.table(
        {
            "row_id": pa.array(range(8), pa.int64()),
            "style": pa.array([0, 1, -1, 1, -1, 0, -1, 1], pa.int16()),
            "genre": pa.array([0, 1, 0, 1, 0, 1, 0, 1], pa.int16()),
        }
    )
    write_parquet(emb, tmp_path / "emb.parquet")
    classes = {"style": ["a", "b"], "genre": ["x", "y"]}
    ds, splits = dataset_tables(
        str(tmp_path / "split.parquet"),
        {"m": str(tmp_path / "emb.parquet")},
        ["style", "genre"],
        classes,
    )
    splits = splits.set_index("split")
    assert splits["no_label_style"].to_dict() == {"train": 2, "val": 1, "test": 0}
    assert splits["no_label_genre"].sum() == 0 and splits["labelled_rows"].sum() == 8
    style = ds[ds.target == "style"].set_index("class")
    assert list(style.index) == ["a", "b"] and style["total"].to_dict() == {"a": 2, "b": 3}


def test_dataset_overview_counts_near_duplicates(tmp_path):
    """The scan's counts join the rows-per-split table; the note says how the split was made."""
    from artprobe.report import html, tables

    write_parquet(
        with_meta(
            pa.table({"row_id": [0, 1, 2], "split": ["train", "val", "test"]}),
            {
                "method": "group",
                "seed": 3,
                "group_by": "artist",
                "n_groups": 7,
                "ungrouped_rows": 2,
            },
        ),
        tmp_path / "split.parquet",
    )
    dup_meta = {"distance": 8, "duplicates": {"val": 4, "test": 1}}
    write_parquet(
        with_meta(pa.table({"row_id": pa.array([], pa.int64())}), dup_meta), tmp_path / "d.parquet"
    )
    splits = pd.DataFrame(
        {"split": ["train", "val", "test"], "rows": [80, 10, 10], "share": [0.8, 0.1, 0.1]}
    )
    plain, meta = tables.split_notes(str(tmp_path / "split.parquet"), splits, None)
    assert "near_duplicates" not in plain and "Split: group, seed 3" in html.split_note(meta)
    counted, meta = tables.split_notes(
        str(tmp_path / "split.parquet"), splits, str(tmp_path / "d.parquet")
    )
    assert counted["near_duplicates"].tolist() == [pd.NA, 4, 1]
    note = html.split_note(meta)
    assert "every artist on one side (7 groups; 2 rows" in note and "within 8 of 64 bits" in note
    page = "".join(
        html.dataset_sections(
            counted,
            pd.DataFrame(columns=["model", "failed_share"]),
            pd.DataFrame(columns=["target"]),
            {"n_rows": 100},
            meta,
        )
    )
    assert "near_duplicates" in page and "within 8 of 64 bits" in page


def test_fewshot_table_and_curves(built):
    out, _ = built
    df = pd.read_csv(out / "fewshot.csv", dtype={"shot": str})
    assert len(df) == len(MODELS) * len(TARGETS) * 3 and set(df["shot"]) == {"1", "5", "all"}
    at_all = df[df["shot"] == "all"].set_index(["model", "target"])["accuracy"]
    for t in TARGETS:  # the separable embedding wins with every train row, and beats its own 1-shot
        assert at_all[("good", t)] > at_all[("weak", t)]
        one = df[(df.model == "good") & (df.target == t) & (df.shot == "1")]["accuracy"].iloc[0]
        assert at_all[("good", t)] >= one
    for m in MODELS:
        for t in TARGETS:
            assert png_size(out / "fewshot" / f"{m}.{t}.png")[0] > 400


def test_holm_by_hand():
    from artprobe.report.tables import holm

    # m = 4: sorted 0.01, 0.02, 0.03, 0.04 -> 0.04, 0.06, 0.06 (monotone: max(0.06, 0.06)),
    # 0.06 (max(0.06, 0.04)); the NaN is not a test
    p = [0.03, 0.01, float("nan"), 0.04, 0.02]
    np.testing.assert_allclose(holm(p), [0.06, 0.04, np.nan, 0.06, 0.06])
    # a p-value times m above 1 is capped; ties keep their order
    np.testing.assert_allclose(holm([0.5, 0.5, 0.001]), [1.0, 1.0, 0.003])
    assert holm([]).shape == (0,)


def test_comparisons_of_seeded_fits_use_every_seed():
    # Two fits of one seeded classifier with three seeds each: the comparison averages the
    # seeds (not the first seed's predictions) and the methods text says so.
    from artprobe.report.html import comparison_sections

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    fits = []
    for model, acc in (("a", (0.9, 0.6, 0.6)), ("b", (0.7, 0.7, 0.7))):
        seeds = np.stack([np.where(rng.random(400) < p, y, (y + 1) % 4) for p in acc], axis=1)
        preds = pd.DataFrame(
            {
                "row_id": np.arange(400),
                "y_true": y,
                "y_pred": seeds[:, 0],
                "y_pred_seeds": list(seeds),
            }
        )
        fits.append({"model": model, "target": "genre", "classifier": "mlp", "predictions": preds})
    c = comparison_table(fits, ["a", "b"], n_boot=500, seed=0, metrics=["accuracy"])
    row = c.iloc[0]
    assert row.seeds == "3 vs 3" and "seed" in row.method
    assert row.a == pytest.approx(
        np.mean(
            [
                (np.asarray(fits[0]["predictions"].y_pred_seeds.tolist())[:, k] == y).mean()
                for k in range(3)
            ]
        )
    )
    assert row.a < row.b  # seed-averaged: a's first seed (0.9) alone would have won
    text = "".join(comparison_sections(c))
    assert "mlp (3 vs 3 seeds) compares seed-averaged scores" in text


def _summary(rows):
    """A summary table as tables.summary_table writes it, from (model, target, probe, value)."""
    df = pd.DataFrame(
        [
            {
                "model": m,
                "target": t,
                "classifier": c,
                "kind": c,
                "balanced_accuracy": v,
                "accuracy": v + 0.05,
                "balanced_accuracy_ci_low": v - 0.01,
                "balanced_accuracy_ci_high": v + 0.01,
                "accuracy_ci_low": v + 0.04,
                "accuracy_ci_high": v + 0.06,
            }
            for m, t, c, v in rows
        ]
    )
    base = {
        "model": "(baseline)",
        "target": rows[0][1],
        "classifier": "majority",
        "kind": "majority",
        "balanced_accuracy": 0.99,
        "accuracy": 0.99,
    }
    return pd.concat(
        [df, pd.DataFrame([base])], ignore_index=True
    )  # never the best, whatever its value


def _comparisons(rows):
    """(target, probe, a, b, metric, p_holm), with a column the verdict does not read."""
    return pd.DataFrame(
        [
            {
                "target": t,
                "classifier": c,
                "model_a": a,
                "model_b": b,
                "metric": m,
                "p_holm": p,
                "seed": 0,
            }
            for t, c, a, b, m, p in rows
        ]
    )


def test_verdict_significant_lead():
    from artprobe.report.verdict import verdict_table

    s = _summary(
        [
            ("eva02", "style", "linear", 0.69),
            ("convnext_clip", "style", "linear", 0.67),
            ("convnext_clip", "style", "mlp", 0.68),
            ("eva02", "style", "mlp", 0.60),
        ]
    )
    c = _comparisons(
        [
            ("style", "linear", "convnext_clip", "eva02", "balanced_accuracy", 0.001),
            ("style", "linear", "convnext_clip", "eva02", "accuracy", 0.2),
        ]
    )
    v = verdict_table(s, c).set_index("metric")
    r = v.loc["balanced_accuracy"]
    assert (r.best_model, r.best_probe, r.runner_up, r.runner_up_probe) == (
        "eva02",
        ["linear"],
        "convnext_clip",
        "linear",
    )
    assert r["diff"] == pytest.approx(0.02) and r.p_holm == 0.001 and r.outcome == "lead holds"
    assert (
        r.sentence
        == "style, balanced accuracy: eva02 + linear 0.69 [0.68, 0.70]; ahead of convnext_clip by 0.02, p_holm = 0.001"
    )
    tie = v.loc["accuracy"]  # the same lead on accuracy is not significant: a tie
    assert (
        tie.outcome == "tie"
        and "tie with convnext_clip: ahead by 0.02, not significant (p_holm = 0.2)" in tie.sentence
    )


def test_verdict_one_model_and_shared_best_values():
    from artprobe.report.verdict import pair, verdict_table

    only = verdict_table(
        _summary([("eva02", "genre", "linear", 0.7), ("eva02", "genre", "knn", 0.5)]), None
    )
    assert (only.outcome == "only model").all() and only.sentence.str.endswith(
        "; the only model"
    ).all()
    assert pair(only, "genre") is None
    # two probes of the best model share its value: both named; only linear has a runner-up
    s = _summary(
        [
            ("eva02", "genre", "linear", 0.7),
            ("eva02", "genre", "knn", 0.7),
            ("dino", "genre", "linear", 0.6),
        ]
    )
    r = verdict_table(
        s, _comparisons([("genre", "linear", "eva02", "dino", "balanced_accuracy", 0.01)])
    ).iloc[0]
    assert (r.best_model, r.best_probe, r.runner_up, r.outcome) == (
        "eva02",
        ["linear", "knn"],
        "dino",
        "lead holds",
    )
    assert r.sentence.startswith(
        "genre, balanced accuracy: eva02 + linear/knn 0.70 [0.69, 0.71]; ahead of dino + linear "
        "by 0.10, p_holm = 0.01; linear's comparison decides, the weakest of the tied probes'"
    )
    # two models share the best value: a tie, whatever the test says
    s = _summary([("eva02", "genre", "linear", 0.7), ("dino", "genre", "linear", 0.7)])
    r = verdict_table(
        s, _comparisons([("genre", "linear", "eva02", "dino", "balanced_accuracy", 1.0)])
    ).iloc[0]
    assert (
        r.outcome == "tie"
        and r["diff"] == 0
        and "tie with dino (same value, p_holm = 1)" in r.sentence
    )
    # no comparison for the metric: the lead is stated, untested
    r = verdict_table(
        _summary([("a", "genre", "knn", 0.7), ("b", "genre", "knn", 0.6)]), None
    ).iloc[0]
    assert r.outcome == "not tested" and r.sentence.endswith("ahead of b by 0.10 (no paired test)")


def _seeded_fit(model, accs, y, rng, probe="mlp"):
    """A fit of ``probe`` whose seeds score exactly ``accs`` on ``y``, each seed wrong on
    its own random rows; metrics.json's fields as classify writes them (first seed's
    values at the top, every seed's in ``seeds``)."""
    from artprobe.probes.metrics import evaluate
    from artprobe.stages.classify import seed_summary

    n, classes = len(y), [f"c{i}" for i in range(10)]
    seeds = []
    for acc in accs:
        wrong = rng.permutation(n)[: round(n * (1 - acc))]
        pred = y.copy()
        pred[wrong] = (y[wrong] + 1 + rng.integers(0, 9, len(wrong))) % 10
        seeds.append(pred)
    proba = [np.eye(10)[p] for p in seeds]
    m = evaluate(y, proba[0], classes, n_boot=0)
    res = [type("R", (), {"proba_test": p}) for p in proba]
    m["seeds"] = seed_summary(list(range(len(accs))), res, y, classes, probe)
    preds = pd.DataFrame({"row_id": np.arange(n), "y_true": y, "y_pred": seeds[0]})
    if len(accs) > 1:
        preds["y_pred_seeds"] = list(np.stack(seeds, axis=1))
    return {
        "model": model,
        "target": "genre",
        "classifier": probe,
        "kind": probe,
        "metrics": m,
        "class_names": classes,
        "predictions": preds,
    }


def test_verdict_ranks_and_quotes_seed_means():
    """Issue 28 (1): A's seeds 0.80 / 0.77 / 0.77 (mean 0.78), B's 0.79 × 3: the verdict
    names B with 0.79 (the mean the comparison tests), never A's first seed's 0.80."""
    from artprobe.report.verdict import verdict_table

    rng = np.random.default_rng(3)
    y = rng.integers(0, 10, 1000)
    fits = [_seeded_fit("A", (0.80, 0.77, 0.77), y, rng), _seeded_fit("B", (0.79,) * 3, y, rng)]
    summary = summary_table(fits, n_boot=300, seed=0)
    comparisons = comparison_table(fits, ["A", "B"], n_boot=300, seed=0)
    v = verdict_table(summary, comparisons, metrics=["accuracy"]).iloc[0]
    assert (v.best_model, v.runner_up) == ("B", "A")
    assert v.value == pytest.approx(0.79) and v.runner_up_value == pytest.approx(0.78)
    assert v.ci_low < 0.79 < v.ci_high and v.outcome == "tie"
    assert "B + mlp 0.79" in v.sentence and "tie with A: ahead by 0.01" in v.sentence
    row = summary.set_index("model").loc["A"]
    assert row.accuracy == pytest.approx(0.78) and row.scored_as == "mean of 3 seeds"
    assert summary.set_index("model").loc["B"].best_in_target
    # the same means as the comparison: one quantity on every page
    c = comparisons[comparisons.metric == "accuracy"].iloc[0]
    assert (c.a, c.b) == pytest.approx((row.accuracy, 0.79))


def test_verdict_of_tied_probes_does_not_depend_on_their_order():
    """Issue 28 (2): A + linear = A + knn = 0.80; B + linear 0.79 (Holm p 0.6), B + knn 0.70
    (Holm p 0.001). Whichever probe is listed first, the weakest comparison decides."""
    from artprobe.report.verdict import pair, verdict_table

    rows = [
        ("A", "genre", "linear", 0.80),
        ("A", "genre", "knn", 0.80),
        ("B", "genre", "linear", 0.79),
        ("B", "genre", "knn", 0.70),
    ]
    c = _comparisons(
        [
            ("genre", "linear", "A", "B", "balanced_accuracy", 0.6),
            ("genre", "knn", "A", "B", "balanced_accuracy", 0.001),
        ]
    )
    got = []
    for order in (rows, rows[::-1], [rows[1], rows[0], rows[3], rows[2]]):
        v = verdict_table(_summary(order), c, metrics=["balanced_accuracy"])
        r = v.iloc[0]
        got.append((r.outcome, r.decided_by, r.runner_up_probe, r.p_holm, r.sentence))
        assert pair(v, "genre") == (("A", "linear"), ("B", "linear"))
    assert got[0][:4] == ("tie", "linear", "linear", 0.6)
    assert all(g[:4] == got[0][:4] for g in got)
    assert "not significant (p_holm = 0.6; linear's comparison decides" in got[0][4]
    # where every tied probe's lead holds, the weakest one's p is quoted
    c2 = c.assign(p_holm=[0.01, 0.001])
    r = verdict_table(_summary(rows[::-1]), c2, metrics=["balanced_accuracy"]).iloc[0]
    assert (r.outcome, r.decided_by, r.p_holm) == ("lead holds", "linear", 0.01)


def test_the_thumbnail_stage_reads_the_verdict_it_does_not_compute_it(built, tmp_path):
    """The galleries' pair is the verdict's: read from the compare stage's verdict.parquet;
    the same rows as make_results chose, with the standings' functions unavailable."""
    _, kw = built
    rows = tmp_path / "rows.json"
    previews = sorted(str(p) for p in (Path(kw["rows"]).parents[1] / "previews").glob("*"))
    st = kw["standings"]
    inputs = ThumbnailInputs(kw["fits"], kw["embeddings"], previews, st.verdict, st.mean_ranks)
    with pytest.MonkeyPatch.context() as mp:
        for module, name in STANDINGS:
            mp.setattr(module, name, _computed_again)
        run_thumbnails(inputs, thumbnail_settings(), str(rows), str(tmp_path / "t.parquet"))
    assert json.loads(rows.read_text()) == json.loads(Path(kw["rows"]).read_text())


def test_the_reports_tables_are_the_compare_stages(built):
    """summary.csv, comparisons.csv and verdict.csv are the compare stage's tables as they
    are; the verdict's best probes are a list there, joined by "/" only in the CSV."""
    out, kw = built
    files = kw["standings"]
    for name in ("summary", "comparisons"):
        want = pd.read_parquet(getattr(files, name)).to_csv(index=False)
        assert (out / f"{name}.csv").read_text() == want, name
    ruling = pd.read_parquet(files.verdict)
    assert all(isinstance(p, np.ndarray) and len(p) >= 1 for p in ruling["best_probe"])
    csv = pd.read_csv(out / "verdict.csv")
    assert list(csv["best_probe"]) == ["/".join(p) for p in ruling["best_probe"]]
    assert list(csv["sentence"]) == list(ruling["sentence"])


def test_every_page_carries_the_one_stylesheet(built):
    """Tables, painting sheets and the interactive map: one page shell, one stylesheet (the
    same <style> on every page), the page's kind named on its <body>."""
    from artprobe.report.style import KINDS, STYLESHEET

    out, _ = built
    pages = sorted(out.rglob("*.html"))
    kinds = set()
    for path in pages:
        text = path.read_text()
        assert re.findall(r"<style>(.*?)</style>", text, re.S) == [STYLESHEET], path.name
        kinds.update(re.findall(r"<body class='(\w+)'>", text))
    assert kinds == set(KINDS)
    src = Path(tables.__file__).parent
    for module in src.glob("*.py"):  # no stylesheet of its own anywhere else
        assert module.name == "style.py" or "font-family" not in module.read_text(), module.name


def test_the_package_docstring_lists_every_module():
    import artprobe.report as pkg

    modules = {p.stem for p in Path(pkg.__file__).parent.glob("*.py")} - {"__init__"}
    assert set(re.findall(r"artprobe\.report\.(\w+)`", pkg.__doc__)) == modules


def test_leaderboard_page_opens_the_report_with_rank_intervals(built):
    """Issue 27: the leaderboard is the report's first entry, a CSV beside its page; every
    model of every target × metric has a rank inside its 95 % rank interval, the page shows
    the verdict's sentences as its summary and says how the intervals are computed."""
    from artprobe.report.leaderboard import METHOD

    out, kw = built
    files = report_files(MODELS, list(TARGETS), CLASSIFIERS, KINDS, **CHOICES)
    assert list(files)[:3] == ["leaderboard_html", "leaderboard", "mean_ranks"]
    board = pd.read_csv(out / "leaderboard.csv")
    assert set(board.model) == set(MODELS) and set(board.target) == set(TARGETS)
    assert (board.groupby(["target", "metric"]).size() == len(MODELS)).all()
    assert ((board.rank_low <= board["rank"]) & (board["rank"] <= board.rank_high)).all()
    # the same table the compare stage wrote (the report does not rank again)
    stage = pd.read_parquet(kw["standings"].leaderboard)
    cols = ["model", "rank", "rank_low", "rank_high"]
    assert board[cols].values.tolist() == stage[cols].values.tolist()
    page = (out / "leaderboard.html").read_text()
    verdict = pd.read_csv(out / "verdict.csv")
    assert all(html_text(s) in page for s in verdict.sentence)
    assert html_text(METHOD) in page
    ranks = pd.read_csv(out / "mean_ranks.csv")
    assert set(ranks.model) == set(MODELS) and (ranks.mean_rank_low <= ranks.mean_rank).all()


# ------------------------------------------------------------ fifteen models (issue 27)

#: fifteen models with names as long as timm's
MANY = [f"vit_large_patch14_clip_224.laion2b_ft_in12k_{i:02d}" for i in range(15)]


def _many_summary(models: list[str], seed: int = 0) -> pd.DataFrame:
    """A summary table (the columns the accuracy chart reads) of ``models`` × 2 targets × the
    three probes, values drawn at random, with the majority baseline and best flags."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in ("genre", "style"):
        for m in [*models, tables.BASELINE_MODEL]:
            for c in CLASSIFIERS if m in models else [tables.BASELINE_CLASSIFIER]:
                r = {"target": t, "model": m, "classifier": c, "kind": KINDS.get(c, "majority")}
                for name in tables.HEADLINE:
                    v = rng.uniform(0.2, 0.95) if m in models else 0.2
                    r |= {name: v, f"{name}_ci_low": v - 0.03, f"{name}_ci_high": v + 0.03}
                rows.append(r)
    s = pd.DataFrame(rows)
    fitted = s[s.kind != "majority"]
    s["best_model"] = s.index.isin(fitted.groupby(["target", "classifier"]).accuracy.idxmax())
    return s


def test_accuracy_plot_of_fifteen_models_lies_down_and_grows(tmp_path):
    """With many models the chart lists them down the side, best first, one name per row with
    no two names overlapping; it grows taller, not wider, with the models."""
    from artprobe.report import plots

    sizes = {}
    for n in (3, 8, 15):
        models = MANY[:n]
        summary = _many_summary(models)
        fig = plots.plot_accuracy(
            summary, models, ["genre", "style"], CLASSIFIERS, plots.model_colors(models)
        )
        plots.save(fig, tmp_path / f"acc{n}.png")
        sizes[n] = png_size(tmp_path / f"acc{n}.png")
    assert sizes[3][1] < sizes[8][1] < sizes[15][1]  # taller with every model
    assert sizes[15][0] <= 1600  # and no wider than a screen
    first = fig.axes[0]  # genre, accuracy: the 15 models down the side, best first
    names = [t.get_text() for t in first.get_yticklabels()]
    genre = summary[(summary.target == "genre") & summary.model.isin(MANY)]
    assert names == list(genre.groupby("model").accuracy.max().sort_values(ascending=False).index)
    boxes = [t.get_window_extent() for t in first.get_yticklabels()]
    assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:])), "model names overlap"
    assert len(set(plots.model_colors(MANY).values())) == 15


def test_per_class_f1_legend_of_fifteen_long_names_fits_the_figure():
    from artprobe.report import plots

    rng = np.random.default_rng(0)
    fits = []
    for m in MANY:
        per = {}
        for c in ("a", "b", "c"):
            f = rng.uniform(0.2, 0.8)
            per[c] = {"f1": f, "f1_ci_low": f - 0.1, "f1_ci_high": f + 0.1, "support": 9}
        fits.append(
            {"model": m, "target": "style", "classifier": "lin", "metrics": {"per_class": per}}
        )
    colors = plots.model_colors(MANY)
    few = plots.plot_per_class_f1(fits[:2], MANY[:2], colors, "style", "lin")
    fig = plots.plot_per_class_f1(fits, MANY, colors, "style", "lin")
    fig.canvas.draw()
    box, legend = fig.bbox, fig.legends[0].get_window_extent()
    assert box.x0 <= legend.x0 and legend.x1 <= box.x1, (legend, box)  # every name whole
    assert fig.get_figheight() > few.get_figheight()  # a row per class grows with the models


def fifteen_model_pages(root: Path) -> dict[str, Path]:
    """The leaderboard page, a gallery sheet and the interactive map of 15 models with long
    names (the pages the report writes, from synthetic tables and thumbnails)."""
    from synthetic import synthetic_jpeg

    from artprobe.report import atlas, html, sheets
    from artprobe.report.leaderboard import COLUMNS, MEAN_COLUMNS

    root.mkdir(parents=True, exist_ok=True)
    n = len(MANY)
    board = pd.DataFrame(
        [
            {c: 0 for c in COLUMNS}
            | {"dataset": "", "target": t, "metric": met, "model": m, "probe": "linear",
               "rank": i + 1, "rank_low": max(1, i - 2), "rank_high": min(n, i + 3),
               "value": 0.9 - i / 50,
               "ci_low": 0.88 - i / 50, "ci_high": 0.92 - i / 50, "diff_to_best": i / 50,
               "p_holm": 0.01 * i, "with_best": i < 3, "n_rows": 300, "n_boot": 100}
            for t in ("genre", "style") for met in tables.HEADLINE for i, m in enumerate(MANY)
        ]
    )  # fmt: skip
    ranks = pd.DataFrame(
        [{c: "" for c in MEAN_COLUMNS} | {"metric": "accuracy", "model": m, "mean_rank": i + 1.0,
          "mean_rank_low": i + 0.5, "mean_rank_high": i + 2.0, "n_rankings": 2}
         for i, m in enumerate(MANY)]
    )  # fmt: skip
    sentences = pd.DataFrame({"sentence": [f"genre: {MANY[0]} leads {MANY[1]} by 0.02"]})
    pages = {k: root / f"{k}.html" for k in ("leaderboard", "gallery", "map")}
    html.write_html(
        pages["leaderboard"], "Leaderboard", html.leaderboard_sections(board, ranks, sentences)
    )
    queries, shown = [100, 101], MANY[:3]
    neighbours = {m: [list(range(i, i + 5)) for i in (0, 5)] for m in shown}  # k = 5
    rows = [*queries, *range(10)]
    pq_path = root / "thumbs.parquet"
    write_parquet(
        pa.table(
            {
                "row_id": pa.array(rows, pa.int64()),
                "kind": ["large"] * len(rows),
                "jpeg": [synthetic_jpeg(96, 80, seed=r) for r in rows],
                "style": pa.array([r % 2 for r in rows], pa.int16()),
            }
        ),
        pq_path,
    )
    models = {"shown": shown, "ranked": MANY, "metric": "balanced_accuracy"}
    models |= {"top_models": 3, "show_models": []}
    sheets.gallery_sheet(
        pages["gallery"],
        "style",
        {"queries": queries, "neighbours": neighbours, "models": models},
        sheets.Thumbs(str(pq_path)),
        {"style": ["a", "b"]},
        5,
        False,
    )
    rng = np.random.default_rng(0)
    atlas.interactive_page(
        pages["map"],
        {m: rng.normal(size=(20, 2)) for m in MANY},
        list(range(20)),
        {"style": [r % 2 for r in range(20)]},
        {"style": ["a", "b"]},
        [None] * 20,
        "style",
        "note",
    )
    return pages


def test_fifteen_models_pages_show_three_and_list_the_rest(tmp_path):
    """Issue 27: the gallery shows the top three models and names the others; the map picks
    one of the 15 from a list (no button per model); every table sits in its own scroll box."""
    pages = fifteen_model_pages(tmp_path)
    gallery = pages["gallery"].read_text()
    heads = re.findall(r"<th>(.*?)</th>", gallery)
    assert heads == ["query", *[html_text(m) for m in MANY[:3]]]
    note = "Showing the top 3 of 15 models by mean rank (balanced accuracy, the leaderboard; "
    assert note in gallery and f"others: {', '.join(MANY[3:])}." in gallery
    page = pages["map"].read_text()
    data = json.loads(re.search(r'id="map-data">(.*?)</script>', page, re.S).group(1))
    assert data["models"] == MANY and page.count('<select id="model">') == 1
    assert "data-m" not in page and "dataset.m" not in page  # no button per model
    board = pages["leaderboard"].read_text()
    assert board.count("<table>") == board.count("<div class='scroll'><table>") == 7


# Run in a page once it has loaded (its images too): its width against the window's, the
# images shown and, on the map, the models the list offers.
WIDTH_CHECK = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images].filter((i) => i.getAttribute("src"));
  const pick = document.getElementById("model");
  document.body.dataset.check = JSON.stringify({
    page: document.documentElement.scrollWidth, window: window.innerWidth, images: imgs.length,
    loaded: imgs.filter((i) => i.complete && i.naturalWidth > 0).length,
    options: pick ? [...pick.options].map((o) => o.textContent) : null});
});
</script></body>"""


@pytest.mark.browser
@pytest.mark.slow
def test_fifteen_models_pages_fit_the_screen_in_chromium(tmp_path):
    """Issue 27, as a reader sees it: with 15 models the leaderboard page, the gallery and
    the map scroll no wider than a 1280 px window; every thumbnail loads; the map offers the
    15 models in its list."""
    import test_report_html as browser

    if browser.chromium_binary() is None:
        pytest.skip("chromium not installed (Debian: apt-get install chromium)")
    pages = fifteen_model_pages(tmp_path / "pages")
    got = {}
    for name, page in pages.items():
        copy = browser._checked(page, tmp_path / f"{name}-check.html", WIDTH_CHECK)
        dom = browser.dump_dom(copy, tmp_path / "profile", window="1280,900")
        m = re.search(r'data-check="([^"]*)"', dom)
        assert m, f"{name}: the checks did not run"
        got[name] = json.loads(html_unescape(m.group(1)))
    for name, g in got.items():
        assert g["page"] <= g["window"], f"{name} scrolls sideways: {g}"
    assert got["gallery"]["images"] == 2 * (1 + 3 * 5)  # 2 queries, 3 models × 5 neighbours
    assert got["gallery"]["loaded"] == got["gallery"]["images"], got["gallery"]
    assert got["map"]["options"] == MANY
