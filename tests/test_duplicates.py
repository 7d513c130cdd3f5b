"""Near-duplicate scan: the DCT hash, planted duplicates found, distinct images left alone."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from artprobe.duplicates import (
    SIZE,
    hamming,
    hash_images,
    hash_pixels,
    hash_shard,
    nearest,
    phash,
    write_duplicates,
)
from artprobe.io import read_meta, with_meta, write_parquet
from synthetic import synthetic_painting

DISTANCE = 8  # the default split.duplicate_distance


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def painting(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = int(rng.integers(300, 520)), int(rng.integers(300, 520))
    return synthetic_painting(w, h, seed=seed)


PLANTS = {  # how a copy differs from its original
    "re-encoded at quality 35": lambda im: jpeg(im, 35),
    "resized to half": lambda im: jpeg(im.resize((im.width // 2, im.height // 2), Image.BILINEAR)),
    "resized to a third, quality 70": lambda im: jpeg(im.resize((im.width // 3, im.height // 3), Image.BICUBIC), 70),
    "saved as PNG": lambda im: (lambda b: (im.save(b, "PNG"), b.getvalue())[1])(io.BytesIO()),
    "1 % cropped off each side": lambda im: jpeg(
        im.crop((im.width // 100, im.height // 100, im.width - im.width // 100, im.height - im.height // 100))
    ),
}


def test_hash_is_the_dct_of_the_low_frequencies():
    """Known answers: scipy's orthonormal DCT gives the same bits; a flat image sets only DC."""
    from scipy.fft import dctn

    rng = np.random.default_rng(0)
    gray = rng.uniform(0, 255, size=(5, SIZE, SIZE))
    ours = hash_pixels(gray)
    for g, h in zip(gray, ours):
        low = dctn(g, norm="ortho")[:8, :8].ravel()
        bits = "".join("1" if v > np.median(low) else "0" for v in low)
        assert int(h) == int(bits, 2)
    assert int(hash_pixels(np.full((SIZE, SIZE), 128.0))[0]) == 1 << 63
    assert hamming(np.uint64(0b1011), np.uint64(0b0110)) == 3


def test_nearest_is_exact_across_chunks():
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 2**63, size=300, dtype=np.uint64)
    q = rng.integers(0, 2**63, size=150, dtype=np.uint64)
    q[7] = ref[123]
    dist, index = nearest(q, ref, chunk=16)
    full = np.array([[bin(int(a) ^ int(b)).count("1") for b in ref] for a in q])
    assert (dist == full.min(1)).all() and (index == full.argmin(1)).all()
    assert dist[7] == 0 and index[7] == 123


def test_planted_copies_are_within_the_distance_and_distinct_images_far_apart():
    originals = [painting(s) for s in range(40)]
    base = np.array([phash(jpeg(im)) for im in originals], dtype=np.uint64)
    d = hamming(base[:, None], base[None, :])[np.triu_indices(len(base), 1)]
    assert d.min() > 2 * DISTANCE, "generated 'distinct' images are perceptually close"
    for name, plant in PLANTS.items():
        for i in range(0, 40, 8):
            assert hamming(base[i], phash(plant(originals[i]))) <= DISTANCE, (name, i)


def write_shard(path, row_ids, images) -> None:
    table = pa.table({"row_id": pa.array(row_ids, pa.int64()), "image": pa.array(images, pa.large_binary())})
    write_parquet(with_meta(table, {"shard": path.stem}), path)


def write_split_file(path, parts) -> None:
    write_parquet(pa.table({"row_id": pa.array(np.arange(len(parts)), pa.int64()), "split": pa.array(parts)}), path)


def test_scan_finds_the_planted_duplicates_and_nothing_else(tmp_path):
    """60 distinct train paintings; val/test hold 10 planted copies among 20 new paintings."""
    train = [painting(s) for s in range(60)]
    images, parts, planted = [jpeg(im) for im in train], ["train"] * 60, {}
    plants = list(PLANTS.values())
    for k in range(30):
        row = len(images)
        if k % 3 == 0:  # every third val/test row is a copy of a train painting
            src = 7 * k % 60
            images.append(plants[k % len(plants)](train[src]))
            planted[row] = src
        else:
            images.append(jpeg(painting(1000 + k)))
        parts.append("val" if k % 2 else "test")
    images.append(b"\xff\xd8\xff not really a jpeg")  # a broken test image: no hash, no match
    parts.append("test")
    write_split_file(tmp_path / "split.parquet", parts)
    half = len(images) // 2
    write_shard(tmp_path / "s0.parquet", range(half), images[:half])
    write_shard(tmp_path / "s1.parquet", range(half, len(images)), images[half:])
    hashes = []
    for s in ("s0", "s1"):
        hash_shard(tmp_path / f"{s}.parquet", tmp_path / f"h_{s}.parquet")
        hashes.append(tmp_path / f"h_{s}.parquet")
    meta = write_duplicates(hashes, tmp_path / "split.parquet", tmp_path / "dup.parquet", distance=DISTANCE)
    dup = pq.read_table(tmp_path / "dup.parquet").to_pydict()
    assert dict(zip(dup["row_id"], dup["train_row_id"])) == planted
    assert all(0 <= x <= DISTANCE for x in dup["distance"])
    assert [parts[r] for r in dup["row_id"]] == dup["split"]
    assert meta["duplicates"] == {s: sum(parts[r] == s for r in planted) for s in ("val", "test")}
    assert meta["scanned"] == {"train": 60, "val": 15, "test": 15} and meta["unhashed"] == 1
    assert read_meta(tmp_path / "dup.parquet")["distance"] == DISTANCE
    # without the planted copies the same scan finds nothing
    kept = [i for i in range(len(images)) if i not in planted]
    write_split_file(tmp_path / "split2.parquet", [parts[i] for i in kept])
    write_shard(tmp_path / "s2.parquet", range(len(kept)), [images[i] for i in kept])
    hash_shard(tmp_path / "s2.parquet", tmp_path / "h2.parquet")
    write_duplicates([tmp_path / "h2.parquet"], tmp_path / "split2.parquet", tmp_path / "d2.parquet", distance=DISTANCE)
    assert pq.read_table(tmp_path / "d2.parquet").num_rows == 0


