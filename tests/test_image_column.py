"""artprobe.sources.image_column: which kind of image column a source has, whether it holds
images, and the original bytes of every row (never decoded and re-encoded)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from synthetic import small_image

from artprobe.sources import image_column as ic

STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


@pytest.mark.parametrize(
    "type_,kind",
    [
        (STRUCT, "struct"),
        (pa.binary(), "bytes"),
        (pa.large_binary(), "bytes"),
        (pa.string(), "path"),
        (pa.large_string(), "path"),
    ],
)
def test_image_kinds(type_, kind):
    assert ic.image_kind(type_, "image") == kind


def test_a_column_of_another_type_holds_no_images():
    with pytest.raises(
        ic.ImageColumnError, match=r"dataset.image_column 'year' has type int64: it holds no images"
    ):
        ic.image_kind(pa.int64(), "year")


def test_bytes_pass_through_untouched(tmp_path):
    data = [small_image(".jpg", 0), small_image(".png", 1), None]
    column = pa.array(data, pa.binary())
    assert ic.check_column(column, "image", tmp_path, "f.parquet") == "bytes"
    out = ic.image_bytes(column, "bytes", tmp_path)
    assert out.type == pa.large_binary() and out.to_pylist() == data


def test_a_struct_row_without_bytes_is_read_from_its_path(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "b.webp").write_bytes(webp := small_image(".webp", 2))
    jpg = small_image(".jpg", 3)
    column = pa.array(
        [{"bytes": jpg, "path": None}, {"bytes": None, "path": "imgs/b.webp"}], STRUCT
    )
    assert ic.check_column(column, "image", tmp_path, "f.parquet") == "struct"
    assert ic.image_bytes(column, "struct", tmp_path).to_pylist() == [jpg, webp]


def test_paths_relative_to_the_root_or_absolute(tmp_path):
    (tmp_path / "a.png").write_bytes(a := small_image(".png", 4))
    (tmp_path / "b.png").write_bytes(b := small_image(".png", 5))
    column = pa.array(["a.png", str(tmp_path / "b.png")])
    assert ic.check_column(column, "image", tmp_path, "f.parquet") == "path"
    assert ic.image_bytes(column, "path", tmp_path).to_pylist() == [a, b]
    (tmp_path / "b.png").unlink()
    with pytest.raises(
        ic.ImageColumnError, match=r"1 image file\(s\) .* no longer exist.*the source changed"
    ):
        ic.image_bytes(column, "path", tmp_path)


@pytest.mark.parametrize(
    "column,message",
    [
        (pa.array(["Monet", "Degas"]), r"holds strings that are not paths of files"),
        (pa.array([b"not", b"an image"]), r"none of its first 2 values is an image PIL can open"),
        (
            pa.array([{"bytes": None, "path": "gone.png"}], STRUCT),
            r"none of its first 1 values is an image",
        ),
    ],
)
def test_a_column_without_images_is_refused(tmp_path, column, message):
    with pytest.raises(ic.ImageColumnError, match=message):
        ic.check_column(column, "image", tmp_path, "f.parquet")


def test_some_missing_paths_are_named(tmp_path):
    (tmp_path / "a.png").write_bytes(small_image(".png", 6))
    with pytest.raises(
        ic.ImageColumnError,
        match=r"f.parquet: 1 path\(s\) of column 'image' are not files.*'gone.png'",
    ):
        ic.check_column(pa.array(["a.png", "gone.png"]), "image", tmp_path, "f.parquet")
