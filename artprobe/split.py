"""Split stage: assign every row of the manifest to train, val or test.

``seed-compatible`` reproduces the thesis split (``datasets``' ``train_test_split`` twice with
one seed) row for row; ``stratified`` keeps each class's share in every part.
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artprobe.config import SPLITS
from artprobe.data import DataError, local_dir
from artprobe.io import read_json, with_meta, write_parquet

log = logging.getLogger(__name__)


def _hf_train_test(n: int, test_size: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Exactly ``datasets.Dataset.train_test_split(test_size=..., shuffle=True)``."""
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    if n_test < 1 or n_train < 1:
        raise DataError(f"split of {n} rows with test_size={test_size} leaves an empty part")
    perm = rng.permutation(n)
    return perm[n_test : n_test + n_train], perm[:n_test]


def seed_compatible_split(
    n_rows: int, seed: int = 2830, val_fraction: float = 0.1, test_fraction: float = 0.1
) -> np.ndarray:
    """The thesis split: datasets' ``train_test_split`` twice with the same seed.

    First ``test_size = val + test`` on all rows in source order; then the held-out
    part (in the order ``datasets`` selected it) again with
    ``test_size = test / (val + test)``: its train part is val, its test part is test.
    """
    held = val_fraction + test_fraction
    train_idx, held_idx = _hf_train_test(n_rows, held, np.random.default_rng(seed))
    val_pos, test_pos = _hf_train_test(len(held_idx), test_fraction / held, np.random.default_rng(seed))
    split = np.empty(n_rows, dtype=object)
    split[train_idx] = "train"
    split[held_idx[val_pos]] = "val"
    split[held_idx[test_pos]] = "test"
    return split


def stratified_split(
    labels: np.ndarray, seed: int, val_fraction: float, test_fraction: float
) -> np.ndarray:
    """Train/val/test with class proportions preserved (sklearn, two stages).

    Classes with fewer than 3 rows are pooled into one stratum so they cannot break
    the split; they still land somewhere.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    values, counts = np.unique(labels, return_counts=True)
    rare = set(values[counts < 3].tolist())
    strata = np.array([-1 if v in rare else v for v in labels])
    idx = np.arange(len(labels))
    held = val_fraction + test_fraction
    train_idx, held_idx = train_test_split(idx, test_size=held, random_state=seed, stratify=strata)
    held_strata = strata[held_idx]
    _, c = np.unique(held_strata, return_counts=True)
    strat2 = held_strata if c.min() >= 2 else None
    val_idx, test_idx = train_test_split(
        held_idx, test_size=test_fraction / held, random_state=seed, stratify=strat2
    )
    split = np.empty(len(labels), dtype=object)
    split[train_idx], split[val_idx], split[test_idx] = "train", "val", "test"
    return split


def read_targets(manifest: dict, columns: list[str]) -> pa.Table:
    """Target columns of the whole source (no images), in row-id order."""
    folder = local_dir(manifest)
    parts = [pq.read_table(folder / f["name"], columns=columns) for f in manifest["files"]]
    return pa.concat_tables(parts)


def write_split(
    manifest_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    method: str = "seed-compatible",
    seed: int = 2830,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    stratify_by: str | None = None,
) -> None:
    """Write ``split.parquet`` (row_id, split) for every row of the manifest."""
    manifest = read_json(manifest_path)
    n = manifest["n_rows"]
    if method == "seed-compatible":
        split = seed_compatible_split(n, seed, val_fraction, test_fraction)
    elif method == "stratified":
        column = stratify_by or manifest["targets"][0]
        labels = read_targets(manifest, [column]).column(column).to_numpy(zero_copy_only=False)
        split = stratified_split(labels, seed, val_fraction, test_fraction)
    else:
        raise DataError(f"split.method {method!r}: expected 'seed-compatible' or 'stratified'")
    table = pa.table(
        {"row_id": pa.array(np.arange(n, dtype=np.int64)), "split": pa.array(split.tolist(), pa.string())}
    )
    counts = {s: int((split == s).sum()) for s in SPLITS}
    meta = {"method": method, "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction, "counts": counts}
    if method == "stratified":
        meta["stratify_by"] = stratify_by or manifest["targets"][0]
    write_parquet(with_meta(table, meta), out_path)
    log.info("split %s seed=%d: %s", method, seed, counts)
