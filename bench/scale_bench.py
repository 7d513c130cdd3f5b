"""A WikiArt-scale rehearsal of the whole workflow (prints per-rule job costs).

    python bench/scale_bench.py                       # 81,444 rows, WikiArt's class structure
    python bench/scale_bench.py --rows 8000 --cores 2 # a quick check of the same protocol
    python bench/scale_bench.py --keep /tmp/scale     # keep the run (results, logs, report)
    python bench/scale_bench.py --table /tmp/scale    # the table of a kept run, finished or not
    python bench/scale_bench.py --models convnext     # one model: half the probe jobs

Generates a local source in the hub's layout with WikiArt's layout and class structure (27
styles from 98 to 13,060 images in WikiArt's proportions, 129 artists of which ~25 % are
"Unknown Artist", 11 genres; tiny 32 px JPEGs whose colours and textures follow the labels,
with a few re-encoded copies for the duplicate scan to find), copies the checkout's workflow,
and runs ``config.yaml``'s protocol (split, duplicate scan, bootstrap 5,000, few-shot curves,
the three probes) through the real Snakemake with two tiny random-weight timm models embedded
on CPU (an overlay config replaces only the dataset, the models and the embed device), then
``snakemake --report``. Prints, per rule: jobs, summed and largest job seconds, and peak RSS
(``max_rss`` of the ``benchmark:`` files), and the totals with and without embedding.

Targets on a 2-core machine: everything but embedding <= 30 min of summed job time, no job
over 10 min or 4 GB peak RSS, the report job <= 2 min.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, copy_workflow, say  # the checkout on sys.path

WIKIART_ROWS = 81444
# WikiArt's images per style (huggan/wikiart), in artprobe.stages.generate_demo.STYLES order
STYLE_COUNTS = [
    2782,
    98,
    110,
    4334,
    4240,
    1615,
    481,
    2235,
    1391,
    6736,
    934,
    1343,
    13060,
    1279,
    1337,
    2405,
    314,
    2552,
    513,
    1483,
    6450,
    10733,
    2089,
    7019,
    4528,
    216,
    1167,
]
GENRE_WEIGHTS = [
    1.9,
    4.7,
    11.5,
    1.9,
    13.4,
    1.9,
    14.1,
    6.4,
    2.5,
    2.9,
    38.8,
]  # percent, GENRES order
UNKNOWN_ARTIST = 0.25
MODELS = [
    {"name": "vit", "timm": "test_vit", "pretrained": False},
    {"name": "convnext", "timm": "test_convnext", "pretrained": False},
]
TARGETS = {"rules_s": 30 * 60, "job_s": 10 * 60, "rss_mb": 4096, "report_s": 120}


def labels(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Style counts in WikiArt's proportions (the smallest style kept >= 1 row), genres by
    WikiArt's shares, artists: a quarter "Unknown Artist", the rest a Zipf-like long tail."""
    from artprobe.stages.generate_demo import ARTISTS

    counts = np.maximum(np.round(np.array(STYLE_COUNTS) * n / sum(STYLE_COUNTS)).astype(int), 1)
    counts[np.argmax(counts)] += n - counts.sum()
    style = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    g = np.array(GENRE_WEIGHTS) / sum(GENRE_WEIGHTS)
    genre = rng.choice(len(g), size=n, p=g)
    tail = 1.0 / np.arange(1, len(ARTISTS)) ** 0.8
    a = np.r_[UNKNOWN_ARTIST, (1 - UNKNOWN_ARTIST) * tail / tail.sum()]
    artist = rng.choice(len(a), size=n, p=a)  # ARTISTS[0] is "Unknown Artist"
    return {"style": style, "genre": genre, "artist": artist}


def pictures(lab: dict, rng: np.random.Generator, size: int = 32) -> list[bytes]:
    """Tiny JPEGs: hue from the style, a gradient's direction from the genre, grain from the
    artist, plus noise; every 400th row repeats an earlier picture at another quality."""
    from PIL import Image

    n = len(lab["style"])
    yy, xx = np.mgrid[0:size, 0:size] / size
    out: list[bytes] = []
    for i in range(n):
        s, g, a = (int(lab[t][i]) for t in ("style", "genre", "artist"))
        if i % 400 == 399:
            buf = io.BytesIO()
            Image.open(io.BytesIO(out[i - 397])).save(buf, "JPEG", quality=60)
            out.append(buf.getvalue())
            continue
        hue = 2 * np.pi * s / 27 + np.array([0.0, 2.1, 4.2])
        ang = np.pi * g / 11
        grad = np.cos(ang) * xx + np.sin(ang) * yy
        img = 0.5 + 0.3 * np.cos(hue)[None, None] * (0.5 + grad[..., None])
        img = img + rng.normal(0, 0.03 + 0.1 * (a % 7) / 7, img.shape)
        buf = io.BytesIO()
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def write_source(folder: Path, n: int, seed: int = 0, files: int = 8) -> None:
    """The source in the hub's layout (Image + ClassLabel columns, like the demo's)."""
    import datasets

    from artprobe.stages.generate_demo import ARTISTS, GENRES, STYLES

    rng = np.random.default_rng(seed)
    lab = labels(n, rng)
    imgs = pictures(lab, rng)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "artist": datasets.ClassLabel(names=ARTISTS),
            "genre": datasets.ClassLabel(names=GENRES),
            "style": datasets.ClassLabel(names=STYLES),
        }
    )
    cols = {
        "image": [{"bytes": b, "path": None} for b in imgs],
        **{k: v.tolist() for k, v in lab.items()},
    }
    ds = datasets.Dataset.from_dict(cols, features=features)
    for i in range(files):
        path = folder / "data" / f"train-{i:05d}-of-{files:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.shard(files, i, contiguous=True).to_parquet(str(path))


