"""Which Parquet files are the data: the hub's layouts, dataset.config and dataset.splits."""

from __future__ import annotations

import pytest

from artprobe import sources
from artprobe.sources.hub_layout import LayoutError, parse_path, select


def paths(files):
    return [f.path for f in files]


def test_push_to_hub_layout_orders_splits_like_datasets():
    listing = [
        "README.md",
        "data/test-00000-of-00001.parquet",
        "data/train-00001-of-00002.parquet",
        "data/train-00000-of-00002.parquet",
        "data/validation-00000-of-00001.parquet",
        "data/zeta-00000-of-00001.parquet",
        "data/extra-00000-of-00001.parquet",
    ]
    assert paths(select(listing)) == [
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "data/validation-00000-of-00001.parquet",
        "data/test-00000-of-00001.parquet",
        "data/extra-00000-of-00001.parquet",
        "data/zeta-00000-of-00001.parquet",
    ]
    assert {f.config for f in select(listing)} == {"default"}


def test_splits_choose_and_order():
    listing = ["data/train-0.parquet", "data/test-0.parquet", "data/validation-0.parquet"]
    assert paths(select(listing, splits=["test", "train"])) == [
        "data/test-0.parquet",
        "data/train-0.parquet",
    ]
    with pytest.raises(
        LayoutError, match=r"dataset.splits \['valid'\].*\['train', 'validation', 'test'\]"
    ):
        select(listing, splits=["valid"], where="me/ds@main")


def test_config_folders_and_the_default_config():
    listing = [
        "wikiart/train/0001.parquet",
        "wikiart/train/0000.parquet",
        "wikiart/validation-00000-of-00001.parquet",
        "other/train-00000-of-00001.parquet",
    ]
    with pytest.raises(
        LayoutError, match=r"several configs \['other', 'wikiart'\].*dataset.config"
    ):
        select(listing, where="me/ds@main")
    assert paths(select(listing, config="wikiart")) == [
        "wikiart/train/0000.parquet",
        "wikiart/train/0001.parquet",
        "wikiart/validation-00000-of-00001.parquet",
    ]
    assert paths(select(listing + ["data/train-0.parquet"])) == [
        "data/train-0.parquet"
    ]  # default wins
    with pytest.raises(
        LayoutError, match=r"dataset.config 'nope' not found; configs: \['other', 'wikiart'\]"
    ):
        select(listing, config="nope")


def test_parquet_conversion_layout_with_a_partial_split():
    listing = [
        "default/partial-train/0000.parquet",
        "default/partial-train/0001.parquet",
        "default/test/0000.parquet",
    ]
    files = select(listing)
    assert [(f.split, f.partial) for f in files] == [
        ("train", True),
        ("train", True),
        ("test", False),
    ]
    assert parse_path("default/test/0000.parquet").config == "default"


@pytest.mark.parametrize(
    "path",
    [
        "README.md",
        ".cache/huggingface/x.parquet",
        "a/b/c/d.parquet",
        "train/cat/1.jpg",
        "x.parquet",
    ],
)
def test_files_outside_a_layout_are_not_data(path):
    assert parse_path(path) is None


def test_no_data_files_is_an_error_naming_the_layouts():
    with pytest.raises(
        LayoutError, match=r"me/ds@main: no Parquet files in a hub layout.*data/<split>-\*.parquet"
    ):
        select(["README.md", "train/cat/1.jpg"], where="me/ds@main")


def test_local_folder_uses_the_same_selection(demo_source, tmp_path):
    files = sources.list_data_files(demo_source)
    assert [p.relative_to(demo_source).as_posix() for p in files] == [
        f"data/train-{i:05d}-of-00003.parquet" for i in range(3)
    ]
    folder = tmp_path / "configs"
    for rel in ("art/test/0000.parquet", "art/train/0000.parquet", "art/train/0001.parquet"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"")
    chosen = sources.list_data_files(folder, splits=["train"])
    assert [p.relative_to(folder).as_posix() for p in chosen] == [
        "art/train/0000.parquet",
        "art/train/0001.parquet",
    ]
    with pytest.raises(sources.DataError, match="dataset.config 'x' not found"):
        sources.list_data_files(folder, config="x")
