"""Merge one model's shard embeddings with the targets (from the shards) and the split (the
``merge_embeddings`` rule); refuse, writing nothing, when the shards don't add up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from artprobe.common.io import read_meta, with_meta, write_parquet
from artprobe.common.logs import progress
from artprobe.stages.embed import IDENTITY_DEFAULTS, IDENTITY_KEYS

#: Per-shard run records, dropped from the merged table's metadata (kept under ``shards``).
_PER_SHARD_KEYS = (
    "shard",
    "rows",
    "failures",
    "resumed_rows",
    "seconds",
    "img_per_s",
    "steady_img_per_s",
    "first_batch_s",
    "batch_size_used",
    "oom_retries",
)


#: What the merged table's ``shards`` records of each shard's run.
_THROUGHPUT_KEYS = (
    "shard",
    "rows",
    "failures",
    "seconds",
    "img_per_s",
    "device_name",
    "batch_size_used",
)


class MergeError(ValueError):
    """The embedding shards don't add up to the dataset; nothing was written."""


def _fmt_ids(ids, limit: int = 10) -> str:
    ids = [int(i) for i in ids]
    more = f" … (+{len(ids) - limit} more)" if len(ids) > limit else ""
    return ", ".join(map(str, ids[:limit])) + more


class _Shards:
    """The shards read so far: their embedded, failed and target rows, and what's wrong."""

    def __init__(self, targets: list[str]):
        self.targets = targets
        self.problems: list[str] = []
        self.ref = self.ref_path = self.classes = None
        self.throughput: list[dict] = []
        self.ok_tables: list[pa.Table] = []
        self.fail_tables: list[pa.Table] = []
        self.target_tables: list[pa.Table] = []

    def add(self, emb_path: Path, shard_path: Path) -> None:
        meta = read_meta(emb_path)
        emb = pq.read_table(emb_path, columns=["row_id", "embedding", "error"])
        shard_schema = pq.read_schema(shard_path)
        missing_targets = [t for t in self.targets if t not in shard_schema.names]
        if missing_targets:
            self.problems.append(f"{shard_path}: no target column(s) {missing_targets}")
            return
        shard = pq.read_table(shard_path, columns=["row_id", *self.targets])
        if self.classes is None:
            self.classes = read_meta(shard_schema).get("classes")
        if not pa.types.is_fixed_size_list(emb["embedding"].type):
            self.problems.append(
                f"{emb_path}: embedding column is {emb['embedding'].type}, not fixed_size_list"
            )
            return
        if not self._same_identity(emb_path, meta, emb) or not self._same_rows(
            emb_path, shard_path, emb, shard
        ):
            return
        is_ok = pc.and_(emb["error"].is_null(), emb["embedding"].is_valid())
        self.ok_tables.append(emb.filter(is_ok).select(["row_id", "embedding"]))
        failed = emb.filter(pc.invert(is_ok))
        reasons = pc.fill_null(failed["error"], "no embedding")
        self.fail_tables.append(pa.table({"row_id": failed["row_id"], "reason": reasons}))
        self.target_tables.append(shard)
        self.throughput.append({k: meta.get(k) for k in _THROUGHPUT_KEYS} | {"file": emb_path.name})

    def _same_identity(self, emb_path: Path, meta: dict, emb: pa.Table) -> bool:
        ident = {k: meta.get(k, IDENTITY_DEFAULTS.get(k)) for k in IDENTITY_KEYS}
        ident["embedding_dim"] = emb["embedding"].type.list_size
        if self.ref is None:
            self.ref, self.ref_path = ident, emb_path
            return True
        diff = {k: (self.ref[k], ident[k]) for k in IDENTITY_KEYS if self.ref[k] != ident[k]}
        if diff:
            detail = "; ".join(f"{k}: {a!r} vs {b!r}" for k, (a, b) in diff.items())
            self.problems.append(
                f"{emb_path} was embedded differently from {self.ref_path}: {detail}"
            )
        return not diff

    def _same_rows(self, emb_path: Path, shard_path: Path, emb: pa.Table, shard: pa.Table) -> bool:
        e_ids = emb["row_id"].to_numpy()
        s_ids = shard["row_id"].to_numpy()
        uniq, counts = np.unique(e_ids, return_counts=True)
        doubled = uniq[counts > 1]
        missing = np.setdiff1d(s_ids, e_ids)
        extra = np.setdiff1d(e_ids, s_ids)
        if len(doubled):
            self.problems.append(
                f"{emb_path}: row_id(s) embedded more than once: {_fmt_ids(doubled)}"
            )
        if len(missing):
            self.problems.append(
                f"{emb_path}: {len(missing)} row_id(s) of shard {shard_path.name} missing: {_fmt_ids(missing)}"
            )
        if len(extra):
            self.problems.append(
                f"{emb_path}: {len(extra)} row_id(s) not in shard {shard_path.name}: {_fmt_ids(extra)}"
            )
        return not (len(doubled) or len(missing) or len(extra))

    def check_disjoint(self) -> None:
        if self.problems:
            return
        all_ids = np.concatenate([t["row_id"].to_numpy() for t in self.target_tables])
        uniq, counts = np.unique(all_ids, return_counts=True)
        if (counts > 1).any():
            self.problems.append(
                f"row_id(s) present in more than one shard: {_fmt_ids(uniq[counts > 1])}"
            )


