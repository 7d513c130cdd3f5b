"""One-shot GPU check of artprobe's embedder, sized for ~6 minutes on one H200 (16 cores).

    python bench/gpu_check.py --out gpu_check.json                  # the real check (CUDA)
    python bench/gpu_check.py --out gpu_check.json --nvjpeg --compile
    python bench/gpu_check.py --quick --out /tmp/gpu_check.json     # smoke test on CPU

Self-contained: needs only torch, timm, torchvision, pyarrow, numpy, pillow, tqdm and the
artprobe package of this repository (found relative to this file). With
``eva02_large_patch14_224.mim_m38m`` (random weights, bf16) it measures, on the same
generated WikiArt-sized JPEGs (64 distinct ones, bytes repeated):

* model only: forward on ready-made batches on the GPU;
* decode only: the DataLoader pipeline alone (decode + preprocess + copy to the GPU);
* end to end: ``artprobe.embedding.embed_shard`` on a generated shard;
* the thesis loop (per image: PIL, timm transform, ``model(x.unsqueeze(0))`` with autograd,
  ``.tolist()``) on a few images;
* optionally decode="nvjpeg" (``--nvjpeg``) and ``torch.compile`` (``--compile``);

and prints the ratios against the targets (end to end >= 70 % of model only, >= 100x the
thesis loop). Every step prints as it ends and the JSON (``--out``) is rewritten after each
step, so a run cut short still leaves its figures. Steps that would overrun ``--budget-s``
are skipped.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import common
from common import thesis_loop, wikiart_jpegs, write_bench_shard

T0 = time.perf_counter()
RESULTS: dict = {"steps": {}}
OUT: Path | None = None
say = functools.partial(common.say, since=T0)
E2E_KEYS = (
    "img_per_s",
    "steady_img_per_s",
    "seconds",
    "first_batch_s",
    "n_rows",
    "n_failed",
    "dtype",
    "device_name",
    "embedding_dim",
)


def save() -> None:
    if OUT is None:
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_name(f".{OUT.name}.tmp")
    tmp.write_text(json.dumps(RESULTS, indent=2, default=str) + "\n")
    os.replace(tmp, OUT)


def elapsed() -> float:
    return time.perf_counter() - T0


def step(name: str, fn, *, budget: float, need_s: float = 0.0):
    """Run one measurement; record its result or its error; skip it if time is short."""
    left = budget - elapsed()
    if left < need_s:
        say(f"SKIP {name}: {left:.0f} s left, needs ~{need_s:.0f} s")
        RESULTS["steps"][name] = {"skipped": f"{left:.0f} s left, needs ~{need_s:.0f} s"}
        save()
        return None
    t = time.perf_counter()
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001 - report and go on with the other steps
        say(f"FAIL {name}: {type(exc).__name__}: {exc}")
        RESULTS["steps"][name] = {
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
        save()
        return None
    out = dict(out or {})
    out["step_seconds"] = round(time.perf_counter() - t, 2)
    RESULTS["steps"][name] = out
    save()
    return out


# --------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """What one run measures, with the --quick or full-size defaults filled in."""

    model: str
    images: int
    distinct: int
    batch: int
    workers: int
    thesis: int
    budget: float
    precision: str
    device: str
    cores: int
    quick: bool
    nvjpeg: bool
    compile: bool
    exact: bool

    @property
    def common(self) -> dict:
        return dict(batch_size=self.batch, precision=self.precision, device=self.device)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--out", required=True, help="JSON file for the figures (rewritten after every step)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny numbers and a tiny model: a smoke test, CPU is fine",
    )
    p.add_argument(
        "--model", default=None, help="timm model (default eva02_large_patch14_224.mim_m38m)"
    )
    p.add_argument(
        "--images", type=int, default=None, help="images in the end-to-end shard (default 3000)"
    )
    p.add_argument(
        "--distinct", type=int, default=None, help="distinct JPEGs generated (default 64)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="default 256")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader workers (default cores - 2, at most 14)",
    )
    p.add_argument(
        "--thesis-images", type=int, default=None, help="images for the thesis loop (default 50)"
    )
    p.add_argument("--precision", default="auto", help="auto = bf16 on CUDA")
    p.add_argument("--device", default="auto")
    p.add_argument("--nvjpeg", action="store_true", help="also measure decode='nvjpeg'")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile")
    p.add_argument("--exact", action="store_true", help="also measure decode='exact'")
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="skip steps that would end after this (default 330)",
    )
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace, cores: int) -> Plan:
    quick = args.quick
    return Plan(
        model=args.model or ("test_vit" if quick else "eva02_large_patch14_224.mim_m38m"),
        images=args.images or (48 if quick else 3000),
        distinct=args.distinct or (8 if quick else 64),
        batch=args.batch_size or (16 if quick else 256),
        workers=args.workers
        if args.workers is not None
        else (2 if quick else max(1, min(14, cores - 2))),
        thesis=args.thesis_images or (4 if quick else 50),
        budget=args.budget_s or (300.0 if quick else 330.0),
        precision=args.precision,
        device=args.device,
        cores=cores,
        quick=quick,
        nvjpeg=args.nvjpeg,
        compile=args.compile,
        exact=args.exact,
    )


def environment(plan: Plan, dev) -> dict:
    """Versions, machine and settings, recorded first (a run cut short still says where it ran)."""
    import timm
    import torch
    import torchvision

    cuda = dev.type == "cuda"
    env = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "platform": platform.platform(),
        "cores": plan.cores,
        "device": str(dev),
        "device_name": (
            torch.cuda.get_device_name(dev) if cuda else platform.processor() or platform.machine()
        ),
        "model": plan.model,
        "images": plan.images,
        "distinct": plan.distinct,
        "batch_size": plan.batch,
        "workers": plan.workers,
        "thesis_images": plan.thesis,
        "precision": plan.precision,
        "budget_s": plan.budget,
    }
    try:
        env["shm_free_gb"] = round(shutil.disk_usage("/dev/shm").free / 1e9, 1)
    except OSError:
        env["shm_free_gb"] = None
    return env


# --------------------------------------------------------------------------- the steps


def make_data(plan: Plan, tmp: Path) -> tuple[list[bytes], Path]:
    """The generated JPEGs (``distinct`` of them, repeated) and the shard holding them."""
    t = time.perf_counter()
    images = wikiart_jpegs(plan.images, plan.distinct, procs=min(plan.cores, 16))
    uniq = images[: plan.distinct]
    shard = write_bench_shard(tmp / "shard.parquet", images, row_group_size=1024)
    data = {
        "distinct": len(uniq),
        "images": plan.images,
        "mean_kb": sum(map(len, uniq)) / len(uniq) / 1e3,
        "seconds": time.perf_counter() - t,
    }
    RESULTS["data"] = data
    save()
    say(
        f"data: {plan.images} JPEGs ({len(uniq)} distinct, mean {data['mean_kb']:.0f} kB) in {data['seconds']:.1f} s"
    )
    return images, shard


def end_to_end(
    plan: Plan, shard: Path, tmp: Path, decode: str = "fast", compile: bool = False
) -> dict:
    from artprobe import embedding as E
    from artprobe.stages.embed import embed_shard

    out = tmp / f"emb_{decode}_{int(compile)}.parquet"
    model = E.ModelSpec(
        timm_name=plan.model,
        pretrained=False,
        weights=None,
        weights_marker=None,
        features="pooled",
        decode=decode,
        precision=plan.precision,
    )
    runtime = E.EmbedRuntime(
        device=plan.device,
        batch_size=plan.batch,
        workers=plan.workers,
        compile=compile,
        checkpoint_every=10,
        threads=E.n_cores(),
        progress=True,
    )
    st = embed_shard(shard, out, model, runtime)
    out.unlink(missing_ok=True)
    return {k: st[k] for k in E2E_KEYS}


def model_only(plan: Plan, model_threads, compile: bool = False) -> dict:
    import rates

    return rates.model_only_rate(
        plan.model,
        False,
        compile=compile,
        iters=2 if plan.quick else 12,
        warmup=2 if compile else (1 if plan.quick else 3),
        threads=model_threads,
        **plan.common,
    )


def decode_only(plan: Plan, shard: Path, decode: str = "fast") -> dict:
    import rates

    return rates.decode_only_rate(
        shard,
        plan.model,
        decode=decode,
        batch_size=plan.batch,
        workers=plan.workers,
        device=plan.device,
    )


def thesis(plan: Plan, images: list[bytes], dev) -> dict:
    import torch

    from artprobe import embedding as E

    model, _ = E.load_model(plan.model, False)
    model = model.to(dev).to(memory_format=torch.contiguous_format)
    return thesis_loop(model, images[: plan.thesis], str(dev))


def rate_line(r: dict) -> str:
    return f"{r['img_per_s']:.0f} img/s (steady {r['steady_img_per_s']:.0f})"


def measure_fast(plan: Plan, images: list[bytes], shard: Path, tmp: Path, dev) -> None:
    """The four measurements every run makes: model only, end to end, decode only, thesis."""
    # on CPU the model gets the cores the decoding workers leave (as in embed_shard)
    threads = None if dev.type == "cuda" else max(1, plan.cores - plan.workers)
    r = step("model_only", lambda: model_only(plan, threads), budget=plan.budget)
    if r:
        say(f"model only: {r['img_per_s']:.0f} img/s ({r['dtype']}, batch {plan.batch})")
    r = step("end_to_end", lambda: end_to_end(plan, shard, tmp), budget=plan.budget)
    if r:
        say(
            f"end to end: {r['img_per_s']:.0f} img/s (steady {r['steady_img_per_s']:.0f}; first batch after "
            f"{r['first_batch_s']:.1f} s; {r['n_failed']} failed)"
        )
    r = step("decode_only", lambda: decode_only(plan, shard), budget=plan.budget)
    if r:
        say(
            f"decode only: {r['img_per_s']:.0f} img/s (steady {r['steady_img_per_s']:.0f}, {plan.workers} workers)"
        )
    r = step("thesis_loop", lambda: thesis(plan, images, dev), budget=plan.budget, need_s=20)
    if r:
        say(f"thesis loop: {r['img_per_s']:.1f} img/s ({plan.thesis} images, fp32, autograd on)")


def measure_options(plan: Plan, shard: Path, tmp: Path, dev) -> None:
    """--nvjpeg, --exact and --compile: the other decode modes and torch.compile."""
    budget = plan.budget
    if plan.nvjpeg and dev.type != "cuda":
        say("SKIP nvjpeg: needs CUDA")
    elif plan.nvjpeg:
        r = step(
            "decode_only_nvjpeg",
            lambda: decode_only(plan, shard, "nvjpeg"),
            budget=budget,
            need_s=15,
        )
        if r:
            say(f"decode only (nvjpeg): {rate_line(r)}")
        r = step(
            "end_to_end_nvjpeg",
            lambda: end_to_end(plan, shard, tmp, "nvjpeg"),
            budget=budget,
            need_s=20,
        )
        if r:
            say(f"end to end (nvjpeg): {rate_line(r)}")
    if plan.exact:
        r = step(
            "decode_only_exact", lambda: decode_only(plan, shard, "exact"), budget=budget, need_s=15
        )
        if r:
            say(f"decode only (exact): {rate_line(r)}")
    if plan.compile:
        threads = None if dev.type == "cuda" else max(1, plan.cores - plan.workers)
        r = step(
            "model_only_compile",
            lambda: model_only(plan, threads, compile=True),
            budget=budget,
            need_s=90,
        )
        if r:
            say(
                f"model only (compile): {r['img_per_s']:.0f} img/s (compile+warm-up {r['warmup_s']:.0f} s)"
            )
        r = step(
            "end_to_end_compile",
            lambda: end_to_end(plan, shard, tmp, compile=True),
            budget=budget,
            need_s=60,
        )
        if r:
            say(f"end to end (compile): {rate_line(r)}")


# --------------------------------------------------------------------------- the summary


def rate(name: str, key: str = "img_per_s") -> float | None:
    v = RESULTS["steps"].get(name, {}).get(key)
    return v if isinstance(v, (int, float)) and v == v else None


def summarize() -> dict:
    """Ratios against the targets: end to end vs model only, vs the thesis loop, the best mode."""
    summary = {}
    m, e, d, th = rate("model_only"), rate("end_to_end"), rate("decode_only"), rate("thesis_loop")
    es = rate("end_to_end", "steady_img_per_s")
    if m and e:
        summary["end_to_end_vs_model_only"] = e / m
        summary["steady_end_to_end_vs_model_only"] = (es or e) / m
    if e and th:
        summary["end_to_end_vs_thesis"] = e / th
    if m and d:
        summary["bottleneck"] = "model" if m < d else "decode+preprocess"
    for extra in ("end_to_end_nvjpeg", "end_to_end_compile"):
        if rate(extra) and th:
            summary[f"{extra}_vs_thesis"] = rate(extra) / th
        if rate(extra) and m:
            summary[f"{extra}_vs_model_only"] = rate(extra) / m
    modes = {"fast": e, "nvjpeg": rate("end_to_end_nvjpeg"), "compile": rate("end_to_end_compile")}
    modes = {k: v for k, v in modes.items() if v}
    if modes:
        best_mode = max(modes, key=modes.get)
        summary["best_end_to_end_mode"] = best_mode
        if m:
            summary["best_end_to_end_vs_model_only"] = modes[best_mode] / m
        if th:
            summary["best_end_to_end_vs_thesis"] = modes[best_mode] / th
    summary["targets"] = {
        "end_to_end (decode=fast) >= 70% of model only": summary.get("end_to_end_vs_model_only", 0)
        >= 0.70,
        "end_to_end (decode=fast) >= 100x thesis loop": summary.get("end_to_end_vs_thesis", 0)
        >= 100,
        "best end_to_end >= 70% of model only": summary.get("best_end_to_end_vs_model_only", 0)
        >= 0.70,
        "best end_to_end >= 100x thesis loop": summary.get("best_end_to_end_vs_thesis", 0) >= 100,
    }
    summary["total_seconds"] = elapsed()
    return summary


SUMMARY_ROWS = [
    ("model only", "model_only", "img_per_s"),
    ("decode only", "decode_only", "img_per_s"),
    ("end to end", "end_to_end", "img_per_s"),
    ("end to end steady", "end_to_end", "steady_img_per_s"),
    ("thesis loop", "thesis_loop", "img_per_s"),
    ("decode only nvjpeg", "decode_only_nvjpeg", "img_per_s"),
    ("end to end nvjpeg", "end_to_end_nvjpeg", "img_per_s"),
    ("model only compile", "model_only_compile", "img_per_s"),
    ("end to end compile", "end_to_end_compile", "img_per_s"),
]


def print_summary(summary: dict) -> None:
    say("summary:")
    for label, name, key in SUMMARY_ROWS:
        if rate(name, key):
            print(f"  {label:22s} {rate(name, key):10.1f} img/s", flush=True)
    for k, v in summary.items():
        if k != "targets":
            print(f"  {k:34s} {v:.3f}" if isinstance(v, float) else f"  {k:34s} {v}", flush=True)
    for k, ok in summary["targets"].items():
        print(f"  target {k}: {'MET' if ok else 'not met'}", flush=True)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    global OUT
    args = parse_args(argv)
    OUT = Path(args.out)
    from artprobe import embedding as E
    from artprobe.common.device import resolve_device

    plan = make_plan(args, E.n_cores())
    dev = resolve_device(plan.device)
    RESULTS["env"] = environment(plan, dev)
    save()
    say("env: " + json.dumps(RESULTS["env"]))
    if dev.type != "cuda" and not plan.quick:
        say("WARNING: no CUDA device; use --quick for a CPU smoke test")
    tmp = Path(tempfile.mkdtemp(prefix="artprobe_gpu_check_"))
    try:
        images, shard = make_data(plan, tmp)
        t = time.perf_counter()
        E.load_model(
            plan.model, False
        )  # random weights after manual_seed(0); cached for every step
        RESULTS["model_create_s"] = time.perf_counter() - t
        say(f"model {plan.model} created in {RESULTS['model_create_s']:.1f} s")
        measure_fast(plan, images, shard, tmp, dev)
        measure_options(plan, shard, tmp, dev)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS["summary"] = summarize()
    save()
    print_summary(RESULTS["summary"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
