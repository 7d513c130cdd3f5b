"""artprobe.report on synthetic fits with known numbers (2 models × 3 targets × 2 probes).

``make_results`` is shared with test_report_html.py.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from artprobe.io import with_meta, write_json, write_parquet
from artprobe.report import FULL_WIKIART_IMAGES, build_report, report_files

MODELS = ["good", "weak"]
TARGETS = {"genre": 5, "style": 8, "artist": 30}
CLASSIFIERS = ["mlp", "lin"]
KINDS = {"mlp": "mlp", "lin": "linear"}
# probability that a model predicts the right class on a test row
SKILL = {("good", "mlp"): 0.9, ("good", "lin"): 0.8, ("weak", "mlp"): 0.5, ("weak", "lin"): 0.45}
N_ROWS, N_TEST, N_VAL = 1000, 300, 100
FAILED = {"good": [3, 500, 998], "weak": []}  # rows each model failed to embed (val, test, train)
# shard timings: good 250 img/s from shard totals, weak 100 img/s from nested provenance
# (as artprobe.embed.merge_embeddings writes them; the second shard resumed 100 rows, so its
# rows / seconds would overstate the speed)
GOOD_SHARDS = [
    {"shard": "0000", "rows": 500, "seconds": 2.0, "img_per_s": 250.0, "device_name": "Test GPU"},
    {"shard": "0001", "rows": 597, "seconds": 1.988, "img_per_s": 250.0, "device_name": "Test GPU"},
]


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


def make_results(root: Path, seed: int = 0) -> dict:
    """Write manifest, split, embeddings, failures and fit dirs; return build_report kwargs."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    classes = {t: _names(t, n) for t, n in TARGETS.items()}
    row_id = np.arange(N_ROWS, dtype=np.int64)
    split = np.array(
        ["test" if i % 10 < 3 else "val" if i % 10 == 3 else "train" for i in row_id], dtype=object
    )
    labels = {t: rng.integers(0, n, N_ROWS) for t, n in TARGETS.items()}
    write_json(
        root / "manifest.json",
        {
            "source": "synthetic",
            "revision": "test",
            "n_rows": N_ROWS,
            "targets": list(TARGETS),
            "classes": classes,
        },
    )
    write_parquet(pa.table({"row_id": row_id, "split": split.tolist()}), root / "split.parquet")

    centers = rng.normal(0, 3, (TARGETS["style"], 16))
    embeddings, failures = {}, {}
    for m in MODELS:
        ok = ~np.isin(row_id, FAILED[m])
        emb = (centers[labels["style"]] + rng.normal(0, 1, (N_ROWS, 16))).astype(np.float32)[ok]
        meta = {"classes": classes, "timm_name": f"timm/{m}", "model": m}
        if m == "good":
            meta.update(device="cuda:0", shards=GOOD_SHARDS)
        else:
            meta["provenance"] = {"img_per_s": 100.0, "device": "cpu"}
        table = pa.table(
            {
                "row_id": row_id[ok],
                "split": split[ok].tolist(),
                **{t: pa.array(labels[t][ok], pa.int16()) for t in TARGETS},
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 16),
            }
        )
        embeddings[m] = str(root / f"embeddings/{m}.parquet")
        write_parquet(with_meta(table, meta), embeddings[m])
        failures[m] = str(root / f"embeddings/{m}.failures.parquet")
        write_parquet(
            pa.table(
                {
                    "row_id": pa.array(FAILED[m], pa.int64()),
                    "reason": pa.array(["decode error: truncated"] * len(FAILED[m]), pa.string()),
                }
            ),
            failures[m],
        )

    test_ids = row_id[split == "test"]
    fits = []
    for (m, c), skill in SKILL.items():
        for t, n in TARGETS.items():
            ids = test_ids[~np.isin(test_ids, FAILED[m])]
            y = labels[t][ids]
            right = rng.random(len(ids)) < skill
            wrong = (y + rng.integers(1, n, len(ids))) % n
            pred = np.where(right, y, wrong)
            if t == "artist":  # a systematic confusion the pairs table must find first
                pred = np.where((y == 1) & ~right, 2, pred)
            d = root / "classify" / m / t / c
            acc = float((pred == y).mean())
            per_class = {}
            for i, name in enumerate(classes[t]):
                tp = int(((pred == i) & (y == i)).sum())
                prec = tp / max(int((pred == i).sum()), 1)
                rec = tp / max(int((y == i).sum()), 1)
                f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
                per_class[name] = {
                    "precision": prec,
                    "recall": rec,
                    "f1": f1,
                    "support": int((y == i).sum()),
                    "f1_ci_low": max(f1 - 0.1, 0.0),
                    "f1_ci_high": min(f1 + 0.1, 1.0),
                }
            metrics = {
                "model": m,
                "target": t,
                "classifier": c,
                "kind": KINDS[c],
                "params": {"lr": 0.001},
                "accuracy": {"value": acc, "ci_low": acc - 0.03, "ci_high": acc + 0.03},
                "top5_accuracy": {"value": min(acc + 0.1, 1.0), "ci_low": acc, "ci_high": 1.0},
                "macro_f1": {"value": acc - 0.05, "ci_low": acc - 0.08, "ci_high": acc - 0.02},
                "balanced_accuracy": {
                    "value": acc - 0.01,
                    "ci_low": acc - 0.04,
                    "ci_high": acc + 0.02,
                },
                "per_class": per_class,
                "n_train": 600,
                "n_val": N_VAL,
                "n_test": len(ids),
                "n_classes": n,
                "dropped": {"labels": {}, "rare_classes": [], "rows": 0},
                "seconds": 1.5,
                "info": {
                    "kind": KINDS[c],
                    "C": 0.1,
                    "val_accuracy": 0.7,
                    "seconds": 1.5,
                    "device": "cpu",
                    "grid": [{"C": 0.1}],
                    "n_train": 600,
                },
                "class_names": classes[t],
            }
            write_json(d / "metrics.json", metrics)
            proba = np.full((len(ids), n), 0.1 / n, np.float32)
            proba[np.arange(len(ids)), pred] += 0.9
            write_parquet(
                pa.table(
                    {
                        "row_id": pa.array(ids, pa.int64()),
                        "y_true": pa.array(y, pa.int32()),
                        "y_pred": pa.array(pred, pa.int32()),
                        "proba": pa.FixedSizeListArray.from_arrays(pa.array(proba.ravel()), n),
                    }
                ),
                d / "predictions.parquet",
            )
            hist = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr\n"
            if c == "mlp" and not (m == "weak" and t == "artist"):  # one mlp fit without history
                for e in range(1, 11):
                    hist += f"{e},{2 / e:.4f},{1 - 0.5 / e:.4f},{2.2 / e + 0.01 * e:.4f},{0.8 - 0.4 / e:.4f},0.001\n"
            (d / "history.csv").write_text(hist)
            (d / "classification_report.txt").write_text("report\n")
            fits.append({"model": m, "target": t, "classifier": c, "dir": str(d)})
    return {
        "fits": fits,
        "embeddings": embeddings,
        "failures": failures,
        "manifest": str(root / "manifest.json"),
        "split": str(root / "split.parquet"),
        "kinds": KINDS,
    }


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
    build_report(**kw, out_dir=str(out), n_boot=200, seed=0, map_rows=400)
    return out, kw


