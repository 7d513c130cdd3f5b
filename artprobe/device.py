"""The torch device a job runs on, one rule for every stage (embed and classify alike)."""

from __future__ import annotations


def resolve_device(device: str | None = "auto"):
    """``auto`` (or None): CUDA when available, else CPU. An explicit CUDA device that is not
    available is an error, never a silent fall-back to CPU."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} requested but CUDA is not available")
    return dev


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
