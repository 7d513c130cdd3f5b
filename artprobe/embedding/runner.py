"""The model runner: batches to the device (ToTensor + Normalize there), the forward pass
(compiled or plain), and the loop that reads batch k's results back while batch k+1 runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from artprobe.common.oom import is_cuda_oom
from artprobe.embedding.nvjpeg import decode_jpeg_batch
from artprobe.embedding.preprocess import Preprocess

#: also on CPU: oneDNN convolutions prefer it (~10 % for convnext here)
CHANNELS_LAST = True


def place_model(model, dev, compile: bool):
    """``(compiled, plain)``: the model on ``dev`` (channels_last), and its ``torch.compile``
    version when ``compile`` (else the plain module twice)."""
    import torch

    model = model.to(dev)
    if CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    return (torch.compile(model, dynamic=False) if compile else model), model


@dataclass
class ModelRunner:
    """Moves batches to the device and runs the model.

    ``compiled`` runs every batch (the ``torch.compile`` module, or ``plain`` itself when not
    compiling); with ``pad`` a short last batch is padded to ``batch_size`` so a compiled
    graph of static shape serves it. ``plain`` is the uncompiled module, used to measure the
    embedding width without compiling a graph for a batch of one.
    """

    compiled: Any
    plain: Any
    prep: Preprocess
    device: Any
    dtype: Any
    batch_size: int
    pad: bool
    channels_last: bool
    dim: int | None = None

    def to_input(self, x):
        import torch
        from torchvision.transforms import functional as TF

        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:  # ToTensor + Normalize, the same float ops as the transform
            x = TF.normalize(x.float().div(255), self.prep.mean, self.prep.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x, plain: bool = False):
        import torch

        n = x.shape[0]
        model = self.plain if plain else self.compiled
        if self.pad and not plain and n < self.batch_size:
            x = torch.cat([x, x.new_zeros((self.batch_size - n, *x.shape[1:]))])
        with torch.autocast(
            self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32
        ):
            out = model(x)
        out = out[:n].float()
        if out.ndim != 2:
            raise RuntimeError(f"model output has shape {tuple(out.shape)}, expected (batch, dim)")
        if self.dim is None:
            self.dim = int(out.shape[1])
        return out

    def embedding_dim(self) -> int:
        """The embedding width (from the first batch, or one blank image through ``plain``)."""
        import torch

        if self.dim is None:
            h, w = self.prep.crop
            blank = (
                torch.zeros((1, 3, h, w), dtype=torch.uint8)
                if self.prep.normalizes_on_device
                else torch.zeros((1, 3, h, w))
            )
            self.forward(self.to_input(blank), plain=True)
        return self.dim


def batch_input(batch: dict, runner: ModelRunner):
    """``(x, index)``: the batch's decodable images as one device tensor (None if there are
    none) and their row indices; nvjpeg's errors are added to ``batch["errors"]``."""
    import torch

    parts, index = [], []
    if batch["pixels"]:
        parts += [runner.to_input(p) for p in batch["pixels"]]
        index += batch["pixel_index"]
    if batch["jpeg"]:
        decoded, errs = decode_jpeg_batch(batch, runner.prep, runner.device)
        batch["errors"].update(errs)
        if decoded:
            parts.append(runner.to_input(torch.stack([t for _, t in decoded])))
            index += [i for i, _ in decoded]
    if not parts:
        return None, index
    return (parts[0] if len(parts) == 1 else torch.cat(parts)), index


def run_batches(batches, runner: ModelRunner):
    """Yield ``(batch, index, host)`` per model batch, in order: ``host`` holds the outputs
    (on the CPU) of the rows ``index``, or None. On CUDA batch k is read back (non-blocking,
    behind an event) while batch k+1 is queued. When batch k+1 runs out of GPU memory,
    batch k is still yielded before the error is raised."""
    import torch

    cuda = runner.device.type == "cuda"
    pending = None
    with torch.inference_mode():
        for batch in batches:
            x, index = batch_input(batch, runner)
            host = event = None
            if x is not None:
                try:
                    out = runner.forward(x)
                except RuntimeError as exc:
                    if pending is not None and is_cuda_oom(exc):
                        yield _ready(
                            *pending
                        )  # the batch before the failed one is finished: keep it
                    raise
                host = out.to("cpu", non_blocking=True) if cuda else out
                if cuda:
                    event = torch.cuda.Event()
                    event.record()
            if pending is not None:
                yield _ready(*pending)
            pending = (batch, index, host, event)
        if pending is not None:
            yield _ready(*pending)


def _ready(batch, index, host, event):
    if event is not None:
        event.synchronize()
    return batch, index, host
