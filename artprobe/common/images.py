"""Turn arbitrary image bytes into a safe RGB PIL image, or say in a few words why not.

WikiArt (like any scraped collection) holds more than clean 8-bit RGB JPEGs. Every image
goes through :func:`decode_rgb`, which either returns an ``RGB`` image or raises
:class:`ImageDecodeError` with a short ``reason``; the embed stage records that reason
instead of crashing. What it does with each kind of input:

=========================  ====================================================================
input                      result
=========================  ====================================================================
empty / non-image bytes    ``ImageDecodeError("empty")`` / ``("not an image: ...")``
corrupt or truncated file  ``ImageDecodeError("truncated: ...")`` / ``("corrupt: ...")``
decompression bomb         ``ImageDecodeError("too many pixels: ...")``, decided from the
                           header *before* any pixel is decoded (nothing is allocated)
grayscale, 1-bit, palette  converted to RGB
CMYK / YCbCr               converted to RGB (plain conversion; ICC profiles are not applied)
16-bit (I;16, I) / float   rescaled to 8 bits (65535 -> 255), never clipped to white
alpha (RGBA, LA, PA,       composited on a **white** background (``BACKGROUND``): paintings are
palette/RGB/L with         mostly scanned on white, and black would turn every transparent
``transparency``)          border into a dark frame
EXIF orientation           applied (``ImageOps.exif_transpose``); a broken EXIF block is ignored
animated GIF/WebP/PNG      first frame
1×1, 4000×3 …              decoded as is; :func:`precrop_for_center_crop` then trims extreme
                           aspect ratios so the model's resize cannot blow up memory
=========================  ====================================================================

``min_short_side`` enables fast JPEG decoding: libjpeg decodes directly at 1/2, 1/4 or 1/8
scale (``Image.draft``) as long as the short side stays >= ``min_short_side``. The embed stage
asks for the model's resize target itself (``artprobe.embedding.preprocess.DRAFT_MARGIN`` = 1.0), so
the model's own resize then only ever scales down.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Pillow refuses images over 2 x ``Image.MAX_IMAGE_PIXELS`` (~179 MP) as decompression
#: bombs; we use the same limit, but check it ourselves from the header first.
DEFAULT_MAX_PIXELS = 2 * 89_478_485
#: Background for transparent pixels (see module docstring).
BACKGROUND = (255, 255, 255)

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_JPEG_MAGIC = b"\xff\xd8\xff"


class ImageDecodeError(ValueError):
    """An image that cannot be used; ``reason`` is a short, log-friendly description."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _short(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_jpeg(data: bytes) -> bool:
    return data[:3] == _JPEG_MAGIC


def open_image(data: bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``data`` lazily (header only) and check its pixel count; no pixel is decoded."""
    if data is None or len(data) == 0:
        raise ImageDecodeError("empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"too many pixels: {_short(exc)}") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f"not an image ({len(data)} bytes, starts {bytes(data[:8])!r})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is a bad image
        msg = _short(exc)
        kind = (
            "truncated"
            if "truncat" in msg.lower() or isinstance(exc, EOFError)
            else "corrupt header"
        )
        raise ImageDecodeError(f"{kind}: {type(exc).__name__}: {msg}") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageDecodeError(f"invalid size {w}x{h}")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageDecodeError(f"too many pixels: {w}x{h} > {max_pixels}")
    return img


def _to_8bit_gray(img: Image.Image) -> Image.Image:
    """Rescale a 16-bit / 32-bit integer or float grayscale image to mode ``L``."""
    arr = np.asarray(img)
    if img.mode.startswith("I;16"):
        scaled = arr.astype(np.float32) / 257.0
    elif img.mode == "F":
        finite = arr[np.isfinite(arr)]
        top = float(finite.max()) if finite.size else 1.0
        scale = 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0
        scaled = np.nan_to_num(arr.astype(np.float32)) * (255.0 / scale)
    else:  # "I": 32-bit ints; Pillow uses it for 16-bit PNG/TIFF grayscale
        top = int(arr.max()) if arr.size else 0
        scaled = arr.astype(np.float32) / (257.0 if top > 255 else 1.0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def to_rgb(img: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """Convert a loaded image of any mode to ``RGB`` (see the table in the module docstring)."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode.startswith("I") or mode == "F":
        return _to_8bit_gray(img).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    if mode in {"L", "1", "P", "CMYK", "YCbCr", "RGBX"}:
        return img.convert("RGB")
    try:
        return img.convert("RGB")
    except Exception as exc:  # noqa: BLE001
        raise ImageDecodeError(f"unsupported mode {mode}: {_short(exc)}") from None


def decode_rgb(
    data: bytes,
    *,
    min_short_side: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] = BACKGROUND,
) -> Image.Image:
    """Decode ``data`` to an ``RGB`` image or raise :class:`ImageDecodeError`.

    ``min_short_side``: if given and the file is a JPEG at least twice that size, decode it
    at a reduced DCT scale keeping the short side >= ``min_short_side`` (fast path).
    ``max_pixels``: refuse (before decoding) images with more pixels than this.
    """
    img = open_image(data, max_pixels=max_pixels)
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        if min_short_side and img.format == "JPEG" and min(img.size) >= 2 * min_short_side:
            img.draft(img.mode, (int(min_short_side), int(min_short_side)))
        img.load()
    except ImageDecodeError:
        raise
    except MemoryError:
        raise ImageDecodeError("out of memory while decoding") from None
    except Exception as exc:  # noqa: BLE001 - every decoder failure is a bad image
        msg = _short(exc)
        kind = "truncated" if "truncat" in msg.lower() or isinstance(exc, EOFError) else "corrupt"
        raise ImageDecodeError(f"{kind}: {type(exc).__name__}: {msg}") from None
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the image
        pass
    try:
        rgb = to_rgb(img, background)
    except ImageDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageDecodeError(f"conversion from {img.mode} failed: {_short(exc)}") from None
    return rgb


def precrop_box(
    size: tuple[int, int], *, resize_short: int, crop: tuple[int, int], max_aspect: float = 4.0
) -> tuple[int, int, int, int] | None:
    """Centred box keeping what a shortest-side resize + centre crop can ever use, or None.

    A 4000x3 image resized so its short side is 256 px would be 341,333 px long; the
    centre crop then keeps 224 of them. For images whose aspect ratio exceeds
    ``max_aspect`` we cut the long side down to the part the crop can keep plus a margin
    covering the resampling filter, so ordinary images (aspect <= 4) are left exactly as the
    reference transform sees them. ``size`` is (width, height), ``crop`` is (height, width).
    """
    w, h = size
    short, long_ = min(w, h), max(w, h)
    if long_ <= max_aspect * short:
        return None
    # scale factor of the resize is resize_short / short; the crop keeps max(crop) resized px
    keep = max(crop) * short / resize_short
    margin = 4 * max(1.0, short / resize_short) + 4  # >= 2x the antialias filter support
    # never below the short side: the resize must still scale by the same side
    new_long = min(long_, max(short, int(math.ceil(keep + 2 * margin))))
    if new_long >= long_:
        return None
    start = (long_ - new_long) // 2
    if w >= h:
        return (start, 0, start + new_long, h)
    return (0, start, w, start + new_long)


def precrop_for_center_crop(
    img: Image.Image, *, resize_short: int, crop: tuple[int, int], max_aspect: float = 4.0
) -> Image.Image:
    box = precrop_box(img.size, resize_short=resize_short, crop=crop, max_aspect=max_aspect)
    return img if box is None else img.crop(box)
