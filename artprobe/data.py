"""Data stage: resolve a source into a manifest, write image shards (the split: artprobe.split).

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

from artprobe.config import is_local_source
from artprobe.io import read_json, with_meta, write_json, write_parquet

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
    """Write rows [row_start, row_stop) as a shard: row_id, image (original bytes), targets."""
    manifest = read_json(manifest_path)
    targets = manifest["targets"]
    table = pa.concat_tables(list(_iter_rows(manifest, row_start, row_stop, ["image", *targets])))
    if table.num_rows != row_stop - row_start:
        raise DataError(f"shard {shard}: got {table.num_rows} rows, expected {row_stop - row_start}")
    columns = {
        "row_id": pa.array(np.arange(row_start, row_stop, dtype=np.int64)),
        "image": _image_bytes(table.column("image")),
    }
    for t in targets:
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
                f"[0, {n_classes}) at row_id(s) {(bad[:10] + row_start).tolist()}"
            )
        columns[t] = pa.array(values.astype(np.int16))
    out = pa.table(columns)
    meta = {
        "shard": shard,
        "row_start": row_start,
        "row_stop": row_stop,
        "source": manifest["source"],
        "revision": manifest["revision"],
        "targets": targets,
        "classes": manifest["classes"],
    }
    # small row groups: the embedder reads a shard in pieces
    write_parquet(with_meta(out, meta), out_path, row_group_size=256, compression="none")
    log.info("shard %s: rows [%d, %d) written to %s", shard, row_start, row_stop, out_path)
