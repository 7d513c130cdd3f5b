"""Local image folders, read exactly as ``datasets.load_dataset("imagefolder", data_dir=...)``.

`datasets` itself reads the folder (streamed, ``Image(decode=False)``: no image is decoded
and no Arrow cache is written), so its conventions hold as they are:

* class sub-folders (``<dir>/<class>/<file>``, all images at the same depth, more than one
  class) give a ``ClassLabel`` column named ``label`` (names = the sorted folder names);
* a ``metadata.csv`` / ``metadata.jsonl`` / ``metadata.parquet`` with a ``file_name``
  column (paths relative to the metadata file) gives the image column ``image`` plus its
  other columns; then folders are *not* labels and images the metadata does not list
  are left out;
* split folders (``train/``, ``test/`` …) are splits; all of them are read, in the order
  `datasets` lists them.

Rows come in `datasets`' order (files sorted by path), so row ids are stable. The result
is a table with the image column as the path relative to ``folder`` (POSIX, any unicode),
the original bytes are read from there when shards are written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow as pa

from artprobe.sources.locate import METADATA_FILES

log = logging.getLogger(__name__)


class FolderError(ValueError):
    """A folder `datasets`' imagefolder would not load, or whose images are missing."""


def image_extensions() -> set[str]:
    from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

    return set(ImageFolder.EXTENSIONS)


def label_hint(folder: Path) -> str:
    """Why `datasets` inferred no ``label`` column (no metadata file): where the images lie."""
    if any(p.name in METADATA_FILES for p in Path(folder).rglob("metadata.*")):
        return ""
    exts = image_extensions()
    depths: dict[int, str] = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.suffix.lower() in exts:
            depths.setdefault(
                len(p.relative_to(folder).parts) - 1, p.relative_to(folder).as_posix()
            )
    if not depths:
        return ""
    if len(depths) > 1:
        found = ", ".join(f"{d} folder(s) deep, e.g. {ex!r}" for d, ex in sorted(depths.items()))
        return (
            f" datasets infers `label` from class sub-folders only when every image lies at the "
            f"same depth; found images {found}"
        )
    return " datasets infers `label` only from two or more class sub-folders (or a metadata file)"


def _load(folder: Path):
    import datasets

    datasets.logging.set_verbosity_error()
    try:
        return datasets.load_dataset("imagefolder", data_dir=str(folder), streaming=True)
    except Exception as err:  # noqa: BLE001 - datasets' own reason, named with the folder
        raise FolderError(
            f"dataset.source {str(folder)!r}: no Parquet files (the hub layout, data/*.parquet), "
            "and datasets' imagefolder cannot load it as an image folder: "
            f"{type(err).__name__}: {err}"
        ) from None


def _relative(paths: list, folder: Path, column: str) -> list[str]:
    root = os.path.realpath(folder)
    out, missing = [], []
    for p in paths:
        if p is None or not os.path.isfile(p):
            missing.append(p)
            continue
        out.append(Path(os.path.relpath(os.path.realpath(p), root)).as_posix())
    if missing:
        raise FolderError(
            f"{folder}: {len(missing)} image file(s) of column {column!r} do not exist, "
            f"e.g. {missing[:5]} (check file_name in the metadata file)"
        )
    return out


def read_imagefolder(
    folder: Path, image_column: str = "image"
) -> tuple[pa.Table, dict[str, list[str]], dict]:
    """(table, ClassLabel names, split row counts) of an image folder.

    The table has every column `datasets` gives; the image column holds the image's path
    relative to ``folder``.
    """
    import datasets

    folder = Path(folder)
    splits = _load(folder)
    parts, counts, names = [], {}, {}
    for split, ds in splits.items():
        features = ds.features or {}
        images = [c for c, f in features.items() if isinstance(f, datasets.Image)]
        if image_column not in features:
            raise FolderError(
                f"dataset.image_column {image_column!r}: not a column of {folder} as datasets "
                f"reads it; its columns are {list(features)} (image columns: {images})"
            )
        if image_column not in images:
            raise FolderError(
                f"dataset.image_column {image_column!r} of {folder} is not an image column "
                f"(datasets reads it as {features[image_column]}); image columns: {images}"
            )
        for c in images:
            ds = ds.cast_column(c, datasets.Image(decode=False))
        names.update(
            {c: list(f.names) for c, f in features.items() if isinstance(f, datasets.ClassLabel)}
        )
        schema = ds.features.arrow_schema  # python batches: datasets' arrow batches lose types
        for batch in ds.iter(batch_size=4096):
            paths = [(x or {}).get("path") for x in batch[image_column]]
            columns = {
                c: pa.array(v, schema.field(c).type) for c, v in batch.items() if c not in images
            }
            columns[image_column] = pa.array(_relative(paths, folder, image_column), pa.string())
            parts.append(pa.table(columns))
        counts[split] = sum(p.num_rows for p in parts) - sum(counts.values())
    if not parts or not sum(p.num_rows for p in parts):
        raise FolderError(
            f"dataset.source {str(folder)!r}: datasets' imagefolder found no images in it"
        )
    table = pa.concat_tables(parts, promote_options="permissive")
    log.info(
        "imagefolder %s: %d images, splits %s, columns %s",
        folder,
        table.num_rows,
        counts,
        table.column_names,
    )
    return table, names, counts
