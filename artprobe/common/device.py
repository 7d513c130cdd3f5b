"""The torch device a job runs on, one rule for every stage (embed and classify alike)."""

from __future__ import annotations

import os
import socket

from artprobe.common.logs import ClearError


class DeviceError(ClearError):
    """A CUDA device was asked for and this machine has none (or not that one)."""


def resolve_device(device: str | None = "auto", setting: str = "device"):
    """``auto`` (or None): CUDA when available, else CPU. An explicit CUDA device that is not
    available is a :class:`DeviceError` naming ``setting`` (the config key, e.g.
    ``embed_runtime.device``), raised before anything is loaded; never a silent fall-back to CPU."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        check_cuda(dev, device, setting)
    return dev


def check_cuda(dev, asked: str, setting: str) -> None:
    """One sentence when ``dev`` (a CUDA device) is not there: what was asked, why torch sees
    none, and the way out."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count and (dev.index or 0) < count:
        return
    if count:
        why = f"torch sees only {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
    elif torch.version.cuda is None:
        why = f"this torch ({torch.__version__}) is built without CUDA"
    elif os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        why = f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']!r} hides every GPU"
    else:
        why = "torch finds no CUDA GPU or driver (torch.cuda.is_available() is False)"
    raise DeviceError(
        f"{setting} is {asked!r}, but {socket.gethostname()} has no such CUDA device ({why}): "
        f"run this job on a GPU node, or set {setting} to auto (the GPU when there is one) or cpu."
    )


def synchronize(dev) -> None:
    """Wait for queued work on ``dev`` (a no-op on CPU), so a timer measures finished work."""
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def device_name(dev) -> str:
    """The GPU's name, or the CPU's with the thread count torch uses."""
    import platform

    import torch

    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
