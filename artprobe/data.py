"""Data stage: resolve a source into a manifest, write image shards (the split: artprobe.split).

A *source* is either a Hugging Face hub dataset id (``huggan/wikiart``) or a local
folder in one of the hub's Parquet layouts (``artprobe.hub_layout``; e.g.
``data/train-XXXXX-of-YYYYY.parquet`` files with an image column and target columns).
A hub source is fetched by the download stage (``artprobe.download``) into the hub
cache, whose snapshot folder is itself a folder in the hub layout, so both kinds of
source are read by the same code. A local folder without Parquet data files is an
image folder, read by `datasets`' own ``imagefolder`` builder (``artprobe.imagefolder``).

The manifest job also writes the row index (``rows.parquet``): every row's class id per
target (``artprobe.labels``: ClassLabel ints, strings or bare ints; -1 where the label is
missing) and, for image folders, the image path; the shard jobs take labels from it.

Row ids are positions in the source: splits in order, files in name order within a
split, rows in file order (image folders: `datasets`' order, files sorted by path).
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

from artprobe import disk, labels
from artprobe.config import is_local_source
from artprobe.hub_layout import LayoutError, select
from artprobe.image_column import ImageColumnError, _resolve, check_column, image_bytes, image_kind
from artprobe.imagefolder import FolderError, is_imagefolder, label_hint, read_imagefolder
from artprobe.io import atomic_path, read_json, with_meta, write_json, write_parquet

log = logging.getLogger(__name__)

class DataError(ValueError):
    """The source does not look like what the config says it is."""


# --------------------------------------------------------------------------- source


def resolve_source(source: str, revision: str | None = None) -> tuple[Path, str]:
    """Return (local folder, revision) for ``source``.

    A hub dataset is read from the hub cache, where the download stage put it
    (``artprobe.download``): the snapshot folder of the revision's commit, itself a
    folder in the hub layout. Nothing is fetched here.
    """
    if is_local_source(source):
        folder = Path(os.path.expanduser(source))
        if not folder.is_dir():
            raise DataError(f"dataset.source {source!r}: no such folder")
        return folder, revision or "local"
    from artprobe.download.cache import cached_commit, storage_folder

    commit = cached_commit(source, revision)
    folder = storage_folder(source) / "snapshots" / str(commit)
    if commit is None or not folder.is_dir():
        raise DataError(
            f"{source}@{revision or 'main'}: not in the hub cache ({folder.parent}); "
            "the download stage (rules/download.smk) fetches it"
        )
    return folder, commit


def list_data_files(
    folder: Path, config: str | None = None, splits: list[str] | None = None
) -> list[Path]:
    """The data files of ``config`` / ``splits`` in ``folder``, in row-id order
    (``artprobe.hub_layout``: the same selection as for a hub repository)."""
    paths = [p.relative_to(folder).as_posix() for p in Path(folder).rglob("*.parquet")]
    try:
        chosen = select(paths, config, splits, where=str(folder))
    except LayoutError as err:
        raise DataError(str(err)) from None
    return [Path(folder) / f.path for f in chosen]


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


#: the manifest's sidecar: every row's class ids per target (-1: missing), for image
#: folders also the image path; written by the manifest job, read by the shard jobs
INDEX_NAME = "rows.parquet"


def _parquet_columns(folder: Path, files: list[Path], targets: list[str], image_column: str):
    """File entries, ClassLabel names and the target columns of a Parquet source."""
    names: dict[str, list[str]] = {}
    entries, parts, row_start = [], [], 0
    for path in files:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
        _check_columns(schema.names, targets, image_column, str(path))
        for name, found in class_names_from_schema(schema).items():
            if name in targets:
                if name in names and names[name] != found:
                    raise DataError(f"{path}: class names of {name!r} differ between files")
                names[name] = found
        rows = pf.metadata.num_rows
        entries.append({"name": path.relative_to(folder).as_posix(), "rows": rows, "row_start": row_start,
                        "bytes": path.stat().st_size})  # fmt: skip
        row_start += rows
        parts.append(pf.read(columns=targets))
    for name, found in class_names_from_readme(folder).items():
        if name in targets:
            names.setdefault(name, found)
    # a few rows of the image column (not a whole row group: WikiArt's are hundreds of MB)
    sample = next(pq.ParquetFile(files[0]).iter_batches(batch_size=16, columns=[image_column]), None)
    column = sample.column(0) if sample is not None else pq.read_table(files[0], columns=[image_column]).column(0)
    if image_kind(column.type, image_column) == "path":  # every path is checked: cheap
        column = pa.concat_tables(pq.read_table(f, columns=[image_column]) for f in files).column(0)
    kind = check_column(column, image_column, folder, str(files[0]))
    if kind == "path":  # the shards hold the files the paths name: their bytes count too
        sizes = [os.path.getsize(_resolve(folder, p)) for p in column.to_pylist()]
        for e in entries:
            e["bytes"] += sum(sizes[e["row_start"] : e["row_start"] + e["rows"]])
    return entries, names, pa.concat_tables(parts, promote_options="permissive"), kind


def _check_columns(columns: list[str], targets: list[str], image_column: str, where: str, hint: str = "") -> None:
    missing = [t for t in targets if t not in columns]
    if missing:
        raise DataError(
            f"dataset.targets: missing column(s) {missing} in {where}; its columns are {columns}.{hint}"
        )
    if image_column not in columns:
        raise DataError(f"dataset.image_column {image_column!r}: not a column of {where}; its columns are {columns}")


def _encode_targets(table: pa.Table, names: dict, targets: list[str], where: str) -> tuple[dict, pa.Table]:
    """Manifest fields (classes, label kinds, missing counts) and the class-id columns."""
    info: dict = {"classes": {}, "label_kinds": {}, "missing_labels": {}}
    ids = {}
    for t in targets:
        column = table.column(t)
        try:
            kind, classes = labels.class_list(column, names.get(t))
            ids[t] = pa.array(labels.encode(column, kind, classes))
        except labels.LabelError as err:
            raise DataError(f"target {t!r} of {where} {err}") from None
        if len(classes) < 2:
            raise DataError(
                f"target {t!r} of {where} has {len(classes)} class(es) {classes[:5]}: "
                "a probe needs at least 2"
            )
        info["classes"][t], info["label_kinds"][t] = classes, kind
        info["missing_labels"][t] = labels.count_missing(column, kind)
    return info, pa.table({"row_id": pa.array(np.arange(table.num_rows, dtype=np.int64)), **ids})


def _folder_columns(folder: Path, targets: list[str], image_column: str, index_path: Path):
    """An image folder through datasets: its columns, names, and its single file entry (the index)."""
    try:
        table, names, splits = read_imagefolder(folder, image_column)
    except FolderError as err:
        raise DataError(str(err)) from None
    hint = label_hint(folder) if "label" in targets and "label" not in table.column_names else ""
    _check_columns(table.column_names, targets, image_column, f"the image folder {folder}", hint)
    images = sum(os.path.getsize(folder / p) for p in table.column(image_column).to_pylist() if p)
    entries = [{"name": str(index_path.resolve()), "rows": table.num_rows, "row_start": 0, "bytes": images}]
    return entries, names, table, splits


def build_manifest(
    source: str,
    revision: str | None,
    targets: list[str],
    out_path: str | os.PathLike,
    *,
    image_column: str = "image",
    index_path: str | os.PathLike | None = None,
    config: str | None = None,
    splits: list[str] | None = None,
) -> dict:
    """Resolve ``source``; write the manifest (files, row counts, classes) and the row index."""
    folder, resolved = resolve_source(source, revision)
    index_path = Path(index_path or Path(out_path).with_name(INDEX_NAME))
    extra: dict = {}
    if is_local_source(source) and is_imagefolder(folder):
        entries, names, table, splits = _folder_columns(folder, targets, image_column, index_path)
        extra = {"layout": "imagefolder", "image_kind": "path", "source_splits": splits}
    else:
        files = list_data_files(folder, config, splits)
        try:
            entries, names, table, kind = _parquet_columns(folder, files, targets, image_column)
        except ImageColumnError as err:
            raise DataError(str(err)) from None
        extra = {"layout": "parquet", "image_kind": kind}
    info, index = _encode_targets(table, names, targets, source)
    if extra["layout"] == "imagefolder":  # the index is the source the shards read
        index = index.append_column(image_column, table.column(image_column))
    n_rows = index.num_rows
    manifest = {
        "source": source,
        "revision": resolved,
        "local_dir": str(folder.resolve()),
        "files": entries,
        "n_rows": n_rows,
        "targets": list(targets),
        "classes": info["classes"],
        "image_column": image_column,
        **extra,
        "label_kinds": info["label_kinds"],
        "missing_labels": info["missing_labels"],
        "index": str(index_path.resolve()),
    }
    write_parquet(with_meta(index, {"classes": info["classes"]}), index_path)
    write_json(out_path, manifest)
    log.info(
        "manifest: %d rows in %d files from %s@%s; missing labels %s",
        n_rows, len(entries), source, resolved, info["missing_labels"],
    )  # fmt: skip
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


def read_class_ids(manifest: dict, columns: list[str]) -> pa.Table:
    """Class ids (int16, -1 = missing) of the whole source in row-id order: the row index.

    What stratifying needs: ``read_targets`` returns the source's raw values, which for
    string labels with gaps cannot be sorted.
    """
    return pq.read_table(manifest["index"], columns=columns)


def _index_rows(manifest: dict, start: int, stop: int, shard: str) -> pa.Table:
    """Rows [start, stop) of the manifest's row index (class ids per target)."""
    path = manifest.get("index")
    if not path or not Path(path).exists():
        raise DataError(
            f"shard {shard}: the manifest has no row index ({path or 'no index field'}); it was "
            "built by an older artprobe or the file was removed: rerun the manifest job "
            "(snakemake --forcerun manifest)"
        )
    return pq.read_table(path).slice(start, stop - start)


