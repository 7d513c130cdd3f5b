"""Sources: what a dataset source is and how it is read.

A *source* (``dataset.source``) is a Hugging Face hub dataset id (``huggan/wikiart``), a
local folder in one of the hub's Parquet layouts, or a local image folder.
:func:`source_kind` tells them apart, once, for both the workflow's parse and the manifest
job. A hub source is fetched by the download stage (``artprobe.download``) into the hub
cache, whose snapshot folder is itself a folder in the hub layout, so a hub source and a
local Parquet folder are read by the same code.

Modules, one job each: :mod:`.locate` (the kind of a source, where its files lie),
:mod:`.hub_layout` (which Parquet files are the data: configs and splits),
:mod:`.imagefolder` (an image folder through `datasets`' imagefolder), :mod:`.image_column`
(what the image column holds and its original bytes), :mod:`.labels` (a label column as
class ids; class names from the Parquet metadata or the dataset card).

This package's ``__init__`` and :mod:`.locate` and :mod:`.hub_layout` are pure Python:
the workflow imports them at parse time. The stages that read sources are
``artprobe.stages.manifest`` (the ``manifest`` rule) and ``artprobe.stages.shard`` (the ``shard`` rule).
"""

from artprobe.sources.locate import (
    HUB,
    IMAGEFOLDER,
    METADATA_FILES,
    MISSING,
    PARQUET,
    DataError,
    list_data_files,
    local_dir,
    local_inputs,
    resolve_source,
    source_kind,
)

__all__ = [
    "HUB",
    "IMAGEFOLDER",
    "METADATA_FILES",
    "MISSING",
    "PARQUET",
    "DataError",
    "list_data_files",
    "local_dir",
    "local_inputs",
    "resolve_source",
    "source_kind",
]
