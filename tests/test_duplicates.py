"""Near-duplicate scan: the DCT hash, planted duplicates found, distinct images left alone."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from synthetic import synthetic_painting

from artprobe.common.io import read_meta, with_meta, write_parquet
from artprobe.stages.duplicates import (
    COLOUR_RMS_MAX,
    DETAIL_MIN,
    candidates,
    colour_rms,
    confirm,
    detail_cosine,
    duplicate_rows,
    nearest,
    write_duplicates,
)
from artprobe.stages.image_hash import (
    DETAIL_DIM,
    SIZE,
    detail_pixels,
    fingerprint_images,
    hamming,
    hash_images,
    hash_pixels,
    hash_shard,
    phash,
)

DISTANCE = 8  # the default split.duplicate_distance


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def painting(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = int(rng.integers(300, 520)), int(rng.integers(300, 520))
    return synthetic_painting(w, h, seed=seed)


def portrait(seed: int, width: int = 400, height: int = 500) -> Image.Image:
    """A stereotyped portrait: every seed has the same composition (dark gradient ground,
    torso, hair, an oval face at the same place, within 2 %), its own content (colours,
    features, patches and strokes on the ground and clothes). About 0.7 % of pairs of such
    portraits are within 8 bits of each other's pHash, as the issue measured on WikiArt."""
    from PIL import ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    w, h = width, height
    ground = (
        np.array([40, 32, 25])
        + rng.integers(-8, 9, 3)
        + 30 * (1 - np.linspace(0, 1, h))[:, None, None]
    )
    img = Image.fromarray(np.clip(ground + np.zeros((h, w, 3)), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    jitter = lambda s: int(rng.integers(-s, s + 1))  # noqa: E731
    colour = lambda lo, hi: tuple(int(c) for c in rng.integers(lo, hi, 3))  # noqa: E731
    cx, cy = w // 2 + jitter(w // 50), int(h * 0.36) + jitter(h // 50)
    rx, ry = int(w * 0.16) + jitter(w // 60), int(h * 0.17) + jitter(h // 60)
    torso = [
        (cx - rx * 3, h),
        (cx - rx * 1.2, cy + ry * 1.3),
        (cx + rx * 1.2, cy + ry * 1.3),
        (cx + rx * 3, h),
    ]
    draw.polygon(
        torso, fill=tuple(int(c) for c in np.array([30, 28, 35]) + rng.integers(-15, 16, 3))
    )
    draw.ellipse(
        (cx - rx * 1.2, cy - ry * 1.25, cx + rx * 1.2, cy + ry * 0.9), fill=colour(10, 90)
    )  # hair
    skin = tuple(int(c) for c in np.array([205, 160, 130]) + rng.integers(-25, 26, 3))
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=skin)
    for side in (-1, 1):  # eyes, nose, mouth
        ex, ey = cx + side * rx * 0.4 + jitter(4), cy - ry * 0.15 + jitter(4)
        draw.ellipse((ex - 8, ey - 4, ex + 8, ey + 4), fill=colour(20, 90))
    draw.line(
        [(cx + jitter(5), cy - 5), (cx + jitter(5), cy + ry * 0.3)], fill=(150, 110, 90), width=3
    )
    mouth_y = cy + ry * 0.55
    draw.line(
        [
            (cx - rx * 0.35 + jitter(5), mouth_y + jitter(5)),
            (cx + rx * 0.35 + jitter(5), mouth_y + jitter(5)),
        ],
        fill=(150, 60, 60),
        width=4,
    )
    for _ in range(int(rng.integers(10, 25))):  # the content: patches on the ground and clothes
        x0, y0, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(3, 25))
        if (x0 - cx) ** 2 / rx**2 + (y0 - cy) ** 2 / ry**2 >= 1.3:
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((x0 - r, y0 - r, x0 + r, y0 + r), fill=colour(0, 120))
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(1.0)), np.int16) + rng.integers(
        -8, 9, (h, w, 1)
    )
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


