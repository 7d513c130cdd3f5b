"""Target labels: a source's label column as int16 class ids, with -1 for a missing label,
and the class names a source stores (Parquet schema metadata, the dataset card).

Three kinds of label column are accepted, as `datasets` writes or reads them:

* ``ClassLabel`` ints (names in the Parquet metadata, the dataset card, or inferred by
  ``imagefolder`` from class sub-folders): the id is the value, the names are the feature's.
* strings: the classes are the sorted distinct values; the id is the position in that list.
* ints (or integral floats, as pandas reads an int column with gaps) without names: the
  classes are the sorted distinct values written as strings (``"3"``, ``"17"``), the id is
  the position in that list. Not ``range(max + 1)``: sparse ids would make empty classes.

Missing labels are null, the empty (or blank) string, and -1 (``datasets``' "no label"
for ClassLabel; for plain ints any negative value). They become id -1: the row is embedded
like any other and left out of that target's fits only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: the id stored for a missing label (shards, merged embeddings, predictions never see it)
MISSING = -1


class LabelError(ValueError):
    """A target column cannot be read as class labels."""


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


def label_kind(column: pa.ChunkedArray | pa.Array, names: list[str] | None) -> str:
    """``classlabel``, ``string`` or ``int`` for a target column; LabelError otherwise."""
    t = column.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if names is not None and (pa.types.is_integer(t) or pa.types.is_null(t)):
        return "classlabel"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_null(t):
        return "int"
    if pa.types.is_floating(t):
        values = pc.drop_null(column).to_numpy(zero_copy_only=False)
        values = values[~np.isnan(values)]
        if np.array_equal(values, np.round(values)):
            return "int"
    raise LabelError(f"has type {column.type}; a target must hold class labels (ints or strings)")


def _as_numpy(column: pa.ChunkedArray | pa.Array, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing mask): strings stripped, ints as float64 so null can be NaN."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if kind == "string":
        values = np.asarray(column.to_pylist(), dtype=object)
        missing = np.array([v is None or not v.strip() for v in values], dtype=bool)
        values[~missing] = [v.strip() for v in values[~missing]]
        return values, missing
    values = column.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    return values, np.isnan(values) | (values < 0)


def class_list(
    column: pa.ChunkedArray | pa.Array, names: list[str] | None
) -> tuple[str, list[str]]:
    """(kind, class names) for a target column; ClassLabel names are kept as they are."""
    kind = label_kind(column, names)
    if kind == "classlabel":
        return kind, list(names)
    values, missing = _as_numpy(column, kind)
    distinct = np.unique(values[~missing])
    if kind == "string":
        return kind, [str(v) for v in distinct]
    return kind, [str(int(v)) for v in distinct]


def encode(column: pa.ChunkedArray | pa.Array, kind: str, classes: list[str]) -> np.ndarray:
    """Class ids (int16, -1 for missing) of ``column`` under the manifest's ``classes``."""
    values, missing = _as_numpy(column, "string" if kind == "string" else "int")
    ids = np.full(len(values), MISSING, dtype=np.int16)
    present = ~missing
    if kind == "classlabel":
        codes = values[present].astype(np.int64)
        bad = codes >= len(classes)
        if bad.any():
            rows = np.flatnonzero(present)[bad]
            raise LabelError(
                f"has label id(s) {sorted(set(codes[bad].tolist()))[:10]} outside its "
                f"{len(classes)} ClassLabel names, at row_id(s) {rows[:10].tolist()}"
            )
        ids[present] = codes
        return ids
    keys = (
        values[present]
        if kind == "string"
        else np.array([str(int(v)) for v in values[present]], dtype=object)
    )
    lookup = {name: i for i, name in enumerate(classes)}
    try:
        ids[present] = [lookup[k] for k in keys]
    except KeyError as err:
        raise LabelError(f"has label {err.args[0]!r}, not one of the manifest's classes") from None
    return ids


def count_missing(column: pa.ChunkedArray | pa.Array, kind: str) -> int:
    return int(_as_numpy(column, "string" if kind == "string" else "int")[1].sum())