def write_shard(
    manifest_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    row_start: int,
    row_stop: int,
    shard: str,
) -> None:
    """Write rows [row_start, row_stop) as a shard: row_id, image (original bytes), targets.

    Class ids come from the manifest's row index (-1 where the label is missing). Written
    piece by piece (one source row group at a time, in row groups of 256 rows that the
    embedder streams), so memory does not grow with the shard's size.
    """
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
    image_column = manifest.get("image_column", "image")
    ids = _index_rows(manifest, row_start, row_stop, shard)
    disk.check_shard_space(manifest, out_path)
    fields = [("row_id", pa.int64()), ("image", pa.large_binary())] + [(t, pa.int16()) for t in targets]
    schema = with_meta(pa.schema(fields).empty_table(), meta).schema
    done = row_start
    with atomic_path(out_path, suffix=".parquet.tmp") as tmp:
        with pq.ParquetWriter(tmp, schema, compression="none") as writer:
            for piece in _iter_rows(manifest, row_start, row_stop, [image_column]):
                labels = ids.slice(done - row_start, piece.num_rows)
                columns = _shard_columns(piece.column(image_column), labels, done, manifest, shard)
                writer.write_table(pa.table(columns, schema=schema), row_group_size=256)
                done += piece.num_rows
            if done != row_stop:
                raise DataError(f"shard {shard}: got {done - row_start} rows, expected {row_stop - row_start}")
    log.info("shard %s: rows [%d, %d) written to %s", shard, row_start, row_stop, out_path)


def _shard_columns(images: pa.ChunkedArray, labels: pa.Table, first_row: int, manifest: dict, shard: str) -> dict:
    """A piece of a shard: row ids from ``first_row``, the original image bytes, class ids."""
    root = Path(manifest["local_dir"]) if manifest.get("layout") == "imagefolder" else local_dir(manifest)
    try:
        data = image_bytes(images, manifest.get("image_kind", "struct"), root)
    except ImageColumnError as err:
        raise DataError(f"shard {shard}: {err}") from None
    columns = {"row_id": pa.array(np.arange(first_row, first_row + len(data), dtype=np.int64)), "image": data}
    for t in manifest["targets"]:
        columns[t] = labels.column(t).cast(pa.int16())
    return columns
