"""Near-duplicate scan across the split: val/test images whose twin is in train.

WikiArt, like any scraped collection, holds the same painting more than once (re-uploads at
another size or JPEG quality, a slightly different crop). A test image whose twin is in
train scores what the probe memorised, not what it generalises. The scan is model-free and
reads only what the ``image_hash`` jobs wrote (:mod:`artprobe.stages.image_hash`):

* :func:`candidates` compares every val/test hash with every train hash by XOR + popcount
  (exact, vectorised: about 10⁹ pairs per few seconds) and keeps, per query, the train rows
  within ``distance`` bits, nearest first (at most ``MAX_CANDIDATES``).
* :func:`confirm` checks each candidate pair with the measures the hash does not read (the
  detail vectors' cosine and the colour grids' RMS difference): pictures that only share a
  layout (portraits, icons: ~1 % of such pairs are within 8 bits) are candidates, not
  duplicates.
* :func:`scan` keeps one row per query with a candidate (its confirmed pair if it has one,
  else its nearest candidate); :func:`write_duplicates` writes them with both counts in the
  metadata, and :func:`duplicate_rows` is what ``split.drop_duplicates`` leaves out: the
  confirmed rows only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artprobe.common.io import with_meta, write_parquet
from artprobe.common.logs import progress
from artprobe.stages.image_hash import COLOUR, COLOUR_DIM, DETAIL, DETAIL_DIM, HASH, hamming

log = logging.getLogger(__name__)

#: a candidate is a duplicate when its detail cosine is at least DETAIL_MIN and its colour
#: grids differ by at most COLOUR_RMS_MAX (0-255 units); see artprobe.stages.image_hash
DETAIL_MIN, COLOUR_RMS_MAX = 0.90, 5.0
#: candidates kept per query (nearest first): a flat or stereotyped query can be within the
#: distance of thousands of train images; a copy is among its nearest
MAX_CANDIDATES = 64
DUPLICATE_COLUMNS = (
    "row_id",
    "split",
    "train_row_id",
    "distance",
    "detail",
    "colour",
    "confirmed",
    "candidates",
)


def nearest(
    queries: np.ndarray, reference: np.ndarray, chunk: int = 64
) -> tuple[np.ndarray, np.ndarray]:
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


def candidates(
    queries: np.ndarray,
    reference: np.ndarray,
    distance: int,
    *,
    limit: int = MAX_CANDIDATES,
    chunk: int = 64,
    progress_bar: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Every (query, reference) pair within ``distance`` bits, at most ``limit`` per query.

    Returns (query index, reference index, distance, queries that had more than ``limit``),
    sorted by query, then distance, then reference index. Exact, as :func:`nearest`.
    """
    queries, reference = np.asarray(queries, np.uint64), np.asarray(reference, np.uint64)
    if len(reference) == 0:
        raise ValueError("near-duplicate scan: no train image could be hashed")
    qs, rs, ds, truncated = [], [], [], 0
    with progress(
        total=len(queries), desc="duplicates: hash scan", unit="query", enabled=progress_bar
    ) as bar:
        for lo in range(0, len(queries), chunk):
            d = hamming(queries[lo : lo + chunk, None], reference[None, :])
            near = np.flatnonzero(d.min(axis=1) <= distance)  # most queries have no candidate
            q, r = np.nonzero(d[near] <= distance)  # q ascending, r ascending within q
            q = near[q]
            dd = d[q, r]
            order = np.lexsort((r, dd, q))
            q, r, dd = q[order], r[order], dd[order]
            rank = np.arange(len(q)) - np.searchsorted(q, q)
            truncated += int(np.unique(q[rank >= limit]).size)
            keep = rank < limit
            qs.append(q[keep] + lo), rs.append(r[keep]), ds.append(dd[keep])
            bar.update(len(d))
    cat = lambda xs, t: np.concatenate(xs).astype(t) if xs else np.zeros(0, t)  # noqa: E731
    return cat(qs, np.int64), cat(rs, np.int64), cat(ds, np.int16), truncated


def detail_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of int8 detail vectors (0 where either has no detail)."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    norm = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
    return np.einsum("ij,ij->i", a, b) / np.where(norm > 0, norm, np.inf)


