"""Any labelled image collection: image folders (as datasets' imagefolder loads them), label
kinds, missing labels and image columns, through build_manifest + write_shard.

Every collection is generated here; the known answers are the files written and the labels
given. Row order is datasets' (paths sorted), and shards hold the files' own bytes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import source_of
from PIL import Image
from synthetic import FORMATS
from synthetic import small_image as image_bytes

from artprobe.common.io import read_json
from artprobe.sources import DataError
from artprobe.stages.manifest import build_manifest
from artprobe.stages.shard import write_shard


def write_images(root: Path, names: list[str]) -> dict[str, bytes]:
    """Write each relative name as an image of its extension; return name -> bytes."""
    out = {}
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data := image_bytes(path.suffix, i))
        out[name] = data
    return out


# file names with spaces, accents and CJK, the three formats mixed
NAMES = ["a painting.jpg", "Émile é.png", "油画 1.webp", "z-last.jpg", "été 2.webp", "b.png"]


def manifest_and_shards(
    tmp_path: Path, folder: Path, targets: list[str], rows: int = 4, **kw
) -> tuple[dict, pa.Table]:
    out = tmp_path / "results"
    m = build_manifest(source_of(folder, targets, **kw), out / "manifest.json")
    parts = []
    for i, start in enumerate(range(0, m["n_rows"], rows)):
        path = out / "shards" / f"{i:05d}.parquet"
        write_shard(
            out / "manifest.json",
            out / "rows.parquet",
            path,
            row_start=start,
            row_stop=min(start + rows, m["n_rows"]),
            shard=f"{i:05d}",
        )
        parts.append(pq.read_table(path))
    assert read_json(out / "manifest.json") == m
    return m, pa.concat_tables(parts)


def test_class_subfolders(tmp_path):
    src = tmp_path / "collection"
    files = write_images(
        src, [f"{c}/{n}" for c in ("Baroque", "Ukiyo-e 浮世絵", "Cubism") for n in NAMES[:2]]
    )
    m, shards = manifest_and_shards(tmp_path, src, ["label"])
    order = sorted(files)  # datasets' order: paths sorted
    assert m["layout"] == "imagefolder" and m["n_rows"] == 6
    assert m["classes"] == {"label": ["Baroque", "Cubism", "Ukiyo-e 浮世絵"]}  # sorted folder names
    assert m["label_kinds"] == {"label": "classlabel"} and m["missing_labels"] == {"label": 0}
    assert shards.column("row_id").to_pylist() == list(range(6))
    assert shards.column("image").to_pylist() == [files[n] for n in order]  # original bytes
    names = m["classes"]["label"]
    assert [names[i] for i in shards.column("label").to_pylist()] == [
        n.split("/")[0] for n in order
    ]
    assert shards.schema.field("label").type == pa.int16()


def test_split_folders_are_read_in_datasets_order(tmp_path):
    src = tmp_path / "collection"
    files = write_images(
        src, [f"{s}/{c}/{n}" for s in ("train", "test") for c in ("a", "b") for n in NAMES[:2]]
    )
    m, shards = manifest_and_shards(tmp_path, src, ["label"])
    assert m["source_splits"] == {"train": 4, "test": 4} and m["classes"]["label"] == ["a", "b"]
    expected = sorted(n for n in files if n.startswith("train/")) + sorted(
        n for n in files if n.startswith("test/")
    )
    assert shards.column("image").to_pylist() == [files[n] for n in expected]


def _metadata(src: Path, kind: str, rows: list[dict]) -> None:
    if kind == "csv":
        with open(src / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    else:
        with open(src / "metadata.jsonl", "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_metadata_with_string_and_int_labels_and_missing_ones(tmp_path, kind):
    src = tmp_path / "collection"
    files = write_images(src, [f"imgs/{n}" for n in NAMES])
    styles = ["Rococo", "Baroque", None, "Rococo", "", "Cubism"]  # None and "": missing
    years = [1750, 1600, 1750, -1, None, 1910]  # -1 and None: missing; ints without names
    rows = [
        {"file_name": f"imgs/{n}", "style": s, "year": y} for n, s, y in zip(NAMES, styles, years)
    ]
    _metadata(src, kind, rows[::-1])  # metadata order, not file order, is the row order
    m, shards = manifest_and_shards(tmp_path, src, ["style", "year"], rows=4)
    assert m["classes"] == {
        "style": ["Baroque", "Cubism", "Rococo"],
        "year": ["1600", "1750", "1910"],
    }
    assert m["label_kinds"] == {"style": "string", "year": "int"}
    assert m["missing_labels"] == {"style": 2, "year": 2}
    assert shards.column("image").to_pylist() == [files[f"imgs/{n}"] for n in NAMES[::-1]]
    style = ["Rococo", "Baroque", None, "Rococo", None, "Cubism"][::-1]
    assert shards.column("style").to_pylist() == [
        -1 if s is None else m["classes"]["style"].index(s) for s in style
    ]
    year = [1750, 1600, 1750, None, None, 1910][::-1]
    assert shards.column("year").to_pylist() == [
        -1 if y is None else m["classes"]["year"].index(str(y)) for y in year
    ]


def test_metadata_listing_a_missing_file_is_an_error(tmp_path):
    src = tmp_path / "collection"
    write_images(src, NAMES[:3])
    _metadata(
        src, "csv", [{"file_name": n, "style": s} for n, s in zip([*NAMES[:3], "gone.jpg"], "abab")]
    )
    with pytest.raises(
        DataError, match=r"1 image file\(s\) of column 'image' do not exist.*gone\.jpg"
    ):
        build_manifest(source_of(src, ["style"]), tmp_path / "m.json")


def _parquet_source(tmp_path: Path, image, labels: dict, name: str = "image") -> Path:
    src = tmp_path / "pq"
    (src / "data").mkdir(parents=True)
    pq.write_table(pa.table({name: image, **labels}), src / "data" / "train-00000-of-00001.parquet")
    return src


def test_parquet_image_column_as_bytes_with_string_labels(tmp_path):
    data = [image_bytes(ext, i) for i, ext in enumerate([".jpg", ".png", ".webp", ".jpg"])]
    src = _parquet_source(
        tmp_path, pa.array(data, pa.binary()), {"movement": ["b", None, "a", "b"]}, name="picture"
    )
    m, shards = manifest_and_shards(tmp_path, src, ["movement"], image_column="picture")
    assert (
        m["layout"] == "parquet" and m["image_kind"] == "bytes" and m["image_column"] == "picture"
    )
    assert m["classes"] == {"movement": ["a", "b"]} and m["missing_labels"] == {"movement": 1}
    assert shards.column("image").to_pylist() == data
    assert shards.column("movement").to_pylist() == [1, -1, 0, 1]


def test_parquet_image_column_as_paths(tmp_path):
    files = write_images(tmp_path / "pq", [f"images/{n}" for n in NAMES[:4]])
    src = _parquet_source(tmp_path, pa.array(list(files)), {"genre": pa.array([3, 7, 3, 7])})
    m, shards = manifest_and_shards(tmp_path, src, ["genre"])
    assert m["image_kind"] == "path" and m["classes"] == {"genre": ["3", "7"]}
    assert shards.column("image").to_pylist() == list(files.values())
    assert shards.column("genre").to_pylist() == [0, 1, 0, 1]


def test_image_struct_without_bytes_reads_the_path(tmp_path):
    files = write_images(tmp_path / "pq", NAMES[:2])
    struct = pa.array(
        [{"bytes": None, "path": n} for n in files],
        pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    )
    src = _parquet_source(tmp_path, struct, {"label": ["x", "y"]})
    m, shards = manifest_and_shards(tmp_path, src, ["label"])
    assert m["image_kind"] == "struct" and shards.column("image").to_pylist() == list(
        files.values()
    )


# ------------------------------------------------------------------ bad input, before any job


def test_target_that_is_not_a_column_names_the_columns(tmp_path):
    src = tmp_path / "collection"
    write_images(src, [f"{c}/{n}" for c in "ab" for n in NAMES[:2]])
    with pytest.raises(
        DataError,
        match=r"dataset.targets: missing column\(s\) \['genre'\].*columns are \['label', 'image'\]",
    ):
        build_manifest(source_of(src, ["genre"]), tmp_path / "m.json")


def test_target_with_one_class(tmp_path):
    src = _parquet_source(
        tmp_path, pa.array([image_bytes(".png", 0)] * 3), {"style": ["x", "x", None]}
    )
    with pytest.raises(
        DataError, match=r"target 'style' .* has 1 class\(es\) \['x'\]: a probe needs at least 2"
    ):
        build_manifest(source_of(src, ["style"]), tmp_path / "m.json")


@pytest.mark.parametrize(
    "image,message",
    [
        (pa.array([1, 2, 3]), r"has type int64: it holds no images"),
        (pa.array(["Monet", "Manet", "Degas"]), r"holds strings that are not paths of files"),
        (pa.array([b"not", b"an", b"image"]), r"none of its first 3 values is an image"),
    ],
)
def test_image_column_without_images(tmp_path, image, message):
    src = _parquet_source(tmp_path, image, {"style": ["x", "y", "x"]})
    with pytest.raises(DataError, match=message):
        build_manifest(source_of(src, ["style"]), tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_image_column_that_is_not_one(tmp_path):
    src = tmp_path / "collection"
    write_images(src, NAMES[:2])
    _metadata(src, "csv", [{"file_name": n, "style": s} for n, s in zip(NAMES[:2], "ab")])
    with pytest.raises(
        DataError, match=r"dataset.image_column 'style' .* is not an image column.*\['image'\]"
    ):
        build_manifest(source_of(src, ["style"], image_column="style"), tmp_path / "m.json")
    with pytest.raises(
        DataError, match=r"dataset.image_column 'photo': not a column .* \['image', 'style'\]"
    ):
        build_manifest(source_of(src, ["style"], image_column="photo"), tmp_path / "m.json")


def test_folders_datasets_would_not_load(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        DataError,
        match="no Parquet files .* and datasets' imagefolder cannot load it .*doesn't contain any data files",
    ):
        build_manifest(source_of(empty, ["label"]), tmp_path / "m.json")
    (tmp_path / "text" / "a").mkdir(parents=True)
    (tmp_path / "text" / "a" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="found no images in it"):
        build_manifest(source_of(tmp_path / "text", ["label"]), tmp_path / "m.json")
    mixed = tmp_path / "mixed"  # images at two depths: datasets infers no label
    write_images(mixed, ["a/x.png", "b/y.png", "b/deeper/z.png"])
    with pytest.raises(
        DataError,
        match=r"missing column\(s\) \['label'\].*same depth; found images 1 folder\(s\) deep",
    ):
        build_manifest(source_of(mixed, ["label"]), tmp_path / "m.json")


# ------------------------------------------------------------------ the workflow, end to end

COLLECTION_OVERLAY = """
use_datasets: [coll]
datasets:
  coll:
    source: ./collection
    targets: [style, century]
    split:
      method: stratified
      stratify_by: style
