"""Time artprobe's probes at WikiArt size on synthetic embeddings (prints figures).

    python bench/probe_bench.py --scale 1.0 --epochs 1 --only mlp,linear
    python bench/probe_bench.py --device cuda --nine --out results/bench.json

* mlp: seconds per epoch of ``artprobe.probes.fit`` (training steps only, validation
  excluded) against a bare loop of forward / backward / Adam step of the same
  architecture on pre-sliced batches, and their ratio (target >= 0.9).
* linear: the whole regularisation search (coarse grid, refinement) + refit, with each
  point's iterations and convergence (target <= 180 s on 2 CPU cores at scale 1.0:
  ``--only linear --threads 2``).
* knn: test predictions (cosine similarities to every training row).
* --nine: nine mlp fits at the full protocol (20 epochs max, early stopping), three
  embedding widths x three targets with 11 / 27 / 129 classes, like the real experiment
  (target on an H200: all nine within 2 minutes).

Imports only torch, numpy, scikit-learn and artprobe, so it runs on a bare GPU machine:
``PYTHONPATH=. python3 bench/probe_bench.py ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import common  # noqa: F401  (this checkout's artprobe on sys.path)
import numpy as np
import torch
import torch.nn.functional as F

from artprobe import probes
from artprobe.common.device import resolve_device, synchronize
from artprobe.probes.fit import fit
from artprobe.probes.shared import FitContext, FitData

WIKIART = {"train": 65155, "val": 8144, "test": 8145, "dim": 1024, "classes": 129}


def synthetic(
    n_rows: dict, dim: int, n_classes: int, seed: int = 0, latent: int = 64, signal: float = 0.1
) -> dict:
    """Embedding-like data with class structure.

    Zipf-like class frequencies (a long tail like WikiArt's artists), class means in a
    ``latent``-dimensional subspace, anisotropic noise with a power-law spectrum rotated
    at random, and a common offset (embeddings are not centred).
    """
    g = torch.Generator().manual_seed(seed)
    freq = 1.0 / np.arange(1, n_classes + 1) ** 0.9
    freq = torch.tensor(freq / freq.sum())
    A = torch.randn(latent, dim, generator=g) / latent**0.5
    means = torch.randn(n_classes, latent, generator=g) @ A * signal
    spectrum = torch.arange(1, dim + 1, dtype=torch.float32) ** -0.5
    spectrum = spectrum / spectrum.pow(2).mean().sqrt()
    Q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
    offset = torch.randn(dim, generator=g) * 0.5
    out = {}
    for split, n in n_rows.items():
        y = torch.multinomial(freq, n, replacement=True, generator=g)
        noise = (torch.randn(n, dim, generator=g) * spectrum) @ Q
        X = means[y] + noise + offset
        out[split] = (X.float().numpy(), y.numpy().astype(np.int64))
    return out


def sizes(scale: float) -> dict:
    return {s: max(int(round(WIKIART[s] * scale)), 64) for s in ("train", "val", "test")}


def raw_mlp_seconds_per_epoch(
    X: np.ndarray, y: np.ndarray, n_classes: int, dev: torch.device, epochs: int, p: dict
) -> float:
    """A bare Keras-protocol training loop: pre-sliced batches, forward/backward/step."""
    g = torch.Generator().manual_seed(1)
    model = probes.MLP(X.shape[1], p["hidden"], n_classes).keras_init_(g).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"], eps=p["epsilon"])
    Xt, yt = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)
    bs = p["batch_size"]
    W = model.fc1.weight

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb) + p["l2"] * W.pow(2).sum()
        loss.backward()
        opt.step()

    for i in range(3):  # warm-up (lazy state, kernels)
        step(Xt[i * bs : (i + 1) * bs], yt[i * bs : (i + 1) * bs])
    total = 0.0
    for _ in range(epochs):
        perm = torch.randperm(len(Xt), generator=g).to(dev)
        Xp, yp = Xt[perm], yt[perm]
        batches = [(Xp[i : i + bs], yp[i : i + bs]) for i in range(0, len(Xp), bs)]
        synchronize(dev)
        t0 = time.perf_counter()
        for xb, yb in batches:
            step(xb, yb)
        synchronize(dev)
        total += time.perf_counter() - t0
    return total / epochs


def fit_on(data, kind, params, n_classes, dev, args):
    """probes.fit on a synthetic train/val/test dict, as the workflow calls it."""
    (Xtr, ytr), (Xva, yva), (Xte, _) = data["train"], data["val"], data["test"]
    return fit(
        kind,
        params,
        FitData(Xtr, ytr, Xva, yva, Xte),
        FitContext(n_classes=n_classes, device=str(dev)),
        threads=args.threads,
    )


def bench_mlp(data, n_classes, dev, args) -> dict:
    Xtr, ytr = data["train"]
    p = probes.resolve_params("mlp", {"epochs": args.epochs, "patience": 10**6})
    # The raw loop is timed before and after the fit, and the mean used, so that load
    # from other processes that comes and goes biases neither side.
    raw_before = raw_mlp_seconds_per_epoch(Xtr, ytr, n_classes, dev, args.epochs, p)
    print(
        f"mlp raw loop:      {raw_before:8.3f} s/epoch ({len(Xtr) / raw_before:,.0f} rows/s)",
        flush=True,
    )
    res = fit_on(data, "mlp", p, n_classes, dev, args)
    fit_s = res.info["s_per_epoch"]
    total = res.info["seconds"] / res.info["epochs_run"]
    print(
        f"mlp artprobe fit:  {fit_s:8.3f} s/epoch of training steps, {total:.3f} s/epoch all in "
        f"(val {res.info['val_seconds']:.2f} s, cuda_graph={res.info['cuda_graph']})",
        flush=True,
    )
    raw_after = raw_mlp_seconds_per_epoch(Xtr, ytr, n_classes, dev, args.epochs, p)
    raw = (raw_before + raw_after) / 2
    print(f"mlp raw loop again:{raw_after:8.3f} s/epoch; mean {raw:.3f} s/epoch", flush=True)
    ratio = raw / fit_s
    print(f"mlp throughput ratio fit/raw: {ratio:.3f} (target >= 0.9)", flush=True)
    return {
        "raw_s_per_epoch": raw,
        "raw_s_per_epoch_runs": [raw_before, raw_after],
        "fit_s_per_epoch": fit_s,
        "fit_s_per_epoch_all_in": total,
        "ratio": ratio,
        "epochs": args.epochs,
        "history": res.history,
        "cuda_graph": res.info["cuda_graph"],
    }


def bench_linear(data, n_classes, dev, args) -> dict:
    yte = data["test"][1]
    p = probes.resolve_params("linear", {})
    res = fit_on(data, "linear", p, n_classes, dev, args)
    info = res.info
    for g in info["grid"]:
        print(
            f"  {g['phase']:6s} C={g['C']:9.3g}  val acc {g['val_accuracy']:.4f}  "
            f"log-loss {g['val_log_loss']:.4f}  {g['iterations']:3d} it {g['evaluations']:4d} evals "
            f"{g['hessian_products']:5d} Hv {g['seconds']:7.2f} s  objective {g['train_objective']:.6g}  "
            f"gap ~{g['gap_estimate']:.1e} {g['dtype']} {g['stop']}{'' if g['converged'] else '  NOT CONVERGED'}",
            flush=True,
        )
    for w in info["warnings"]:
        print(f"  warning: {w}")
    acc = float((res.proba_test.argmax(1) == yte).mean())
    points = info["grid"] + ([info["refit"]] if "evaluations" in info["refit"] else [])
    evals = sum(g["evaluations"] + g["hessian_products"] for g in points)
    print(
        f"linear: chosen C={info['C']:.3g}; search {info['search_seconds']:.1f} s, refit "
        f"{info['refit'].get('seconds', 0):.1f} s, whole fit {info['seconds']:.1f} s "
        f"(target <= 180 s on 2 cores); {evals} passes over the data (loss evaluations + "
        f"Hessian products), {info['seconds'] / evals:.3f} s each; test acc {acc:.4f}; "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return {
        "seconds": info["seconds"],
        "search_seconds": info["search_seconds"],
        "C": info["C"],
        "evaluations": evals,
        "grid": info["grid"],
        "warnings": info["warnings"],
        "converged": info["converged"],
        "refit": info["refit"],
        "test_accuracy": acc,
    }


def bench_knn(data, n_classes, dev, args) -> dict:
    (Xtr, _), (Xte, yte) = data["train"], data["test"]
    p = probes.resolve_params("knn", {})
    res = fit_on(data, "knn", p, n_classes, dev, args)
    acc = float((res.proba_test.argmax(1) == yte).mean())
    print(
        f"knn: {res.info['seconds']:.2f} s ({len(Xte)} test queries against {len(Xtr)} rows), "
        f"test acc {acc:.4f}",
        flush=True,
    )
    return {"seconds": res.info["seconds"], "test_accuracy": acc}


def bench_nine(dev, args) -> dict:
    n_rows = sizes(args.scale)
    runs, t_all = [], time.perf_counter()
    p = probes.resolve_params("mlp", {})
    for dim in args.dims:
        for n_classes in (11, 27, 129):
            data = synthetic(n_rows, dim, n_classes, seed=dim + n_classes)
            yte = data["test"][1]
            res = fit_on(data, "mlp", p, n_classes, dev, args)
            i = res.info
            run = {
                "dim": dim,
                "classes": n_classes,
                "seconds": i["seconds"],
                "epochs_run": i["epochs_run"],
                "s_per_epoch": i["s_per_epoch"],
                "projected_20_epochs": i["s_per_epoch"] * 20
                + i["val_seconds"] / i["epochs_run"] * 20,
                "test_accuracy": float((res.proba_test.argmax(1) == yte).mean()),
                "cuda_graph": i["cuda_graph"],
            }
            runs.append(run)
            print(
                f"  mlp D={dim:5d} K={n_classes:3d}: {run['seconds']:7.2f} s, "
                f"{run['epochs_run']:2d} epochs "
                f"({run['s_per_epoch']:.3f} s/epoch), test acc {run['test_accuracy']:.3f}",
                flush=True,
            )
    total = time.perf_counter() - t_all
    fits = sum(r["seconds"] for r in runs)
    worst = sum(r["projected_20_epochs"] for r in runs)
    print(
        f"nine mlp fits: {fits:.1f} s fitting ({total:.1f} s with data generation); all 20 epochs "
        f"would take {worst:.1f} s (target <= 120 s on an H200)",
        flush=True,
    )
    return {
        "runs": runs,
        "fit_seconds": fits,
        "wall_seconds": total,
        "all_20_epochs_seconds": worst,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = WikiArt size")
    ap.add_argument("--epochs", type=int, default=1, help="mlp epochs to time")
    ap.add_argument("--only", default="mlp,linear,knn")
    ap.add_argument("--nine", action="store_true", help="time the nine-fit mlp experiment")
    ap.add_argument("--dims", default="768,1024,1536", help="embedding widths for --nine")
    ap.add_argument("--dim", type=int, default=WIKIART["dim"])
    ap.add_argument("--classes", type=int, default=WIKIART["classes"])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the search's points as they end
    args.dims = [int(d) for d in args.dims.split(",")]
    only = [k for k in args.only.split(",") if k]
    for k in only:
        if k not in probes.names():
            ap.error(f"--only: unknown kind {k!r}")
    dev = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(
        f"device {dev} ({name}), torch {torch.__version__}, "
        f"threads {args.threads}, scale {args.scale}"
    )
    out: dict = {
        "device": str(dev),
        "device_name": name,
        "torch": torch.__version__,
        "threads": args.threads,
        "scale": args.scale,
    }
    if only:
        n_rows = sizes(args.scale)
        t0 = time.perf_counter()
        data = synthetic(n_rows, args.dim, args.classes)
        print(
            f"data: {n_rows} x {args.dim}, {args.classes} classes "
            f"({time.perf_counter() - t0:.1f} s to generate)",
            flush=True,
        )
        out["rows"] = n_rows
        for kind in only:
            out[kind] = {"mlp": bench_mlp, "linear": bench_linear, "knn": bench_knn}[kind](
                data, args.classes, dev, args
            )
    if args.nine:
        out["nine"] = bench_nine(dev, args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1, default=float))
    return out


if __name__ == "__main__":
    main()
