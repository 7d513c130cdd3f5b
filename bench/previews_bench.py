"""The thumbnail stage's reads before and after the previews (prints figures).

    python bench/previews_bench.py --rows 5000 [--distinct 250] [--hash-rows 400]
    python bench/previews_bench.py --demo

* ``--demo``: the demo's 360 paintings: the previews' bytes per row, and each preview against
  the thumbnail the thumbnail stage made from the shard before (identical bytes, mean
  absolute pixel difference);

* shards: ``--rows`` generated WikiArt-sized JPEGs (bench/common.py, ``--distinct`` pictures
  at four JPEG qualities) in shards of ``--shard-rows`` rows, 256-row groups (as the shard
  stage writes them);
* image_hash: seconds per image of ``hash_shard`` on ``--hash-rows`` of them without and with
  the previews (the cost the previews add), and the previews' bytes per row, scaled to
  WikiArt's 81,444 rows;
* gather: the rows a WikiArt report shows, scaled to ``--rows`` (the map's 2,000 small
  thumbnails and about 760 large ones of 81,444 rows, drawn at random): before, the shards'
  row groups holding them read and the images decoded (the thumbnail stage as it was); after,
  ``make_thumbnails`` over the previews. Bytes: what the reads ask for (column chunks of the
  row groups read; the previews' ``row_id`` column, offsets and JPEGs taken: a memory map
  touches no more).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import say, wikiart_jpegs, write_bench_shard

from artprobe.common.images import decode_rgb
from artprobe.common.previews import QUALITY, SIZES
from artprobe.report.thumbnails import make_thumbnails
from artprobe.stages.image_hash import hash_shard

WIKIART_ROWS, SMALL, LARGE = 81444, 2000, 760


def before(shards, wanted) -> int:
    """The thumbnail stage as it was: row groups holding a wanted row read, images decoded;
    returns the bytes of the column chunks read."""
    rows = np.unique(np.concatenate([np.asarray(r) for r in wanted.values()]))
    asked = 0
    for path in shards:
        pf = pq.ParquetFile(path)
        for g in range(pf.num_row_groups):
            ids = pf.read_row_group(g, columns=["row_id"])["row_id"].to_numpy()
            if not np.isin(ids, rows).any():
                continue
            t = pf.read_row_group(g, columns=["row_id", "image", "style"])
            asked += sum(t.column(c).nbytes for c in range(t.num_columns))
            keep = dict(zip(t["row_id"].to_pylist(), t["image"].to_pylist()))
            for kind, want in wanted.items():
                for r in set(want) & keep.keys():
                    img = decode_rgb(keep[r], min_short_side=SIZES[kind] // 2)
                    img.thumbnail((SIZES[kind], SIZES[kind]))
                    img.save(io.BytesIO(), format="JPEG", quality=QUALITY, optimize=True)
    return asked


def after_asked(previews, wanted) -> int:
    """The bytes ``take_previews`` touches: row_id columns, and per row taken its offsets
    and JPEG."""
    asked = 0
    for p in previews:
        t = pa.ipc.open_file(pa.memory_map(p)).read_all()
        asked += t["row_id"].nbytes
        ids = t["row_id"].to_numpy()
        for kind, want in wanted.items():
            taken = t[kind].take(np.flatnonzero(np.isin(ids, want)))
            asked += sum(len(j) for j in taken.to_pylist() if j) + 8 * len(taken)
    return asked


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def old_thumbnail(data: bytes, kind: str) -> bytes:
    """A thumbnail as the thumbnail stage made it from a shard's image."""
    img = decode_rgb(data, min_short_side=SIZES[kind] // 2)
    img.thumbnail((SIZES[kind], SIZES[kind]))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=QUALITY, optimize=True)
    return buf.getvalue()


