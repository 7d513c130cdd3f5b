"""Data stage: resolve a source into a manifest, assign the split, write image shards.

A *source* is either a Hugging Face hub dataset id (``huggan/wikiart``) or a local
folder in the hub's layout (``data/train-XXXXX-of-YYYYY.parquet`` files with an
``image`` column and ``ClassLabel`` target columns). A hub source is downloaded
(resumable, cached under ``HF_HOME``; ``HF_TOKEN`` and ``HF_HUB_OFFLINE`` honoured)
into the hub cache, which is itself a folder in the hub layout, so both kinds of
source are read by the same code.

Row ids are positions in the source: files in name order, rows in file order.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artprobe.config import SPLITS, is_local_source
from artprobe.io import atomic_path, read_json, with_meta, write_json, write_parquet

log = logging.getLogger(__name__)

DATA_GLOB = "data/*.parquet"


class DataError(ValueError):
    """The source does not look like what the config says it is."""


# --------------------------------------------------------------------------- source


def resolve_source(source: str, revision: str | None = None) -> tuple[Path, str]:
    """Return (local folder in hub layout, revision) for ``source``.

    Hub datasets are fetched with ``huggingface_hub.snapshot_download`` (only the
    Parquet data files and the README): downloads resume and land in the shared
    cache, and a second call costs nothing.
    """
    if is_local_source(source):
        folder = Path(os.path.expanduser(source))
        if not folder.is_dir():
            raise DataError(f"dataset.source {source!r}: no such folder")
        return folder, revision or "local"
    from huggingface_hub import snapshot_download

    path = snapshot_download(
        repo_id=source,
        repo_type="dataset",
        revision=revision,
        allow_patterns=[DATA_GLOB, "README.md"],
    )
    # the snapshot folder is named after the resolved commit
    return Path(path), Path(path).name


def list_data_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob(DATA_GLOB))
    if not files:
        raise DataError(
            f"{folder}: no Parquet files matching {DATA_GLOB!r} "
            "(expected the hub layout data/train-XXXXX-of-YYYYY.parquet)"
        )
    return files


def class_names_from_schema(schema: pa.Schema) -> dict[str, list[str]]:
    """ClassLabel names stored by `datasets` in the Parquet schema metadata."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return {}
    features = json.loads(raw).get("info", {}).get("features", {})
    return {
        name: list(feat["names"])
        for name, feat in features.items()
        if isinstance(feat, dict) and feat.get("_type") == "ClassLabel" and "names" in feat
    }


def class_names_from_readme(folder: Path) -> dict[str, list[str]]:
    """ClassLabel names from the dataset card's ``dataset_info`` YAML header."""
    readme = folder / "README.md"
    if not readme.exists():
        return {}
    import yaml

    text = readme.read_text(errors="replace")
    if not text.startswith("---"):
        return {}
    header = text.split("---", 2)[1]
    info = yaml.safe_load(header) or {}
    infos = info.get("dataset_info", {})
    if isinstance(infos, list):  # several configs: take the default one
        infos = infos[0] if infos else {}
    out = {}
    for feat in infos.get("features", []) or []:
        dtype = feat.get("dtype")
        names = dtype.get("class_label", {}).get("names") if isinstance(dtype, dict) else None
        if names:
            out[feat["name"]] = [names[k] for k in sorted(names, key=lambda k: int(k))]
    return out


def build_manifest(
    source: str, revision: str | None, targets: list[str], out_path: str | os.PathLike
) -> dict:
    """Resolve ``source`` and write the manifest: files, row counts, class names."""
    folder, resolved = resolve_source(source, revision)
    files = list_data_files(folder)
    classes: dict[str, list[str]] = {}
    entries = []
    row_start = 0
    for path in files:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
        missing = [c for c in ["image", *targets] if c not in schema.names]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {missing}; it has {schema.names}. "
                "Check dataset.targets against the source."
            )
        for name, names in class_names_from_schema(schema).items():
            if name in targets:
                if name in classes and classes[name] != names:
                    raise DataError(f"{path}: class names of {name!r} differ between files")
                classes[name] = names
        rows = pf.metadata.num_rows
        entries.append({"name": path.relative_to(folder).as_posix(), "rows": rows, "row_start": row_start})
        row_start += rows
    for name, names in class_names_from_readme(folder).items():
        if name in targets:
            classes.setdefault(name, names)
    missing = [t for t in targets if t not in classes]
    if missing:
        raise DataError(
            f"{source}: no ClassLabel names for target(s) {missing} in the Parquet "
            "metadata or the dataset card; targets must be ClassLabel columns"
        )
    manifest = {
        "source": source,
        "revision": resolved,
        "local_dir": str(folder.resolve()),
        "files": entries,
        "n_rows": row_start,
        "targets": list(targets),
        "classes": {t: classes[t] for t in targets},
    }
    write_json(out_path, manifest)
    log.info("manifest: %d rows in %d files from %s@%s", row_start, len(entries), source, resolved)
    return manifest