def test_hash_shard_survives_hostile_images(tmp_path):
    rgba = Image.new("RGBA", (64, 48), (255, 0, 0, 0))
    gray16 = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    images = [b"", b"not an image", jpeg(painting(1))[:300], _png(rgba), _png(gray16), jpeg(painting(2))]
    write_shard(tmp_path / "s.parquet", range(10, 16), images)
    hash_shard(tmp_path / "s.parquet", tmp_path / "h.parquet")
    t = pq.read_table(tmp_path / "h.parquet").to_pydict()
    assert t["row_id"] == list(range(10, 16))
    assert [h is None for h in t["phash"]] == [True, True, True, False, False, False]
    assert t["error"][0] == "empty" and t["error"][1].startswith("not an image") and t["error"][3:] == [None] * 3
    assert pq.read_schema(tmp_path / "h.parquet").field("phash").type == pa.uint64()
    assert read_meta(tmp_path / "h.parquet")["failed"] == 3


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_hash_images_of_nothing():
    hashes, errors = hash_images([])
    assert len(hashes) == 0 and errors == []


def test_scan_without_train_hashes_names_the_problem():
    with pytest.raises(ValueError, match="no train image could be hashed"):
        nearest(np.zeros(3, np.uint64), np.zeros(0, np.uint64))


DUP_OVERLAY = """
dataset:
  name: dups
  source: ./source
  targets: [genre]
shards:
  rows: 25
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
split:
  drop_duplicates: true
probe:
  bootstrap: 10
report:
  map_rows: 20
"""


def planted_source(folder, n: int = 60) -> dict[int, int]:
    """A hub-layout source of distinct paintings, where the first three val and the first three
    test rows (of the default seed-compatible split) are copies of train rows. Returns
    {copy row: original row}."""
    import datasets

    from artprobe.split import seed_compatible_split

    parts = seed_compatible_split(n)
    train = np.flatnonzero(parts == "train")
    copies = [*np.flatnonzero(parts == "val")[:3], *np.flatnonzero(parts == "test")[:3]]
    planted = {int(c): int(train[5 * k]) for k, c in enumerate(copies)}
    pictures = {i: painting(i) for i in range(n) if i not in planted}
    plants = list(PLANTS.values())
    images = [jpeg(pictures[i]) if i not in planted else None for i in range(n)]
    genre = [i % 3 for i in range(n)]
    for k, (c, src) in enumerate(planted.items()):
        images[c], genre[c] = plants[k % len(plants)](pictures[src]), genre[src]
    feats = datasets.Features({"image": datasets.Image(), "genre": datasets.ClassLabel(names=["a", "b", "c"])})
    (folder / "data").mkdir(parents=True)
    ds = datasets.Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in images], "genre": genre}, features=feats)
    ds.to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    return planted


@pytest.mark.workflow
@pytest.mark.slow
def test_drop_duplicates_end_to_end(tmp_path):
    """The workflow finds the planted copies and leaves them out of the fits and the report counts them."""
    import json

    import pandas as pd

    from conftest import copy_workflow, snakemake

    work = copy_workflow(tmp_path / "work")
    planted = planted_source(work / "source")
    (work / "dups.yaml").write_text(DUP_OVERLAY)
    snakemake(work, "--cores", "2", "--configfile", "dups.yaml")
    out = work / "results" / "dups"
    dup = pq.read_table(out / "duplicates.parquet").to_pydict()
    assert dict(zip(dup["row_id"], dup["train_row_id"])) == planted
    m = json.loads((out / "classify" / "vit" / "genre" / "knn" / "metrics.json").read_text())
    assert m["dropped"]["duplicates"] == 6 and m["n_val"] == 6 - 3 and m["n_test"] == 6 - 3
    pred = pq.read_table(out / "classify" / "vit" / "genre" / "knn" / "predictions.parquet")
    assert not set(pred.column("row_id").to_pylist()) & set(planted)
    splits = pd.read_csv(out / "report" / "splits.csv").set_index("split")
    assert splits.loc["val", "near_duplicates"] == 3 and splits.loc["test", "near_duplicates"] == 3
