"""The model's eval transform, split into a host stage (decode + PIL resize/crop, in the
DataLoader workers) and a device stage (ToTensor + Normalize on the whole batch)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from artprobe.common.images import DEFAULT_MAX_PIXELS, decode_rgb, precrop_for_center_crop

DECODE_MODES = ("fast", "exact", "nvjpeg")
#: decode="fast" decodes JPEGs at a reduced DCT scale while the short side stays >= this
#: many times the model's resize target (then the model's own resize runs as usual).
DRAFT_MARGIN = 1.0


@dataclass
class Preprocess:
    """The model's eval transform, split into a PIL stage (workers) and a tensor stage."""

    data_config: dict
    decode: str
    crop: tuple[int, int]  # (height, width) of the model input
    resize_short: int  # smallest short-side target of the resize (for pre-cropping)
    draft_short: int | None  # keep JPEG short side >= this when draft-decoding
    center: bool  # crop_mode "center": aspect-preserving resize + centre crop
    pil_stage: Any  # callable PIL -> PIL (Resize, CenterCrop), or None
    mean: tuple[float, ...] | None  # Normalize applied on the device batch; None: see full
    std: tuple[float, ...] | None
    full: Any  # the complete timm transform (fallback when the split isn't recognised)
    # (short side, InterpolationMode) when the PIL stage is exactly Resize(int) + CenterCrop:
    # then "fast" and "nvjpeg" resize uint8 tensors instead (the same antialiased filter as
    # PIL's, ~4x faster; within 1 grey level of it)
    tensor_resize: tuple[int, Any] | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    @property
    def normalizes_on_device(self) -> bool:
        """Whether the host hands over uint8 crops (ToTensor + Normalize then run on the
        device batch); otherwise the host runs the full transform and hands over floats."""
        return self.pil_stage is not None

    def decode_on_host(self, data: bytes):
        """bytes -> uint8 CHW tensor (normalizes_on_device) or the full transform's float tensor."""
        import torch

        img = decode_rgb(
            data,
            min_short_side=self.draft_short if self.decode != "exact" else None,
            max_pixels=self.max_pixels,
        )
        if self.center:
            img = precrop_for_center_crop(img, resize_short=self.resize_short, crop=self.crop)
        if not self.normalizes_on_device:
            return self.full(img)
        if self.decode != "exact" and self.tensor_resize is not None:
            return self.resize_crop(
                torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)
            )
        img = self.pil_stage(img)
        arr = np.array(img, dtype=np.uint8, copy=True)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()

    def resize_crop(self, x):
        """uint8 CHW tensor (any device) -> the model's resize + centre crop, contiguous uint8."""
        from torchvision.transforms.v2 import functional as F2

        size, interp = self.tensor_resize
        x = F2.resize(x, [size], interpolation=interp, antialias=True)
        return F2.center_crop(x, list(self.crop)).contiguous()


def build_preprocess(data_config: dict, decode: str, *, max_pixels=DEFAULT_MAX_PIXELS):
    """The :class:`Preprocess` of timm's eval transform for ``data_config``."""
    from timm.data import create_transform

    if decode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
    full = create_transform(**data_config, is_training=False)
    _, h, w = data_config["input_size"]
    crop_pct = data_config.get("crop_pct") or 0.875
    scale = [math.floor(x / crop_pct) for x in (h, w)]
    center = data_config.get("crop_mode") in (None, "center")
    steps = list(getattr(full, "transforms", []))
    pil_stage, mean, std = _split_normalize(steps)
    return Preprocess(
        data_config=dict(data_config),
        decode=decode,
        crop=(int(h), int(w)),
        resize_short=int(min(scale)),
        draft_short=int(DRAFT_MARGIN * max(scale)),
        center=center,
        pil_stage=pil_stage,
        mean=mean,
        std=std,
        full=full,
        tensor_resize=_tensor_resize(steps) if pil_stage is not None and center else None,
        max_pixels=max_pixels,
    )


def _split_normalize(steps: list):
    """(PIL stage, mean, std) when the transform ends in ToTensor + Normalize, else Nones."""
    from torchvision import transforms as T

    idx = next((i for i, s in enumerate(steps) if isinstance(s, T.ToTensor)), None)
    if idx is None or len(steps) != idx + 2 or not isinstance(steps[idx + 1], T.Normalize):
        return None, None, None
    import torch

    mean = tuple(torch.as_tensor(steps[idx + 1].mean).tolist())
    std = tuple(torch.as_tensor(steps[idx + 1].std).tolist())
    return T.Compose(steps[:idx]), mean, std


def _tensor_resize(steps: list):
    """(short side, interpolation) when the transform is Resize(int), CenterCrop, ToTensor,
    Normalize; else None."""
    from torchvision import transforms as T

    if len(steps) != 4:
        return None
    rs, cc = steps[0], steps[1]
    size = rs.size if isinstance(rs, T.Resize) else None
    size = size[0] if isinstance(size, (list, tuple)) and len(size) == 1 else size
    if isinstance(size, int) and isinstance(cc, T.CenterCrop):
        return (size, rs.interpolation)
    return None
