"""artprobe.common.oom and the probe fits out of GPU memory (injected on CPU): kNN halves its
similarity blocks and finds the same neighbours; a fit that runs out of GPU memory is done on
the CPU, with a warning. The embed loop's halving: tests/test_embed.py."""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
import torch

from artprobe.common import oom
from artprobe.probes import knn, registry
from artprobe.probes.shared import FitContext, FitData

fit_module = importlib.import_module(
    "artprobe.probes.fit"
)  # the module (artprobe.probes.fit is the function)


def test_what_counts_as_out_of_gpu_memory():
    assert oom.is_cuda_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert oom.is_cuda_oom(
        RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be ...")
    )
    assert oom.is_cuda_oom(
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate")
    )
    assert not oom.is_cuda_oom(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not oom.is_cuda_oom(ValueError("out of memory"))
    assert oom.halved(7, "x", RuntimeError()) == 3
    with pytest.raises(
        oom.GPUOutOfMemoryError, match="vit does not fit in GPU memory even at batch 1"
    ):
        oom.halved(1, "vit", torch.OutOfMemoryError("CUDA out of memory"))


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    X = torch.from_numpy(np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32))
    return X / X.norm(dim=1, keepdim=True)


def test_knn_halves_its_similarity_blocks_and_finds_the_same_neighbours(monkeypatch, caplog):
    T, Q = _unit(300, 16, 0), _unit(50, 16, 1)
    want = knn.neighbours(T, Q, 7)
    block, sizes = knn._block, []

    def small_memory(Qc, T, k):  # blocks of more than 12 queries do not fit
        sizes.append(len(Qc))
        if len(Qc) > 12:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return block(Qc, T, k)

    monkeypatch.setattr(knn, "_block", small_memory)
    got = knn.neighbours(T, Q, 7)
    assert torch.equal(got[1], want[1])  # the same neighbours, in the same order
    # similarities to float rounding: the product's kernel depends on the block's row count
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-6)
    assert sizes == [50, 25, 12, 12, 12, 12, 2]  # 50 and 25 failed; then blocks of 12
    assert "knn: out of GPU memory with blocks of 25 queries" in caplog.text


@pytest.mark.parametrize("kind", ["mlp", "linear", "knn"])
def test_a_fit_out_of_gpu_memory_is_done_on_the_cpu(monkeypatch, caplog, kind):
    """The fit asked for CUDA, which runs out of memory: a warning, the same fit on the CPU,
    and ``info`` saying where it ran and why."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8)).astype(np.float32)
    y = np.arange(60) % 3
    params = {"mlp": {"epochs": 2, "hidden": 8}, "linear": {"n_c": 2}, "knn": {}}[kind]
    rows = FitData(X[:40], y[:40], X[40:50], y[40:50], X[50:])
    ref = fit_module.fit(kind, params, rows, FitContext(n_classes=3, device="cpu"))
    entry = registry.get(kind)
    real = entry.fit_function()
    seen = []

    def on_device(params, data, ctx):
        seen.append(ctx.device.type)
        if ctx.device.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return real(params, data, ctx)

    # the kind's registry entry, its fit function swapped (the registry is how fit finds it)
    monkeypatch.setitem(registry._REGISTRY, kind, dataclasses.replace(entry, fit=on_device))
    monkeypatch.setattr(fit_module, "resolve_device", lambda device: torch.device("cuda"))
    res = fit_module.fit(kind, params, rows, FitContext(n_classes=3, device="cuda"))
    assert seen == ["cuda", "cpu"]
    assert res.info["device"] == "cpu" and res.info["gpu_out_of_memory"].startswith(
        "OutOfMemoryError"
    )
    assert (
        f"{kind} fit: out of GPU memory on cuda" in caplog.text
        and "fitting on the CPU instead" in caplog.text
    )
    np.testing.assert_array_equal(res.proba_test, ref.proba_test)


def test_other_errors_and_cpu_errors_are_not_retried(monkeypatch):
    calls = []

    def boom(dev):
        calls.append(dev.type)
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        oom.on_gpu_or_cpu(
            boom, torch.device("cpu"), "x"
        )  # already on the CPU: nothing to fall back to
    with pytest.raises(RuntimeError, match="illegal"):
        oom.on_gpu_or_cpu(
            lambda d: (_ for _ in ()).throw(RuntimeError("illegal access")),
            torch.device("cuda"),
            "x",
        )
    assert calls == ["cpu"]