PLANTS = {  # how a copy differs from its original
    "re-encoded at quality 35": lambda im: jpeg(im, 35),
    "resized to half": lambda im: jpeg(im.resize((im.width // 2, im.height // 2), Image.BILINEAR)),
    "resized to a third, quality 70": lambda im: jpeg(
        im.resize((im.width // 3, im.height // 3), Image.BICUBIC), 70
    ),
    "saved as PNG": lambda im: (lambda b: (im.save(b, "PNG"), b.getvalue())[1])(io.BytesIO()),
    "1 % cropped off each side": lambda im: jpeg(
        im.crop(
            (
                im.width // 100,
                im.height // 100,
                im.width - im.width // 100,
                im.height - im.height // 100,
            )
        )
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


def test_copies_pass_the_confirmation_and_distinct_pictures_do_not():
    """Known answers on both generators: every planted copy (re-encode, resizes, PNG, 1 %
    crop) of a painting or a portrait is confirmed; no pair of distinct portraits (same
    composition, other content) is, though pHash puts some of them within the distance."""
    originals = [painting(s) for s in range(0, 40, 4)] + [portrait(s) for s in range(10)]
    base = fingerprint_images([jpeg(im) for im in originals])
    for name, plant in PLANTS.items():
        copies = fingerprint_images([plant(im) for im in originals])
        idx = np.arange(len(originals))
        detail = np.concatenate([base.detail, copies.detail])
        colour = np.concatenate([base.colour, copies.colour])
        cos, rms, ok = confirm(detail, colour, idx, idx + len(originals))
        assert ok.all(), (name, cos.round(3).tolist(), rms.round(2).tolist())
    faces = fingerprint_images([jpeg(portrait(s)) for s in range(120)])
    i, j = np.triu_indices(120, 1)
    close = hamming(faces.phash[i], faces.phash[j]) <= DISTANCE
    assert close.sum() >= 20, "the portraits should share their layout: pHash candidates expected"
    _, _, ok = confirm(faces.detail, faces.colour, i[close], j[close])
    assert not ok.any()


def test_confirming_measures_known_answers():
    a = np.array([[3, 4, 0], [1, 0, 0], [0, 0, 0]], np.int8)
    b = np.array([[6, 8, 0], [0, 1, 0], [1, 1, 1]], np.int8)
    assert np.allclose(
        detail_cosine(a, b), [1.0, 0.0, 0.0]
    )  # a vector without detail matches nothing
    c0, c1 = np.zeros((1, 48), np.uint8), np.full((1, 48), 4, np.uint8)
    assert np.allclose(colour_rms(c0, c1), [4.0]) and np.allclose(colour_rms(c1, c0), [4.0])
    flat = detail_pixels(np.full((64, 64), 77.0))
    assert flat.shape == (1, DETAIL_DIM) and not flat.any()
    detail = np.array([[100] + [0] * (DETAIL_DIM - 1), [90, 44] + [0] * (DETAIL_DIM - 2)], np.int8)
    colour = np.zeros((2, 48), np.uint8)
    cos, _, ok = confirm(detail, colour, np.array([0]), np.array([1]))
    assert np.isclose(cos[0], 90 / np.hypot(90, 44)) and ok[0] == (cos[0] >= DETAIL_MIN)
    colour[1] = int(COLOUR_RMS_MAX) + 1
    assert not confirm(np.stack([detail[0]] * 2), colour, np.array([0]), np.array([1]))[2][0]


def test_candidates_are_every_pair_within_the_distance_nearest_first():
    rng = np.random.default_rng(2)
    ref = rng.integers(0, 2**63, size=200, dtype=np.uint64)
    q = ref[rng.integers(0, 200, size=40)] ^ np.uint64(0b111)  # 3 bits from a reference hash
    q[:5] = ref[0] ^ np.uint64(1)  # five queries near the same reference
    ref[1:4] = ref[0] ^ np.uint64(0b11)  # which has three more neighbours (1 bit from q[:5])
    full = np.array([[bin(int(a) ^ int(b)).count("1") for b in ref] for a in q])
    qi, ri, d, over = candidates(q, ref, 6, limit=3, chunk=7)
    want = [
        (i, r)
        for i in range(len(q))
        for r in np.lexsort((np.arange(len(ref)), full[i]))
        if full[i, r] <= 6
    ]
    per = {}
    for i, r in want:
        per.setdefault(i, []).append(r)
    assert list(zip(qi.tolist(), ri.tolist())) == [(i, r) for i in sorted(per) for r in per[i][:3]]
    assert (d == full[qi, ri]).all() and over == sum(len(v) > 3 for v in per.values()) == 5


def write_shard(path, row_ids, images) -> None:
    table = pa.table(
        {"row_id": pa.array(row_ids, pa.int64()), "image": pa.array(images, pa.large_binary())}
    )
    write_parquet(with_meta(table, {"shard": path.stem}), path)


def write_split_file(path, parts) -> None:
    write_parquet(
        pa.table({"row_id": pa.array(np.arange(len(parts)), pa.int64()), "split": pa.array(parts)}),
        path,
    )


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
    meta = write_duplicates(
        hashes, tmp_path / "split.parquet", tmp_path / "dup.parquet", distance=DISTANCE
    )
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
    write_duplicates(
        [tmp_path / "h2.parquet"],
        tmp_path / "split2.parquet",
        tmp_path / "d2.parquet",
        distance=DISTANCE,
    )
    assert pq.read_table(tmp_path / "d2.parquet").num_rows == 0


def test_stereotyped_queries_are_candidates_and_only_copies_are_confirmed(tmp_path):
    """80 train portraits; val/test hold 60 other portraits (same composition) and 12 copies
    of train portraits. The hash alone flags many of the 60; the scan confirms the 12 only,
    and only those are what split.drop_duplicates leaves out."""
    train = [portrait(s) for s in range(80)]
    images, parts, planted = [jpeg(im) for im in train], ["train"] * 80, {}
    plants = list(PLANTS.values())
    for k in range(72):
        row = len(images)
        if k % 6 == 0:
            planted[row] = src = 5 * k % 80
            images.append(plants[k // 6 % len(plants)](train[src]))
        else:
            images.append(jpeg(portrait(500 + k)))
        parts.append("val" if k % 2 else "test")
    write_split_file(tmp_path / "split.parquet", parts)
    write_shard(tmp_path / "s.parquet", range(len(images)), images)
    hash_shard(tmp_path / "s.parquet", tmp_path / "h.parquet")
    out = tmp_path / "dup.parquet"
    meta = write_duplicates(
        [tmp_path / "h.parquet"], tmp_path / "split.parquet", out, distance=DISTANCE
    )
    dup = pq.read_table(out).to_pydict()
    confirmed = {r: t for r, t, c in zip(dup["row_id"], dup["train_row_id"], dup["confirmed"]) if c}
    assert confirmed == planted
    assert sorted(duplicate_rows(tmp_path / "dup.parquet").tolist()) == sorted(planted)
    distinct_flagged = sum(meta["candidates"].values()) - len(planted)
    assert distinct_flagged >= 10, "the hash alone should flag many distinct portraits"
    assert meta["duplicates"] == {s: sum(parts[r] == s for r in planted) for s in ("val", "test")}
    assert all(c >= 1 for c in dup["candidates"]) and all(
        0 <= d <= DISTANCE for d in dup["distance"]
    )
    scores = zip(dup["detail"], dup["colour"], dup["confirmed"])
    assert all(d >= DETAIL_MIN and c <= COLOUR_RMS_MAX for d, c, ok in scores if ok)


def test_report_shows_candidates_confirmed_and_achieved_fractions(tmp_path):
    """The split table gets both counts; the note names the achieved fractions."""
    import pandas as pd

    from artprobe.report import html, tables

    achieved = {"train": 0.8, "val": 0.1002, "test": 0.0998}
    split_meta = {
        "method": "group",
        "seed": 3,
        "group_by": "artist",
        "n_groups": 7,
        "ungrouped_rows": 2,
        "val_fraction": 0.1,
        "test_fraction": 0.1,
        "achieved": achieved,
    }
    write_parquet(
        with_meta(pa.table({"row_id": [0, 1, 2], "split": ["train", "val", "test"]}), split_meta),
        tmp_path / "split.parquet",
    )
    dup_meta = {
        "distance": 8,
        "candidates": {"val": 9, "test": 7},
        "duplicates": {"val": 4, "test": 1},
    }
    write_parquet(
        with_meta(pa.table({"row_id": pa.array([], pa.int64())}), dup_meta), tmp_path / "d.parquet"
    )
    splits = pd.DataFrame(
        {"split": ["train", "val", "test"], "rows": [80, 10, 10], "share": [0.8, 0.1, 0.1]}
    )
    counted, meta = tables.split_notes(
        str(tmp_path / "split.parquet"), splits, str(tmp_path / "d.parquet")
    )
    assert counted["near_duplicate_candidates"].tolist() == [pd.NA, 9, 7]
    assert counted["near_duplicates"].tolist() == [pd.NA, 4, 1]
    note = html.split_note(meta)
    assert (
        "achieved train 80.00 %, val 10.02 %, test 9.98 % (asked val 10.00 %, test 10.00 %)" in note
    )
    page = "".join(
        html.dataset_sections(
            counted,
            pd.DataFrame(columns=["model", "failed_share"]),
            pd.DataFrame(columns=["target"]),
            {"n_rows": 100},
            meta,
        )
    )
    assert "near_duplicate_candidates" in page and "a second measure confirms" in page


def test_hash_shard_survives_hostile_images(tmp_path):
    rgba = Image.new("RGBA", (64, 48), (255, 0, 0, 0))
    gray16 = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    images = [
        b"",
        b"not an image",
        jpeg(painting(1))[:300],
        _png(rgba),
        _png(gray16),
        jpeg(painting(2)),
    ]
    write_shard(tmp_path / "s.parquet", range(10, 16), images)
    hash_shard(tmp_path / "s.parquet", tmp_path / "h.parquet", tmp_path / "p.arrow")
    t = pq.read_table(tmp_path / "h.parquet").to_pydict()
    assert t["row_id"] == list(range(10, 16))
    assert [h is None for h in t["phash"]] == [True, True, True, False, False, False]
    assert (
        t["error"][0] == "empty"
        and t["error"][1].startswith("not an image")
        and t["error"][3:] == [None] * 3
    )
    assert pq.read_schema(tmp_path / "h.parquet").field("phash").type == pa.uint64()
    assert read_meta(tmp_path / "h.parquet")["failed"] == 3
    # the previews of the same decode: none for the failed images, never enlarged, transparency
    # on white
    p = pa.ipc.open_file(pa.memory_map(str(tmp_path / "p.arrow"))).read_all().to_pydict()
    assert p["row_id"] == list(range(10, 16))
    assert [j is None for j in p["large"]] == [True, True, True, False, False, False]
    assert (p["large_width"][3], p["large_height"][3], p["small_width"][3]) == (64, 48, 64)
    rgba = np.asarray(Image.open(io.BytesIO(p["large"][3])).convert("RGB"), dtype=int)
    assert rgba.min() >= 245


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
use_datasets: [dups]
datasets:
  dups:
    source: ./source
    targets: [genre]
    split:
      drop_duplicates: true
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
    from conftest import dataset_of

    from artprobe.settings import split_settings
    from artprobe.stages.split import seed_compatible_split

    split = split_settings(dataset_of())  # the schema's: seed-compatible, its seed and fractions
    parts = seed_compatible_split(n, split.seed, split.val_fraction, split.test_fraction)
    train = np.flatnonzero(parts == "train")
    copies = [*np.flatnonzero(parts == "val")[:3], *np.flatnonzero(parts == "test")[:3]]
    planted = {int(c): int(train[5 * k]) for k, c in enumerate(copies)}
    pictures = {i: painting(i) for i in range(n) if i not in planted}
    plants = list(PLANTS.values())
    images = [jpeg(pictures[i]) if i not in planted else None for i in range(n)]
    genre = [i % 3 for i in range(n)]
    for k, (c, src) in enumerate(planted.items()):
        images[c], genre[c] = plants[k % len(plants)](pictures[src]), genre[src]
    feats = datasets.Features(
        {"image": datasets.Image(), "genre": datasets.ClassLabel(names=["a", "b", "c"])}
    )
    (folder / "data").mkdir(parents=True)
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in images], "genre": genre}, features=feats
    )
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
    assert (splits.loc[["val", "test"], "near_duplicate_candidates"] >= 3).all()
    # the long jobs log a progress line with its rate; the split says where its parts landed
    logs = out / "logs"
    assert "image_hash 00000: 100%" in (logs / "image_hash" / "00000.log").read_text()
    assert "img/s" in (logs / "image_hash" / "00000.log").read_text()
    assert "duplicates: hash scan: 100%" in (logs / "duplicates.log").read_text()
    assert "achieved fractions train" in (logs / "split.log").read_text()
    assert "disk: the 60-row shards of" in (logs / "shard" / "00000.log").read_text()
