"""The ``image_hash`` stage: a perceptual hash per image, and what confirms a match.

The near-duplicate scan (:mod:`artprobe.stages.duplicates`) finds candidates by the hash and
counts a candidate only once a second, independent measure agrees. Both come from one
decode of each image, here:

* :func:`phash` is the DCT perceptual hash (64 bits): the image in grayscale, resized to
  32 × 32, its 2-D DCT-II, the 8 × 8 lowest frequencies (DC included) compared to their
  median. Re-encoding, resizing and small crops move few bits; different pictures differ
  in about half of them, but pictures that share a layout (portraits, icons) share their
  lowest frequencies: about 1 % of such pairs are within 8 bits.
* the *detail* vector (:func:`detail_pixels`): the grayscale image at 64 × 64, the DCT
  coefficients of frequencies 8 to 31 (the 8 × 8 block the hash reads left out, so it is
  independent of the hash), unit-normalised and stored as int8. Two images share their
  detail only if they show the same thing.
* the *colour* grid (in :func:`small_views`): the image's mean RGB in 4 × 4 blocks (uint8),
  which the grayscale measures do not see.

Measured on 60 generated paintings and 60 portraits (tests/test_duplicates.py), a copy's
detail cosine with its original is ≥ 0.975 after re-encoding, resizing or PNG, ≥ 0.925
after a 1 % crop (2 % crops can fall below 0.90: they stay candidates), and its colour
grid within 3.9 (RMS, 0-255); of 524 pairs of distinct portraits of one composition within
8 bits of each other's hash, 3 reach a cosine of 0.90 (max 0.94) and none a colour RMS
under 5.1. The scan confirms a pair when both agree (:data:`artprobe.stages.duplicates.DETAIL_MIN`,
:data:`~artprobe.stages.duplicates.COLOUR_RMS_MAX`).

:func:`hash_shard` writes all three per row of a shard (decoded by
:func:`artprobe.common.images.decode_rgb`, so hostile images become a recorded error, not a
crash; JPEGs at a reduced DCT scale), with a progress line in the job's log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artprobe.common.images import ImageDecodeError, decode_rgb
from artprobe.common.io import read_meta, with_meta, write_parquet
from artprobe.common.logs import progress
from artprobe.common.previews import DECODE_SIDE, PreviewWriter

log = logging.getLogger(__name__)

#: the hash: its name in the files' metadata, the resized side and the kept low frequencies
HASH = "phash-dct-64"
SIZE, LOW = 32, 8
#: JPEGs are decoded at the smallest DCT scale keeping this short side (fast, hash-neutral;
#: the previews need at least DECODE_SIDE, so the decode serves both)
DRAFT_SIDE = max(64, DECODE_SIDE)
#: the confirming measures: detail = DCT band [BAND_LO, BAND_HI) of a FINE x FINE grayscale
#: image without its BAND_LO x BAND_LO corner; colour = mean RGB on a GRID x GRID grid
FINE, BAND_LO, BAND_HI, GRID = 64, 8, 32, 4
DETAIL = f"dct-{FINE}-band-{BAND_LO}-{BAND_HI}"
COLOUR = f"rgb-mean-{GRID}x{GRID}"
DETAIL_DIM = BAND_HI * BAND_HI - BAND_LO * BAND_LO
COLOUR_DIM = GRID * GRID * 3


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: ``C @ x`` is the DCT of the column vector ``x``."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    c = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    c[0] /= np.sqrt(2.0)
    return c


_DCT_LOW = _dct_matrix(SIZE)[:LOW]
_DCT_BAND = _dct_matrix(FINE)[:BAND_HI]
_BAND = ~np.pad(np.ones((BAND_LO, BAND_LO), bool), (0, BAND_HI - BAND_LO)).ravel()


def hash_pixels(gray: np.ndarray) -> np.ndarray:
    """64-bit hashes (uint64) of a stack of ``SIZE × SIZE`` grayscale images (n, SIZE, SIZE)."""
    gray = np.asarray(gray, dtype=np.float64).reshape(-1, SIZE, SIZE)
    # rounded: a flat region's coefficients are 0, not float noise that would pick its bits
    low = np.round((_DCT_LOW @ gray @ _DCT_LOW.T).reshape(len(gray), LOW * LOW), 6)
    bits = low > np.median(low, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def detail_pixels(gray: np.ndarray) -> np.ndarray:
    """Detail vectors (int8, ``DETAIL_DIM``) of a stack of ``FINE × FINE`` grayscale images.

    Each is its DCT band scaled so its largest coefficient is ±127: only its direction
    counts (the scan compares cosines). A flat image has no detail: all zeros.
    """
    gray = np.asarray(gray, dtype=np.float64).reshape(-1, FINE, FINE)
    band = (_DCT_BAND @ gray @ _DCT_BAND.T).reshape(len(gray), -1)[:, _BAND]
    peak = np.abs(band).max(axis=1, keepdims=True)
    return np.round(127 * band / np.where(peak > 1e-6, peak, np.inf)).astype(np.int8)


class Views(NamedTuple):
    """One image, small: what the hash and the confirming measures are computed from."""

    gray: np.ndarray  # SIZE x SIZE float64 (the hash's input)
    fine: np.ndarray  # FINE x FINE float64 (the detail's input)
    colour: np.ndarray  # GRID x GRID x 3 uint8 (the colour grid)


def small_views(data: bytes, *, fine: bool = True) -> Views:
    """``data`` decoded once (robustly) to its small views; ImageDecodeError if it cannot be."""
    return views_of(decode_rgb(data, min_short_side=DRAFT_SIDE), fine=fine)


def views_of(rgb, *, fine: bool = True) -> Views:
    """The small views of a decoded RGB image."""
    from PIL import Image

    img = rgb.convert("L")
    gray = np.asarray(img.resize((SIZE, SIZE), Image.Resampling.LANCZOS), dtype=np.float64)
    if not fine:
        return Views(gray, None, None)
    big = np.asarray(img.resize((FINE, FINE), Image.Resampling.LANCZOS), dtype=np.float64)
    colour = np.asarray(rgb.resize((GRID, GRID), Image.Resampling.BOX), dtype=np.uint8)
    return Views(gray, big, colour)


def small_gray(data: bytes) -> np.ndarray:
    """``data`` decoded (robustly) to a ``SIZE × SIZE`` grayscale array; ImageDecodeError if not."""
    return small_views(data, fine=False).gray


def phash(data: bytes) -> int:
    """The perceptual hash of one encoded image (raises ImageDecodeError for a bad one)."""
    return int(hash_pixels(small_gray(data))[0])


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bits that differ between uint64 hashes (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64)))


def hash_images(
    images: Iterable[bytes | None], *, draft_side: int | None = DRAFT_SIDE
) -> tuple[np.ndarray, list[str | None]]:
    """(hashes, errors) of encoded images; a failed image gets hash 0 and its reason
    (``draft_side``: :func:`fingerprint_images`')."""
    prints = fingerprint_images(images, fine=False, draft_side=draft_side)
    return prints.phash, prints.errors


class Fingerprints(NamedTuple):
    """Per image: the hash, the detail vector, the colour grid, and the decode error (or None)."""

    phash: np.ndarray  # (n,) uint64, 0 where failed
    detail: np.ndarray | None  # (n, DETAIL_DIM) int8, zeros where failed
    colour: np.ndarray | None  # (n, COLOUR_DIM) uint8
    errors: list[str | None]


def fingerprint_images(
    images: Iterable[bytes | None],
    *,
    fine: bool = True,
    previews: PreviewWriter | None = None,
    draft_side: int | None = DRAFT_SIDE,
) -> Fingerprints:
    """The hash (and with ``fine`` the confirming measures) of encoded images, one decode each;
    ``previews`` gets each decoded image (None where it failed). ``draft_side``: the decode's
    smallest short side (:data:`DRAFT_SIDE`; None: full resolution, to measure what the
    DCT-scaled decode changes)."""
    views, errors = [], []
    blank = Views(
        np.zeros((SIZE, SIZE)), np.zeros((FINE, FINE)), np.zeros((GRID, GRID, 3), np.uint8)
    )
    for data in images:
        try:
            rgb = decode_rgb(data, min_short_side=draft_side)
            views.append(views_of(rgb, fine=fine))
            errors.append(None)
        except ImageDecodeError as err:
            rgb = None
            views.append(blank)
            errors.append(err.reason)
        if previews is not None:
            previews.add(rgb)
    if not views:
        empty = (
            (np.zeros((0, DETAIL_DIM), np.int8), np.zeros((0, COLOUR_DIM), np.uint8))
            if fine
            else (None, None)
        )
        return Fingerprints(np.zeros(0, np.uint64), *empty, [])
    hashes = hash_pixels(np.stack([v.gray for v in views]))
    hashes[[e is not None for e in errors]] = 0
    if not fine:
        return Fingerprints(hashes, None, None, errors)
    detail = detail_pixels(np.stack([v.fine for v in views]))
    colour = np.stack([v.colour for v in views]).reshape(len(views), COLOUR_DIM)
    return Fingerprints(hashes, detail, colour, errors)


def _vectors(values: np.ndarray, dim: int, dtype: pa.DataType, mask: np.ndarray) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), dtype)
    arr = pa.FixedSizeListArray.from_arrays(flat, dim)
    return pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(mask)) if mask.any() else arr


