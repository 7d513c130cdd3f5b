"""Which Parquet files of a dataset are its data: the hub's layouts, configs and splits.

One selection serves a hub repository's file list (``artprobe.download``) and a local folder
(``artprobe.sources.list_data_files``), following the ``datasets`` library's conventions:

- ``data/<split>-XXXXX-of-YYYYY.parquet``: the one config ``default``
  (what ``push_to_hub`` writes);
- ``<config>/<split>-*.parquet`` and ``<config>/<split>/*.parquet``: named configs;
- ``<config>/<split>/NNNN.parquet`` at the revision ``refs/convert/parquet``: the hub's
  automatic Parquet conversion of image-folder and WebDataset repositories (a split the
  conversion cut short is a folder ``partial-<split>``).

``dataset.config`` null takes the only config (or ``default`` among several);
``dataset.splits`` null takes every split, in the order ``datasets`` uses (train,
validation, test, then the others by name); a list takes those splits in its order. Files
are in name order within a split. Row ids follow this order. Pure Python: the workflow
imports this at parse time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_CONFIG = "default"
SPLIT_ORDER = ("train", "validation", "test")
PARTIAL = "partial-"


class LayoutError(ValueError):
    """The files do not hold the config or splits the config asks for."""


@dataclass(frozen=True)
class DataFile:
    path: str  # relative, "/"-separated
    config: str
    split: str
    partial: bool = False


def parse_path(path: str) -> DataFile | None:
    """The config and split a Parquet path stands for; None if it is not in a data layout."""
    parts = path.split("/")
    if not parts[-1].endswith(".parquet") or any(p.startswith(".") for p in parts):
        return None
    if len(parts) == 2:
        folder, name = parts
        split = name[: -len(".parquet")].split("-", 1)[0]
    elif len(parts) == 3:
        folder, split, _ = parts
    else:
        return None
    config = DEFAULT_CONFIG if folder == "data" else folder
    partial = split.startswith(PARTIAL)
    if partial:
        split = split[len(PARTIAL) :]
    if not split:
        return None
    return DataFile(path, config, split, partial)


def split_order(splits: Iterable[str]) -> list[str]:
    """``datasets``' order: train, validation, test, then the others by name."""
    splits = set(splits)
    known = [s for s in SPLIT_ORDER if s in splits]
    return known + sorted(splits - set(SPLIT_ORDER))


def select(
    paths: Iterable[str],
    config: str | None = None,
    splits: list[str] | None = None,
    where: str = "",
) -> list[DataFile]:
    """The data files of ``config`` / ``splits`` among ``paths``, in row-id order.

    ``where`` names the source in errors (``huggan/wikiart@abc123`` or a folder).
    """
    files = [f for f in map(parse_path, paths) if f is not None]
    if not files:
        raise LayoutError(
            f"{where}: no Parquet files in a hub layout (data/<split>-*.parquet, "
            "<config>/<split>/*.parquet or <config>/<split>-*.parquet)"
        )
    config = choose_config(sorted({f.config for f in files}), config, where)
    files = [f for f in files if f.config == config]
    present = split_order(f.split for f in files)
    if splits is None:
        chosen = present
    else:
        unknown = [s for s in splits if s not in present]
        if unknown:
            raise LayoutError(
                f"{where}: dataset.splits {unknown} not in config {config!r}; it has {present}"
            )
        chosen = list(splits)
    by_split = {s: sorted((f for f in files if f.split == s), key=lambda f: f.path) for s in chosen}
    return [f for s in chosen for f in by_split[s]]


def choose_config(configs: list[str], config: str | None, where: str = "") -> str:
    """``config`` if present; null: the only config, or ``default`` among several."""
    if config is not None:
        if config not in configs:
            raise LayoutError(f"{where}: dataset.config {config!r} not found; configs: {configs}")
        return config
    if len(configs) == 1:
        return configs[0]
    if DEFAULT_CONFIG in configs:
        return DEFAULT_CONFIG
    raise LayoutError(f"{where}: several configs {configs}; choose one with dataset.config")
