"""Time the near-duplicate scan's steps at WikiArt size, and count what it flags (prints figures).

    python bench/duplicates_bench.py --images 200 [--exact] [--portraits 300]

* hash: ``artprobe.stages.image_hash.hash_images`` (pHash only: robust decode, JPEGs at a reduced
  DCT scale, grayscale 32 x 32, DCT, bits) and ``fingerprint_images`` (what an
  ``image_hash`` job computes: the hash and the confirming measures, detail and colour, from
  one decode) on generated WikiArt-sized JPEGs (long side 900-2,000 px), single-threaded;
  then the whole dataset's hashing time. ``--exact`` also times a full-resolution decode.
* scan: ``artprobe.stages.duplicates.nearest`` of WikiArt's 16,289 val/test hashes against its
  65,155 train hashes (random 64-bit hashes: the cost does not depend on their values), and
  ``confirm`` of 64 candidate pairs per query (the most the scan keeps).
* stereotyped: ``--portraits N`` generated portraits of one composition
  (tests/test_duplicates.py's ``portrait``), N/2 as train, the rest as val/test with every
  fifth a copy (re-encode, resize, PNG, 1 % crop) of a train portrait: queries flagged by
  the hash alone (the scan before the confirmation) vs confirmed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import wikiart_jpegs

from artprobe.stages import duplicates, image_hash

WIKIART = {"rows": 81444, "train": 65155, "held_out": 8144 + 8145}


def bench_hash(n: int, exact: bool) -> None:
    t0 = time.perf_counter()
    images = wikiart_jpegs(n)
    mb = sum(map(len, images)) / 1e6
    print(f"generated {n} JPEGs ({mb / n:.2f} MB each) in {time.perf_counter() - t0:.1f} s")
    hashers = {
        "pHash only (before)": image_hash.hash_images,
        "pHash + detail + colour": image_hash.fingerprint_images,
    }
    for name, fn in hashers.items():
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(images)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert not any(out[-1])
        rate = n / dt
        print(
            f"hash, {name}: {rate:.1f} img/s wall, {n / cpu:.1f} img/s per CPU-second; WikiArt's "
            f"{WIKIART['rows']:,} rows: {WIKIART['rows'] / rate / 60:.1f} job-minutes"
        )
    hashes = out.phash
    if exact:
        t0 = time.perf_counter()
        same, _ = image_hash.hash_images(images, draft_side=None)
        dt = time.perf_counter() - t0
        moved = image_hash.hamming(hashes, same)
        print(
            f"hash, full-resolution decode: {n / dt:.1f} img/s; bits moved vs DCT-scaled: "
            f"mean {moved.mean():.2f}, max {moved.max()}"
        )


def bench_scan() -> None:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 2**63, size=WIKIART["train"], dtype=np.uint64)
    held = rng.integers(0, 2**63, size=WIKIART["held_out"], dtype=np.uint64)
    t0, c0 = time.perf_counter(), time.process_time()
    duplicates.nearest(held, train)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    pairs = len(train) * len(held)
    print(
        f"scan: {len(held):,} x {len(train):,} = {pairs / 1e9:.2f} G pairs in {dt:.2f} s wall, "
        f"{cpu:.2f} CPU-s ({pairs / dt / 1e9:.2f} G pairs/s, {len(held) / dt:,.0f} queries/s)"
    )
    t0, c0 = time.perf_counter(), time.process_time()
    duplicates.candidates(held, train, 8)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"scan, every train row within 8 bits (what the job runs): {dt:.2f} s wall, {cpu:.2f} CPU-s"
    )
    rows = WIKIART["train"] + WIKIART["held_out"]
    detail = rng.integers(-127, 128, size=(rows, image_hash.DETAIL_DIM), dtype=np.int8)
    colour = rng.integers(0, 256, size=(rows, image_hash.COLOUR_DIM), dtype=np.uint8)
    n_pairs = duplicates.MAX_CANDIDATES * WIKIART["held_out"]
    left, right = rng.integers(0, rows, n_pairs), rng.integers(0, rows, n_pairs)
    t0 = time.perf_counter()
    duplicates.confirm(detail, colour, left, right)
    dt = time.perf_counter() - t0
    print(
        f"confirm: {n_pairs:,} candidate pairs ({duplicates.MAX_CANDIDATES} per query, the most kept) in "
        f"{dt:.2f} s ({n_pairs / dt / 1e6:.2f} M pairs/s)"
    )


def bench_stereotyped(n: int, distance: int = 8) -> None:
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq
    from test_duplicates import PLANTS, jpeg, portrait

    from artprobe.common.io import with_meta, write_parquet

    half, plants = n // 2, list(PLANTS.values())
    train = [portrait(s) for s in range(half)]
    images, parts, copies = [jpeg(im) for im in train], ["train"] * half, 0
    for k in range(n - half):
        if k % 5 == 0:
            images.append(plants[k // 5 % len(plants)](train[7 * k % half]))
            copies += 1
        else:
            images.append(jpeg(portrait(10_000 + k)))
        parts.append("val" if k % 2 else "test")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shard = pa.table(
            {"row_id": pa.array(range(n), pa.int64()), "image": pa.array(images, pa.large_binary())}
        )
        write_parquet(with_meta(shard, {"shard": "00000"}), tmp / "s.parquet")
        write_parquet(
            pa.table({"row_id": pa.array(range(n), pa.int64()), "split": parts}),
            tmp / "split.parquet",
        )
        image_hash.hash_shard(tmp / "s.parquet", tmp / "h.parquet", progress_bar=False)
        meta = duplicates.write_duplicates(
            [tmp / "h.parquet"],
            tmp / "split.parquet",
            tmp / "d.parquet",
            distance=distance,
            progress_bar=False,
        )
        table = pq.read_table(tmp / "d.parquet").to_pydict()
    flagged, confirmed = sum(meta["candidates"].values()), sum(meta["duplicates"].values())
    true_copies = sum(
        1 for r, ok in zip(table["row_id"], table["confirmed"]) if ok and (r - half) % 5 == 0
    )
    print(
        f"stereotyped: {half} train portraits, {n - half} val/test queries of which {copies} copies; "
        f"within {distance} bits (flagged before): {flagged}; confirmed (after): {confirmed} "
        f"({true_copies} of them the planted copies); candidate pairs {meta['candidate_pairs']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=200, help="generated JPEGs to hash")
    ap.add_argument("--exact", action="store_true", help="also time a full-resolution decode")
    ap.add_argument(
        "--portraits", type=int, default=0, help="count candidates vs confirmed on N portraits"
    )
    args = ap.parse_args()
    bench_hash(args.images, args.exact)
    bench_scan()
    if args.portraits:
        bench_stereotyped(args.portraits)


if __name__ == "__main__":
    main()
