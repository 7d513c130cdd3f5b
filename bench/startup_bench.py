"""Fixed cost of one embed job per model: what a new process pays before it embeds.

    python bench/startup_bench.py                        # the three seed models
    python bench/startup_bench.py --models convnext_atto --plain

For each model a random-weight ``.safetensors`` file is written once (``--weights-dir``), then
a fresh process embeds a tiny shard from it (``weights:``, ``pretrained: true``, as a job with
a local weights file does) and reports imports, then the provenance's ``fixed_costs``: model
build, weights load, fingerprint, weights hash, worker start, device init (model placement),
first batch. ``--plain`` also times ``timm.create_model(..., pretrained=True)`` from the same
file in a fresh process (the path before the meta-device build), for comparison.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, wikiart_jpegs, write_bench_shard

SEED_MODELS = (
    "eva02_large_patch14_224.mim_m38m",
    "convnextv2_huge.fcmae",
    "convnext_base.clip_laiona",
)

JOB = """
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
import torch, timm, torchvision  # what an embed job imports
from artprobe.settings import EmbedRuntime, ModelSpec
from artprobe.stages.embed import embed_shard
from artprobe.common.io import read_meta
imports = time.perf_counter() - t0
model = ModelSpec(timm_name={name!r}, pretrained=True, weights={weights!r}, weights_marker=None,
                  features="pooled", decode="fast", precision="auto")
runtime = EmbedRuntime(device="auto", batch_size=1, workers=1, compile=False, checkpoint_every=0,
                       threads=2, progress=False)
stats = embed_shard({shard!r}, {out!r}, model, runtime)
print("RESULT", json.dumps({{"imports_s": imports, "wall_s": stats["wall_seconds"],
                             **read_meta({out!r})["fixed_costs"]}}))
"""

PLAIN = """
import sys, time, json
import torch, timm
t0 = time.perf_counter()
m = timm.create_model({name!r}, pretrained=True, num_classes=0,
                      pretrained_cfg_overlay=dict(file={weights!r}))
print("RESULT", json.dumps({{"plain_create_s": time.perf_counter() - t0}}))
"""


def write_random_weights(name: str, path: Path) -> Path:
    """The model's state dict, random (normal, std 0.02; integer buffers zero), written without
    paying for timm's own initialisation."""
    import safetensors.torch
    import timm
    import torch

    if path.exists():
        return path
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    model = model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.normal_(0.0, 0.02, generator=gen)
            else:
                t.zero_()
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(sd, str(path) + ".tmp")
    Path(str(path) + ".tmp").rename(path)
    return path


def run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(line[len("RESULT ") :])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(SEED_MODELS))
    ap.add_argument(
        "--weights-dir", default=str(Path(tempfile.gettempdir()) / "artprobe-bench-weights")
    )
    ap.add_argument("--plain", action="store_true", help="also time timm's plain pretrained build")
    a = ap.parse_args(argv)
    from artprobe.embedding.weight_loading import file_sha256

    wdir = Path(a.weights_dir)
    wdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    shard = write_bench_shard(tmp / "s.parquet", wikiart_jpegs(1))
    for name in a.models:
        weights = write_random_weights(name, wdir / f"{name}.safetensors")
        t0 = time.perf_counter()
        file_sha256(weights)  # the first job of a file hashes it; later ones read the cache
        row = {"model": name, "file_gb": round(weights.stat().st_size / 1e9, 2)}
        row["first_hash_s"] = round(time.perf_counter() - t0, 2)
        row.update(
            run(
                JOB.format(
                    root=str(ROOT),
                    shard=str(shard),
                    out=str(tmp / f"{name}.parquet"),
                    name=name,
                    weights=str(weights),
                )
            )
        )
        if a.plain:
            row.update(run(PLAIN.format(name=name, weights=str(weights))))
        fixed = sum(row.get(k) or 0 for k in ("setup_s", "workers_s", "device_s"))
        row["fixed_beyond_imports_s"] = fixed
        print(
            json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}),
            flush=True,
        )


if __name__ == "__main__":
    main()
