"""Benchmark artprobe's embedder against the thesis loop on WikiArt-sized JPEGs.

    python bench/embed_bench.py --model convnext_atto --images 64
    python bench/embed_bench.py --model convnext_atto --images 64 --workers 1 --decode exact

One run prints, for the same model and the same generated images:

* end to end: ``artprobe.embedding.embed_shard`` on a generated shard (img/s of its loop);
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
from dataclasses import dataclass, field
from pathlib import Path

from common import say, thesis_loop, wikiart_jpegs, write_bench_shard


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="convnext_atto")
    p.add_argument("--images", type=int, default=64, help="images in the benchmark shard")
    p.add_argument(
        "--distinct", type=int, default=64, help="distinct images (the rest repeat their bytes)"
    )
    p.add_argument(
        "--thesis-images", type=int, default=None, help="images for the thesis loop (default: all)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers (default: cores - 1 on CPU)"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads in all (default: all cores)"
    )
    p.add_argument("--decode", default="fast", choices=["fast", "exact", "nvjpeg"])
    p.add_argument(
        "--pretrained", action="store_true", help="download pretrained weights (default: random)"
    )
    p.add_argument("--compile", action="store_true")
    p.add_argument(
        "--repeat", type=int, default=1, help="rounds (best of each is kept; for noisy machines)"
    )
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p.parse_args(argv)


@dataclass
class Bench:
    """One model's four measurements on one device; ``best`` keeps each one's best round."""

    args: argparse.Namespace
    dev: object
    cores: int
    threads: int
    workers: int
    best: dict = field(default_factory=dict)

    @classmethod
    def create(cls, args: argparse.Namespace) -> Bench:
        from artprobe.common.device import resolve_device
        from artprobe.embedding import n_cores

        dev, cores = resolve_device(args.device), n_cores()
        threads = args.threads or cores
        cpu_workers = max(1, threads - 1) if dev.type == "cpu" else min(8, cores)
        workers = args.workers if args.workers is not None else cpu_workers
        return cls(args, dev, cores, threads, workers)

    @property
    def model_threads(self) -> int | None:
        """On CPU the model gets the cores the decoding workers leave (as in embed_shard)."""
        return max(1, self.threads - self.workers) if self.dev.type == "cpu" else None

    def keep(self, name: str, r: dict) -> dict:
        if name not in self.best or r["img_per_s"] > self.best[name]["img_per_s"]:
            self.best[name] = r
        return r

    def model_only(self, iters: int) -> dict:
        from rates import model_only_rate

        a = self.args
        return model_only_rate(
            a.model,
            a.pretrained,
            batch_size=a.batch_size,
            precision=a.precision,
            device=a.device,
            compile=a.compile,
            iters=iters,
            warmup=1,
            threads=self.model_threads,
        )

    def end_to_end(self, shard: Path, out: Path) -> None:
        from artprobe.settings import EmbedRuntime, ModelSpec
        from artprobe.stages.embed import embed_shard

        a = self.args
        model = ModelSpec(
            timm_name=a.model,
            pretrained=a.pretrained,
            weights=None,
            weights_marker=None,
            features="pooled",
            decode=a.decode,
            precision=a.precision,
        )
        runtime = EmbedRuntime(
            device=a.device,
            batch_size=a.batch_size,
            workers=self.workers,
            compile=a.compile,
            checkpoint_every=10,
            threads=self.threads,
            progress=False,
        )
        e2e = embed_shard(shard, out, model, runtime)
        self.keep(
            "end_to_end",
            {k: e2e[k] for k in ("img_per_s", "steady_img_per_s", "seconds", "n_failed", "dtype")},
        )
        say(
            f"artprobe end to end : {e2e['img_per_s']:8.1f} img/s  ({e2e['n_rows']} images in "
            f"{e2e['seconds']:.1f} s, {e2e['dtype']})"
        )

    def decode_only(self, shard: Path) -> None:
        from rates import decode_only_rate

        a = self.args
        d = self.keep(
            "decode_only",
            decode_only_rate(
                shard,
                a.model,
                a.pretrained,
                decode=a.decode,
                batch_size=a.batch_size,
                workers=self.workers,
                device=a.device,
            ),
        )
        say(f"decode+preprocess   : {d['img_per_s']:8.1f} img/s  ({self.workers} workers)")

    def thesis(self, images: list[bytes]) -> None:
        """On CPU the thesis loop runs with all threads and with one (OpenMP threads that share
        a busy core can be many times slower); the faster is the baseline."""
        import torch

        from artprobe.embedding import load_model

        counts = (
            sorted({self.threads, 1}, reverse=True)
            if self.dev.type == "cpu"
            else [torch.get_num_threads()]
        )
        model = load_model(self.args.model, self.args.pretrained, cache=False)[0].to(
            self.dev
        )  # artprobe's weights
        old = torch.get_num_threads()
        try:
            for t in counts:
                torch.set_num_threads(t)
                th = self.keep(
                    "thesis_loop", dict(thesis_loop(model, images, str(self.dev)), threads=t)
                )
                say(
                    f"thesis loop         : {th['img_per_s']:8.1f} img/s  ({len(images)} images, {t} threads)"
                )
        finally:
            torch.set_num_threads(old)

    def round(self, shard: Path, tmp: Path, images: list[bytes]) -> None:
        a = self.args
        self.end_to_end(shard, tmp / "emb.parquet")
        iters = max(2, min(10, a.images // a.batch_size))
        m = self.keep("model_only", self.model_only(iters))
        say(
            f"model only          : {m['img_per_s']:8.1f} img/s  ({iters} batches of {a.batch_size}, "
            f"{m['threads']} threads)"
        )
        self.decode_only(shard)
        self.thesis(images[: min(len(images), a.thesis_images or len(images))])

    def verdict(self) -> dict:
        """The bottleneck and the ratios, from each measurement's best round."""
        e2e, model, dec, thesis = (
            self.best[k] for k in ("end_to_end", "model_only", "decode_only", "thesis_loop")
        )
        if self.args.repeat > 1:
            say(
                f"-- best of {self.args.repeat} rounds: end to end {e2e['img_per_s']:.1f}, model only "
                f"{model['img_per_s']:.1f}, decode {dec['img_per_s']:.1f}, thesis {thesis['img_per_s']:.1f} "
                f"({thesis['threads']} threads) img/s"
            )
        out = {
            "bottleneck": "model" if model["img_per_s"] < dec["img_per_s"] else "decode+preprocess",
            "speedup_vs_thesis": e2e["img_per_s"] / thesis["img_per_s"],
            "end_to_end_vs_model_only": e2e["img_per_s"] / model["img_per_s"],
        }
        say(
            f"bottleneck: {out['bottleneck']} (model {model['img_per_s']:.1f} vs input pipeline "
            f"{dec['img_per_s']:.1f} img/s"
            + ("; on CPU both share the same cores)" if self.dev.type == "cpu" else ")")
        )
        say(
            f"speed-up vs thesis loop: {out['speedup_vs_thesis']:.1f}x; end to end = "
            f"{100 * out['end_to_end_vs_model_only']:.0f} % of model-only"
        )
        return out


def main(argv=None) -> dict:
    import torch

    args = parse_args(argv)
    bench = Bench.create(args)
    say(
        f"# {args.model} on {bench.dev} ({bench.cores} cores), batch {args.batch_size}, {bench.workers} workers, "
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
        "device": str(bench.dev),
        "cores": bench.cores,
        "workers": bench.workers,
        "batch_size": args.batch_size,
        "decode": args.decode,
        "precision": args.precision,
        "images": len(images),
        "mean_kb": mb,
    }
    with tempfile.TemporaryDirectory() as tmp:
        shard = write_bench_shard(Path(tmp) / "bench.parquet", images)
        bench.model_only(
            iters=1
        )  # model creation (cached) and first-call costs outside the timings
        for r in range(args.repeat):
            if args.repeat > 1:
                say(f"-- round {r + 1} of {args.repeat}")
            bench.round(shard, Path(tmp), images)
    res.update(bench.best)
    res.update(bench.verdict())
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str) + "\n")
    return res


if __name__ == "__main__":
    main()
