"""What the bench scripts share: the checkout on ``sys.path``, ``say``, the workflow copied
into a scratch folder, WikiArt-sized JPEGs,
a shard as the workflow writes it, and the thesis's per-image embedding loop.

Import it first (``import common``: a bench script's own folder is on ``sys.path``); it puts
this checkout's ``artprobe`` and ``tests/`` (the synthetic images, the fake hub) on the path.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "tests", ROOT):  # the checkout first
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from synthetic import synthetic_painting, wikiart_like_sizes  # noqa: E402


def say(*args, since: float | None = None) -> None:
    """Print at once (the figures of a long run appear as they come); ``since``: a
    ``time.perf_counter()`` start, printed as ``[  12.3s]`` before the message."""
    if since is not None:
        args = (f"[{time.perf_counter() - since:6.1f}s]", *args)
    print(*args, flush=True)


#: what a workflow run needs from the checkout (results/ and .snakemake/ stay behind)
WORKFLOW_FILES = (
    "Snakefile",
    "config.yaml",
    "rules",
    "scripts",
    "schemas",
    "report",
    "envs",
    "profiles",
    "artprobe",
)


def copy_workflow(work: Path) -> None:
    """Copy the workflow (and the package its scripts import) into ``work``."""
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(
                src, work / name, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True
            )
        else:
            shutil.copy2(src, work / name)


def _encode(job: tuple) -> list[bytes]:
    """One picture (seed, width, height) encoded at each of ``qualities``."""
    seed, w, h, qualities = job
    picture = synthetic_painting(w, h, seed)
    out = []
    for quality in qualities:
        buf = io.BytesIO()
        picture.save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


def wikiart_jpegs(
    n: int,
    distinct: int | None = None,
    *,
    seed: int = 0,
    long_side: tuple[int, int] = (900, 2000),
    qualities: tuple[int, ...] = (90,),
    procs: int = 1,
) -> list[bytes]:
    """``n`` JPEGs of WikiArt's sizes (``wikiart_like_sizes``): ``distinct`` pictures (default
    all ``n``) repeated in turn; repeat k of a picture is encoded at ``qualities[k % len]``, so
    with several qualities the bytes differ. ``procs`` > 1 paints in a process pool."""
    distinct = max(1, min(n, distinct or n))
    sizes = wikiart_like_sizes(distinct, seed, long_side=long_side)
    jobs = [(seed + i, w, h, qualities) for i, (w, h) in enumerate(sizes)]
    if procs > 1:
        methods = multiprocessing.get_all_start_methods()
        with multiprocessing.get_context("fork" if "fork" in methods else None).Pool(procs) as pool:
            encoded = pool.map(_encode, jobs, chunksize=1)
    else:
        encoded = [_encode(j) for j in jobs]
    return [encoded[i % distinct][(i // distinct) % len(qualities)] for i in range(n)]


def write_bench_shard(path: Path, images: list[bytes], row_group_size: int | None = None) -> Path:
    """A shard as the workflow writes it (row_id, original bytes, one target) for the benches."""
    n = len(images)
    table = pa.table(
        {
            "row_id": pa.array(np.arange(n), pa.int64()),
            "image": pa.array(images, pa.binary()),
            "style": pa.array(np.zeros(n), pa.int16()),
        }
    )
    meta = {"classes": {"style": ["unknown"]}}
    table = table.replace_schema_metadata({b"artprobe": json.dumps(meta).encode()})
    pq.write_table(table, path, compression="none", row_group_size=row_group_size)
    return path


def thesis_loop(model, images: list[bytes], device: str) -> dict:
    """The thesis's loop, as it was: per image, PIL decode at full size, the timm eval
    transform, ``model(x.unsqueeze(0))`` with autograd on (no no_grad), ``.tolist()``.
    The first image runs once outside the timing (warm-up)."""
    import timm
    import torch
    from PIL import Image

    model.eval()
    cfg = timm.data.resolve_model_data_config(model)
    transform = timm.data.create_transform(**cfg)

    def embed(data: bytes) -> list:
        x = transform(Image.open(io.BytesIO(data)).convert("RGB"))
        return model(x.unsqueeze(0).to(device)).tolist()

    embed(images[0])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    features = [embed(data) for data in images]
    s = time.perf_counter() - t
    return {"img_per_s": len(features) / s, "images": len(features), "seconds": s}
