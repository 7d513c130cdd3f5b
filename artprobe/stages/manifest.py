"""The ``manifest`` rule: resolve a source into a manifest and the row index.

The manifest (``manifest.json``) lists the source's files, row counts and classes; the row
index (``rows.parquet``) holds every row's class id per target (``artprobe.sources.labels``:
ClassLabel ints, strings or bare ints; -1 where the label is missing) and, for image
folders, the image path; the shard and split jobs take it as an input of their own (the
manifest names no path of it, so a moved results folder still works).

What a source is and how it is read lives in ``artprobe.sources``: :func:`source_kind`
(the same answer the workflow's parse got), the hub layouts, image folders, the image column.

Row ids are positions in the source: splits in order, files in name order within a
split, rows in file order (image folders: `datasets`' order, files sorted by path).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artprobe.common.io import with_meta, write_json, write_parquet
from artprobe.settings import SourceSettings
from artprobe.sources import (
    IMAGEFOLDER,
    PARQUET,
    DataError,
    labels,
    list_data_files,
    local_dir,
    resolve_source,
    source_kind,
)
from artprobe.sources.image_column import ImageColumnError, _resolve, check_column, image_kind
from artprobe.sources.imagefolder import FolderError, label_hint, read_imagefolder
from artprobe.sources.labels import class_names_from_readme, class_names_from_schema

log = logging.getLogger(__name__)

__all__ = ["INDEX_NAME", "DataError", "build_manifest", "read_class_ids", "source_files"]


#: the manifest's sidecar: every row's class ids per target (-1: missing), for image
#: folders also the image path; written by the manifest job beside the manifest, an input of
#: the shard jobs (and of the split job where it reads labels)
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
        entries.append(
            {
                "name": path.relative_to(folder).as_posix(),
                "rows": rows,
                "row_start": row_start,
                "bytes": path.stat().st_size,
            }
        )
        row_start += rows
        parts.append(pf.read(columns=targets))
    for name, found in class_names_from_readme(folder).items():
        if name in targets:
            names.setdefault(name, found)
    # a few rows of the image column (not a whole row group: WikiArt's are hundreds of MB)
    sample = next(
        pq.ParquetFile(files[0]).iter_batches(batch_size=16, columns=[image_column]), None
    )
    column = (
        sample.column(0)
        if sample is not None
        else pq.read_table(files[0], columns=[image_column]).column(0)
    )
    if image_kind(column.type, image_column) == "path":  # every path is checked: cheap
        column = pa.concat_tables(pq.read_table(f, columns=[image_column]) for f in files).column(0)
    kind = check_column(column, image_column, folder, str(files[0]))
    if kind == "path":  # the shards hold the files the paths name: their bytes count too
        sizes = [os.path.getsize(_resolve(folder, p)) for p in column.to_pylist()]
        for e in entries:
            e["bytes"] += sum(sizes[e["row_start"] : e["row_start"] + e["rows"]])
    return entries, names, pa.concat_tables(parts, promote_options="permissive"), kind


def _check_columns(
    columns: list[str], targets: list[str], image_column: str, where: str, hint: str = ""
) -> None:
    missing = [t for t in targets if t not in columns]
    if missing:
        raise DataError(
            f"dataset.targets: missing column(s) {missing} in {where}; its columns are {columns}.{hint}"
        )
    if image_column not in columns:
        raise DataError(
            f"dataset.image_column {image_column!r}: not a column of {where}; its columns are {columns}"
        )


def _encode_targets(
    table: pa.Table, names: dict, targets: list[str], where: str
) -> tuple[dict, pa.Table]:
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


def _folder_columns(folder: Path, targets: list[str], image_column: str):
    """An image folder through datasets: its columns, names, and its single file entry (the
    row index, which holds the image paths: :func:`source_files`)."""
    try:
        table, names, splits = read_imagefolder(folder, image_column)
    except FolderError as err:
        raise DataError(str(err)) from None
    hint = label_hint(folder) if "label" in targets and "label" not in table.column_names else ""
    _check_columns(table.column_names, targets, image_column, f"the image folder {folder}", hint)
    images = sum(os.path.getsize(folder / p) for p in table.column(image_column).to_pylist() if p)
    entries = [{"name": INDEX_NAME, "rows": table.num_rows, "row_start": 0, "bytes": images}]
    return entries, names, table, splits


def build_manifest(
    settings: SourceSettings,
    out_path: str | os.PathLike,
    index_path: str | os.PathLike | None = None,
) -> dict:
    """Resolve the source of ``settings``; write the manifest (files, row counts, classes) to
    ``out_path`` and the row index to ``index_path`` (default: ``rows.parquet`` beside it)."""
    source, targets, image_column = settings.source, settings.targets, settings.image_column
    folder, resolved = resolve_source(source, settings.revision)
    index_path = Path(index_path or Path(out_path).with_name(INDEX_NAME))
    extra: dict = {}
    if source_kind(source) == IMAGEFOLDER:
        entries, names, table, splits = _folder_columns(folder, targets, image_column)
        extra = {"layout": IMAGEFOLDER, "image_kind": "path", "source_splits": splits}
    else:
        files = list_data_files(folder, settings.config, settings.splits)
        try:
            entries, names, table, kind = _parquet_columns(folder, files, targets, image_column)
        except ImageColumnError as err:
            raise DataError(str(err)) from None
        extra = {"layout": PARQUET, "image_kind": kind}
    info, index = _encode_targets(table, names, targets, source)
    if extra["layout"] == IMAGEFOLDER:  # the index is the source the shards read
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
    }
    write_parquet(with_meta(index, {"classes": info["classes"]}), index_path)
    write_json(out_path, manifest)
    log.info(
        "manifest: %d rows in %d files from %s@%s; missing labels %s",
        n_rows,
        len(entries),
        source,
        resolved,
        info["missing_labels"],
    )
    return manifest


def read_class_ids(index_path: str | os.PathLike, columns: list[str]) -> pa.Table:
    """Class ids (int16, -1 = missing) of the whole source in row-id order, from the row index
    (``rows.parquet``). What stratifying needs: the source's raw values, which for string
    labels with gaps cannot be sorted."""
    return pq.read_table(index_path, columns=columns)


def source_files(manifest: dict, index_path: str | os.PathLike) -> list[Path]:
    """The Parquet files holding the source's rows, one per ``manifest["files"]`` entry, in row
    order: the data files in the source folder (re-resolved if it moved), or for an image
    folder the row index ``index_path`` (its image paths, relative to the folder)."""
    if manifest.get("layout") == IMAGEFOLDER:
        return [Path(index_path)]
    folder = local_dir(manifest)
    return [folder / f["name"] for f in manifest["files"]]
