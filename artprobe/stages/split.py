"""Split stage: assign every row of the manifest to train, val or test.

``seed-compatible`` reproduces the thesis split (``datasets``' ``train_test_split`` twice with
one seed) row for row; ``stratified`` keeps each class's share in every part; ``group`` keeps
every value of one column (``split.group_by``, e.g. the artist) on one side, so a style or
genre score cannot reward recognising the painter (:func:`group_split`); ``given`` keeps the
source's own train/validation/test splits (:func:`given_split`; ArtBench-10's official test).

``split.parquet`` holds every row's ``split`` and, whatever the method, its ``source_split``:
the source split the row came from (:func:`row_source_splits`).
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from artprobe.common.io import read_json, with_meta, write_parquet
from artprobe.config import SPLITS
from artprobe.settings import SplitSettings
from artprobe.sources import IMAGEFOLDER, DataError, local_dir
from artprobe.sources.hub_layout import parse_path
from artprobe.sources.labels import class_names_from_readme, class_names_from_schema
from artprobe.stages.manifest import read_class_ids, source_files

log = logging.getLogger(__name__)


def _hf_train_test(
    n: int, test_size: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly ``datasets.Dataset.train_test_split(test_size=..., shuffle=True)``."""
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    if n_test < 1 or n_train < 1:
        raise DataError(f"split of {n} rows with test_size={test_size} leaves an empty part")
    perm = rng.permutation(n)
    return perm[n_test : n_test + n_train], perm[:n_test]


def seed_compatible_split(
    n_rows: int, seed: int, val_fraction: float, test_fraction: float
) -> np.ndarray:
    """The thesis split: datasets' ``train_test_split`` twice with the same seed.

    First ``test_size = val + test`` on all rows in source order; then the held-out
    part (in the order ``datasets`` selected it) again with
    ``test_size = test / (val + test)``: its train part is val, its test part is test.
    """
    held = val_fraction + test_fraction
    train_idx, held_idx = _hf_train_test(n_rows, held, np.random.default_rng(seed))
    val_pos, test_pos = _hf_train_test(
        len(held_idx), test_fraction / held, np.random.default_rng(seed)
    )
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


def read_targets(manifest: dict, index_path, columns: list[str]) -> pa.Table:
    """Label columns of the whole source (no images), in row-id order.

    A target of the manifest comes from the row index ``index_path`` as class ids, nulls
    where the label is missing (raw string labels with gaps cannot be sorted); any other
    column is read from the source files as it is there.
    """
    if set(columns) <= set(manifest["targets"]):
        ids = read_class_ids(index_path, columns)
        return pa.table({c: pc.if_else(pc.less(ids[c], 0), None, ids[c]) for c in columns})
    parts = [pq.read_table(path, columns=columns) for path in source_files(manifest, index_path)]
    return pa.concat_tables(parts)


def _strata(column: pa.ChunkedArray) -> np.ndarray:
    """Labels to stratify on; a missing label is a stratum of its own."""
    if pa.types.is_integer(column.type):
        return column.fill_null(-1).to_numpy()
    return np.array(
        ["\0missing" if v is None else str(v) for v in column.to_pylist()], dtype=object
    )


