"""The embed stage's throughput as a user sees it: the real workflow (snakemake, the real rules,
one job per shard) against the in-process rate on the same shards.

    python bench/workflow_bench.py --model convnext_atto --images 512 --shard-rows 256
    python bench/workflow_bench.py --model eva02_large_patch14_224.mim_m38m --precision bf16 \\
        --images 8000 --batch-size 256 --workers 12 --cores 16        # on a GPU machine

Generates WikiArt-sized JPEGs (long side 1,500–2,000 px, a few distinct pictures re-encoded at
varying quality) as a local source in the hub's layout, writes a random-weight ``.safetensors``
for the model (used as ``weights:`` with ``pretrained: true``, the path a real pretrained model
takes; ``--random-init`` uses ``pretrained: false``), runs Snakemake up to the model's merged
embeddings in a temporary copy of the workflow, and prints in one run:

* workflow rate: images / the sum of the embed jobs' wall seconds (Snakemake's own
  ``benchmark:`` files, ``results/bench/benchmarks/embed/<model>/<shard>.tsv``);
* in-process rate: ``embed_shard`` on the same shards in this process, model already built
  (rows / the sum of its loop seconds);
* their ratio, and one job's fixed costs (from its provenance), and the ratio projected for
  other shard sizes from the measured fixed cost and rate.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import copy_workflow, say, wikiart_jpegs

COSTS = (
    "imports_s",
    "build_s",
    "load_s",
    "fingerprint_s",
    "sha256_s",
    "prepare_s",
    "setup_s",
    "workers_s",
    "device_s",
    "first_batch_s",
)


def write_source(folder: Path, images: list[bytes], per_file: int = 1000) -> None:
    """``images`` as a local dataset in the hub's layout (Image + ClassLabel genre/style)."""
    import datasets
    import numpy as np

    from artprobe.stages.generate_demo import GENRES, STYLES

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "genre": datasets.ClassLabel(names=GENRES),
            "style": datasets.ClassLabel(names=STYLES),
        }
    )
    rng = np.random.default_rng(0)
    n_files = -(-len(images) // per_file)
    for k in range(n_files):
        part = images[k * per_file : (k + 1) * per_file]
        rows = {
            "image": [{"bytes": b, "path": None} for b in part],
            "genre": rng.integers(0, len(GENRES), len(part)).tolist(),
            "style": rng.integers(0, len(STYLES), len(part)).tolist(),
        }
        path = folder / "data" / f"train-{k:05d}-of-{n_files:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))


def overlay(a, source: Path, weights: Path | None) -> str:
    model = {"name": "m", "timm": a.model, "pretrained": weights is not None}
    if weights is not None:
        model["weights"] = str(weights)
    cfg = {
        "use_datasets": ["bench"],
        "datasets": {"bench": {"source": str(source), "targets": ["genre", "style"]}},
        "shards": {"rows": a.shard_rows} if a.shard_rows else {},
        "models": [model],
        "embed": {"decode": a.decode, "precision": a.precision},
        "embed_runtime": {"batch_size": a.batch_size, "workers": a.workers, "device": a.device},
    }
    return json.dumps({k: v for k, v in cfg.items() if v != {}})  # JSON is YAML


def run_workflow(work: Path, a) -> float:
    """Snakemake up to the merged embeddings; returns its wall seconds."""
    copy_workflow(work)
    cmd = [str(Path(sys.executable).parent / "snakemake"), "results/bench/embeddings/m.parquet"]
    cmd += ["--cores", str(a.cores), "--configfile", "bench.yaml", "--resources", f"gpu={a.gpus}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"snakemake failed:\n{proc.stderr[-6000:]}")
    return time.perf_counter() - t0


def job_seconds(work: Path) -> dict[str, float]:
    """Shard -> wall seconds of its embed job, from Snakemake's benchmark files."""
    out = {}
    for tsv in sorted((work / "results/bench/benchmarks/embed/m").glob("*.tsv")):
        with open(tsv) as f:
            out[tsv.stem] = float(next(csv.DictReader(f, delimiter="\t"))["s"])
    return out


def in_process(work: Path, a, weights: Path | None) -> tuple[int, float]:
    """(rows, loop seconds) of embed_shard over the same shards in this process."""
    from artprobe.embedding import load_model
    from artprobe.settings import EmbedRuntime, ModelSpec
    from artprobe.stages.embed import embed_shard

    load_model(a.model, weights is not None, weights=weights and str(weights))  # built once
    rows = secs = 0
    out = Path(tempfile.mkdtemp(prefix="inproc-", dir=work))
    for shard in sorted((work / "results/bench/shards").glob("*.parquet")):
        model = ModelSpec(
            timm_name=a.model,
            pretrained=weights is not None,
            weights=weights and str(weights),
            weights_marker=None,
            features="pooled",
            decode=a.decode,
            precision=a.precision,
        )
        runtime = EmbedRuntime(
            device=a.device,
            batch_size=a.batch_size,
            workers=a.workers if a.workers is not None else a.threads,
            compile=False,
            checkpoint_every=10,
            threads=a.threads,
            progress=False,
        )
        s = embed_shard(shard, out / shard.name, model, runtime)
        rows, secs = rows + s["n_rows"], secs + s["seconds"]
    return rows, secs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="convnext_atto")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument(
        "--shard-rows", type=int, default=None, help="default: the config's shards.rows"
    )
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--decode", default="fast")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=None, help="default: the job's threads")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cores", type=int, default=4)
    ap.add_argument("--gpus", type=int, default=1, help="embed jobs at once (resources gpu=)")
    ap.add_argument(
        "--random-init", action="store_true", help="pretrained: false (no weights file)"
    )
    ap.add_argument(
        "--workdir", default=None, help="keep the run here (default: a temp dir, removed)"
    )
    a = ap.parse_args(argv)
    a.threads = min(4, a.cores)  # the embed rule's threads, capped by --cores as Snakemake does
    work = Path(a.workdir or tempfile.mkdtemp(prefix="workflow-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report(work, a)
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def report(work: Path, a) -> None:
    from startup_bench import write_random_weights

    from artprobe.common.io import read_meta

    t0 = time.perf_counter()
    images = wikiart_jpegs(a.images, 8, long_side=(1500, 2000), qualities=(70, 75, 80, 85))
    write_source(work / "source", images)
    weights = None if a.random_init else write_random_weights(a.model, work / "weights.safetensors")
    (work / "bench.yaml").write_text(overlay(a, work / "source", weights))
    say(
        f"{a.images} images, {sum(map(len, images)) / len(images) / 1e3:.0f} KB on average "
        f"(generated in {time.perf_counter() - t0:.0f} s); model {a.model}"
    )
    wall = run_workflow(work, a)
    jobs = job_seconds(work)
    outs = sorted((work / "results/bench/embeddings/m").glob("*.parquet"))
    metas = [read_meta(p) for p in outs]
    rows = sum(m["rows"] for m in metas)
    n_proc, loop_s = in_process(work, a, weights)
    wf_rate, ip_rate = rows / sum(jobs.values()), n_proc / loop_s
    big = max(metas, key=lambda m: m["rows"])
    costs = big["fixed_costs"]
    start = jobs[Path(big["shard"]).stem] - costs["call_s"]
    fixed = jobs[Path(big["shard"]).stem] - big["rows"] / ip_rate
    say(
        f"snakemake: {wall:.1f} s wall for {len(jobs)} embed jobs of <= {big['rows']} rows, "
        f"on {big['device_name']} ({big['dtype']}, batch {big['batch_size']}, {big['workers']} workers)"
    )
    say(
        f"workflow rate:   {wf_rate:8.1f} img/s  ({rows} images / {sum(jobs.values()):.1f} s of embed jobs)"
    )
    say(
        f"in-process rate: {ip_rate:8.1f} img/s  ({n_proc} images / {loop_s:.1f} s of embed_shard loops)"
    )
    say(f"ratio:           {wf_rate / ip_rate:8.1%}")
    say(
        f"one job ({big['shard']}, {jobs[Path(big['shard']).stem]:.1f} s): script start {start:.2f} s, "
        + ", ".join(
            f"{k[:-2].replace('_', ' ')} {costs[k]:.2f} s"
            for k in COSTS
            if costs.get(k) is not None
        )
    )
    say(f"fixed cost per job ~ {fixed:.1f} s (job wall - rows / in-process rate); projected ratio:")
    for n in (2048, 4096, 8192, 16384, 32768):
        say(f"  {n:6d} rows/shard: {n / ip_rate / (n / ip_rate + fixed):6.1%}")


if __name__ == "__main__":
    main()