def overlay(source: Path, a) -> str:
    """Only what a rehearsal must change: the data (with config.yaml's split of its dataset),
    two tiny random-weight models, CPU embed."""
    import yaml

    real = yaml.safe_load((ROOT / "config.yaml").read_text())
    split = real["datasets"][real["use_datasets"][0]]["split"]
    cfg = {
        "use_datasets": ["scale"],
        "datasets": {
            "scale": {
                "source": str(source),
                "targets": ["genre", "style", "artist"],
                "split": split,
            }
        },
        "models": [m for m in MODELS if m["name"] in a.models.split(",")],
        "embed": {"decode": "fast", "precision": "fp32"},
        "embed_runtime": {"batch_size": 256, "workers": 0, "device": "cpu"},
    }
    return json.dumps(cfg)  # JSON is YAML


def snakemake(work: Path, a, *extra: str) -> float:
    """Run Snakemake in ``work`` (its log under work/); returns wall seconds."""
    cmd = [
        str(Path(sys.executable).parent / "snakemake"),
        "--cores",
        str(a.cores),
        "--configfile",
        "scale.yaml",
        *extra,
    ]
    t0 = time.perf_counter()
    with open(work / f"snakemake{'-report' if extra else ''}.log", "w") as log:
        proc = subprocess.run(cmd, check=False, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        say(
            f"snakemake {' '.join(extra)} failed (exit {proc.returncode}); see {work}/snakemake*.log"
        )
    return time.perf_counter() - t0


def table(work: Path) -> dict[str, dict]:
    """Per rule: jobs, summed and largest job seconds, CPU seconds, peak max_rss (MB), from
    the run's ``benchmark:`` files (:func:`rule_table.rule_table`)."""
    from rule_table import rule_table

    rows = rule_table(work / "results/scale")
    if (work / "results/leaderboard/benchmarks").is_dir():  # the run's one cross-dataset job
        rows += [r for r in rule_table(work / "results/leaderboard") if r["rule"] == "leaderboard"]
    return {r["rule"]: r for r in rows if r["rule"] != "total"}


def show(rules: dict, report_s: float) -> None:
    say(f"{'rule':18s} {'jobs':>5s} {'sum s':>9s} {'max s':>8s} {'cpu s':>8s} {'peak RSS MB':>12s}")
    for name, r in rules.items():
        say(
            f"{name:18s} {r['jobs']:5d} {r['sum_s']:9.1f} {r['max_s']:8.1f} {r['cpu_s']:8.1f} {r['max_rss_mb']:12.0f}"
        )
    rest = {k: v for k, v in rules.items() if k != "embed"}
    no_embed = sum(r["sum_s"] for r in rest.values())
    total = sum(r["sum_s"] for r in rules.values())
    worst = max((r["max_s"] for r in rest.values()), default=0.0)
    rss = max((r["max_rss_mb"] for r in rules.values()), default=0.0)
    rep = rules.get("report", {}).get("max_s", float("nan"))
    say(
        f"total job seconds: {total:.1f} with embed, {no_embed:.1f} without "
        f"(target <= {TARGETS['rules_s']}); longest non-embed job {worst:.1f} s "
        f"(target <= {TARGETS['job_s']}); peak RSS {rss:.0f} MB (target <= {TARGETS['rss_mb']}); "
        f"report job {rep:.1f} s (target <= {TARGETS['report_s']}); snakemake --report {report_s:.1f} s"
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=WIKIART_ROWS)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument(
        "--keep",
        default=None,
        help="run (and keep) it in this folder; default: a temp dir, removed",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--models",
        default="vit,convnext",
        help="which of the two tiny models to run (comma-separated); one halves the probe jobs",
    )
    ap.add_argument(
        "--table",
        metavar="DIR",
        help="only print the table of a run kept in DIR (finished or not)",
    )
    a = ap.parse_args(argv)
    if a.table:
        rules = table(Path(a.table))
        show(rules, float("nan"))
        return {"rules": rules}
    work = Path(a.keep or tempfile.mkdtemp(prefix="scale-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        if not (work / "source" / "data").is_dir():
            write_source(work / "source", a.rows, a.seed)
        say(
            f"{a.rows} rows generated in {time.perf_counter() - t0:.0f} s under {work}; load {os.getloadavg()}"
        )
        copy_workflow(work)
        (work / "scale.yaml").write_text(overlay(work / "source", a))
        wall = snakemake(work, a)
        report_s = snakemake(work, a, "--report", "report.html")
        rules = table(work)
        say(f"snakemake: {wall:.0f} s wall on {a.cores} cores; load now {os.getloadavg()}")
        show(rules, report_s)
        return {"rules": rules, "wall_s": wall, "report_s": report_s}
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
