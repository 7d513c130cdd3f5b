"""artprobe.embed: embed_shard (contract, bad images, fast decode, resume) and merge_embeddings."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from artprobe.embed import (
    PARTIAL_DIR,
    Checkpoints,
    MergeError,
    _embedding_values,
    embed_shard,
    embedding_table,
    load_model,
    merge_embeddings,
)
from artprobe.images import synthetic_jpeg, wikiart_like_sizes
from artprobe.io import read_meta, with_meta, write_parquet

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(timm_name="test_vit", pretrained=False, precision="fp32", progress=False, threads=1)


# --------------------------------------------------------------------------- helpers


def write_shard(path: Path, images: list, *, start: int = 0, targets=("style", "genre")) -> Path:
    n = len(images)
    cols = {
        "row_id": pa.array(np.arange(start, start + n), pa.int64()),
        "image": pa.array(images, pa.binary()),
    }
    for k, t in enumerate(targets):
        cols[t] = pa.array((np.arange(n) + k) % 3, pa.int16())
    meta = {"classes": {t: [f"{t}-{i}" for i in range(3)] for t in targets}, "shard": path.stem}
    write_parquet(with_meta(pa.table(cols), meta), path)
    return path


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def small_jpegs(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [
        synthetic_jpeg(int(rng.integers(120, 260)), int(rng.integers(120, 260)), seed=seed * 1000 + i)
        for i in range(n)
    ]


def odd_images() -> dict[str, tuple[bytes | None, bool]]:
    """name -> (bytes, should embed). Every kind of image the embedder must survive."""
    rgb = synthetic_jpeg(200, 150, seed=7)
    base = Image.open(io.BytesIO(rgb)).convert("RGB")
    good = encode(base, "JPEG")
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(base.size))
    pal = base.convert("P", palette=Image.ADAPTIVE, colors=16)
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [Image.new("RGB", (64, 48), c) for c in [(200, 30, 30), (30, 30, 200)]]
    ramp16 = np.linspace(0, 65535, 150 * 200).reshape(150, 200).astype(np.uint16)
    bomb = bytearray(encode(Image.new("RGB", (8, 8)), "PNG"))
    return {
        "ok": (good, True),
        "empty": (b"", False),
        "null": (None, False),
        "text": (b"this is not an image at all", False),
        "truncated": (good[: len(good) // 3], False),
        "bomb": (_png_header(60_000, 60_000), False),
        "cmyk": (encode(base.convert("CMYK"), "JPEG"), True),
        "gray16": (encode(Image.fromarray(ramp16), "PNG"), True),
        "palette_transparent": (encode(pal, "PNG", transparency=0), True),
        "rgba": (encode(rgba, "PNG"), True),
        "la": (encode(rgba.convert("LA"), "PNG"), True),
        "gray": (encode(base.convert("L"), "JPEG"), True),
        "exif_rotated": (encode(base, "JPEG", exif=exif.tobytes()), True),
        "animated_gif": (encode(frames[0], "GIF", save_all=True, append_images=frames[1:]), True),
        "animated_png": (encode(frames[0], "PNG", save_all=True, append_images=frames[1:]), True),
        "one_pixel": (encode(Image.new("RGB", (1, 1), (90, 20, 20)), "PNG"), True),
        "wide_4000x3": (encode(Image.new("RGB", (4000, 3), (20, 90, 20)), "PNG"), True),
        "tall_3x4000": (encode(Image.new("RGB", (3, 4000), (20, 20, 90)), "JPEG"), True),
        "bmp": (encode(base, "BMP"), True),
        "bomb_bytes": (bytes(bomb[:16]), False),
    }


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def assert_same_embeddings(a: pa.Table, b: pa.Table) -> None:
    """Row by row, bit for bit."""
    assert a["row_id"].to_pylist() == b["row_id"].to_pylist()
    assert a["error"].to_pylist() == b["error"].to_pylist()
    ea, eb = _embedding_values(a["embedding"]), _embedding_values(b["embedding"])
    assert np.array_equal(ea.view(np.uint32), eb.view(np.uint32))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """Two shards (one with bad images) embedded with test_vit."""
    d = tmp_path_factory.mktemp("embedded")
    imgs0 = small_jpegs(11, seed=1) + [b"not an image"]
    imgs1 = small_jpegs(8, seed=2)
    imgs1[3] = imgs1[3][:200]  # truncated
    shards = [
        write_shard(d / "shards" / "s0.parquet", imgs0, start=0),
        write_shard(d / "shards" / "s1.parquet", imgs1, start=12),
    ]
    outs, stats = [], []
    for s in shards:
        out = d / "embeddings" / "vit" / s.name
        stats.append(embed_shard(s, out, batch_size=4, checkpoint_every=1, **TINY))
        outs.append(out)
    split = d / "split.parquet"
    ids = np.arange(20)
    write_parquet(
        pa.table(
            {
                "row_id": pa.array(ids, pa.int64()),
                "split": pa.array(np.array(["train", "val", "test", "train"])[ids % 4]),
            }
        ),
        split,
    )
    return {"dir": d, "shards": shards, "outs": outs, "stats": stats, "split": split}


# --------------------------------------------------------------------------- embed_shard


def test_output_contract(embedded):
    out, shard = embedded["outs"][0], embedded["shards"][0]
    t = pq.read_table(out)
    assert t.schema.field("row_id").type == pa.int64()
    assert t.schema.field("embedding").type == pa.list_(pa.float32(), 64)
    assert t.schema.field("error").type == pa.string()
    assert t["row_id"].to_pylist() == pq.read_table(shard, columns=["row_id"])["row_id"].to_pylist()
    errors = t["error"].to_pylist()
    valid = t["embedding"].is_valid().to_pylist()
    assert errors[:11] == [None] * 11 and valid[:11] == [True] * 11
    assert errors[11].startswith("not an image") and valid[11] is False
    emb = _embedding_values(t["embedding"])[:11]
    assert np.isfinite(emb).all() and np.linalg.norm(emb, axis=1).min() > 0
    meta = read_meta(out)
    for key in (
        "timm_name",
        "timm_version",
        "pretrained",
        "weights_fingerprint",
        "data_config",
        "decode",
        "precision",
        "dtype",
        "torch_version",
        "device",
        "device_name",
        "rows",
        "failures",
        "seconds",
        "img_per_s",
        "embedding_dim",
    ):
        assert key in meta, key
    assert meta["timm_name"] == "test_vit" and meta["pretrained"] is False
    assert meta["data_config"]["input_size"] == [3, 160, 160]
    assert meta["decode"] == "fast" and meta["dtype"] == "float32" and meta["device"] == "cpu"
    assert meta["rows"] == 12 and meta["failures"] == 1
    stats = embedded["stats"][0]
    assert stats["n_rows"] == 12 and stats["n_failed"] == 1 and stats["img_per_s"] > 0
    # nothing left behind: no partial state, no temporary files
    assert sorted(p.name for p in out.parent.iterdir()) == ["s0.parquet", "s1.parquet"]


def test_bad_images_become_error_rows_and_workers_agree(tmp_path):
    cases = odd_images()
    shard = write_shard(tmp_path / "odd.parquet", [b for b, _ in cases.values()])
    s0 = embed_shard(shard, tmp_path / "w0.parquet", batch_size=5, workers=0, **TINY)
    s2 = embed_shard(shard, tmp_path / "w2.parquet", batch_size=5, workers=2, **{**TINY, "threads": 3})
    t0, t2 = pq.read_table(tmp_path / "w0.parquet"), pq.read_table(tmp_path / "w2.parquet")
    assert_same_embeddings(t0, t2)  # worker processes change nothing
    errors = dict(zip(cases, t0["error"].to_pylist()))
    for name, (_, should_embed) in cases.items():
        assert (errors[name] is None) == should_embed, (name, errors[name])
    assert errors["empty"] == "empty" and errors["null"].startswith("missing")
    assert errors["truncated"].startswith("truncated") and "too many pixels" in errors["bomb"]
    assert s0["n_failed"] == s2["n_failed"] == sum(not ok for _, ok in cases.values())
    emb = _embedding_values(t0["embedding"])
    assert np.isfinite(emb[[i for i, (_, ok) in enumerate(cases.values()) if ok]]).all()


def test_fast_decode_matches_exact_on_wikiart_sized_images(tmp_path):
    sizes = wikiart_like_sizes(6, seed=5, long_side=(1500, 2000))
    shard = write_shard(
        tmp_path / "big.parquet", [synthetic_jpeg(w, h, seed=i) for i, (w, h) in enumerate(sizes)]
    )
    emb = {}
    for mode in ("fast", "exact"):
        embed_shard(
            shard,
            tmp_path / f"{mode}.parquet",
            timm_name="convnext_atto",
            pretrained=False,
            decode=mode,
            batch_size=6,
            progress=False,
            threads=1,
        )
        emb[mode] = _embedding_values(pq.read_table(tmp_path / f"{mode}.parquet")["embedding"])
        assert read_meta(tmp_path / f"{mode}.parquet")["decode"] == mode
    fast, exact = emb["fast"], emb["exact"]
    assert cosine(fast, exact).min() >= 0.99
    # not trivially so: centred on the mean image, fast still matches exact far better than
    # any two different images match each other
    mu = exact.mean(0)
    same = cosine(fast - mu, exact - mu).min()
    other = cosine(exact - mu, np.roll(exact - mu, 1, axis=0)).max()
    assert same >= 0.99 and other < 0.9


def test_random_weights_are_identical_in_every_job():
    m1, f1 = load_model("test_convnext", False, cache=False)
    m2, f2 = load_model("test_convnext", False, cache=False)
    assert f1 == f2
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert a.equal(b), k


def test_reduced_precision_on_cpu(tmp_path):
    shard = write_shard(tmp_path / "s.parquet", small_jpegs(4))
    embed_shard(shard, tmp_path / "bf16.parquet", batch_size=4, **{**TINY, "precision": "bf16"})
    meta = read_meta(tmp_path / "bf16.parquet")
    assert meta["dtype"] == "bfloat16" and meta["precision"] == "bf16"
    t = pq.read_table(tmp_path / "bf16.parquet")
    assert t.schema.field("embedding").type.value_type == pa.float32()


def test_bad_arguments_fail_clearly(tmp_path):
    shard = write_shard(tmp_path / "s.parquet", small_jpegs(2))
    with pytest.raises(ValueError, match="decode"):
        embed_shard(shard, tmp_path / "o.parquet", decode="turbo", **TINY)
    with pytest.raises(ValueError, match="precision"):
        embed_shard(shard, tmp_path / "o.parquet", **{**TINY, "precision": "fp8"})
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            embed_shard(shard, tmp_path / "o.parquet", decode="nvjpeg", **TINY)
    assert not (tmp_path / "o.parquet").exists()


def test_empty_shard(tmp_path):
    shard = write_shard(tmp_path / "s.parquet", [])
    stats = embed_shard(shard, tmp_path / "o.parquet", **TINY)
    t = pq.read_table(tmp_path / "o.parquet")
    assert t.num_rows == 0 and t.schema.field("embedding").type.list_size == 64 == stats["embedding_dim"]


def test_nvjpeg_path_logic_on_cpu():
    """The decode="nvjpeg" path (torchvision decode + tensor resize), run on the CPU: same crops
    as PIL's; EXIF-rotated, CMYK, progressive and truncated files left to PIL; bad ones reported."""
    import torch
    from timm.data import resolve_model_data_config

    from artprobe.embed import ShardImages, _gpu_jpeg_batch, _Runner, build_preprocess, collate

    model, _ = load_model("convnext_atto", False)
    cfg = resolve_model_data_config(model)
    prep, exact = build_preprocess(cfg, "nvjpeg"), build_preprocess(cfg, "exact")
    base = Image.open(io.BytesIO(synthetic_jpeg(900, 600, seed=1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    imgs = [
        synthetic_jpeg(1500, 1100, seed=2),
        encode(base, "JPEG", exif=exif.tobytes()),
        encode(base.convert("CMYK"), "JPEG"),
        encode(base.convert("L"), "JPEG"),
        encode(Image.new("RGB", (4000, 3), (10, 200, 10)), "JPEG"),
        b"\xff\xd8\xff garbage",
        synthetic_jpeg(700, 1200, seed=3)[:5000],
        synthetic_jpeg(700, 1200, seed=3) + b"\0\0",
        encode(base, "JPEG", progressive=True),
    ]
    ds = ShardImages(pa.chunked_array([pa.array(imgs, pa.binary())]), prep, gpu_jpeg=True)
    batch = collate([ds[i] for i in range(len(imgs))])
    assert batch["jpeg_index"] == [0, 3, 4, 7] and batch["pixel_index"] == [
        1,
        2,
        8,
    ]  # EXIF, CMYK, progressive
    assert sorted(batch["errors"]) == [5, 6] and batch["errors"][6].startswith("truncated")
    runner = _Runner(None, None, prep, torch.device("cpu"), torch.float32, 8, pad=False, channels_last=False)
    out, errors = _gpu_jpeg_batch(batch, ds, runner)
    assert errors == {} and [i for i, _ in out] == [0, 3, 4, 7]
    for i, t in out:
        assert t.shape == (3, 224, 224) and t.dtype == torch.uint8
        assert (t.float() - exact.cpu(imgs[i]).float()).abs().mean() < 0.5  # grey levels of 255


# --------------------------------------------------------------------------- resume


def test_resume_uses_matching_partial_state_and_discards_the_rest(tmp_path, monkeypatch):
    shard = write_shard(tmp_path / "s.parquet", small_jpegs(10) + [b""])
    ref = tmp_path / "ref.parquet"
    embed_shard(shard, ref, batch_size=4, checkpoint_every=1, **TINY)
    out = tmp_path / "out" / "s.parquet"
    monkeypatch.setattr(Checkpoints, "cleanup", lambda self: None)  # keep the chunks around
    embed_shard(shard, out, batch_size=4, checkpoint_every=1, **TINY)
    partial = out.parent / PARTIAL_DIR / "s"
    chunks = sorted(p.name for p in partial.glob("rows-*.arrow"))
    assert chunks == [
        "rows-000000000-000000004.arrow",
        "rows-000000004-000000008.arrow",
        "rows-000000008-000000011.arrow",
    ]
    # drop the last chunk: the rerun recomputes only rows 8..10 and matches bit for bit
    (partial / chunks[-1]).unlink()
    out.unlink()
    stats = embed_shard(shard, out, batch_size=4, checkpoint_every=1, **TINY)
    assert stats["n_resumed"] == 8
    assert_same_embeddings(pq.read_table(out), pq.read_table(ref))
    # another batch size (or model, decode, precision...): the partial state is discarded
    stats = embed_shard(shard, out, batch_size=3, checkpoint_every=1, **TINY)
    assert stats["n_resumed"] == 0
    state = json.loads((partial / "state.json").read_text())
    assert state["batch_size"] == 3
    stats = embed_shard(
        shard, out, batch_size=3, checkpoint_every=1, **{**TINY, "timm_name": "test_convnext"}
    )
    assert stats["n_resumed"] == 0


RUNNER = textwrap.dedent("""
    import json, logging, sys, time
    import artprobe.embed as E

    logging.basicConfig(level=logging.INFO)

    save = E.Checkpoints.save
    def slow_save(self, *args):  # slow the run down so the test can kill it between chunks
        save(self, *args)
        time.sleep(0.25)
    E.Checkpoints.save = slow_save
    stats = E.embed_shard(sys.argv[1], sys.argv[2], timm_name="test_vit", pretrained=False,
                          precision="fp32", batch_size=8, checkpoint_every=1, progress=False, threads=1)
    print(json.dumps(stats))
    """)


def _start(script: Path, shard: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, str(script), str(shard), str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, f"run ended before it could be killed:\n{proc.stderr.read()[-3000:]}"
        assert time.monotonic() - t0 < timeout, "timed out waiting for a checkpoint"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_and_resume_is_bit_identical(tmp_path):
    imgs = small_jpegs(70, seed=3)
    imgs[5], imgs[33], imgs[61] = b"", imgs[33][:300], b"GIF89a broken"
    shard = write_shard(tmp_path / "shard.parquet", imgs)
    ref = tmp_path / "ref" / "shard.parquet"
    embed_shard(shard, ref, batch_size=8, checkpoint_every=1, **TINY)

    script = tmp_path / "run.py"
    script.write_text(RUNNER)
    out = tmp_path / "emb" / "shard.parquet"
    partial = out.parent / PARTIAL_DIR / "shard"

    def n_chunks() -> int:
        return len(list(partial.glob("rows-*.arrow")))

    def only_hidden_files() -> bool:  # nothing that looks like a finished output
        return not out.exists() and all(p.name.startswith(".") for p in out.parent.iterdir())

    # killed during its first batch (state written, no chunk yet)
    _kill_when(_start(script, shard, out), lambda: (partial / "state.json").exists())
    assert only_hidden_files()
    # killed after its first checkpoint, then again after the third
    _kill_when(_start(script, shard, out), lambda: n_chunks() >= 1)
    assert only_hidden_files() and n_chunks() >= 1
    _kill_when(_start(script, shard, out), lambda: n_chunks() >= 3)
    assert only_hidden_files()
    done_before = n_chunks()
    assert done_before >= 3
    proc = _start(script, shard, out)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    stats = json.loads(stdout.strip().splitlines()[-1])
    assert stats["n_resumed"] == 8 * done_before
    assert "resuming" in stderr
    assert_same_embeddings(pq.read_table(out), pq.read_table(ref))
    assert not (out.parent / PARTIAL_DIR).exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["shard.parquet"]


# --------------------------------------------------------------------------- merge


def test_merge_joins_targets_and_split(embedded, tmp_path):
    out, fail = tmp_path / "vit.parquet", tmp_path / "vit.failures.parquet"
    merge_embeddings(
        embedded["outs"], embedded["shards"], embedded["split"], out, fail, targets=["style", "genre"]
    )
    t = pq.read_table(out)
    assert t.column_names == ["row_id", "split", "style", "genre", "embedding"]
    ids = t["row_id"].to_pylist()
    assert ids == sorted(set(range(20)) - {11, 15})
    assert t["split"].to_pylist() == [["train", "val", "test", "train"][i % 4] for i in ids]
    assert t["style"].type == pa.int16() and t["style"].to_pylist() == [
        (i - (0 if i < 12 else 12)) % 3 for i in ids
    ]
    assert t["embedding"].null_count == 0
    # the merged embedding of a row equals the shard's
    e0 = _embedding_values(pq.read_table(embedded["outs"][0])["embedding"])
    assert np.array_equal(_embedding_values(t["embedding"])[:11], e0[:11])
    f = pq.read_table(fail)
    assert f.column_names == ["row_id", "reason"] and f["row_id"].to_pylist() == [11, 15]
    assert f["reason"][0].as_py().startswith("not an image") and f["reason"][1].as_py().startswith(
        "truncated"
    )
    meta = read_meta(out)
    assert meta["timm_name"] == "test_vit" and meta["classes"]["style"] == ["style-0", "style-1", "style-2"]
    assert [s["shard"] for s in meta["shards"]] == ["s0.parquet", "s1.parquet"]
    assert all(s["img_per_s"] > 0 for s in meta["shards"])


def _fake_embeddings(path: Path, row_ids, dim: int = 8, **meta) -> Path:
    n = len(row_ids)
    emb = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    prov = {
        "timm_name": "m",
        "timm_version": "1",
        "pretrained": False,
        "weights_fingerprint": "abc",
        "data_config": {},
        "decode": "fast",
        "dtype": "float32",
        "embedding_dim": dim,
        **meta,
    }
    write_parquet(with_meta(embedding_table(row_ids, emb, np.ones(n, bool), [None] * n), prov), path)
    return path


@pytest.fixture
def merge_case(tmp_path):
    shards = [write_shard(tmp_path / f"s{i}.parquet", [b"x"] * 5, start=5 * i) for i in range(2)]
    split = tmp_path / "split.parquet"
    write_parquet(pa.table({"row_id": pa.array(np.arange(10), pa.int64()), "split": ["train"] * 10}), split)
    return tmp_path, shards, split


@pytest.mark.parametrize(
    "second, message",
    [
        (dict(row_ids=[5, 6, 7, 8]), r"1 row_id\(s\) of shard s1.parquet missing: 9"),
        (dict(row_ids=[5, 6, 7, 8, 9, 9]), r"embedded more than once: 9"),
        (dict(row_ids=[5, 6, 7, 8, 9, 42]), r"not in shard s1.parquet: 42"),
        (dict(row_ids=[5, 6, 7, 8, 9], dim=16), r"embedding_dim: 8 vs 16"),
        (dict(row_ids=[5, 6, 7, 8, 9], timm_name="other"), r"timm_name: 'm' vs 'other'"),
        (dict(row_ids=[5, 6, 7, 8, 9], weights_fingerprint="zzz"), r"weights_fingerprint"),
        (dict(row_ids=[5, 6, 7, 8, 9], decode="exact"), r"decode: 'fast' vs 'exact'"),
    ],
    ids=["missing", "doubled", "unknown", "dimension", "model", "weights", "decode"],
)
def test_merge_refuses_inconsistent_shards_and_writes_nothing(merge_case, second, message):
    d, shards, split = merge_case
    embs = [_fake_embeddings(d / "e0.parquet", list(range(5))), _fake_embeddings(d / "e1.parquet", **second)]
    out, fail = d / "m.parquet", d / "m.failures.parquet"
    with pytest.raises(MergeError, match=message) as exc:
        merge_embeddings(embs, shards, split, out, fail, targets=["style"])
    assert "e1.parquet" in str(exc.value)
    assert not out.exists() and not fail.exists()


def test_merge_refuses_rows_without_split_and_unknown_targets(merge_case):
    d, shards, split = merge_case
    embs = [
        _fake_embeddings(d / "e0.parquet", list(range(5))),
        _fake_embeddings(d / "e1.parquet", list(range(5, 10))),
    ]
    write_parquet(pa.table({"row_id": pa.array(np.arange(9), pa.int64()), "split": ["train"] * 9}), split)
    with pytest.raises(MergeError, match=r"no split .*: 9"):
        merge_embeddings(embs, shards, split, d / "m.parquet", d / "f.parquet", targets=["style"])
    with pytest.raises(MergeError, match="no target column"):
        merge_embeddings(embs, shards, split, d / "m.parquet", d / "f.parquet", targets=["nope"])
    with pytest.raises(MergeError, match="2 embedding files for 1 shards"):
        merge_embeddings(embs, shards[:1], split, d / "m.parquet", d / "f.parquet", targets=["style"])
    assert not (d / "m.parquet").exists() and not (d / "f.parquet").exists()