def group_split(
    groups: np.ndarray, seed: int, val_fraction: float, test_fraction: float
) -> np.ndarray:
    """Train/val/test with every group on one side; ``groups[i] < 0``: row i has no group.

    Groups (a row without one is a group of its own) are placed largest first (groups of one
    size in an order drawn from ``seed``), each into a part that still has room for all its
    rows, drawn from ``seed`` with odds proportional to the room each has (so val and test
    get a random share of the big groups, not only the small ones); a group too big for
    every part's room goes where the most room is left. The small groups placed last fill
    what is left, so every part ends within one group's size of its target
    (``round(fraction * n)``; train takes the rest), usually within a row, and the same seed
    gives the same split. :func:`achieved_fractions` says where each part landed.
    """
    groups = np.asarray(groups, dtype=np.int64)
    n = len(groups)
    ids = groups.copy()
    alone = ids < 0
    ids[alone] = ids.max(initial=-1) + 1 + np.arange(int(alone.sum()))
    _, inverse, sizes = np.unique(ids, return_inverse=True, return_counts=True)
    names = np.array(SPLITS, dtype=object)  # train, val, test
    room = np.array([0, round(val_fraction * n), round(test_fraction * n)], dtype=np.int64)
    room[0] = n - room[1:].sum()
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.permutation(len(sizes)), -sizes))  # largest first, seeded ties
    part = np.empty(len(sizes), dtype=np.int64)
    big = order[sizes[order] > 1]
    for g, draw in zip(big, rng.random(len(big))):
        odds = np.where(room >= sizes[g], room, 0)
        if odds.any():  # a part with room for it, drawn with odds proportional to the room
            part[g] = np.searchsorted(np.cumsum(odds), draw * odds.sum(), side="right")
        else:  # too big for every part's room: where the most is left
            part[g] = int(np.argmax(room))
        room[part[g]] -= sizes[g]
    ones = order[sizes[order] == 1]  # rows of their own (in seeded order) fill the room left
    part[ones] = np.repeat(np.arange(len(room)), np.maximum(room, 0))[
        : len(ones)
    ]  # rooms sum to len(ones)
    split = names[part][inverse]
    empty = [s for s in SPLITS if not (split == s).any()]
    if empty:
        raise DataError(
            f"group split of {n} rows in {len(sizes)} groups leaves {empty} empty; "
            "the groups are too few or too big for these fractions"
        )
    return split


def achieved_fractions(split: np.ndarray) -> dict[str, float]:
    """Each part's share of the rows (what a split achieved, beside the fractions asked)."""
    split = np.asarray(split, dtype=object)
    return {s: round(float((split == s).mean()), 5) if len(split) else 0.0 for s in SPLITS}


def group_codes(
    column: pa.ChunkedArray, names: list[str] | None, ungrouped: list[str]
) -> np.ndarray:
    """A group id per row (-1: no group) from a label column (ClassLabel ids or strings).

    Missing values and values named in ``ungrouped`` (e.g. "Unknown Artist": no one painter)
    get -1, so :func:`group_split` treats each such row as a group of its own.
    """
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = col.to_pylist()
    if names is not None and pa.types.is_integer(col.type):
        values = [names[v] if v is not None and 0 <= v < len(names) else v for v in values]
    text = np.array(["" if v is None else str(v) for v in values], dtype=object)
    _, codes = np.unique(text, return_inverse=True)
    missing = col.is_null().to_numpy(zero_copy_only=False) | np.isin(text, list(ungrouped))
    codes = codes.astype(np.int64)
    codes[missing] = -1
    return codes


def _group_names(manifest: dict, first_file, column: str) -> list[str] | None:
    """Class names of ``column``: the manifest's, else the source's ClassLabel metadata."""
    if column in manifest.get("classes", {}):
        return manifest["classes"][column]
    found = class_names_from_schema(pq.read_schema(first_file))
    return found.get(column) or class_names_from_readme(local_dir(manifest)).get(column)


def _read_groups(
    manifest: dict, index_path, group_by: str | None, ungrouped: list[str]
) -> np.ndarray:
    if not group_by:
        raise DataError("split.method 'group' needs split.group_by (the column to group on)")
    first_file = source_files(manifest, index_path)[0]
    have = pq.read_schema(first_file).names
    if group_by not in have:
        raise DataError(
            f"split.group_by {group_by!r}: no such column in the source (it has {have})"
        )
    column = read_targets(manifest, index_path, [group_by]).column(group_by)
    return group_codes(column, _group_names(manifest, first_file, group_by), ungrouped)


#: ``split.method: given``: the part each source split's rows keep
GIVEN_PARTS = {
    "train": "train",
    "validation": "val",
    "val": "val",
    "valid": "val",
    "dev": "val",
    "test": "test",
}


