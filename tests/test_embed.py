"""artprobe.embedding: embed_shard (contract, bad images, fast decode, compile, resume, corrupt
checkpoints). merge_embeddings: tests/test_merge.py."""

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
from embed_helpers import (
    TINY,
    assert_same_embeddings,
    embed,
    embed_two_shards,
    encode,
    small_jpegs,
    write_shard,
)
from PIL import Image
from synthetic import synthetic_jpeg, wikiart_like_sizes

from artprobe.common.io import embedding_matrix, read_meta
from artprobe.embedding import CHECKPOINT_DIR, Checkpoints, load_model

ROOT = Path(__file__).resolve().parents[1]


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
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    return embed_two_shards(tmp_path_factory.mktemp("embedded"))


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
    emb = embedding_matrix(t["embedding"])[:11]
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
    # nothing left behind: no checkpoints, no temporary files
    assert sorted(p.name for p in out.parent.iterdir()) == ["s0.parquet", "s1.parquet"]


def test_bad_images_become_error_rows_and_workers_agree(tmp_path):
    cases = odd_images()
    shard = write_shard(tmp_path / "odd.parquet", [b for b, _ in cases.values()])
    s0 = embed(shard, tmp_path / "w0.parquet", batch_size=5, workers=0, **TINY)
    s2 = embed(shard, tmp_path / "w2.parquet", batch_size=5, workers=2, **{**TINY, "threads": 3})
    t0, t2 = pq.read_table(tmp_path / "w0.parquet"), pq.read_table(tmp_path / "w2.parquet")
    assert_same_embeddings(t0, t2)  # worker processes change nothing
    errors = dict(zip(cases, t0["error"].to_pylist()))
    for name, (_, should_embed) in cases.items():
        assert (errors[name] is None) == should_embed, (name, errors[name])
    assert errors["empty"] == "empty" and errors["null"].startswith("missing")
    assert errors["truncated"].startswith("truncated") and "too many pixels" in errors["bomb"]
    assert s0["n_failed"] == s2["n_failed"] == sum(not ok for _, ok in cases.values())
    emb = embedding_matrix(t0["embedding"])
    assert np.isfinite(emb[[i for i, (_, ok) in enumerate(cases.values()) if ok]]).all()


def test_fast_decode_matches_exact_on_wikiart_sized_images(tmp_path):
    sizes = wikiart_like_sizes(6, seed=5, long_side=(1500, 2000))
    shard = write_shard(
        tmp_path / "big.parquet", [synthetic_jpeg(w, h, seed=i) for i, (w, h) in enumerate(sizes)]
    )
    emb = {}
    for mode in ("fast", "exact"):
        embed(
            shard,
            tmp_path / f"{mode}.parquet",
            timm_name="convnext_atto",
            pretrained=False,
            decode=mode,
            batch_size=6,
            progress=False,
            threads=1,
        )
        emb[mode] = embedding_matrix(pq.read_table(tmp_path / f"{mode}.parquet")["embedding"])
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