shards:
  rows: 24
models:
  - name: vit
    timm: test_vit
    pretrained: false
embed:
  precision: fp32
embed_runtime:
  batch_size: 16
  workers: 0
classifiers:
  - name: knn
    kind: knn
    k: 3
  - name: linear
    kind: linear
probe:
  bootstrap: 20
report:
  map_rows: 30
"""


def _collection(root: Path, n: int = 60) -> tuple[list, list]:
    """metadata.csv layout: a string target with gaps, an int target without names with -1."""
    styles, centuries, rows = [], [], []
    colours = {"Baroque": (200, 40, 40), "Cubism": (40, 200, 40), "Rococo": (40, 40, 200)}
    for i in range(n):
        style = list(colours)[i % 3]
        ext = list(FORMATS)[i % 3]
        name = f"works/{i:02d} {['été', '油画', 'plain'][i // 3 % 3]}{ext}"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        img = np.full((32, 32, 3), colours[style], np.uint8) + np.random.default_rng(i).integers(
            0, 30, (32, 32, 3)
        ).astype(np.uint8)
        Image.fromarray(img).save(root / name, FORMATS[ext])
        styles.append(None if i % 11 == 5 else style)
        centuries.append(-1 if i % 13 == 4 else 17 + i % 2)
        rows.append({"file_name": name, "style": styles[-1], "century": centuries[-1]})
    _metadata(root, "csv", rows)
    return styles, centuries


@pytest.mark.workflow
def test_workflow_on_an_image_folder(tmp_path):
    from conftest import copy_workflow, snakemake

    work = copy_workflow(tmp_path / "work")
    styles, centuries = _collection(work / "collection")
    (work / "coll.yaml").write_text(COLLECTION_OVERLAY)
    snakemake(work, "--cores", "2", "--configfile", "coll.yaml")
    out = work / "results" / "coll"
    m = read_json(out / "manifest.json")
    n_style, n_century = sum(s is None for s in styles), sum(c < 0 for c in centuries)
    assert m["layout"] == "imagefolder" and m["n_rows"] == 60
    assert m["classes"] == {"style": ["Baroque", "Cubism", "Rococo"], "century": ["17", "18"]}
    assert (
        m["missing_labels"] == {"style": n_style, "century": n_century}
        and n_style > 0
        and n_century > 0
    )
    merged = pq.read_table(out / "embeddings" / "vit.parquet")
    assert merged.num_rows == 60  # every row embedded, labelled or not
    assert (merged.column("style").to_numpy() < 0).sum() == n_style
    for target, missing in (("style", n_style), ("century", n_century)):
        for clf in ("knn", "linear"):
            fit = out / "classify" / "vit" / target / clf
            metrics = read_json(fit / "metrics.json")
            assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == 60 - missing
            assert metrics["dropped"]["missing_label_rows"] == missing
            assert min(pq.read_table(fit / "predictions.parquet").column("y_true").to_pylist()) >= 0
    assert (
        read_json(out / "classify" / "vit" / "style" / "knn" / "metrics.json")["accuracy"]["value"]
        > 0.9
    )
    splits = pd.read_csv(out / "report" / "splits.csv")
    assert (
        splits["no_label_style"].sum() == n_style and splits["no_label_century"].sum() == n_century
    )
    dataset = pd.read_csv(out / "report" / "dataset.csv")
    assert dataset[dataset.target == "style"]["total"].sum() == 60 - n_style


def test_stratified_split_of_string_labels_with_gaps(tmp_path):
    from conftest import dataset_of

    from artprobe.settings import split_settings
    from artprobe.stages.manifest import read_class_ids
    from artprobe.stages.split import write_split

    labels = [None if i % 7 == 0 else "abc"[i % 3] for i in range(60)]
    src = _parquet_source(tmp_path, pa.array([image_bytes(".png", 0)] * 60), {"style": labels})
    build_manifest(source_of(src, ["style"]), tmp_path / "m.json")
    ids = read_class_ids(tmp_path / "rows.parquet", ["style"]).column("style").to_numpy()
    assert ids.tolist() == [-1 if v is None else "abc".index(v) for v in labels]
    split = {"method": "stratified", "seed": 0, "stratify_by": "style"}
    split |= {"val_fraction": 0.2, "test_fraction": 0.2}
    settings = split_settings(dataset_of(split=split))
    write_split(
        tmp_path / "m.json", tmp_path / "rows.parquet", tmp_path / "split.parquet", settings
    )
    split = np.array(pq.read_table(tmp_path / "split.parquet").column("split").to_pylist())
    for value in ["a", "b", "c", None]:  # each stratum (missing too) is spread over the splits
        rows = [i for i, v in enumerate(labels) if v == value]
        assert set(split[rows]) == {"train", "val", "test"}, value
