"""Benchmark artprobe's embedder against the thesis loop on WikiArt-sized JPEGs.

    python bench/embed_bench.py --model convnext_atto --images 64
    python bench/embed_bench.py --model convnext_atto --images 64 --workers 1 --decode exact

One run prints, for the same model and the same generated images:

* end to end: ``artprobe.embed.embed_shard`` on a generated shard (img/s of its loop);
* the thesis loop, copied faithfully: per image PIL open, the timm eval transform,
  ``model(x.unsqueeze(0))`` with autograd on, ``.tolist()``;
* the model alone (forward on ready-made batches, same batch size and precision) and the
  input pipeline alone (decode + preprocess in the DataLoader, no model);

then names the bottleneck and the speed-up over the thesis loop.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import say, thesis_loop, wikiart_jpegs, write_bench_shard


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="convnext_atto")
    p.add_argument("--images", type=int, default=64, help="images in the benchmark shard")
    p.add_argument("--distinct", type=int, default=64, help="distinct images (the rest repeat their bytes)")
    p.add_argument(
        "--thesis-images", type=int, default=None, help="images for the thesis loop (default: all)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: cores - 1 on CPU)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads in all (default: all cores)")
    p.add_argument("--decode", default="fast", choices=["fast", "exact", "nvjpeg"])
    p.add_argument("--pretrained", action="store_true", help="download pretrained weights (default: random)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--repeat", type=int, default=1, help="rounds (best of each is kept; for noisy machines)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    import torch

    from artprobe.device import resolve_device
    from artprobe.embed import embed_shard, load_model, n_cores
    from rates import decode_only_rate, model_only_rate

    dev = resolve_device(args.device)
    cores = n_cores()
    threads = args.threads or cores
    workers = (
        args.workers
        if args.workers is not None
        else (max(1, threads - 1) if dev.type == "cpu" else min(8, cores))
    )
    model_threads = max(1, threads - workers) if dev.type == "cpu" else None
    say(
        f"# {args.model} on {dev} ({cores} cores), batch {args.batch_size}, {workers} workers, "
        f"decode={args.decode}, precision={args.precision}, torch {torch.__version__}"
    )
    t0 = time.perf_counter()
    images = wikiart_jpegs(args.images, args.distinct)
    mb = sum(map(len, images)) / len(images) / 1e3
    say(
        f"generated {len(images)} JPEGs ({min(len(images), args.distinct)} distinct, mean {mb:.0f} kB) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    res: dict = {
        "model": args.model,
        "device": str(dev),
        "cores": cores,
        "workers": workers,
        "batch_size": args.batch_size,
        "decode": args.decode,
        "precision": args.precision,
        "images": len(images),
        "mean_kb": mb,
    }
    n_thesis = min(len(images), args.thesis_images or len(images))
    iters = max(2, min(10, args.images // args.batch_size))
    thesis_threads = sorted({threads, 1}, reverse=True) if dev.type == "cpu" else [torch.get_num_threads()]
    best: dict = {}

    def keep(name: str, r: dict) -> dict:
        if name not in best or r["img_per_s"] > best[name]["img_per_s"]:
            best[name] = r
        return r

    with tempfile.TemporaryDirectory() as tmp:
        shard = write_bench_shard(Path(tmp) / "bench.parquet", images)
        # model creation (cached) and first-call costs outside the timings
        model_only_rate(
            args.model,
            args.pretrained,
            batch_size=args.batch_size,
            precision=args.precision,
            device=args.device,
            compile=args.compile,
            iters=1,
            warmup=1,
            threads=model_threads,
        )
        for r in range(args.repeat):
            if args.repeat > 1:
                say(f"-- round {r + 1} of {args.repeat}")
            e2e = embed_shard(
                shard,
                Path(tmp) / "emb.parquet",
                timm_name=args.model,
                pretrained=args.pretrained,
                decode=args.decode,
                precision=args.precision,
                batch_size=args.batch_size,
                workers=workers,
                device=args.device,
                compile=args.compile,
                progress=False,
                threads=threads,
            )
            keep(
                "end_to_end",
                {k: e2e[k] for k in ("img_per_s", "steady_img_per_s", "seconds", "n_failed", "dtype")},
            )
            say(
                f"artprobe end to end : {e2e['img_per_s']:8.1f} img/s  ({e2e['n_rows']} images in "
                f"{e2e['seconds']:.1f} s, {e2e['dtype']})"
            )
            m = keep(
                "model_only",
                model_only_rate(
                    args.model,
                    args.pretrained,
                    batch_size=args.batch_size,
                    precision=args.precision,
                    device=args.device,
                    compile=args.compile,
                    iters=iters,
                    warmup=1,
                    threads=model_threads,
                ),
            )
            say(
                f"model only          : {m['img_per_s']:8.1f} img/s  ({iters} batches of {args.batch_size}, "
                f"{m['threads']} threads)"
            )
            d = keep(
                "decode_only",
                decode_only_rate(
                    shard,
                    args.model,
                    args.pretrained,
                    decode=args.decode,
                    batch_size=args.batch_size,
                    workers=workers,
                    device=args.device,
                ),
            )
            say(f"decode+preprocess   : {d['img_per_s']:8.1f} img/s  ({workers} workers)")
            # On CPU the thesis loop runs with all threads and with one (OpenMP threads that
            # share a busy core can be many times slower); the faster is the baseline.
            old = torch.get_num_threads()
            model = load_model(args.model, args.pretrained, cache=False)[0].to(dev)  # artprobe's weights
            try:
                for t in thesis_threads:
                    torch.set_num_threads(t)
                    th = keep(
                        "thesis_loop",
                        dict(
                            thesis_loop(model, images[:n_thesis], str(dev)), threads=t
                        ),
                    )
                    say(
                        f"thesis loop         : {th['img_per_s']:8.1f} img/s  ({n_thesis} images, {t} threads)"
                    )
            finally:
                torch.set_num_threads(old)
    res.update(best)
    e2e, model_only, dec, thesis = (
        best["end_to_end"],
        best["model_only"],
        best["decode_only"],
        best["thesis_loop"],
    )
    if args.repeat > 1:
        say(
            f"-- best of {args.repeat} rounds: end to end {e2e['img_per_s']:.1f}, model only "
            f"{model_only['img_per_s']:.1f}, decode {dec['img_per_s']:.1f}, thesis {thesis['img_per_s']:.1f} "
            f"({thesis['threads']} threads) img/s"
        )
    bottleneck = "model" if model_only["img_per_s"] < dec["img_per_s"] else "decode+preprocess"
    speedup = e2e["img_per_s"] / thesis["img_per_s"]
    res.update(
        bottleneck=bottleneck,
        speedup_vs_thesis=speedup,
        end_to_end_vs_model_only=e2e["img_per_s"] / model_only["img_per_s"],
    )
    say(
        f"bottleneck: {bottleneck} (model {model_only['img_per_s']:.1f} vs input pipeline {dec['img_per_s']:.1f} img/s"
        + ("; on CPU both share the same cores)" if dev.type == "cpu" else ")")
    )
    say(
        f"speed-up vs thesis loop: {speedup:.1f}x; end to end = {100 * res['end_to_end_vs_model_only']:.0f} % of model-only"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str) + "\n")
    return res


if __name__ == "__main__":
    main()
