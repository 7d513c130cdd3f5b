"""Time the near-duplicate scan's two steps at WikiArt size (prints figures).

    python bench/duplicates_bench.py --images 200 [--exact]

* hash: ``artprobe.duplicates.hash_images`` (robust decode, JPEGs at a reduced DCT scale,
  grayscale 32 x 32, DCT, bits) on generated WikiArt-sized JPEGs (long side 900-2,000 px),
  single-threaded, as one ``image_hash`` job runs; then the whole dataset's hashing time.
  ``--exact`` also times a full-resolution decode (no DCT scaling) for comparison.
* scan: ``artprobe.duplicates.nearest`` of WikiArt's 16,289 val/test hashes against its
  65,155 train hashes (random 64-bit hashes: the cost does not depend on their values).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import wikiart_jpegs

from artprobe import duplicates

WIKIART = {"rows": 81444, "train": 65155, "held_out": 8144 + 8145}


def bench_hash(n: int, exact: bool) -> None:
    t0 = time.perf_counter()
    images = wikiart_jpegs(n)
    mb = sum(map(len, images)) / 1e6
    print(f"generated {n} JPEGs ({mb / n:.2f} MB each) in {time.perf_counter() - t0:.1f} s")
    t0, c0 = time.perf_counter(), time.process_time()
    hashes, errors = duplicates.hash_images(images)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert not any(errors)
    rate = n / dt
    print(f"hash: {rate:.1f} img/s wall, {n / cpu:.1f} img/s per CPU-second; WikiArt's "
          f"{WIKIART['rows']:,} rows: {WIKIART['rows'] / rate / 60:.1f} job-minutes")  # fmt: skip
    if exact:
        saved = duplicates.DRAFT_SIDE
        duplicates.DRAFT_SIDE = None
        t0 = time.perf_counter()
        same, _ = duplicates.hash_images(images)
        dt = time.perf_counter() - t0
        duplicates.DRAFT_SIDE = saved
        moved = duplicates.hamming(hashes, same)
        print(f"hash, full-resolution decode: {n / dt:.1f} img/s; bits moved vs DCT-scaled: "
              f"mean {moved.mean():.2f}, max {moved.max()}")  # fmt: skip


def bench_scan() -> None:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 2**63, size=WIKIART["train"], dtype=np.uint64)
    held = rng.integers(0, 2**63, size=WIKIART["held_out"], dtype=np.uint64)
    t0, c0 = time.perf_counter(), time.process_time()
    duplicates.nearest(held, train)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    pairs = len(train) * len(held)
    print(f"scan: {len(held):,} x {len(train):,} = {pairs / 1e9:.2f} G pairs in {dt:.2f} s wall, "
          f"{cpu:.2f} CPU-s ({pairs / dt / 1e9:.2f} G pairs/s, {len(held) / dt:,.0f} queries/s)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200, help="generated JPEGs to hash")
    ap.add_argument("--exact", action="store_true", help="also time a full-resolution decode")
    args = ap.parse_args()
    bench_hash(args.images, args.exact)
    bench_scan()


if __name__ == "__main__":
    main()
