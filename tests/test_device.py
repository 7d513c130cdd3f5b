"""artprobe.common.device: one rule for the device of every stage; an explicit CUDA device that is not
there is an error, never a silent CPU run."""

from __future__ import annotations

import pytest
import torch

from artprobe.common.device import DeviceError, device_name, resolve_device, synchronize


def test_auto_is_cuda_when_there_is_one():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    assert resolve_device(None).type == want


def test_an_explicit_device_is_kept():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_sentence_naming_the_setting():
    with pytest.raises(DeviceError) as err:
        resolve_device("cuda:1", setting="embed_runtime.device")
    message = str(err.value)
    assert message.startswith("embed_runtime.device is 'cuda:1', but ") and "\n" not in message
    assert message.endswith("set embed_runtime.device to auto (the GPU when there is one) or cpu.")


def test_cpu_name_and_synchronize():
    cpu = torch.device("cpu")
    synchronize(cpu)  # a no-op on CPU
    assert device_name(cpu).startswith(
        "cpu ("
    ) and f"{torch.get_num_threads()} threads" in device_name(cpu)