def _split_positions(split: pa.Table, split_path, ids: np.ndarray) -> np.ndarray:
    """For each of ``ids``, its row in ``split``; MergeError if listed twice or missing."""
    sp_ids = split["row_id"].to_numpy()
    sp_uniq, sp_counts = np.unique(sp_ids, return_counts=True)
    if (sp_counts > 1).any():
        raise MergeError(
            f"{split_path}: row_id(s) listed more than once: {_fmt_ids(sp_uniq[sp_counts > 1])}"
        )
    sp_order = np.argsort(sp_ids, kind="stable")
    found = np.searchsorted(sp_ids[sp_order], ids)
    found_c = np.minimum(found, max(len(sp_ids) - 1, 0))
    has = (
        (found < len(sp_ids)) & (sp_ids[sp_order][found_c] == ids)
        if len(sp_ids)
        else np.zeros(len(ids), bool)
    )
    if not has.all():
        raise MergeError(
            f"{int((~has).sum())} embedded row_id(s) have no split in {split_path}: {_fmt_ids(ids[~has])}"
        )
    return sp_order[found]


def _merged_table(shards: _Shards, split_path) -> pa.Table:
    """``row_id``, ``split``, the targets, ``embedding``: the embedded rows, by row_id."""
    embedded = pa.concat_tables(shards.ok_tables).combine_chunks()
    embedded = embedded.take(pc.sort_indices(embedded["row_id"]))
    ids = embedded["row_id"].to_numpy()
    labels = pa.concat_tables(shards.target_tables).combine_chunks()
    lab_ids = labels["row_id"].to_numpy()
    lab_order = np.argsort(lab_ids, kind="stable")
    lab_pos = lab_order[np.searchsorted(lab_ids[lab_order], ids)]  # every embedded id is a shard id
    split = pq.read_table(split_path, columns=["row_id", "split"]).combine_chunks()
    split_pos = _split_positions(split, split_path, ids)
    return pa.table(
        {
            "row_id": embedded["row_id"],
            "split": split["split"].take(pa.array(split_pos)),
            **{t: labels[t].take(pa.array(lab_pos)) for t in shards.targets},
            "embedding": embedded["embedding"],
        }
    )


def merge_embeddings(
    embedding_paths: list,
    shard_paths: list,
    split_path,
    out_path,
    failures_path,
    *,
    targets: list[str],
) -> None:
    """Join per-shard embeddings with targets (from the shards) and split; write both outputs.

    ``embedding_paths[i]`` must hold exactly the rows of ``shard_paths[i]``. Raises
    :class:`MergeError` (writing nothing) when a row is missing, doubled or unknown, or when
    the shards disagree on model provenance or embedding dimension.
    """
    if len(embedding_paths) != len(shard_paths):
        raise MergeError(f"{len(embedding_paths)} embedding files for {len(shard_paths)} shards")
    if not embedding_paths:
        raise MergeError("no embedding shards to merge")
    shards = _Shards(targets)
    pairs = zip(embedding_paths, shard_paths)
    for emb_path, shard_path in progress(pairs, total=len(shard_paths), desc="merge", unit="shard"):
        shards.add(Path(emb_path), Path(shard_path))
    shards.check_disjoint()
    if shards.problems:
        raise MergeError("cannot merge embeddings:\n  " + "\n  ".join(shards.problems))
    merged = _merged_table(shards, split_path)
    failures = pa.concat_tables(shards.fail_tables).combine_chunks()
    failures = failures.take(pc.sort_indices(failures["row_id"]))
    meta = read_meta(shards.ref_path)
    for k in _PER_SHARD_KEYS:
        meta.pop(k, None)
    meta.update(
        classes=shards.classes,
        targets=list(targets),
        rows=merged.num_rows,
        failures=failures.num_rows,
        shards=shards.throughput,
    )
    write_parquet(with_meta(failures, {"rows": failures.num_rows}), failures_path)
    write_parquet(with_meta(merged, meta), out_path)