def row_source_splits(manifest: dict) -> np.ndarray:
    """The source split each row came from (object array, in row-id order).

    A Parquet source (local or a hub snapshot): parsed from each file's name in the hub
    layout (``data/test-00000-of-00001.parquet``, ``<config>/<split>/…``:
    :func:`artprobe.sources.hub_layout.parse_path`), ``rows`` per file; an image folder:
    its manifest's ``source_splits`` (split -> rows, in row order)."""
    if manifest.get("layout") == IMAGEFOLDER:
        counts = manifest["source_splits"]
        names, sizes = list(counts), list(counts.values())
    else:
        names, sizes = [], []
        for f in manifest["files"]:
            parsed = parse_path(f["name"])
            if parsed is None:
                raise DataError(f"{f['name']}: not a file of a hub layout; its split is unknown")
            names.append(parsed.split)
            sizes.append(f["rows"])
    source = np.repeat(np.array(names, dtype=object), np.asarray(sizes, dtype=np.int64))
    if len(source) != manifest["n_rows"]:
        raise DataError(f"the manifest's splits hold {len(source)} rows, not {manifest['n_rows']}")
    return source


def given_split(source: np.ndarray) -> np.ndarray:
    """Each row's part from its source split (:data:`GIVEN_PARTS`); the source must have a
    train and a test split (a validation split it may lack: :func:`carve_val`)."""
    present = list(dict.fromkeys(source.tolist()))
    unknown = [s for s in present if s not in GIVEN_PARTS]
    if unknown:
        accepted = "; ".join(
            f"{', '.join(k for k, v in GIVEN_PARTS.items() if v == p)} -> {p}" for p in SPLITS
        )
        raise DataError(
            f"split.method given: source split(s) {unknown} are none of the accepted names "
            f"({accepted}); choose the splits with dataset.splits or use method stratified"
        )
    parts = {GIVEN_PARTS[s] for s in present}
    for part, name in (("test", "test"), ("train", "train")):
        if part not in parts:
            raise DataError(
                f"split.method given: the source has no {name} split (its splits: {present}); "
                "use method stratified"
            )
    names, inverse = np.unique(source, return_inverse=True)
    return np.array([GIVEN_PARTS[s] for s in names], dtype=object)[inverse]


def carve_val(parts: np.ndarray, labels: np.ndarray, seed: int, val_fraction: float) -> np.ndarray:
    """``parts`` with val carved from its train rows: ``round(val_fraction * len(parts))``
    rows (a fraction of ALL rows, as the other methods define it, not of train), drawn with
    ``seed`` and stratified by ``labels`` (classes of one train row pooled). Test rows are
    left as they are."""
    from sklearn.model_selection import train_test_split

    train = np.flatnonzero(parts == "train")
    n_val = round(val_fraction * len(parts))
    _, strata, counts = np.unique(
        np.asarray(labels)[train], return_inverse=True, return_counts=True
    )
    rare = counts[strata] < 2  # classes of one train row: pooled (a lone one joins the largest)
    strata[rare] = -1 if rare.sum() > 1 else np.argmax(counts)
    n_strata = len(np.unique(strata))
    if not n_strata <= n_val <= len(train) - n_strata:
        raise DataError(
            f"split.method given: a val of {n_val} of the {len(train)} train rows "
            f"(val_fraction {val_fraction} of {len(parts)} rows) cannot leave each of the "
            f"{n_strata} classes it stratifies on in both val and train; change split.val_fraction"
        )
    _, val = train_test_split(train, test_size=n_val, random_state=seed, stratify=strata)
    out = parts.copy()
    out[val] = "val"
    return out


def _given(manifest: dict, index_path, settings: SplitSettings) -> tuple[np.ndarray, dict]:
    """``split.method: given``: every row keeps its source split (:func:`given_split`); without
    a validation split, val is carved from train (:func:`carve_val`: ``val_fraction`` of ALL
    rows, seeded, stratified by ``stratify_by``, else the first target). ``test_fraction`` is
    ignored, and ``val_fraction`` too where the source has a validation split."""
    source = row_source_splits(manifest)
    split = given_split(source)
    names, counts = np.unique(source, return_counts=True)
    extra: dict = {"source_splits": dict(zip(names.tolist(), counts.tolist()))}
    if (split == "val").any():
        extra.update(val_from="source", ignored=["val_fraction", "test_fraction"])
        log.info("split given: val and test are the source's; val_fraction, test_fraction ignored")
        return split, extra
    column = settings.stratify_by or manifest["targets"][0]
    labels = _strata(read_targets(manifest, index_path, [column]).column(column))
    split = carve_val(split, labels, settings.seed, settings.val_fraction)
    extra.update(val_from="train", stratify_by=column, ignored=["test_fraction"])
    log.info(
        "split given: test is the source's (test_fraction ignored); val carved from train, "
        "%.2f%% of all rows, stratified by %s",
        100 * settings.val_fraction,
        column,
    )
    return split, extra


