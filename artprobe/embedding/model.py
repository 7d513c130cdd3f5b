"""The timm model: load it (identical random weights in every job), fingerprint its weights,
pick the dtype a precision setting means on a device."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from artprobe.embedding.weight_loading import create_pretrained

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_dtype(precision: str, device):
    """The torch dtype of ``precision`` on ``device``; ``auto``: bf16 on CUDA, fp32 on CPU."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def weights_fingerprint(model) -> str:
    """A short hash of the model's weights (shapes + head and tail of every tensor)."""
    h = hashlib.sha1()
    for name, t in model.state_dict().items():
        flat = t.detach().reshape(-1)
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        if flat.numel() > 8192:
            flat = flat[:4096].cpu(), flat[-4096:].cpu()
        else:
            flat = (flat.cpu(),)
        for part in flat:
            h.update(part.contiguous().view(-1).float().numpy().tobytes())
    return h.hexdigest()[:16]


_MODEL_CACHE: dict[tuple, tuple[Any, str]] = {}


def load_model(
    timm_name: str,
    pretrained: bool,
    *,
    weights: str | None = None,
    from_hub: bool = False,
    cache: bool = True,
    timings: dict | None = None,
):
    """``(model, fingerprint)``: the timm model in eval mode, classifier removed (pooled
    pre-logits features), created right after ``torch.manual_seed(0)`` so that random-weight
    models are identical in every job. The last model is cached for in-process reuse.

    ``weights``: a local weights file, loaded by timm's pretrained path
    (``pretrained_cfg_overlay=dict(file=...)``), e.g. a fine-tuned checkpoint or weights
    copied to a cluster without internet. ``from_hub``: ``weights`` is the file timm's hub
    loader would fetch (the ``weights`` stage's), read as that loader reads it: a state
    dict, never a model's ``custom_load`` format (timm ignores ``custom_load`` on the hub)."""
    import timm
    import torch

    if weights is not None:
        if not pretrained:
            raise ValueError(f"{timm_name}: weights={weights!r} needs pretrained=True")
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"{timm_name}: weights file {weights!r} does not exist")
    key = (timm_name, bool(pretrained), weights and os.stat(weights).st_mtime_ns, from_hub)
    if cache and key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    overlay = {}
    if weights:
        cfg = {"file": os.fspath(weights), **({"custom_load": False} if from_hub else {})}
        overlay = {"pretrained_cfg_overlay": cfg}
    timings = {} if timings is None else timings
    if pretrained:
        model = create_pretrained(timm_name, overlay, timings)
    else:
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = timm.create_model(timm_name, pretrained=False, num_classes=0)
        timings.update(build_s=time.perf_counter() - t0, load_s=0.0)
    model.eval()
    t0 = time.perf_counter()
    fp = weights_fingerprint(model)
    timings["fingerprint_s"] = time.perf_counter() - t0
    if cache:
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = (model, fp)
    return model, fp


def n_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
