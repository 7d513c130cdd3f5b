"""Synthetic images for tests and benchmarks (bench/common.py imports them from here).

Painting-like pictures (smooth colour fields, shapes, strokes, grain): JPEG decodes and
resizes them at realistic cost, unlike pure noise; and tiny random images in any format.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

FORMATS = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP"}


def small_image(ext: str = ".png", seed: int = 0, size: tuple[int, int] = (12, 10)) -> bytes:
    """A tiny random RGB image (``size`` = height, width) encoded in the format of ``ext``."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, FORMATS[ext])
    return buf.getvalue()


def synthetic_painting(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB image with real structure: colour fields, soft shapes, sharp strokes, grain."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    lw, lh = max(1, width // 4), max(1, height // 4)
    low = rng.integers(
        0, 256, size=(int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3), dtype=np.uint8
    )
    img = Image.fromarray(low, "RGB").resize((lw, lh), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    s = min(lw, lh)
    for _ in range(int(rng.integers(8, 20))):  # soft shapes, drawn at 1/4 scale
        x0, y0 = int(rng.integers(0, lw)), int(rng.integers(0, lh))
        rw, rh = (
            int(rng.integers(s // 20 + 1, s // 3 + 2)),
            int(rng.integers(s // 20 + 1, s // 3 + 2)),
        )
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = (x0 - rw, y0 - rh, x0 + rw, y0 + rh)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    img = img.resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 8))):  # sharp strokes at full scale
        pts = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(5)]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.line(pts, fill=colour, width=max(1, min(width, height) // 150))
    arr = np.asarray(img, dtype=np.int16)
    grain = rng.integers(-10, 11, size=(height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(arr + grain, 0, 255).astype(np.uint8), "RGB")


def synthetic_jpeg(width: int, height: int, seed: int = 0, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    synthetic_painting(width, height, seed).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def wikiart_like_sizes(
    n: int, seed: int = 0, long_side: tuple[int, int] = (900, 2000)
) -> list[tuple[int, int]]:
    """(width, height) pairs like WikiArt's: long side 900–2000 px, portrait and landscape."""
    rng = np.random.default_rng(seed)
    sizes = []
    for _ in range(n):
        long_ = int(rng.integers(long_side[0], long_side[1] + 1))
        short = int(long_ * rng.uniform(0.6, 0.95))
        sizes.append((long_, short) if rng.random() < 0.5 else (short, long_))
    return sizes
