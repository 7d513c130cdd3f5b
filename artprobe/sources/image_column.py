"""The source's image column (``dataset.image_column``): what it holds, and its original bytes.

Three kinds, as `datasets` stores images:

* ``struct``: the ``Image`` feature, ``struct<bytes: binary, path: string>``; a row with no
  bytes is read from its ``path`` (relative to the source folder);
* ``bytes``: a plain binary column of encoded images;
* ``path``: a string column of image paths relative to the source folder (absolute paths
  are taken as they are); what an image folder becomes.

Bytes are passed through untouched (never decoded and re-encoded).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

#: rows of the first row group looked at to decide that a column holds images
SAMPLE = 16


class ImageColumnError(ValueError):
    """The image column holds no images, or one of its paths does not exist."""


def image_kind(column_type: pa.DataType, name: str) -> str:
    if pa.types.is_struct(column_type) and column_type.get_field_index("bytes") >= 0:
        return "struct"
    if pa.types.is_binary(column_type) or pa.types.is_large_binary(column_type):
        return "bytes"
    if pa.types.is_string(column_type) or pa.types.is_large_string(column_type):
        return "path"
    raise ImageColumnError(
        f"dataset.image_column {name!r} has type {column_type}: it holds no images (expected "
        "the datasets Image feature struct<bytes, path>, encoded image bytes, or image paths)"
    )


def _resolve(root: Path, path: str) -> Path:
    return Path(path) if os.path.isabs(path) else Path(root) / path


def missing_paths(paths: list, root: Path) -> list:
    return [p for p in paths if p is None or not _resolve(root, p).is_file()]


def _is_image(data: bytes | None) -> bool:
    """Whether PIL can open ``data`` (the header only: artprobe.common.images.open_image)."""
    from artprobe.common.images import ImageDecodeError, open_image

    try:
        open_image(data, max_pixels=None)
    except ImageDecodeError:
        return False
    return True


def check_column(column: pa.ChunkedArray | pa.Array, name: str, root: Path, where: str) -> str:
    """The kind of ``column`` (a sample, or every path); ImageColumnError when not images."""
    kind = image_kind(column.type, name)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if kind == "path":
        paths = column.to_pylist()
        missing = missing_paths(paths, root)
        if len(missing) == len(paths):
            raise ImageColumnError(
                f"dataset.image_column {name!r} of {where} holds strings that are not paths of "
                f"files under {root} (e.g. {missing[:3]}): it holds no images"
            )
        if missing:
            raise ImageColumnError(
                f"{where}: {len(missing)} path(s) of column {name!r} are not files under {root}, "
                f"e.g. {missing[:5]}"
            )
        return kind
    sample = column.slice(0, SAMPLE)
    data = _struct_bytes(sample, root) if kind == "struct" else sample.to_pylist()
    if not any(_is_image(d) for d in data):
        raise ImageColumnError(
            f"dataset.image_column {name!r} of {where}: none of its first {len(data)} values "
            "is an image PIL can open: it holds no images"
        )
    return kind


def _read(root: Path, path: str | None) -> bytes | None:
    if not path:
        return None
    p = _resolve(root, path)
    return p.read_bytes() if p.is_file() else None


def _struct_bytes(column: pa.StructArray, root: Path) -> list:
    """The ``Image`` feature's bytes; a row without bytes is read from its ``path``."""
    data, paths = column.field("bytes").to_pylist(), column.field("path").to_pylist()
    return [d if d else _read(root, p) for d, p in zip(data, paths)]


def image_bytes(column: pa.ChunkedArray | pa.Array, kind: str, root: Path) -> pa.Array:
    """The original encoded bytes of every row (large_binary; null where a row has none)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if kind == "bytes":
        return column.cast(pa.large_binary())
    if kind == "struct":
        return pa.array(_struct_bytes(column, root), pa.large_binary())
    paths = column.to_pylist()
    missing = missing_paths(paths, root)
    if missing:
        raise ImageColumnError(
            f"{len(missing)} image file(s) under {root} no longer exist, e.g. {missing[:5]}; "
            "the source changed since the manifest was built"
        )
    return pa.array([_resolve(root, p).read_bytes() for p in paths], pa.large_binary())
