"""artprobe.stages.manifest: a source resolved into the manifest and the row index; errors name the problem."""

from __future__ import annotations

import pytest
from conftest import source_of

from artprobe.common.io import read_json
from artprobe.stages import manifest as stage
from artprobe.stages.generate_demo import CLASSES, demo_rows

TARGETS = ["genre", "style", "artist"]


def test_manifest(demo_source, tmp_path):
    m = stage.build_manifest(source_of(demo_source, TARGETS), tmp_path / "manifest.json")
    assert m == read_json(tmp_path / "manifest.json")
    assert m["n_rows"] == 96
    assert [f["name"] for f in m["files"]] == [
        f"data/train-0000{i}-of-00003.parquet" for i in range(3)
    ]
    assert [f["row_start"] for f in m["files"]] == [0, 32, 64]
    assert m["classes"] == {t: CLASSES[t] for t in TARGETS}
    assert m["revision"] == "local"


def test_manifest_errors_name_the_problem(demo_source, tmp_path):
    with pytest.raises(stage.DataError, match="missing column.*'period'"):
        stage.build_manifest(source_of(demo_source, ["genre", "period"]), tmp_path / "m.json")
    with pytest.raises(stage.DataError, match="no Parquet files"):
        stage.build_manifest(source_of(tmp_path, TARGETS), tmp_path / "m.json")
    with pytest.raises(stage.DataError, match="no such folder"):
        stage.build_manifest(source_of(tmp_path / "nowhere", TARGETS), tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_shard_rejects_bad_labels(tmp_path):
    import datasets

    rows = demo_rows(8, seed=0, n_broken=0)
    rows["genre"][3] = 42  # outside the 11 genres
    feats = datasets.Features({"image": datasets.Image(), "genre": datasets.Value("int64")})
    folder = tmp_path / "src"
    (folder / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(
        {"image": rows["image"], "genre": rows["genre"]}, features=feats
    ).to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    (folder / "README.md").write_text(
        "---\ndataset_info:\n  features:\n  - name: genre\n    dtype:\n      class_label:\n"
        "        names:\n" + "".join(f"          '{i}': g{i}\n" for i in range(11)) + "---\n"
    )
    # caught by the manifest job, before any shard or embedding
    with pytest.raises(stage.DataError, match=r"'genre'.*label id\(s\) \[42\].*row_id\(s\) \[3\]"):
        stage.build_manifest(source_of(folder, ["genre"]), tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()