def colour_rms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise RMS difference of uint8 colour grids, in 0-255 units."""
    diff = a.astype(np.float32) - b.astype(np.float32)
    return np.sqrt((diff * diff).mean(axis=1))


def confirm(
    detail: np.ndarray,
    colour: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    *,
    chunk: int = 65536,
    progress_bar: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(detail cosine, colour RMS, confirmed) of the pairs ``left[i], right[i]`` (row indices)."""
    cos = np.empty(len(left), np.float32)
    rms = np.empty(len(left), np.float32)
    with progress(
        total=len(left), desc="duplicates: confirm", unit="pair", enabled=progress_bar
    ) as bar:
        for lo in range(0, len(left), chunk):
            i, j = left[lo : lo + chunk], right[lo : lo + chunk]
            cos[lo : lo + chunk] = detail_cosine(detail[i], detail[j])
            rms[lo : lo + chunk] = colour_rms(colour[i], colour[j])
            bar.update(len(i))
    return cos, rms, (cos >= DETAIL_MIN) & (rms <= COLOUR_RMS_MAX)


class Hashes:
    """Every hashed row of the dataset (row id, split, hash) from the hash files; the
    confirming measures are read only for the rows that need them (:meth:`measures`)."""

    def __init__(self, hash_paths: Iterable[str | os.PathLike], split_path: str | os.PathLike):
        self.paths = [str(p) for p in hash_paths]
        for path in self.paths:
            missing = {"row_id", "phash", "detail", "colour"} - set(pq.read_schema(path).names)
            if missing:
                raise ValueError(
                    f"near-duplicate scan: {path} has no {sorted(missing)} column(s): written by an "
                    "older artprobe; rerun its image_hash job (snakemake --forcerun image_hash)"
                )
        table = pa.concat_tables(pq.read_table(p, columns=["row_id", "phash"]) for p in self.paths)
        self.starts = np.cumsum([0] + [pq.ParquetFile(p).metadata.num_rows for p in self.paths])
        self.row_id = table.column("row_id").to_numpy()
        self.split = _splits_of(self.row_id, split_path)
        phash = table.column("phash")
        self.hashed = ~phash.is_null().to_numpy(zero_copy_only=False)
        self.phash = phash.fill_null(0).to_numpy().astype(np.uint64)

    def measures(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(detail, colour) of the rows at ``positions`` (sorted, unique), one file at a time."""
        detail = np.zeros((len(positions), DETAIL_DIM), np.int8)
        colour = np.zeros((len(positions), COLOUR_DIM), np.uint8)
        for k, path in enumerate(self.paths):
            lo, hi = np.searchsorted(positions, self.starts[k : k + 2])
            if hi > lo:
                table = pq.read_table(path, columns=["detail", "colour"]).take(
                    positions[lo:hi] - self.starts[k]
                )
                detail[lo:hi] = _matrix(table.column("detail"), DETAIL_DIM, np.int8)
                colour[lo:hi] = _matrix(table.column("colour"), COLOUR_DIM, np.uint8)
        return detail, colour


def _matrix(column: pa.ChunkedArray, dim: int, dtype) -> np.ndarray:
    """A fixed-size-list column as an (n, dim) array, zeros where null."""
    arr = column.combine_chunks()
    out = np.zeros((len(arr), dim), dtype)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    if valid.any():
        out[valid] = (
            arr.filter(arr.is_valid()).flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
        )
    return out


def _splits_of(row_id: np.ndarray, split_path: str | os.PathLike) -> np.ndarray:
    """The split of each row id (object array), joined from ``split.parquet``."""
    sp = pq.read_table(split_path, columns=["row_id", "split"]).sort_by("row_id")
    sp_ids = sp.column("row_id").to_numpy()
    pos = np.minimum(np.searchsorted(sp_ids, row_id), max(len(sp_ids) - 1, 0))
    missing = row_id[(len(sp_ids) == 0) | (sp_ids[pos] != row_id)] if len(row_id) else row_id
    if len(missing):
        raise ValueError(
            f"near-duplicate scan: row id(s) {missing[:5].tolist()} have hashes but no split"
        )
    return np.asarray(sp.column("split").to_pylist(), dtype=object)[pos]


def scan(
    hash_paths: Iterable[str | os.PathLike],
    split_path: str | os.PathLike,
    distance: int,
    *,
    progress_bar: bool = False,
) -> tuple[pa.Table, dict]:
    """Val/test rows with a train row within ``distance`` bits, confirmed or not: the table
    (one row per such query) and the counts (its meta)."""
    fp = Hashes(hash_paths, split_path)
    train = np.flatnonzero(fp.hashed & (fp.split == "train"))
    query = np.flatnonzero(fp.hashed & ((fp.split == "val") | (fp.split == "test")))
    qi, ri, dist, truncated = candidates(
        fp.phash[query], fp.phash[train], distance, progress_bar=progress_bar
    )
    involved, pair = np.unique(np.concatenate([query[qi], train[ri]]), return_inverse=True)
    detail, colour = fp.measures(involved)
    cos, rms, ok = confirm(
        detail, colour, pair[: len(qi)], pair[len(qi) :], progress_bar=progress_bar
    )
    # per query: its first (nearest) confirmed pair, else its first candidate
    first = np.unique(qi, return_index=True)[1]
    chosen = first.copy()
    good = np.flatnonzero(ok)
    q_good, at = np.unique(qi[good], return_index=True)
    chosen[np.searchsorted(qi[first], q_good)] = good[at]
    counts = np.bincount(qi, minlength=len(query))[qi[chosen]]
    rows = query[qi[chosen]]
    table = pa.table(
        {
            "row_id": pa.array(fp.row_id[rows], pa.int64()),
            "split": pa.array(fp.split[rows].tolist(), pa.string()),
            "train_row_id": pa.array(fp.row_id[train[ri[chosen]]], pa.int64()),
            "distance": pa.array(dist[chosen], pa.int16()),
            "detail": pa.array(cos[chosen], pa.float32()),
            "colour": pa.array(rms[chosen], pa.float32()),
            "confirmed": pa.array(ok[chosen], pa.bool_()),
            "candidates": pa.array(counts, pa.int32()),
        }
    )
    return table, _scan_meta(fp, table, distance, len(qi), truncated)


def _scan_meta(fp: Hashes, table: pa.Table, distance: int, pairs: int, truncated: int) -> dict:
    split = np.asarray(table.column("split").to_pylist(), dtype=object)
    confirmed = table.column("confirmed").to_numpy(zero_copy_only=False)
    return {
        "hash": HASH,
        "distance": int(distance),
        "confirm": {
            "detail": DETAIL,
            "detail_min": DETAIL_MIN,
            "colour": COLOUR,
            "colour_rms_max": COLOUR_RMS_MAX,
        },
        "candidates": {s: int((split == s).sum()) for s in ("val", "test")},
        "duplicates": {s: int(((split == s) & confirmed).sum()) for s in ("val", "test")},
        "candidate_pairs": int(pairs),
        "queries_over_limit": {"limit": MAX_CANDIDATES, "queries": int(truncated)},
        "scanned": {s: int((fp.hashed & (fp.split == s)).sum()) for s in ("train", "val", "test")},
        "unhashed": int((~fp.hashed).sum()),
    }


def write_duplicates(
    hash_paths: Iterable[str | os.PathLike],
    split_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    distance: int,
    progress_bar: bool = True,
) -> dict:
    """Write ``duplicates.parquet`` (``DUPLICATE_COLUMNS``: every val/test row with a candidate,
    ``confirmed`` saying which are duplicates); return its meta."""
    t0 = time.perf_counter()
    table, meta = scan(list(hash_paths), split_path, distance, progress_bar=progress_bar)
    meta["seconds"] = round(time.perf_counter() - t0, 3)
    write_parquet(with_meta(table, meta), out_path)
    log.info(
        "near-duplicates within %d bits: candidates %s, confirmed %s (detail cosine >= %.2f, colour RMS <= %.1f) "
        "of %s val/test rows (%.1f s)",
        distance,
        meta["candidates"],
        meta["duplicates"],
        DETAIL_MIN,
        COLOUR_RMS_MAX,
        {k: meta["scanned"][k] for k in ("val", "test")},
        meta["seconds"],
    )
    return meta


def duplicate_rows(path: str | os.PathLike) -> np.ndarray:
    """Row ids of the confirmed duplicates in ``duplicates.parquet``: what
    ``split.drop_duplicates`` leaves out (a file without ``confirmed``, from an older
    artprobe, counts every row)."""
    names = pq.read_schema(path).names
    if "confirmed" not in names:
        return pq.read_table(path, columns=["row_id"]).column("row_id").to_numpy()
    table = pq.read_table(path, columns=["row_id", "confirmed"])
    return table.column("row_id").to_numpy()[
        table.column("confirmed").to_numpy(zero_copy_only=False)
    ]
