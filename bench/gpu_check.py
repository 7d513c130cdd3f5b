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
* end to end: ``artprobe.embed.embed_shard`` on a generated shard;
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
import io
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

T0 = time.perf_counter()
RESULTS: dict = {"steps": {}}
OUT: Path | None = None


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


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


# --------------------------------------------------------------------------- data


def _one_jpeg(args):
    from artprobe.images import synthetic_jpeg

    i, w, h = args
    return synthetic_jpeg(w, h, seed=i)


def generate(n_distinct: int, procs: int) -> list[bytes]:
    from artprobe.images import wikiart_like_sizes

    jobs = [(i, w, h) for i, (w, h) in enumerate(wikiart_like_sizes(n_distinct, seed=0))]
    if procs > 1:
        ctx = multiprocessing.get_context(
            "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        )
        with ctx.Pool(procs) as pool:
            return pool.map(_one_jpeg, jobs, chunksize=1)
    return [_one_jpeg(j) for j in jobs]


def write_shard(path: Path, images: list[bytes]) -> Path:
    from embed_bench import write_bench_shard

    return write_bench_shard(path, images, row_group_size=1024)


# --------------------------------------------------------------------------- thesis loop


def thesis_loop(model, images: list[bytes], device: str) -> dict:
    """The thesis's loop: per image, PIL decode at full size, the timm eval transform,
    ``model(x.unsqueeze(0))`` with autograd on (no no_grad), ``.tolist()``. fp32."""
    import timm
    import torch
    from PIL import Image

    model.eval()
    cfg = timm.data.resolve_model_data_config(model)
    transform = timm.data.create_transform(**cfg)
    feats = []
    # first image outside the timing (CUDA context / cuBLAS handles are warm already)
    x = transform(Image.open(io.BytesIO(images[0])).convert("RGB"))
    model(x.unsqueeze(0).to(device)).tolist()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for data in images:
        img = Image.open(io.BytesIO(data)).convert("RGB")
        x = transform(img)
        out = model(x.unsqueeze(0).to(device))
        feats.append(out.tolist())
    s = time.perf_counter() - t
    return {"img_per_s": len(images) / s, "images": len(images), "seconds": s}


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    global OUT
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="JSON file for the figures (rewritten after every step)")
    p.add_argument(
        "--quick", action="store_true", help="tiny numbers and a tiny model: a smoke test, CPU is fine"
    )
    p.add_argument("--model", default=None, help="timm model (default eva02_large_patch14_224.mim_m38m)")
    p.add_argument("--images", type=int, default=None, help="images in the end-to-end shard (default 3000)")
    p.add_argument("--distinct", type=int, default=None, help="distinct JPEGs generated (default 64)")
    p.add_argument("--batch-size", type=int, default=None, help="default 256")
    p.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers (default cores - 2, at most 14)"
    )
    p.add_argument("--thesis-images", type=int, default=None, help="images for the thesis loop (default 50)")
    p.add_argument("--precision", default="auto", help="auto = bf16 on CUDA")
    p.add_argument("--device", default="auto")
    p.add_argument("--nvjpeg", action="store_true", help="also measure decode='nvjpeg'")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile")
    p.add_argument("--exact", action="store_true", help="also measure decode='exact'")
    p.add_argument(
        "--budget-s", type=float, default=None, help="skip steps that would end after this (default 330)"
    )
    args = p.parse_args(argv)
    OUT = Path(args.out)

    import numpy as np  # noqa: F401
    import timm
    import torch
    import torchvision

    import rates
    from artprobe import embed as E
    from artprobe.device import resolve_device

    quick = args.quick
    cores = E.n_cores()
    model_name = args.model or ("test_vit" if quick else "eva02_large_patch14_224.mim_m38m")
    n_images = args.images or (48 if quick else 3000)
    n_distinct = args.distinct or (8 if quick else 64)
    batch = args.batch_size or (16 if quick else 256)
    workers = args.workers if args.workers is not None else (2 if quick else max(1, min(14, cores - 2)))
    n_thesis = args.thesis_images or (4 if quick else 50)
    budget = args.budget_s or (300.0 if quick else 330.0)
    dev = resolve_device(args.device)
    cuda = dev.type == "cuda"

    env = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "platform": platform.platform(),
        "cores": cores,
        "device": str(dev),
        "device_name": (
            torch.cuda.get_device_name(dev) if cuda else platform.processor() or platform.machine()
        ),
        "model": model_name,
        "images": n_images,
        "distinct": n_distinct,
        "batch_size": batch,
        "workers": workers,
        "thesis_images": n_thesis,
        "precision": args.precision,
        "budget_s": budget,
    }
    try:
        env["shm_free_gb"] = round(shutil.disk_usage("/dev/shm").free / 1e9, 1)
    except OSError:
        env["shm_free_gb"] = None
    RESULTS["env"] = env
    save()
    say("env: " + json.dumps(env))
    if not cuda and not quick:
        say("WARNING: no CUDA device; use --quick for a CPU smoke test")

    tmp = Path(tempfile.mkdtemp(prefix="artprobe_gpu_check_"))
    try:
        # ---- data
        t = time.perf_counter()
        uniq = generate(n_distinct, procs=min(cores, 16))
        images = [uniq[i % len(uniq)] for i in range(n_images)]
        shard = write_shard(tmp / "shard.parquet", images)
        RESULTS["data"] = {
            "distinct": len(uniq),
            "images": n_images,
            "mean_kb": sum(map(len, uniq)) / len(uniq) / 1e3,
            "seconds": time.perf_counter() - t,
        }
        save()
        say(
            f"data: {n_images} JPEGs ({len(uniq)} distinct, mean {RESULTS['data']['mean_kb']:.0f} kB) "
            f"in {RESULTS['data']['seconds']:.1f} s"
        )

        # ---- model (random weights after manual_seed(0); cached for every step below)
        t = time.perf_counter()
        E.load_model(model_name, False)
        RESULTS["model_create_s"] = time.perf_counter() - t
        say(f"model {model_name} created in {RESULTS['model_create_s']:.1f} s")

        common = dict(batch_size=batch, precision=args.precision, device=args.device)
        # on CPU the model gets the cores the decoding workers leave (as in embed_shard)
        model_threads = None if cuda else max(1, cores - workers)

        r = step(
            "model_only",
            lambda: rates.model_only_rate(
                model_name,
                False,
                iters=12 if not quick else 2,
                warmup=3 if not quick else 1,
                threads=model_threads,
                **common,
            ),
            budget=budget,
        )
        if r:
            say(f"model only: {r['img_per_s']:.0f} img/s ({r['dtype']}, batch {batch})")

        def e2e(decode="fast", compile=False, n=None):
            out = tmp / f"emb_{decode}_{int(compile)}.parquet"
            st = E.embed_shard(
                shard,
                out,
                timm_name=model_name,
                pretrained=False,
                decode=decode,
                workers=workers,
                compile=compile,
                progress=True,
                **common,
            )
            out.unlink(missing_ok=True)
            return {
                k: st[k]
                for k in (
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
            }

        r = step("end_to_end", e2e, budget=budget)
        if r:
            say(
                f"end to end: {r['img_per_s']:.0f} img/s (steady {r['steady_img_per_s']:.0f}; first batch after "
                f"{r['first_batch_s']:.1f} s; {r['n_failed']} failed)"
            )

        r = step(
            "decode_only",
            lambda: rates.decode_only_rate(
                shard, model_name, decode="fast", batch_size=batch, workers=workers, device=args.device
            ),
            budget=budget,
        )
        if r:
            say(
                f"decode only: {r['img_per_s']:.0f} img/s (steady {r['steady_img_per_s']:.0f}, {workers} workers)"
            )

        def thesis():
            model, _ = E.load_model(model_name, False)
            model = model.to(dev).to(memory_format=torch.contiguous_format)
            return thesis_loop(model, images[:n_thesis], str(dev))

        r = step("thesis_loop", thesis, budget=budget, need_s=20)
        if r:
            say(f"thesis loop: {r['img_per_s']:.1f} img/s ({n_thesis} images, fp32, autograd on)")

        if args.nvjpeg:
            if not cuda:
                say("SKIP nvjpeg: needs CUDA")
            else:
                r = step(
                    "decode_only_nvjpeg",
                    lambda: rates.decode_only_rate(
                        shard,
                        model_name,
                        decode="nvjpeg",
                        batch_size=batch,
                        workers=workers,
                        device=args.device,
                    ),
                    budget=budget,
                    need_s=15,
                )
                if r:
                    say(
                        f"decode only (nvjpeg): {r['img_per_s']:.0f} img/s (steady {r['steady_img_per_s']:.0f})"
                    )
                r = step("end_to_end_nvjpeg", lambda: e2e("nvjpeg"), budget=budget, need_s=20)
                if r:
                    say(
                        f"end to end (nvjpeg): {r['img_per_s']:.0f} img/s (steady {r['steady_img_per_s']:.0f})"
                    )
        if args.exact:
            r = step(
                "decode_only_exact",
                lambda: rates.decode_only_rate(
                    shard, model_name, decode="exact", batch_size=batch, workers=workers, device=args.device
                ),
                budget=budget,
                need_s=15,
            )
            if r:
                say(f"decode only (exact): {r['img_per_s']:.0f} img/s (steady {r['steady_img_per_s']:.0f})")
        if args.compile:
            r = step(
                "model_only_compile",
                lambda: rates.model_only_rate(
                    model_name,
                    False,
                    compile=True,
                    iters=12 if not quick else 2,
                    warmup=2,
                    threads=model_threads,
                    **common,
                ),
                budget=budget,
                need_s=90,
            )
            if r:
                say(
                    f"model only (compile): {r['img_per_s']:.0f} img/s (compile+warm-up {r['warmup_s']:.0f} s)"
                )
            r = step("end_to_end_compile", lambda: e2e(compile=True), budget=budget, need_s=60)
            if r:
                say(f"end to end (compile): {r['img_per_s']:.0f} img/s (steady {r['steady_img_per_s']:.0f})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- summary
    s = RESULTS["steps"]

    def rate(name, key="img_per_s"):
        v = s.get(name, {}).get(key)
        return v if isinstance(v, (int, float)) and v == v else None

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
        "end_to_end (decode=fast) >= 70% of model only": summary.get("end_to_end_vs_model_only", 0) >= 0.70,
        "end_to_end (decode=fast) >= 100x thesis loop": summary.get("end_to_end_vs_thesis", 0) >= 100,
        "best end_to_end >= 70% of model only": summary.get("best_end_to_end_vs_model_only", 0) >= 0.70,
        "best end_to_end >= 100x thesis loop": summary.get("best_end_to_end_vs_thesis", 0) >= 100,
    }
    summary["total_seconds"] = elapsed()
    RESULTS["summary"] = summary
    save()
    say("summary:")
    rows = [
        ("model only", m),
        ("decode only", d),
        ("end to end", e),
        ("end to end steady", es),
        ("thesis loop", th),
        ("decode only nvjpeg", rate("decode_only_nvjpeg")),
        ("end to end nvjpeg", rate("end_to_end_nvjpeg")),
        ("model only compile", rate("model_only_compile")),
        ("end to end compile", rate("end_to_end_compile")),
    ]
    for label, v in rows:
        if v:
            print(f"  {label:22s} {v:10.1f} img/s", flush=True)
    for k, v in summary.items():
        if k != "targets":
            print(f"  {k:34s} {v:.3f}" if isinstance(v, float) else f"  {k:34s} {v}", flush=True)
    for k, ok in summary["targets"].items():
        print(f"  target {k}: {'MET' if ok else 'not met'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