def test_report_files_layout():
    files = report_files(MODELS, list(TARGETS), CLASSIFIERS, KINDS)
    assert len(set(files.values())) == len(files), "two ids share a path"
    assert files["summary"] == "summary.csv" and files["accuracy_plot"] == "accuracy.png"
    assert files["confusion.good.genre.mlp"] == "confusion/good.genre.mlp.png"
    assert files["pairs.weak.artist.lin"] == "confused_pairs/weak.artist.lin.png"
    assert "confusion.good.artist.mlp" not in files  # artist gets pairs, not a 129×129 matrix
    assert {k for k in files if k.startswith("curves.")} == {
        f"curves.{m}.{t}.mlp" for m in MODELS for t in TARGETS
    }
    assert {k for k in files if k.startswith("f1.")} == {"f1.style.mlp", "f1.style.lin"}
    assert {k for k in files if k.startswith("map.")} == {"map.good", "map.weak"}
    # the same call without style/artist has no per-class F1 plot and only matrices
    small = report_files(["a"], ["genre"], ["knn"], {"knn": "knn"})
    assert not any(k.startswith(("f1.", "pairs.", "curves.")) for k in small)


def test_every_declared_file_is_written(built):
    out, _ = built
    files = report_files(MODELS, list(TARGETS), CLASSIFIERS, KINDS)
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
    assert len(s) == len(MODELS) * len(TARGETS) * len(CLASSIFIERS)
    for fit in kw["fits"]:
        m = json.loads((Path(fit["dir"]) / "metrics.json").read_text())
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
        assert (row.n_train, row.n_val, row.n_test, row.n_classes) == (
            600,
            N_VAL,
            m["n_test"],
            m["n_classes"],
        )
        assert row.kind == KINDS[fit["classifier"]]
    # good/mlp (skill 0.9) is the best fit of every target; good beats weak per classifier
    assert set(s[s.best_in_target].apply(lambda r: (r.model, r.classifier), axis=1)) == {
        ("good", "mlp")
    }
    assert s.groupby("target").best_in_target.sum().eq(1).all()
    assert set(s[s.best_model].model) == {"good"}
    assert s.best_model.sum() == len(TARGETS) * len(CLASSIFIERS)
    # chosen hyper-parameters without bookkeeping
    assert set(s.chosen) == {"C=0.1; val_accuracy=0.7"}
    assert set(s.fit_seconds) == {1.5}