def _assign(manifest: dict, index_path, settings: SplitSettings) -> tuple[np.ndarray, dict]:
    """(each row's part, what the split's metadata adds for its method)."""
    n, method, seed = manifest["n_rows"], settings.method, settings.seed
    val_fraction, test_fraction = settings.val_fraction, settings.test_fraction
    extra: dict = {}
    if method == "seed-compatible":
        split = seed_compatible_split(n, seed, val_fraction, test_fraction)
    elif method == "stratified":
        column = settings.stratify_by or manifest["targets"][0]
        labels = _strata(read_targets(manifest, index_path, [column]).column(column))
        split = stratified_split(labels, seed, val_fraction, test_fraction)
        extra["stratify_by"] = column
    elif method == "group":
        ungrouped = list(settings.ungrouped)
        groups = _read_groups(manifest, index_path, settings.group_by, ungrouped)
        split = group_split(groups, seed, val_fraction, test_fraction)
        extra = {
            "group_by": settings.group_by,
            "ungrouped": ungrouped,
            "n_groups": int(len(np.unique(groups[groups >= 0]))),
            "ungrouped_rows": int((groups < 0).sum()),
        }
    elif method == "given":
        split, extra = _given(manifest, index_path, settings)
    else:
        raise DataError(
            f"split.method {method!r}: expected 'seed-compatible', 'stratified', 'group' or 'given'"
        )
    return split, extra


def _asked(settings: SplitSettings, extra: dict) -> str:
    """What the split was asked for, for the log line beside what it achieved."""
    val, test = settings.val_fraction, settings.test_fraction
    if settings.method != "given":
        asked = {"train": 1 - val - test, "val": val, "test": test}
        return "asked " + ", ".join(f"{s} {asked[s]:.2%}" for s in SPLITS)
    if extra["val_from"] == "source":
        return "train, val and test are the source's splits"
    return f"asked val {val:.2%} of all rows, from train; test is the source's split"


def write_split(
    manifest_path: str | os.PathLike,
    index_path: str | os.PathLike | None,
    out_path: str | os.PathLike,
    settings: SplitSettings,
) -> None:
    """Write ``split.parquet`` (row_id, split, source_split) for every row of the manifest.
    ``index_path``: the row index (``rows.parquet``), which the methods that read labels need
    (``settings.reads_labels``; None otherwise)."""
    manifest = read_json(manifest_path)
    if settings.reads_labels and index_path is None:
        raise ValueError(f"split.method {settings.method!r} reads labels: pass the row index")
    n = manifest["n_rows"]
    split, extra = _assign(manifest, index_path, settings)
    table = pa.table(
        {
            "row_id": pa.array(np.arange(n, dtype=np.int64)),
            "split": pa.array(split.tolist(), pa.string()),
            "source_split": pa.array(row_source_splits(manifest).tolist(), pa.string()),
        }
    )
    counts = {s: int((split == s).sum()) for s in SPLITS}
    achieved = achieved_fractions(split)
    meta = {
        "method": settings.method,
        "seed": settings.seed,
        "val_fraction": settings.val_fraction,
        "test_fraction": settings.test_fraction,
        "counts": counts,
        "achieved": achieved,
    }
    meta.update(extra)
    write_parquet(with_meta(table, meta), out_path)
    log.info(
        "split %s seed=%d: %s rows; achieved fractions %s (%s)",
        settings.method,
        settings.seed,
        counts,
        ", ".join(f"{s} {achieved[s]:.2%}" for s in SPLITS),
        _asked(settings, extra),
    )