def test_local_weights_file_loads_through_timms_pretrained_path(tmp_path):
    """models[].weights: a file the user has (fine-tuned, or copied to an offline cluster)
    is what the job embeds with, and its hash is in the provenance."""
    import hashlib

    import safetensors.torch
    import timm
    import torch

    torch.manual_seed(123)  # weights unlike the seed-0 random ones
    trained = timm.create_model("test_vit", pretrained=False)
    path = tmp_path / "test_vit.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, path)
    model, fp = load_model("test_vit", True, weights=str(path), cache=False)
    for k, v in model.state_dict().items():
        assert v.equal(trained.state_dict()[k]), k
    assert fp != load_model("test_vit", False, cache=False)[1]

    shard = write_shard(tmp_path / "s.parquet", small_jpegs(3))
    kw = {**TINY, "pretrained": True, "weights": str(path)}
    embed(shard, tmp_path / "w.parquet", batch_size=4, **kw)
    embed(shard, tmp_path / "r.parquet", batch_size=4, **TINY)
    meta = read_meta(tmp_path / "w.parquet")
    assert meta["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["weights_file"] == str(path) and meta["weights_fingerprint"] == fp
    w, r = (embedding_matrix(pq.read_table(tmp_path / f"{n}.parquet")["embedding"]) for n in "wr")
    assert not np.allclose(w, r)
    with pytest.raises(ValueError, match="pretrained"):
        load_model("test_vit", False, weights=str(path), cache=False)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_model("test_vit", True, weights=str(tmp_path / "missing.safetensors"), cache=False)


@pytest.mark.parametrize(
    "name", ["eva02_tiny_patch14_224.mim_in22k", "test_vit_relpos", "convnextv2_atto.fcmae"]
)
def test_meta_device_build_equals_timms_plain_pretrained_build(tmp_path, name):
    """Built on the meta device and assign-loaded, the model is the one timm.create_model(...,
    pretrained=True) builds from the same file: every tensor, the RoPE tables and relative
    position indices no checkpoint holds among them, and its embeddings bit for bit."""
    import safetensors.torch
    import timm
    import torch

    from artprobe.embedding.weight_loading import create_pretrained

    torch.manual_seed(5)
    trained = timm.create_model(name, pretrained=False)
    path = tmp_path / "w.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, path)
    overlay = {"pretrained_cfg_overlay": {"file": str(path)}}
    timings: dict = {}
    fast = create_pretrained(name, overlay, timings).eval()
    plain = timm.create_model(name, pretrained=True, num_classes=0, **overlay).eval()
    a, b = dict(fast.named_buffers()), dict(plain.named_buffers())
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in b)
    assert all(p.equal(q) for p, q in zip(fast.parameters(), plain.parameters()))
    x = torch.randn(2, *timm.data.resolve_model_data_config(plain)["input_size"])
    with torch.inference_mode():
        assert fast(x).equal(plain(x))
    assert set(timings) == {"build_s", "load_s"}