def hash_shard(
    shard_path: str | os.PathLike,
    out_path: str | os.PathLike,
    previews_path: str | os.PathLike | None = None,
    *,
    batch: int = 256,
    progress_bar: bool = True,
) -> None:
    """Write ``row_id, phash (uint64), detail (int8 x DETAIL_DIM), colour (uint8 x COLOUR_DIM),
    error`` for one shard; the measures are null where the image failed. With
    ``previews_path``, also every row's previews from the same decode
    (:class:`artprobe.common.previews.PreviewWriter`)."""
    pf = pq.ParquetFile(shard_path)
    previews = PreviewWriter() if previews_path is not None else None
    parts: list[Fingerprints] = []
    ids = []
    bar = progress(
        total=pf.metadata.num_rows,
        desc=f"image_hash {read_meta(shard_path).get('shard')}",
        unit="img",
        enabled=progress_bar,
    )
    with bar:
        for rb in pf.iter_batches(batch_size=batch):
            parts.append(fingerprint_images(rb.column("image").to_pylist(), previews=previews))
            ids.append(rb.column("row_id").to_numpy())
            if previews is not None:
                previews.rows(pa.Table.from_batches([rb]).drop_columns(["image"]))
            bar.update(rb.num_rows)
    prints = _concat(parts)
    failed = np.array([e is not None for e in prints.errors], dtype=bool)
    table = pa.table(
        {
            "row_id": pa.array(np.concatenate(ids) if ids else np.zeros(0, np.int64), pa.int64()),
            "phash": pa.array(prints.phash, pa.uint64(), mask=failed),
            "detail": _vectors(prints.detail, DETAIL_DIM, pa.int8(), failed),
            "colour": _vectors(prints.colour, COLOUR_DIM, pa.uint8(), failed),
            "error": pa.array(prints.errors, pa.string()),
        }
    )
    meta = {
        "hash": HASH,
        "detail": DETAIL,
        "colour": COLOUR,
        "shard": read_meta(shard_path).get("shard"),
        "failed": int(failed.sum()),
    }
    if previews is not None:
        previews.write(previews_path, {"shard": meta["shard"]})
    write_parquet(with_meta(table, meta), out_path)
    log.info("hashes: %d rows (%d failed) -> %s", len(failed), int(failed.sum()), out_path)


def _concat(parts: list[Fingerprints]) -> Fingerprints:
    if not parts:
        return fingerprint_images([])
    return Fingerprints(
        np.concatenate([p.phash for p in parts]),
        np.concatenate([p.detail for p in parts]),
        np.concatenate([p.colour for p in parts]),
        [e for p in parts for e in p.errors],
    )