def demo_figures() -> None:
    """The demo's paintings (schema defaults): preview bytes per row, and each preview
    against the thumbnail the thumbnail stage made before (identical bytes, pixel difference)."""
    from PIL import Image

    from artprobe.stages.generate_demo import demo_rows

    images = [d["bytes"] for d in demo_rows(360, 0, 2)["image"]]
    tmp = Path(tempfile.mkdtemp(prefix="previews_demo."))
    write_bench_shard(tmp / "s.parquet", images)
    hash_shard(tmp / "s.parquet", tmp / "h.parquet", tmp / "p.arrow", progress_bar=False)
    t = pa.ipc.open_file(pa.memory_map(str(tmp / "p.arrow"))).read_all().to_pydict()
    ok = [i for i, j in enumerate(t["large"]) if j is not None]
    for kind in SIZES:
        new = [t[kind][i] for i in ok]
        old = [old_thumbnail(images[i], kind) for i in ok]
        same = sum(a == b for a, b in zip(new, old))
        pics = [(Image.open(io.BytesIO(a)), Image.open(io.BytesIO(b))) for a, b in zip(new, old)]
        short = sum(max(b.size) < SIZES[kind] for _, b in pics)
        diff = [
            np.abs(np.asarray(a, float) - np.asarray(b.resize(a.size), float)).mean()
            for a, b in pics
        ]
        say(
            f"demo {kind}: {sum(map(len, new)) / len(ok) / 1e3:.2f} KB per row; {same} of "
            f"{len(ok)} identical to the old thumbnails, {short} old ones under {SIZES[kind]} px;"
            f" mean |difference| {np.mean(diff):.2f}, max {np.max(diff):.2f} (0-255)"
        )
    say(
        f"demo previews file: {os.path.getsize(tmp / 'p.arrow') / len(images) / 1e3:.2f} KB per row"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--shard-rows", type=int, default=2500)
    ap.add_argument("--distinct", type=int, default=250)
    ap.add_argument("--hash-rows", type=int, default=400)
    ap.add_argument("--demo", action="store_true", help="only the demo's figures")
    a = ap.parse_args()
    if a.demo:
        return demo_figures()
    t0 = time.perf_counter()
    images = wikiart_jpegs(a.rows, a.distinct, qualities=(90, 85, 80, 75))
    say(f"{a.rows} JPEGs, {sum(map(len, images)) / a.rows / 1e6:.2f} MB each", since=t0)
    tmp = Path(tempfile.mkdtemp(prefix="previews_bench."))
    shards, previews = [], []
    for i, s in enumerate(range(0, a.rows, a.shard_rows)):
        shards.append(str(tmp / f"{i:05d}.parquet"))
        write_bench_shard(Path(shards[-1]), images[s : s + a.shard_rows], row_group_size=256)
        tab = pq.read_table(shards[-1])
        ids = pa.array(np.arange(s, s + tab.num_rows), pa.int64())
        pq.write_table(tab.set_column(0, "row_id", ids), shards[-1], row_group_size=256)
    sample = tmp / "sample.parquet"
    write_bench_shard(sample, images[: a.hash_rows], row_group_size=256)
    for label, out in (("without previews", None), ("with previews", tmp / "p.arrow")):
        t1 = time.perf_counter()
        hash_shard(sample, tmp / "h.parquet", out, progress_bar=False)
        say(f"image_hash {label}: {(time.perf_counter() - t1) / a.hash_rows * 1e3:.1f} ms/img")
    for i, shard in enumerate(shards):
        previews.append(str(tmp / f"{i:05d}.arrow"))
        hash_shard(shard, tmp / "h.parquet", previews[-1], progress_bar=False)
    t = pa.concat_tables(pa.ipc.open_file(pa.memory_map(p)).read_all() for p in previews)
    per_row = {k: sum(map(len, t[k].drop_null().to_pylist())) / t.num_rows for k in SIZES}
    total = sum(os.path.getsize(p) for p in previews) / a.rows
    say(
        f"previews: large {per_row['large'] / 1e3:.2f} KB, small {per_row['small'] / 1e3:.2f} KB"
        f", file {total / 1e3:.2f} KB per row; WikiArt: {total * WIKIART_ROWS / 1e6:.0f} MB"
        f" (shards: {sum(os.path.getsize(p) for p in shards) / a.rows * WIKIART_ROWS / 1e9:.1f} GB)"
    )
    rng = np.random.default_rng(0)
    n = {
        k: max(1, round(a.rows * c / WIKIART_ROWS)) for k, c in (("large", LARGE), ("small", SMALL))
    }
    wanted = {k: sorted(rng.choice(a.rows, n[k], replace=False).tolist()) for k in n}
    asked, s_old = timed(lambda: before(shards, wanted))
    say(f"before: {n} rows, read {asked / 1e6:.1f} MB, {s_old:.2f} s")
    out = str(tmp / "thumbs.parquet")
    _, s_new = timed(lambda: make_thumbnails(previews, wanted, ["style"], out))
    say(f"after: read {after_asked(previews, wanted) / 1e6:.3f} MB, {s_new:.3f} s")


if __name__ == "__main__":
    main()
