"""GPU follow-up to gpu_check.py: end to end with torch.compile once its compilation is paid.

gpu_check.py times `compile` on one 3,000-image shard, where the ~35 s compilation swamps the
~2 s of work. Here one process warms the compiled model on a small shard first (dynamo keeps
the compiled graphs for the cached model), then times fast-decode and nvjpeg end to end on a
larger shard, beside the thesis loop on the same images.

    python bench/gpu_compile_check.py --out compile.json [--images 4000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import thesis_loop, wikiart_jpegs, write_bench_shard

from artprobe import embedding as E
from artprobe.stages.embed import embed_shard


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--model", default="eva02_large_patch14_224.mim_m38m")
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=14)
    p.add_argument("--quick", action="store_true", help="CPU smoke test with a tiny model")
    a = p.parse_args()
    if a.quick:
        a.model, a.images, a.batch_size, a.workers = "test_vit", 48, 16, 1
    figures: dict = {"model": a.model, "images": a.images, "batch_size": a.batch_size}
    distinct = wikiart_jpegs(64, procs=min(16, a.workers + 1))
    tmp = Path(tempfile.mkdtemp())
    warm = write_bench_shard(tmp / "warm.parquet", (distinct * 8)[: a.batch_size + 7], 1024)
    shard = write_bench_shard(
        tmp / "big.parquet", (distinct * (a.images // 64 + 1))[: a.images], 1024
    )
    modes = ["fast"] if a.quick else ["fast", "nvjpeg"]
    runtime = E.EmbedRuntime(
        device="auto",
        batch_size=a.batch_size,
        workers=a.workers,
        compile=True,
        checkpoint_every=10,
        threads=E.n_cores(),
        progress=False,
    )
    for decode in modes:
        model = E.ModelSpec(
            timm_name=a.model,
            pretrained=False,
            weights=None,
            weights_marker=None,
            features="pooled",
            decode=decode,
            precision="auto",
        )
        t = time.perf_counter()
        embed_shard(warm, tmp / f"w_{decode}.parquet", model, runtime)
        figures[f"warmup_{decode}_s"] = time.perf_counter() - t
        st = embed_shard(shard, tmp / f"e_{decode}.parquet", model, runtime)
        figures[f"end_to_end_compile_{decode}"] = {
            k: st[k] for k in ("img_per_s", "steady_img_per_s", "seconds", "dtype")
        }
        print(
            f"{decode}+compile: warm-up {figures[f'warmup_{decode}_s']:.1f} s, end to end "
            f"{st['img_per_s']:.0f} img/s (steady {st['steady_img_per_s']:.0f})",
            flush=True,
        )
    model, _ = E.load_model(a.model, False)
    model = model.to("cpu" if a.quick else "cuda")
    th = thesis_loop(
        model, distinct[:50] if not a.quick else distinct[:4], "cuda" if not a.quick else "cpu"
    )
    figures["thesis_loop"] = th
    rate = th["img_per_s"] if isinstance(th, dict) else float(th)
    for decode in modes:
        r = figures[f"end_to_end_compile_{decode}"]["img_per_s"] / rate
        figures[f"ratio_{decode}_vs_thesis"] = r
        print(f"{decode}+compile vs thesis loop ({rate:.1f} img/s): {r:.1f}x", flush=True)
    Path(a.out).write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