def test_a_buffer_no_hook_can_compute_falls_back_to_the_plain_build(tmp_path, monkeypatch, caplog):
    """A module whose non-persistent buffer has no init_non_persistent_buffers hook: the meta
    build cannot fill it, so the model is built the plain way (and says so)."""
    import safetensors.torch
    import timm
    import torch
    from timm.layers import pos_embed_rel

    name = "test_vit_relpos"
    torch.manual_seed(5)
    trained = timm.create_model(name, pretrained=False)
    path = tmp_path / "w.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, path)
    overlay = {"pretrained_cfg_overlay": {"file": str(path)}}
    plain = timm.create_model(name, pretrained=True, num_classes=0, **overlay).eval()
    hooked = [
        c
        for c in vars(pos_embed_rel).values()
        if isinstance(c, type) and "init_non_persistent_buffers" in vars(c)
    ]
    for cls in hooked:
        monkeypatch.delattr(cls, "init_non_persistent_buffers")
    from artprobe.embedding.weight_loading import create_pretrained

    model = create_pretrained(name, overlay).eval()
    assert "meta device" in caplog.text
    x = torch.randn(1, *timm.data.resolve_model_data_config(plain)["input_size"])
    with torch.inference_mode():
        assert model(x).equal(plain(x))


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_shard_rows(tmp_path):
    """A job streams its shard by row groups: 2,048 rows of 150 KB images (300 MB of image
    column) peak at about the RSS of 256 rows (38 MB)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc (Linux) for a process's own peak RSS")
    import pyarrow as pa

    from artprobe.common.io import write_parquet

    rng = np.random.default_rng(0)
    blob = [rng.bytes(150_000) for _ in range(8)]
    peaks = {}
    for n in (256, 2048):
        shard = tmp_path / f"s{n}.parquet"
        table = pa.table(
            {
                "row_id": pa.array(np.arange(n), pa.int64()),
                "image": pa.array([blob[i % 8] for i in range(n)], pa.binary()),
            }
        )
        write_parquet(table, shard, row_group_size=256, compression="none")
        code = textwrap.dedent(
            f"""
            import re, sys
            sys.path.insert(0, {str(ROOT)!r})
            sys.path.insert(0, {str(ROOT / "tests")!r})
            from embed_helpers import embed
            embed({str(shard)!r}, {str(tmp_path / f"o{n}.parquet")!r}, progress=False)
            # this process's own peak (ru_maxrss would include the parent's RSS at fork)
            print("RSS", re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        peaks[n] = int(out.stdout.split("RSS")[-1]) * 1024
    column_growth = (2048 - 256) * 150_000
    assert peaks[2048] - peaks[256] < column_growth / 6, peaks


def test_reduced_precision_on_cpu(tmp_path):
    shard = write_shard(tmp_path / "s.parquet", small_jpegs(4))
    embed(shard, tmp_path / "bf16.parquet", batch_size=4, **{**TINY, "precision": "bf16"})
    meta = read_meta(tmp_path / "bf16.parquet")
    assert meta["dtype"] == "bfloat16" and meta["precision"] == "bf16"
    t = pq.read_table(tmp_path / "bf16.parquet")
    assert t.schema.field("embedding").type.value_type == pa.float32()


def test_bad_arguments_fail_clearly(tmp_path):
    shard = write_shard(tmp_path / "s.parquet", small_jpegs(2))
    with pytest.raises(ValueError, match="decode"):
        embed(shard, tmp_path / "o.parquet", decode="turbo", **TINY)
    with pytest.raises(ValueError, match="precision"):
        embed(shard, tmp_path / "o.parquet", **{**TINY, "precision": "fp8"})
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            embed(shard, tmp_path / "o.parquet", decode="nvjpeg", **TINY)
    assert not (tmp_path / "o.parquet").exists()


def test_empty_shard(tmp_path):
    shard = write_shard(tmp_path / "s.parquet", [])
    stats = embed(shard, tmp_path / "o.parquet", **TINY)
    t = pq.read_table(tmp_path / "o.parquet")
    assert (
        t.num_rows == 0
        and t.schema.field("embedding").type.list_size == 64 == stats["embedding_dim"]
    )


def test_nvjpeg_path_logic_on_cpu():
    """The decode="nvjpeg" path (torchvision decode + tensor resize), run on the CPU: same crops
    as PIL's; EXIF-rotated, CMYK, progressive and truncated files left to PIL; bad ones reported."""
    import torch
    from timm.data import resolve_model_data_config

    from artprobe.embedding import (
        ShardImages,
        build_preprocess,
        collate,
        decode_jpeg_batch,
    )

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
    out, errors = decode_jpeg_batch(batch, prep, torch.device("cpu"))
    assert errors == {} and [i for i, _ in out] == [0, 3, 4, 7]
    for i, t in out:
        assert t.shape == (3, 224, 224) and t.dtype == torch.uint8
        assert (
            t.float() - exact.decode_on_host(imgs[i]).float()
        ).abs().mean() < 0.5  # grey levels of 255


# --------------------------------------------------------------------------- resume


def test_resume_uses_matching_checkpoints_and_discards_the_rest(tmp_path, monkeypatch):
    shard = write_shard(tmp_path / "s.parquet", small_jpegs(10) + [b""])
    ref = tmp_path / "ref.parquet"
    embed(shard, ref, batch_size=4, checkpoint_every=1, **TINY)
    out = tmp_path / "out" / "s.parquet"
    monkeypatch.setattr(
        Checkpoints, "cleanup", lambda self: None
    )  # keep the checkpoint files around
    embed(shard, out, batch_size=4, checkpoint_every=1, **TINY)
    ckpt_dir = out.parent / CHECKPOINT_DIR / "s"
    files = sorted(p.name for p in ckpt_dir.glob("rows-*.arrow"))
    assert files == [
        "rows-000000000-000000004.arrow",
        "rows-000000004-000000008.arrow",
        "rows-000000008-000000011.arrow",
    ]
    # drop the last checkpoint file: the rerun recomputes only rows 8..10 and matches bit for bit
    (ckpt_dir / files[-1]).unlink()
    out.unlink()
    stats = embed(shard, out, batch_size=4, checkpoint_every=1, **TINY)
    assert stats["n_resumed"] == 8
    assert_same_embeddings(pq.read_table(out), pq.read_table(ref))
    # another batch size (or model, decode, precision...): the checkpoints are discarded
    stats = embed(shard, out, batch_size=3, checkpoint_every=1, **TINY)
    assert stats["n_resumed"] == 0
    state = json.loads((ckpt_dir / "key.json").read_text())
    assert state["batch_size"] == 3
    stats = embed(
        shard, out, batch_size=3, checkpoint_every=1, **{**TINY, "timm_name": "test_convnext"}
    )
    assert stats["n_resumed"] == 0


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_checkpoint_file_is_discarded_and_the_rows_re_embedded(
    tmp_path, monkeypatch, damage
):
    """A damaged checkpoint file (a crash mid-copy, a full disk) is neither trusted nor fatal:
    it and every later file are deleted, those rows re-embedded, the output bit-identical."""
    shard = write_shard(tmp_path / "s.parquet", small_jpegs(10) + [b""])
    ref = tmp_path / "ref.parquet"
    embed(shard, ref, batch_size=4, checkpoint_every=1, **TINY)
    out = tmp_path / "out" / "s.parquet"
    monkeypatch.setattr(Checkpoints, "cleanup", lambda self: None)  # keep the checkpoint files
    embed(shard, out, batch_size=4, checkpoint_every=1, **TINY)
    monkeypatch.undo()
    ckpt_dir = out.parent / CHECKPOINT_DIR / "s"
    files = sorted(ckpt_dir.glob("rows-*.arrow"))
    assert len(files) == 3
    data = files[1].read_bytes()
    files[1].write_bytes(
        {"truncated": data[: len(data) // 2], "garbage": b"\x00garbage" * 100, "empty": b""}[damage]
    )
    out.unlink()
    stats = embed(shard, out, batch_size=4, checkpoint_every=1, **TINY)
    assert stats["n_resumed"] == 4  # only the file before the damaged one was used
    assert_same_embeddings(pq.read_table(out), pq.read_table(ref))
    assert not ckpt_dir.exists()


@pytest.mark.slow  # ~1 min on one CPU core: inductor compiles the graph
def test_compile_pads_the_last_batch_and_matches_eager(tmp_path):
    """compile=True runs every batch at the full batch size (the short last one padded with
    zeros, its padding rows dropped): same rows, same errors, embeddings as without compile."""
    torch = pytest.importorskip("torch")
    try:
        torch.compile(lambda x: x + 1)(torch.zeros(1))
    except Exception as exc:  # noqa: BLE001 - no C compiler / inductor on this machine
        pytest.skip(f"torch.compile unusable here: {exc}")
    shard = write_shard(tmp_path / "s.parquet", small_jpegs(6) + [b"not an image"])
    plain = embed(shard, tmp_path / "plain.parquet", batch_size=4, **TINY)
    comp = embed(shard, tmp_path / "comp.parquet", batch_size=4, compile=True, **TINY)
    a, b = pq.read_table(tmp_path / "plain.parquet"), pq.read_table(tmp_path / "comp.parquet")
    assert a["row_id"].to_pylist() == b["row_id"].to_pylist() == list(range(7))
    assert a["error"].to_pylist() == b["error"].to_pylist()
    ea, eb = embedding_matrix(a["embedding"]), embedding_matrix(b["embedding"])
    assert np.isnan(eb[6]).all() and np.isfinite(eb[:6]).all()
    np.testing.assert_allclose(eb[:6], ea[:6], rtol=1e-4, atol=1e-5)
    assert read_meta(tmp_path / "comp.parquet")["compile"] is True
    assert comp["embedding_dim"] == plain["embedding_dim"] == 64


RUNNER = textwrap.dedent("""
    import json, logging, sys, time
    import artprobe.embedding as E
    from artprobe.stages.embed import embed_shard

    logging.basicConfig(level=logging.INFO)

    save = E.Checkpoints.save
    def slow_save(self, *args):  # slow the run down so the test can kill it between checkpoints
        save(self, *args)
        time.sleep(0.25)
    E.Checkpoints.save = slow_save
    model = E.ModelSpec(timm_name="test_vit", pretrained=False, weights=None, weights_marker=None,
                        features="pooled", decode="fast", precision="fp32")
    runtime = E.EmbedRuntime(device="auto", batch_size=8, workers=0, compile=False,
                             checkpoint_every=1, threads=1, progress=False)
    stats = embed_shard(sys.argv[1], sys.argv[2], model, runtime)
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
        assert proc.poll() is None, (
            f"run ended before it could be killed:\n{proc.stderr.read()[-3000:]}"
        )
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
    embed(shard, ref, batch_size=8, checkpoint_every=1, **TINY)

    script = tmp_path / "run.py"
    script.write_text(RUNNER)
    out = tmp_path / "emb" / "shard.parquet"
    ckpt_dir = out.parent / CHECKPOINT_DIR / "shard"

    def n_checkpoints() -> int:
        return len(list(ckpt_dir.glob("rows-*.arrow")))

    def only_hidden_files() -> bool:  # nothing that looks like a finished output
        return not out.exists() and all(p.name.startswith(".") for p in out.parent.iterdir())

    # killed during its first batch (key written, no checkpoint file yet)
    _kill_when(_start(script, shard, out), lambda: (ckpt_dir / "key.json").exists())
    assert only_hidden_files()
    # killed after its first checkpoint, then again after the third
    _kill_when(_start(script, shard, out), lambda: n_checkpoints() >= 1)
    assert only_hidden_files() and n_checkpoints() >= 1
    _kill_when(_start(script, shard, out), lambda: n_checkpoints() >= 3)
    assert only_hidden_files()
    done_before = n_checkpoints()
    assert done_before >= 3
    proc = _start(script, shard, out)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    stats = json.loads(stdout.strip().splitlines()[-1])
    assert stats["n_resumed"] == 8 * done_before
    assert "resuming" in stderr
    assert_same_embeddings(pq.read_table(out), pq.read_table(ref))
    assert not (out.parent / CHECKPOINT_DIR).exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["shard.parquet"]


# --------------------------------------------------------------------------- out of GPU memory


def _oom_forward(monkeypatch, *, above: int, at_calls, error=None, then=None):
    """Make the runner's forward raise out of memory on the calls numbered ``at_calls``
    (1-based, counting only batches larger than ``above``); ``then`` maps a call number to
    another exception (a crash). Returns the batch sizes the forward saw."""
    import torch

    from artprobe.embedding.runner import ModelRunner

    forward, seen = ModelRunner.forward, []

    def fake(self, x, plain=False):
        if not plain:
            seen.append(x.shape[0])
            call = len(seen)
            if (then or {}).get(call):
                raise then[call]
            if x.shape[0] > above and call in at_calls:
                raise error or torch.OutOfMemoryError(
                    "CUDA out of memory. Tried to allocate 20.00 GiB"
                )
        return forward(self, x, plain)

    monkeypatch.setattr(ModelRunner, "forward", fake)
    return seen


@pytest.mark.parametrize("error", ["OutOfMemoryError", "RuntimeError text"])
def test_out_of_gpu_memory_halves_the_batch_and_equals_an_uninterrupted_run(
    tmp_path, monkeypatch, caplog, error
):
    """OOM in the second batch of 8: the rows of the first batch are kept, the job goes on with
    batch 4 from row 8, and every embedding equals the uninterrupted run's, bit for bit
    (per-row outputs of test_vit in fp32 on CPU do not depend on the batch)."""
    shard = write_shard(tmp_path / "s.parquet", small_jpegs(17) + [b""])
    ref = tmp_path / "ref.parquet"
    embed(shard, ref, batch_size=8, checkpoint_every=1, **TINY)
    exc = (
        None
        if error == "OutOfMemoryError"
        else RuntimeError("CUDA error: out of memory\nCUDA kernel errors ...")
    )
    seen = _oom_forward(monkeypatch, above=4, at_calls={2}, error=exc)
    out = tmp_path / "out" / "s.parquet"
    with caplog.at_level("INFO", logger="artprobe"):
        stats = embed(shard, out, batch_size=8, checkpoint_every=1, **TINY)
    assert seen == [
        8,
        8,
        4,
        4,
        1,
    ]  # rows 0..7, 8..15 out of memory, then from row 8 in 4s (row 17: no image)
    assert_same_embeddings(pq.read_table(out), pq.read_table(ref))
    meta = read_meta(out)
    assert (meta["batch_size"], meta["batch_size_used"], meta["oom_retries"]) == (8, 4, 1)
    assert (stats["batch_size_used"], stats["oom_retries"]) == (4, 1)
    assert (
        "out of GPU memory at batch 8" in caplog.text
        and "going on with batch 4 from row 8 of 18" in caplog.text
    )
    assert "batch 8 -> 4 after 1 CUDA out-of-memory retries" in caplog.text
    assert not (out.parent / CHECKPOINT_DIR).exists()


def test_out_of_gpu_memory_at_batch_one_fails_in_a_sentence_and_keeps_the_rows(
    tmp_path, monkeypatch
):
    shard = write_shard(tmp_path / "s.parquet", small_jpegs(12))
    _oom_forward(monkeypatch, above=0, at_calls=set(range(2, 100)))  # every batch after the first
    out = tmp_path / "out" / "s.parquet"
    from artprobe.common.oom import GPUOutOfMemoryError

    what = r"test_vit \(float32, s.parquet\) does not fit in GPU memory even at batch 1"
    with pytest.raises(GPUOutOfMemoryError, match=what):
        embed(shard, out, batch_size=4, checkpoint_every=1, **TINY)
    assert not out.exists()
    files = sorted(p.name for p in (out.parent / CHECKPOINT_DIR / "s").glob("rows-*.arrow"))
    assert files == ["rows-000000000-000000004.arrow"]  # the finished batch is kept for the rerun


def test_a_rerun_after_out_of_memory_resumes_with_the_smaller_batch(tmp_path, monkeypatch, caplog):
    """Crashed after an OOM retry: the rerun starts from the checkpoints with the smaller batch
    (it does not run out of memory again first) and still equals the uninterrupted run."""
    shard = write_shard(tmp_path / "s.parquet", small_jpegs(20))
    ref = tmp_path / "ref.parquet"
    embed(shard, ref, batch_size=8, checkpoint_every=1, **TINY)
    out = tmp_path / "out" / "s.parquet"
    _oom_forward(monkeypatch, above=4, at_calls={2}, then={4: RuntimeError("node lost")})
    with pytest.raises(RuntimeError, match="node lost"):
        embed(shard, out, batch_size=8, checkpoint_every=1, **TINY)  # rows 0..7 kept, then a crash
    monkeypatch.undo()
    seen = _oom_forward(
        monkeypatch, above=4, at_calls=set(range(1, 100))
    )  # batch 8 would fail again
    with caplog.at_level("INFO", logger="artprobe"):
        stats = embed(shard, out, batch_size=8, checkpoint_every=1, **TINY)
    assert seen == [4, 4, 4] and stats["n_resumed"] == 8
    assert "batch 4, 0 workers" in caplog.text
    assert_same_embeddings(pq.read_table(out), pq.read_table(ref))
    meta = read_meta(out)
    assert (meta["batch_size"], meta["batch_size_used"], meta["oom_retries"]) == (8, 4, 1)
