"""Near-duplicate scan across the split: a perceptual hash per image, val/test against train.

WikiArt, like any scraped collection, holds the same painting more than once (re-uploads at
another size or JPEG quality, a slightly different crop). A test image whose twin is in
train scores what the probe memorised, not what it generalises. The scan is model-free:

* :func:`phash` is the DCT perceptual hash (64 bits): the image in grayscale, resized to
  32 × 32, its 2-D DCT-II, the 8 × 8 lowest frequencies (DC included) compared to their
  median. Re-encoding, resizing and small crops move few bits; different pictures differ
  in about half of them.
* :func:`hash_shard` hashes one shard's images (decoded by :func:`artprobe.images.decode_rgb`,
  so hostile images become a recorded error, not a crash), JPEGs at a reduced DCT scale.
* :func:`scan` compares every val/test hash with every train hash by XOR + popcount
  (exact, vectorised: about 10⁹ pairs per few seconds) and keeps each query's nearest train
  row; :func:`write_duplicates` writes the rows within ``distance`` bits.
"""

from __future__ import annotations

import logging
import os
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artprobe.images import ImageDecodeError, decode_rgb
from artprobe.io import read_meta, with_meta, write_parquet

log = logging.getLogger(__name__)

#: the hash: its name in the files' metadata, the resized side and the kept low frequencies
HASH = "phash-dct-64"
SIZE, LOW = 32, 8
#: JPEGs are decoded at the smallest DCT scale keeping this short side (fast, hash-neutral)
DRAFT_SIDE = 64
DUPLICATE_COLUMNS = ("row_id", "split", "train_row_id", "distance")


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: ``C @ x`` is the DCT of the column vector ``x``."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    c = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    c[0] /= np.sqrt(2.0)
    return c


_DCT_LOW = _dct_matrix(SIZE)[:LOW]


def hash_pixels(gray: np.ndarray) -> np.ndarray:
    """64-bit hashes (uint64) of a stack of ``SIZE × SIZE`` grayscale images (n, SIZE, SIZE)."""
    gray = np.asarray(gray, dtype=np.float64).reshape(-1, SIZE, SIZE)
    # rounded: a flat region's coefficients are 0, not float noise that would pick its bits
    low = np.round((_DCT_LOW @ gray @ _DCT_LOW.T).reshape(len(gray), LOW * LOW), 6)
    bits = low > np.median(low, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def small_gray(data: bytes) -> np.ndarray:
    """``data`` decoded (robustly) to a ``SIZE × SIZE`` grayscale array; ImageDecodeError if not."""
    from PIL import Image

    img = decode_rgb(data, min_short_side=DRAFT_SIDE).convert("L")
    return np.asarray(img.resize((SIZE, SIZE), Image.Resampling.LANCZOS), dtype=np.float64)


def phash(data: bytes) -> int:
    """The perceptual hash of one encoded image (raises ImageDecodeError for a bad one)."""
    return int(hash_pixels(small_gray(data))[0])


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bits that differ between uint64 hashes (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64)))


def hash_images(images: Iterable[bytes | None]) -> tuple[np.ndarray, list[str | None]]:
    """(hashes, errors) of encoded images; a failed image gets hash 0 and its reason."""
    grays, errors = [], []
    for data in images:
        try:
            grays.append(small_gray(data))
            errors.append(None)
        except ImageDecodeError as err:
            grays.append(np.zeros((SIZE, SIZE)))
            errors.append(err.reason)
    if not grays:
        return np.zeros(0, np.uint64), []
    hashes = hash_pixels(np.stack(grays))
    hashes[[e is not None for e in errors]] = 0
    return hashes, errors


def hash_shard(shard_path: str | os.PathLike, out_path: str | os.PathLike, *, batch: int = 256) -> None:
    """Write ``row_id, phash (uint64, null where the image failed), error`` for one shard."""
    pf = pq.ParquetFile(shard_path)
    ids, hashes, errors = [], [], []
    for rb in pf.iter_batches(batch_size=batch, columns=["row_id", "image"]):
        h, e = hash_images(rb.column("image").to_pylist())
        ids.append(rb.column("row_id").to_numpy())
        hashes.append(h)
        errors += e
    row_id = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    phashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    failed = np.array([e is not None for e in errors], dtype=bool)
    table = pa.table(
        {
            "row_id": pa.array(row_id, pa.int64()),
            "phash": pa.array(phashes, pa.uint64(), mask=failed),
            "error": pa.array(errors, pa.string()),
        }
    )
    meta = {"hash": HASH, "shard": read_meta(shard_path).get("shard"), "failed": int(failed.sum())}
    write_parquet(with_meta(table, meta), out_path)
    log.info("hashes: %d rows (%d failed) -> %s", len(row_id), int(failed.sum()), out_path)