def shard_ranges(n_rows: int, rows_per_shard: int) -> dict[str, tuple[int, int]]:
    """Shard id (5 digits) -> [row_start, row_stop)."""
    if rows_per_shard < 1:
        raise DataError("shards.rows must be >= 1")
    n = max(1, math.ceil(n_rows / rows_per_shard))
    return {
        f"{i:05d}": (i * rows_per_shard, min(n_rows, (i + 1) * rows_per_shard)) for i in range(n)
    }


# --------------------------------------------------------------------------- split


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


# --------------------------------------------------------------------------- shards


def local_dir(manifest: dict) -> Path:
    """The manifest's local folder; re-resolved (from the cache) if it moved."""
    folder = Path(manifest["local_dir"])
    if folder.is_dir():
        return folder
    folder, _ = resolve_source(manifest["source"], manifest["revision"])
    return folder


def _iter_rows(manifest: dict, start: int, stop: int, columns: list[str]) -> Iterable[pa.Table]:
    """Yield tables holding rows [start, stop) of the source, reading only overlapping row groups."""
    folder = local_dir(manifest)
    for f in manifest["files"]:
        f_start, f_stop = f["row_start"], f["row_start"] + f["rows"]
        lo, hi = max(start, f_start), min(stop, f_stop)
        if lo >= hi:
            continue
        pf = pq.ParquetFile(folder / f["name"])
        if pf.metadata.num_rows != f["rows"]:
            raise DataError(
                f"{folder / f['name']}: has {pf.metadata.num_rows} rows, the manifest says "
                f"{f['rows']}; the source changed since the manifest was built"
            )
        offset = f_start
        for rg in range(pf.num_row_groups):
            n = pf.metadata.row_group(rg).num_rows
            g_lo, g_hi = max(lo, offset), min(hi, offset + n)
            if g_lo < g_hi:
                t = pf.read_row_group(rg, columns=columns)
                yield t.slice(g_lo - offset, g_hi - g_lo)
            offset += n


def _image_bytes(column: pa.ChunkedArray) -> pa.Array:
    """The hub's Image feature is struct<bytes, path>; a plain binary column is accepted too."""
    col = column.combine_chunks()
    if pa.types.is_struct(col.type):
        col = col.field("bytes")
    if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
        raise DataError(f"column 'image' has type {column.type}; expected the hub's Image feature")
    return col.cast(pa.large_binary())


def write_shard(
    manifest_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    row_start: int,
    row_stop: int,
    shard: str,
) -> None:
    """Write rows [row_start, row_stop) as a shard: row_id, image (original bytes), targets.

    Written piece by piece (one source row group at a time, in row groups of 256 rows that
    the embedder streams), so memory does not grow with the shard's size."""
    manifest = read_json(manifest_path)
    targets = manifest["targets"]
    meta = {
        "shard": shard,
        "row_start": row_start,
        "row_stop": row_stop,
        "source": manifest["source"],
        "revision": manifest["revision"],
        "targets": targets,
        "classes": manifest["classes"],
    }
    fields = [("row_id", pa.int64()), ("image", pa.large_binary())] + [(t, pa.int16()) for t in targets]
    schema = with_meta(pa.schema(fields).empty_table(), meta).schema
    done = row_start
    with atomic_path(out_path, suffix=".parquet.tmp") as tmp:
        with pq.ParquetWriter(tmp, schema, compression="none") as writer:
            for piece in _iter_rows(manifest, row_start, row_stop, ["image", *targets]):
                columns = _shard_columns(piece, done, manifest, shard)
                writer.write_table(pa.table(columns, schema=schema), row_group_size=256)
                done += piece.num_rows
            if done != row_stop:
                raise DataError(f"shard {shard}: got {done - row_start} rows, expected {row_stop - row_start}")
    log.info("shard %s: rows [%d, %d) written to %s", shard, row_start, row_stop, out_path)


def _shard_columns(table: pa.Table, first_row: int, manifest: dict, shard: str) -> dict:
    """A piece of a shard: row ids from ``first_row``, the image bytes, the targets (checked)."""
    n = table.num_rows
    columns = {
        "row_id": pa.array(np.arange(first_row, first_row + n, dtype=np.int64)),
        "image": _image_bytes(table.column("image")),
    }
    for t in manifest["targets"]:
        column = table.column(t)
        n_classes = len(manifest["classes"][t])
        if column.null_count:
            bad = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
        else:
            values = column.to_numpy()
            bad = np.flatnonzero((values < 0) | (values >= n_classes))
        if len(bad):
            raise DataError(
                f"shard {shard}: target {t!r} has missing labels or labels outside "
                f"[0, {n_classes}) at row_id(s) {(bad[:10] + first_row).tolist()}"
            )
        columns[t] = pa.array(values.astype(np.int16))
    return columns
