"""artprobe.sources.labels: a label column as int16 class ids (-1 missing), and the class
names a source stores (Parquet metadata, dataset card)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from artprobe.sources import labels


@pytest.mark.parametrize(
    "column,names,kind",
    [
        (pa.array([0, 2, None]), ["a", "b", "c"], "classlabel"),
        (pa.array(["x", None, ""]), None, "string"),
        (pa.array(["x", "y"]).dictionary_encode(), None, "string"),
        (pa.array([1750, -1, None]), None, "int"),
        (pa.array([3.0, np.nan, 7.0]), None, "int"),  # an int column with gaps, as pandas writes it
        (pa.array([True, False]), None, "int"),
    ],
)
def test_label_kinds(column, names, kind):
    assert labels.label_kind(column, names) == kind


@pytest.mark.parametrize("column", [pa.array([0.5, 1.0]), pa.array([[1], [2]])])
def test_a_column_that_holds_no_labels(column):
    with pytest.raises(labels.LabelError, match="a target must hold class labels"):
        labels.label_kind(column, None)


def test_strings_classes_are_sorted_and_missing_ones_are_minus_one():
    column = pa.array(["Rococo", " Baroque ", None, "", "  ", "Rococo"])
    kind, classes = labels.class_list(column, None)
    assert (kind, classes) == ("string", ["Baroque", "Rococo"])  # stripped, sorted
    assert labels.encode(column, kind, classes).tolist() == [1, 0, -1, -1, -1, 1]
    assert labels.count_missing(column, kind) == 3
    assert labels.encode(column, kind, classes).dtype == np.int16


def test_sparse_ints_make_no_empty_classes():
    column = pa.array([1750, 1600, -1, None, 1910, 1750])
    kind, classes = labels.class_list(column, None)
    assert (kind, classes) == ("int", ["1600", "1750", "1910"])  # not range(1911)
    assert labels.encode(column, kind, classes).tolist() == [1, 0, -1, -1, 2, 1]
    assert labels.count_missing(column, kind) == 2


def test_classlabel_ids_keep_their_names_and_refuse_ids_outside_them():
    names = ["portrait", "landscape", "sketch"]
    column = pa.array([2, 0, -1, None])
    kind, classes = labels.class_list(column, names)
    assert (kind, classes) == ("classlabel", names)  # the feature's order, not sorted
    assert labels.encode(column, kind, classes).tolist() == [2, 0, -1, -1]
    with pytest.raises(
        labels.LabelError,
        match=r"label id\(s\) \[3\] outside its 3 ClassLabel names, at row_id\(s\) \[1\]",
    ):
        labels.encode(pa.array([0, 3]), "classlabel", names)


def test_a_label_the_manifest_does_not_know():
    with pytest.raises(
        labels.LabelError, match="has label 'Cubism', not one of the manifest's classes"
    ):
        labels.encode(pa.array(["Baroque", "Cubism"]), "string", ["Baroque"])


def test_class_names_from_parquet_metadata():
    info = {
        "info": {
            "features": {
                "genre": {"_type": "ClassLabel", "names": ["a", "b"]},
                "image": {"_type": "Image"},
            }
        }
    }
    schema = pa.schema(
        [("genre", pa.int64())], metadata={b"huggingface": json.dumps(info).encode()}
    )
    assert labels.class_names_from_schema(schema) == {"genre": ["a", "b"]}
    assert labels.class_names_from_schema(pa.schema([("genre", pa.int64())])) == {}


def test_class_names_from_dataset_card(tmp_path):
    (tmp_path / "README.md").write_text(
        "---\ndataset_info:\n  features:\n  - name: image\n    dtype: image\n"
        "  - name: genre\n    dtype:\n      class_label:\n        names:\n"
        "          '0': portrait\n          '1': landscape\n---\n# card\n"
    )
    assert labels.class_names_from_readme(tmp_path) == {"genre": ["portrait", "landscape"]}