def nearest(queries: np.ndarray, reference: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each query's nearest reference hash (first index on a tie).

    Exact: every pair's XOR + popcount, ``chunk`` queries at a time (a chunk × len(reference)
    uint64 block, 33 MB for WikiArt's 65k train images).
    """
    queries, reference = np.asarray(queries, np.uint64), np.asarray(reference, np.uint64)
    if len(reference) == 0:
        raise ValueError("near-duplicate scan: no train image could be hashed")
    dist = np.empty(len(queries), np.uint8)
    index = np.empty(len(queries), np.int64)
    for lo in range(0, len(queries), chunk):
        d = hamming(queries[lo : lo + chunk, None], reference[None, :])
        index[lo : lo + chunk] = best = d.argmin(axis=1)
        dist[lo : lo + chunk] = d[np.arange(len(best)), best]
    return dist, index


def _read_hashes(hash_paths: Iterable[str | os.PathLike], split_path: str | os.PathLike):
    """(row_id, phash, split, hashed) of every row in the hash files, split joined by row id."""
    table = pa.concat_tables(pq.read_table(p, columns=["row_id", "phash"]) for p in hash_paths)
    sp = pq.read_table(split_path, columns=["row_id", "split"]).sort_by("row_id")
    sp_ids = sp.column("row_id").to_numpy()
    row_id = table.column("row_id").to_numpy()
    pos = np.minimum(np.searchsorted(sp_ids, row_id), max(len(sp_ids) - 1, 0))
    missing = row_id[(len(sp_ids) == 0) | (sp_ids[pos] != row_id)] if len(row_id) else row_id
    if len(missing):
        raise ValueError(f"near-duplicate scan: row id(s) {missing[:5].tolist()} have hashes but no split")
    split = np.asarray(sp.column("split").to_pylist(), dtype=object)[pos]
    phash = table.column("phash")
    hashed = ~phash.is_null().to_numpy(zero_copy_only=False)
    return row_id, phash.fill_null(0).to_numpy().astype(np.uint64), split, hashed


def scan(hash_paths: Iterable[str | os.PathLike], split_path: str | os.PathLike, distance: int) -> tuple[pa.Table, dict]:
    """Val/test rows within ``distance`` bits of a train row: the table and counts (its meta)."""
    row_id, phash, split, hashed = _read_hashes(hash_paths, split_path)
    train = hashed & (split == "train")
    query = hashed & ((split == "val") | (split == "test"))
    dist, index = nearest(phash[query], phash[train])
    hit = dist <= distance
    table = pa.table(
        {
            "row_id": pa.array(row_id[query][hit], pa.int64()),
            "split": pa.array(split[query][hit].tolist(), pa.string()),
            "train_row_id": pa.array(row_id[train][index[hit]], pa.int64()),
            "distance": pa.array(dist[hit], pa.int16()),
        }
    )
    flagged = split[query][hit]
    meta = {
        "hash": HASH,
        "distance": int(distance),
        "duplicates": {s: int((flagged == s).sum()) for s in ("val", "test")},
        "scanned": {s: int((hashed & (split == s)).sum()) for s in ("train", "val", "test")},
        "unhashed": int((~hashed).sum()),
    }
    return table, meta


def write_duplicates(
    hash_paths: Iterable[str | os.PathLike], split_path: str | os.PathLike, out_path: str | os.PathLike,
    *, distance: int,
) -> dict:  # fmt: skip
    """Write ``duplicates.parquet`` (row_id, split, train_row_id, distance); return its meta."""
    import time

    t0 = time.perf_counter()
    table, meta = scan(list(hash_paths), split_path, distance)
    meta["seconds"] = round(time.perf_counter() - t0, 3)
    write_parquet(with_meta(table, meta), out_path)
    log.info(
        "near-duplicates within %d bits: %s of %s val/test rows (%.1f s)",
        distance, meta["duplicates"], {k: meta["scanned"][k] for k in ("val", "test")}, meta["seconds"],
    )  # fmt: skip
    return meta