def test_comparisons_find_the_better_model(built):
    out, _ = built
    c = pd.read_csv(out / "comparisons.csv", keep_default_na=False)
    assert len(c) == len(TARGETS) * len(CLASSIFIERS) * 2  # one pair, accuracy + macro_f1
    assert set(zip(c.model_a, c.model_b)) == {("good", "weak")}
    assert set(c.metric) == {"accuracy", "macro_f1"}
    assert (c.better == "good").all()
    for r in c.itertuples():
        assert r.a > r.b
        assert r.ci_low <= r.diff <= r.ci_high
        assert r.ci_low > 0 or r.ci_high < 0  # significant, whichever sign convention
        assert r.verdict
    # good failed to embed one test row (500): compared on the intersection, and said so
    assert (c.n_rows == N_TEST - 1).all()
    assert c.note.str.contains("299 shared rows").all()


def test_cost_arithmetic(built):
    out, _ = built
    cost = pd.read_csv(out / "cost.csv").set_index("model")
    assert cost.loc["good", "img_per_s"] == pytest.approx(997 / 3.988)
    assert cost.loc["good", "device"] == "cuda:0"
    assert cost.loc["good", "device_name"] == "Test GPU"
    assert cost.loc["good", "gpu_hours_full_wikiart"] == pytest.approx(
        FULL_WIKIART_IMAGES / (997 / 3.988) / 3600
    )
    assert cost.loc["weak", "img_per_s"] == pytest.approx(100.0)
    assert cost.loc["weak", "device"] == "cpu"
    assert cost.loc["weak", "gpu_hours_full_wikiart"] == pytest.approx(81_444 / 100 / 3600)
    assert cost.loc["good", "timm_name"] == "timm/good"
    assert (cost.embedding_dim == 16).all()
    assert cost.loc["good", "rows_embedded"] == N_ROWS - len(FAILED["good"])
    assert cost.loc["good", "fit_seconds_total"] == pytest.approx(
        1.5 * len(TARGETS) * len(CLASSIFIERS)
    )


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
    assert "good" in (out / "tables/comparisons.html").read_text()
    assert "gpu_hours_full_wikiart" in (out / "tables/cost.html").read_text()
    assert "Abstract_Expressionism" in (out / "tables/dataset.html").read_text()


def test_report_sections_cover_every_file():
    from artprobe.report import CATEGORIES, report_sections

    root = Path(__file__).resolve().parents[1]
    files = report_files(MODELS, list(TARGETS), CLASSIFIERS, KINDS)
    sections = report_sections(MODELS, list(TARGETS), CLASSIFIERS, KINDS)
    assert set(sections) == set(files)
    for fid, s in sections.items():
        assert (
            root / "report" / s["caption"]
        ).is_file(), f"{fid}: no caption report/{s['caption']}"
        assert s["category"] in CATEGORIES.values()
        assert s["labels"] and all(isinstance(v, str) for v in s["labels"].values())
    # within one category/subcategory every file has the same label keys and a unique label set
    groups: dict = {}
    for fid, s in sections.items():
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
