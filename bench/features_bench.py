"""Model-only cost of each ``models[].features`` choice (prints figures, no pass/fail).

    python bench/features_bench.py --model vit_tiny_patch16_224 --batch 16 --batches 4
    python bench/features_bench.py --model convnext_atto --features pooled,mean_tokens

Random weights and random input at the model's own input size; per choice: img/s of the
forward pass under ``torch.inference_mode()`` (one warm-up batch, then ``--batches`` timed),
CPU milliseconds per image (steadier than wall time on a shared machine) and the
embedding width. Imports only torch, timm and artprobe.
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (this checkout's artprobe on sys.path)
import torch

from artprobe.common.device import resolve_device, synchronize
from artprobe.embedding.features import feature_model
from artprobe.embedding.model import load_model


def rate(module, x, batches: int) -> tuple[float, float]:
    """(img/s of wall time, CPU ms per image: steadier than wall time on a shared machine)."""
    with torch.inference_mode():
        module(x)  # warm-up
        synchronize(x.device)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(batches):
            module(x)
        synchronize(x.device)
    n = batches * len(x)
    return n / (time.perf_counter() - t0), 1000 * (time.process_time() - c0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vit_tiny_patch16_224")
    ap.add_argument("--features", default="pooled,cls,mean_tokens,last4_cls,last4_cls_mean")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    model, _ = load_model(args.model, False)
    model = model.to(dev)
    size = model.pretrained_cfg.get("input_size", (3, 224, 224))
    x = torch.randn(args.batch, *size, device=dev)
    print(
        f"{args.model} on {dev} ({torch.get_num_threads()} threads), "
        f"batch {args.batch} x {args.batches}, input {tuple(size)}"
    )
    for name in args.features.split(","):
        m = feature_model(model, name, args.model)
        with torch.inference_mode():
            dim = m(x[:1]).shape[1]
        img_s, cpu_ms = rate(m, x, args.batches)
        print(f"  {name:>16}: {img_s:7.1f} img/s, {cpu_ms:7.1f} CPU ms/img, dim {dim}")


if __name__ == "__main__":
    main()
