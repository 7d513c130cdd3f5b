"""artprobe.sources: one answer to "what kind of source is this?" for the workflow's parse
(``local_inputs``, which ``rules/common.smk`` calls) and for the manifest job, on every
layout a source can have: the hub's Parquet layouts in a local folder, class sub-folders,
split/class folders, and metadata.csv / .jsonl / .parquet image folders."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import source_of
from synthetic import small_image

from artprobe import sources
from artprobe.stages.manifest import build_manifest

N = 8  # images per layout: labels a, b alternating


def _parquet(root: Path, names: list[str]) -> list[str]:
    """The rows split evenly over ``names`` (hub-layout paths), an image-bytes column and a label."""
    per = N // len(names)
    for k, name in enumerate(names):
        rows = range(k * per, (k + 1) * per)
        table = pa.table(
            {"image": [small_image(".png", i) for i in rows], "label": ["ab"[i % 2] for i in rows]}
        )
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / name)
    return names


def _images(root: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(small_image(".png", i))


def _class_folders(root: Path, prefix: str = "") -> list[str]:
    _images(root, [f"{prefix}{'ab'[i % 2]}/{i}.png" for i in range(N)])
    return []  # no metadata file: nothing but the images (not listed at parse)


def _metadata(root: Path, kind: str, folder: str = "") -> list[str]:
    """Images under ``folder`` with a metadata file beside them (labels in column ``label``)."""
    names = [f"imgs/{i}.png" for i in range(N)]
    _images(root / folder, names)
    rows = [{"file_name": n, "label": "ab"[i % 2]} for i, n in enumerate(names)]
    path = root / folder / f"metadata.{kind}"
    if kind == "csv":
        path.write_text(
            "file_name,label\n" + "".join(f"{r['file_name']},{r['label']}\n" for r in rows)
        )
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return [path.relative_to(root).as_posix()]


def _split_metadata(root: Path) -> list[str]:
    """train/ and test/ folders, each with its own metadata.parquet (datasets: two splits)."""
    return _metadata(root, "parquet", "train") + _metadata(root, "parquet", "test")


# layout -> (writer returning the parse-time inputs relative to the folder, kind)
#: the hub's Parquet layouts in a local folder: layout -> its data files (two splits or files)
PARQUET_LAYOUTS = {
    "push_to_hub": ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"],
    "config_split_folders": ["art/train/0000.parquet", "art/test/0000.parquet"],
    "config_split_files": ["art/train-00000-of-00001.parquet", "art/test-00000-of-00001.parquet"],
    "parquet_conversion": ["default/partial-train/0000.parquet", "default/test/0000.parquet"],
}
#: image folders: layout -> a writer returning the parse-time inputs (its metadata files)
IMAGEFOLDER_LAYOUTS = {
    "class_subfolders": _class_folders,
    "split_class_folders": lambda r: _class_folders(r, "train/") + _class_folders(r, "test/"),
    "metadata_csv": lambda r: _metadata(r, "csv"),
    "metadata_jsonl": lambda r: _metadata(r, "jsonl"),
    "metadata_parquet": lambda r: _metadata(r, "parquet"),
    "split_metadata_parquet": _split_metadata,
}
LAYOUTS = [*PARQUET_LAYOUTS, *IMAGEFOLDER_LAYOUTS]


def make_source(root: Path, layout: str) -> tuple[Path, list[str], str]:
    """Write ``layout`` under ``root/<layout>``: (folder, parse-time inputs, kind)."""
    folder = root / layout
    folder.mkdir(parents=True)
    if layout in PARQUET_LAYOUTS:
        return folder, _parquet(folder, PARQUET_LAYOUTS[layout]), sources.PARQUET
    return folder, IMAGEFOLDER_LAYOUTS[layout](folder), sources.IMAGEFOLDER


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_parse_and_manifest_agree_on_every_layout(tmp_path, layout):
    folder, inputs, kind = make_source(tmp_path, layout)
    assert sources.source_kind(str(folder)) == kind
    # the parse side: rules/common.smk's manifest inputs
    got = [Path(p).relative_to(folder).as_posix() for p in sources.local_inputs(str(folder))]
    assert sorted(got) == sorted(inputs)
    # the job side: the manifest reads the source as that same kind, every row, both labels
    m = build_manifest(source_of(folder, ["label"]), tmp_path / "manifest.json")
    assert m["layout"] == kind
    assert m["n_rows"] == (
        2 * N if layout in ("split_class_folders", "split_metadata_parquet") else N
    )
    assert m["classes"] == {"label": ["a", "b"]} and m["missing_labels"] == {"label": 0}


def test_a_hub_id_and_a_missing_folder(tmp_path):
    assert sources.source_kind("huggan/wikiart") == sources.HUB
    assert sources.local_inputs("huggan/wikiart") == []
    assert (
        sources.source_kind(str(tmp_path / "not-yet")) == sources.MISSING
    )  # the demo's, before it is generated
    assert sources.local_inputs(str(tmp_path / "not-yet")) == []


def test_metadata_parquet_beside_parquet_data_is_parquet(tmp_path):
    """A stray metadata.parquet does not make a Parquet source an image folder, nor an input."""
    folder, inputs, _ = make_source(tmp_path, "push_to_hub")
    pq.write_table(pa.table({"file_name": ["x.png"]}), folder / "metadata.parquet")
    assert sources.source_kind(str(folder)) == sources.PARQUET
    assert [
        Path(p).relative_to(folder).as_posix() for p in sources.local_inputs(str(folder))
    ] == inputs


def test_parse_side_names_a_layout_error(tmp_path):
    folder, _, _ = make_source(tmp_path, "config_split_folders")
    with pytest.raises(sources.DataError, match="dataset.config 'x' not found"):
        sources.local_inputs(str(folder), config="x")
    with pytest.raises(sources.DataError, match=r"dataset.splits \['valid'\] not in config 'art'"):
        sources.local_inputs(str(folder), splits=["valid"])


DRY_RUN_OVERLAY = """
use_datasets: [src]
datasets:
  src:
    source: {source}
    targets: [label]
    split:
      method: stratified
      stratify_by: label
shards:
  rows: 4
models:
  - name: vit
    timm: test_vit
    pretrained: false
classifiers:
  - name: knn
    kind: knn
    k: 3
"""


@pytest.mark.workflow
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_workflow_parses_every_layout(tmp_path, layout):
    """``snakemake -n`` parses the workflow on each layout and plans the manifest from it."""
    from conftest import copy_workflow, job_counts, snakemake

    work = copy_workflow(tmp_path / "work")
    folder, inputs, _ = make_source(tmp_path, layout)
    (work / "src.yaml").write_text(DRY_RUN_OVERLAY.format(source=folder))
    proc = snakemake(work, "-n", "--configfile", "src.yaml", timeout=300)
    assert job_counts(proc.stdout)["manifest"] == 1
    for name in inputs:
        assert str(folder / name) in proc.stdout  # the manifest's inputs as the parse found them
