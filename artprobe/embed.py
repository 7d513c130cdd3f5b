"""Embed image shards with a timm model, resumably; merge the shards into one table.

``embed_shard`` turns ``shards/<shard>.parquet`` (``row_id``, ``image`` bytes, targets) into
``embeddings/<model>/<shard>.parquet`` (``row_id``, ``embedding``, ``error``):

* **Speed.** Decoding and the PIL part of the model's own eval transform
  (``timm.data.create_transform(**resolve_model_data_config(model), is_training=False)``)
  run in DataLoader worker processes, which hand over ``uint8`` crops; ``ToTensor`` and
  ``Normalize`` are applied to the whole batch on the device (the same float ops, so
  bit-identical on CPU). The forward pass is batched under ``torch.inference_mode()``;
  channels_last; on CUDA with bf16 autocast (``precision="auto"``), pinned memory,
  non-blocking copies, and the results of batch k read back while batch k+1 runs.
* **Fast decode** (``decode="fast"``, the default): JPEGs are decoded at 1/2, 1/4 or 1/8
  DCT scale (``PIL.Image.draft``) while their short side stays >= 2x the model's resize
  target; ``"exact"`` decodes at full resolution; ``"nvjpeg"`` decodes JPEGs on the GPU
  (``torchvision.io.decode_jpeg``) and resizes them there, falling back to PIL for other
  formats and for files nvjpeg refuses.
* **Bad images** never stop the job: :mod:`artprobe.images` turns them into a short reason,
  stored in ``error`` with a null ``embedding``.
* **Resumable.** Every ``checkpoint_every`` batches the rows done so far are saved as a chunk
  file in ``<out dir>/.partial/<out stem>/`` (Arrow IPC, written atomically, beside a
  ``state.json`` holding everything that could change a result: model, weights
  fingerprint, data config, decode, dtype, device type, library versions, batch size, shard
  identity). A rerun with the same state resumes after the last chunk with the same batch
  boundaries, so its output is bit-identical to an uninterrupted run on CPU; a state that
  doesn't match is discarded. The folder is removed once the output is written (atomically).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pyarrow.parquet as pq

from artprobe.images import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    decode_rgb,
    is_jpeg,
    open_image,
    precrop_box,
    precrop_for_center_crop,
)
from artprobe.io import atomic_path, read_json, read_meta, with_meta, write_json, write_parquet

log = logging.getLogger("artprobe.embed")

DECODE_MODES = ("fast", "exact", "nvjpeg")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Provenance keys that must agree between the shards of one model (merge_embeddings).
IDENTITY_KEYS = (
    "timm_name",
    "timm_version",
    "pretrained",
    "weights_fingerprint",
    "data_config",
    "decode",
    "dtype",
    "embedding_dim",
)
PARTIAL_DIR = ".partial"
#: decode="fast" decodes JPEGs at a reduced DCT scale while the short side stays >= this
#: many times the model's resize target (then the model's own resize runs as usual).
DRAFT_MARGIN = 1.0
_STATE_VERSION = 1
_CHUNK_RE = re.compile(r"^rows-(\d+)-(\d+)\.arrow$")


# --------------------------------------------------------------------------- model


def resolve_device(device: str = "auto"):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} requested but CUDA is not available")
    return dev


def resolve_dtype(precision: str, device):
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def weights_fingerprint(model) -> str:
    """A short hash of the model's weights (shapes + head and tail of every tensor)."""
    h = hashlib.sha1()
    for name, t in model.state_dict().items():
        flat = t.detach().reshape(-1)
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        if flat.numel() > 8192:
            flat = flat[:4096].cpu(), flat[-4096:].cpu()
        else:
            flat = (flat.cpu(),)
        for part in flat:
            h.update(part.contiguous().view(-1).float().numpy().tobytes())
    return h.hexdigest()[:16]


_MODEL_CACHE: dict[tuple[str, bool], tuple[Any, str]] = {}


def load_model(timm_name: str, pretrained: bool, *, cache: bool = True):
    """``(model, fingerprint)``: the timm model in eval mode, classifier removed (pooled
    pre-logits features), created right after ``torch.manual_seed(0)`` so that random-weight
    models are identical in every job. The last model is cached for in-process reuse."""
    import timm
    import torch

    key = (timm_name, bool(pretrained))
    if cache and key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = timm.create_model(timm_name, pretrained=pretrained, num_classes=0)
    model.eval()
    fp = weights_fingerprint(model)
    if cache:
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = (model, fp)
    return model, fp


# --------------------------------------------------------------------------- preprocessing


@dataclass
class Preprocess:
    """The model's eval transform, split into a PIL stage (workers) and a tensor stage."""

    data_config: dict
    decode: str
    crop: tuple[int, int]  # (height, width) of the model input
    resize_short: int  # smallest short-side target of the resize (for pre-cropping)
    draft_short: int | None  # keep JPEG short side >= this when draft-decoding
    center: bool  # crop_mode "center": aspect-preserving resize + centre crop
    pil_stage: Any  # callable PIL -> PIL (Resize, CenterCrop), or None
    mean: tuple[float, ...] | None  # Normalize applied on the device batch; None: see full
    std: tuple[float, ...] | None
    full: Any  # the complete timm transform (fallback when the split isn't recognised)
    # (short side, InterpolationMode) when the PIL stage is exactly Resize(int) + CenterCrop:
    # then "fast" and "nvjpeg" resize uint8 tensors instead (the same antialiased filter as
    # PIL's, ~4x faster; within 1 grey level of it)
    tensor_resize: tuple[int, Any] | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    @property
    def split(self) -> bool:
        return self.pil_stage is not None

    def cpu(self, data: bytes):
        """bytes -> uint8 CHW tensor (split) or the full transform's float tensor."""
        import torch

        img = decode_rgb(
            data,
            min_short_side=self.draft_short if self.decode != "exact" else None,
            max_pixels=self.max_pixels,
        )
        if self.center:
            img = precrop_for_center_crop(img, resize_short=self.resize_short, crop=self.crop)
        if not self.split:
            return self.full(img)
        if self.decode != "exact" and self.tensor_resize is not None:
            return self.resize_crop(torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1))
        img = self.pil_stage(img)
        arr = np.array(img, dtype=np.uint8, copy=True)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()

    def resize_crop(self, x):
        """uint8 CHW tensor (any device) -> the model's resize + centre crop, contiguous uint8."""
        from torchvision.transforms.v2 import functional as F2

        size, interp = self.tensor_resize
        x = F2.resize(x, [size], interpolation=interp, antialias=True)
        return F2.center_crop(x, list(self.crop)).contiguous()


def build_preprocess(data_config: dict, decode: str = "fast", *, max_pixels=DEFAULT_MAX_PIXELS):
    from timm.data import create_transform
    from torchvision import transforms as T

    if decode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
    full = create_transform(**data_config, is_training=False)
    _, h, w = data_config["input_size"]
    crop_pct = data_config.get("crop_pct") or 0.875
    scale = [math.floor(x / crop_pct) for x in (h, w)]
    center = data_config.get("crop_mode") in (None, "center")
    steps = list(getattr(full, "transforms", []))
    idx = next((i for i, s in enumerate(steps) if isinstance(s, T.ToTensor)), None)
    pil_stage = mean = std = None
    if idx is not None and len(steps) == idx + 2 and isinstance(steps[idx + 1], T.Normalize):
        import torch

        pil_stage = T.Compose(steps[:idx])
        mean = tuple(torch.as_tensor(steps[idx + 1].mean).tolist())
        std = tuple(torch.as_tensor(steps[idx + 1].std).tolist())
    tensor_resize = None
    if pil_stage is not None and len(steps) == 4 and center:
        rs, cc = steps[0], steps[1]
        size = rs.size if isinstance(rs, T.Resize) else None
        size = size[0] if isinstance(size, (list, tuple)) and len(size) == 1 else size
        if isinstance(size, int) and isinstance(cc, T.CenterCrop):
            tensor_resize = (size, rs.interpolation)
    return Preprocess(
        data_config=dict(data_config),
        decode=decode,
        crop=(int(h), int(w)),
        resize_short=int(min(scale)),
        draft_short=int(DRAFT_MARGIN * max(scale)),
        center=center,
        pil_stage=pil_stage,
        mean=mean,
        std=std,
        full=full,
        tensor_resize=tensor_resize,
        max_pixels=max_pixels,
    )


class ShardImages:
    """Map-style dataset over a shard's ``image`` column: index -> (index, pixels, jpeg, error).

    ``pixels`` is the preprocessed tensor, ``jpeg`` the raw bytes (uint8 tensor) of a JPEG left
    for the GPU decoder (``gpu_jpeg``), ``error`` a short reason when the image is unusable.
    """

    def __init__(self, images: pa.ChunkedArray | pa.Array, prep: Preprocess, gpu_jpeg: bool = False):
        self.chunks = images.chunks if isinstance(images, pa.ChunkedArray) else [images]
        self.offsets = np.cumsum([0] + [len(c) for c in self.chunks]).tolist()
        self.prep = prep
        self.gpu_jpeg = gpu_jpeg and prep.tensor_resize is not None

    def __len__(self) -> int:
        return self.offsets[-1]

    def raw(self, i: int) -> bytes | None:
        j = bisect.bisect_right(self.offsets, i) - 1
        return self.chunks[j][i - self.offsets[j]].as_py()

    def __getitem__(self, i: int):
        import torch

        try:
            data = self.raw(i)
            if data is None:
                raise ImageDecodeError("missing image (null)")
            if self.gpu_jpeg and is_jpeg(data) and _gpu_decodable(data, self.prep.max_pixels):
                return i, None, torch.from_numpy(np.frombuffer(data, np.uint8).copy()), None
            return i, self.prep.cpu(data), None, None
        except ImageDecodeError as exc:
            return i, None, None, exc.reason
        except Exception as exc:  # noqa: BLE001 - a bad image must never stop the job
            return i, None, None, f"preprocess failed: {type(exc).__name__}: {str(exc)[:160]}"


def _gpu_decodable(data: bytes, max_pixels) -> bool:
    """Whether a JPEG can go to the GPU decoder as is; the others go through PIL: truncated
    files (no EOI marker: PIL refuses them, nvjpeg might not), CMYK/YCCK, EXIF-rotated ones
    (torchvision's CUDA decoder ignores the orientation) and progressive ones (nvjpeg decodes
    those on the host, one at a time, in the main process)."""
    if not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
        return False
    head = open_image(data, max_pixels=max_pixels)  # raises ImageDecodeError for bombs
    if head.mode not in ("RGB", "L") or head.info.get("progressive") or head.info.get("progression"):
        return False
    try:
        return head.getexif().get(0x0112, 1) == 1
    except Exception:  # noqa: BLE001 - broken EXIF: let PIL deal with it
        return False


def collate(items):
    import torch

    pix = [(i, p) for i, p, _, _ in items if p is not None]
    return {
        "index": [i for i, _, _, _ in items],
        "pixel_index": [i for i, _ in pix],
        "pixels": torch.stack([p for _, p in pix]) if pix else None,
        "jpeg_index": [i for i, _, j, _ in items if j is not None],
        "jpeg": [j for _, _, j, _ in items if j is not None],
        "errors": {i: e for i, _, _, e in items if e is not None},
    }


PIECE = 16  # images per DataLoader item; a model batch is assembled from several


def plan_pieces(start: int, n: int, batch_size: int, piece: int = PIECE) -> tuple[list[list[int]], list[int]]:
    """Split rows [start, n) into model batches of ``batch_size`` (the same boundaries however
    the work is resumed) and each batch into pieces of at most ``piece`` rows for the workers.

    Workers hand over small pieces, so the first model batch is ready after one piece per
    worker rather than a whole batch per worker."""
    pieces, per_batch = [], []
    piece = max(1, min(piece, batch_size))
    for s in range(start, n, batch_size):
        e = min(s + batch_size, n)
        ps = [list(range(a, min(a + piece, e))) for a in range(s, e, piece)]
        pieces += ps
        per_batch.append(len(ps))
    return pieces, per_batch


def merge_pieces(items: list[dict]) -> dict:
    """One model batch from its collated pieces (pixels stay one tensor per piece)."""
    return {
        "index": [i for b in items for i in b["index"]],
        "pixel_index": [i for b in items if b["pixels"] is not None for i in b["pixel_index"]],
        "pixels": [b["pixels"] for b in items if b["pixels"] is not None],
        "jpeg_index": [i for b in items for i in b["jpeg_index"]],
        "jpeg": [j for b in items for j in b["jpeg"]],
        "errors": {i: e for b in items for i, e in b["errors"].items()},
    }


# --------------------------------------------------------------------------- partial state


class Checkpoints:
    """Chunks of finished rows in ``<out dir>/.partial/<out stem>/``, for resuming a shard."""

    def __init__(self, out_path, key: dict):
        out_path = Path(out_path)
        stem = out_path.name[: -len(".parquet")] if out_path.name.endswith(".parquet") else out_path.name
        self.dir = out_path.parent / PARTIAL_DIR / stem
        self.key = json.loads(json.dumps(key, default=str))

    def _chunks(self) -> list[tuple[int, int, Path]]:
        found = []
        for p in self.dir.glob("rows-*.arrow"):
            m = _CHUNK_RE.match(p.name)
            if m:
                found.append((int(m.group(1)), int(m.group(2)), p))
        return sorted(found)

    def load(self, row_ids: np.ndarray, batch_size: int) -> list[pa.Table]:
        """Chunks saved by an earlier run with the same key, contiguous from row 0."""
        if not self.dir.exists():
            return []
        try:
            state = read_json(self.dir / "state.json")
        except Exception:  # noqa: BLE001 - missing or half-written: not ours to trust
            state = None
        if state != self.key:
            log.warning("discarding partial state in %s: it was made with other settings", self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)
            return []
        tables, pos, n = [], 0, len(row_ids)
        for a, b, p in self._chunks():
            if a != pos or b > n or b <= a or (b % batch_size and b != n):
                break
            try:
                t = feather.read_table(p)
            except Exception:  # noqa: BLE001
                break
            if t.num_rows != b - a or not np.array_equal(t["row_id"].to_numpy(), row_ids[a:b]):
                break
            tables.append(t)
            pos = b
        for a, _, p in self._chunks():
            if a >= pos:
                p.unlink(missing_ok=True)
        return tables

    def begin(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "state.json").exists():
            write_json(self.dir / "state.json", self.key)

    def save(self, table: pa.Table, start: int, stop: int) -> None:
        with atomic_path(self.dir / f"rows-{start:09d}-{stop:09d}.arrow") as tmp:
            feather.write_feather(table, tmp, compression="uncompressed")

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            self.dir.parent.rmdir()  # .partial, if no other shard is in progress
        except OSError:
            pass


# --------------------------------------------------------------------------- tables


def embedding_table(row_ids, emb: np.ndarray, ok: np.ndarray, errors: list) -> pa.Table:
    """``row_id``, ``embedding`` (fixed_size_list<float32>[D], null where not ok), ``error``."""
    n, dim = emb.shape
    values = pa.array(np.ascontiguousarray(emb, dtype=np.float32).reshape(-1))
    validity = pa.py_buffer(np.packbits(np.asarray(ok, dtype=bool), bitorder="little").tobytes())
    arr = pa.Array.from_buffers(
        pa.list_(pa.float32(), dim), n, [validity], null_count=int(n - ok.sum()), children=[values]
    )
    return pa.table(
        {
            "row_id": pa.array(np.asarray(row_ids, dtype=np.int64)),
            "embedding": arr,
            "error": pa.array(errors, type=pa.string()),
        }
    )


def _embedding_values(col) -> np.ndarray:
    """(n, D) float32 array of a fixed_size_list column (null rows as NaN)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    dim = arr.type.list_size
    if arr.null_count == 0:
        return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    out = np.full((len(arr), dim), np.nan, dtype=np.float32)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    out[valid] = arr.filter(arr.is_valid()).flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return out


# --------------------------------------------------------------------------- the embedder


@dataclass
class _Runner:
    """Moves batches to the device and runs the model (eager or compiled)."""

    model: Any
    eager: Any
    prep: Preprocess
    device: Any
    dtype: Any
    batch_size: int
    pad: bool
    channels_last: bool
    dim: int | None = None
    _mean: Any = field(default=None, repr=False)

    def to_input(self, x):
        import torch
        from torchvision.transforms import functional as TF

        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:  # ToTensor + Normalize, the same float ops as the transform
            x = TF.normalize(x.float().div(255), self.prep.mean, self.prep.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x, eager: bool = False):
        import torch

        n = x.shape[0]
        model = self.eager if eager else self.model
        if self.pad and not eager and n < self.batch_size:
            x = torch.cat([x, x.new_zeros((self.batch_size - n, *x.shape[1:]))])
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            out = model(x)
        out = out[:n].float()
        if out.ndim != 2:
            raise RuntimeError(f"model output has shape {tuple(out.shape)}, expected (batch, dim)")
        if self.dim is None:
            self.dim = int(out.shape[1])
        return out

    def probe_dim(self) -> int:
        import torch

        if self.dim is None:
            h, w = self.prep.crop
            self.forward(
                self.to_input(
                    torch.zeros((1, 3, h, w), dtype=torch.uint8)
                    if self.prep.split
                    else torch.zeros((1, 3, h, w))
                ),
                eager=True,
            )
        return self.dim


def _gpu_jpeg_batch(batch, ds: ShardImages, runner: _Runner):
    """Decode the batch's JPEGs on the GPU and resize/crop them there (uint8 CHW, on device).

    Returns ([(index, tensor)], {index: error}); files nvjpeg refuses go through PIL."""
    import warnings

    import torch

    with warnings.catch_warnings():  # torchvision >= 0.29 points to torchcodec; still works
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import ImageReadMode, decode_jpeg

    dev, prep = runner.device, runner.prep
    datas = batch["jpeg"]
    out, errors = [], {}
    with warnings.catch_warnings():  # see above; warned on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            decoded = decode_jpeg(datas, mode=ImageReadMode.RGB, device=dev)
        except Exception:  # noqa: BLE001 - one bad file fails the whole batched call
            decoded = []
            for d in datas:
                try:
                    decoded.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=dev))
                except Exception:  # noqa: BLE001
                    decoded.append(None)
    for i, img in zip(batch["jpeg_index"], decoded):
        try:
            if img is None:
                raise RuntimeError("nvjpeg refused it")
            box = precrop_box((img.shape[2], img.shape[1]), resize_short=prep.resize_short, crop=prep.crop)
            if box is not None:
                img = img[:, box[1] : box[3], box[0] : box[2]]
            out.append((i, prep.resize_crop(img)))
        except Exception:  # noqa: BLE001 - fall back to PIL on the host
            try:
                out.append((i, prep.cpu(ds.raw(i)).to(dev)))
            except ImageDecodeError as exc:
                errors[i] = exc.reason
            except Exception as exc:  # noqa: BLE001
                errors[i] = f"preprocess failed: {type(exc).__name__}: {str(exc)[:160]}"
    return out, errors


def check_nvjpeg(dev) -> None:
    """Raise a clear error unless torchvision can decode JPEGs on ``dev`` (nvjpeg)."""
    import io as _io
    import warnings

    import torch
    from PIL import Image

    if dev.type != "cuda":
        raise ValueError(f"decode='nvjpeg' decodes on the GPU and needs a CUDA device, got {dev}")
    buf = _io.BytesIO()
    Image.new("RGB", (16, 16), (200, 100, 50)).save(buf, "JPEG")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import ImageReadMode, decode_jpeg

            out = decode_jpeg(
                [torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)],
                mode=ImageReadMode.RGB,
                device=dev,
            )[0]
        assert out.shape == (3, 16, 16) and out.is_cuda
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(
            f"decode='nvjpeg' is not usable here (torchvision GPU JPEG decoding failed: {exc}); "
            "use decode='fast'"
        ) from exc


def _device_name(dev) -> str:
    import platform

    import torch

    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _shard_key(shard_path, row_ids: np.ndarray) -> dict:
    st = os.stat(shard_path)
    return {
        "rows": int(len(row_ids)),
        "row_ids_sha1": hashlib.sha1(np.ascontiguousarray(row_ids, dtype=np.int64).tobytes()).hexdigest(),
        "shard_bytes": st.st_size,
        "shard_mtime_ns": st.st_mtime_ns,
    }


def _n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _json_safe(obj):
    return json.loads(json.dumps(obj, default=str))


def embed_shard(
    shard_path,
    out_path,
    *,
    timm_name: str,
    pretrained: bool,
    decode: str = "fast",
    precision: str = "auto",
    batch_size: int = 32,
    workers: int = 0,
    device: str = "auto",
    compile: bool = False,
    checkpoint_every: int = 10,
    progress: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    threads: int | None = None,
) -> dict:
    """Embed every image of ``shard_path`` with ``timm_name``; write ``out_path`` atomically.

    ``threads``: CPU threads this job may use in all (default: the cores it may run on); on
    CPU the model gets ``threads - workers`` of them, the decoding workers one each.
    ``max_pixels``: images with more pixels are refused as decompression bombs.
    CPU results are bit-identical for the same settings and thread count, resumed or not.

    Returns stats: ``img_per_s`` (rows embedded in this run / loop seconds),
    ``steady_img_per_s`` (without the first batch's start-up), ``device``, ``dtype``,
    ``n_rows``, ``n_failed``, ``n_resumed``, ``seconds``, ``embedding_dim``.
    """
    import timm
    import torch
    import torchvision
    from timm.data import resolve_model_data_config
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    if decode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    dev = resolve_device(device)
    dtype = resolve_dtype(precision, dev)
    if decode == "nvjpeg" and dev.type != "cuda":
        raise ValueError(f"decode='nvjpeg' decodes on the GPU and needs a CUDA device, got {dev}")

    model, fingerprint = load_model(timm_name, pretrained)
    data_config = resolve_model_data_config(model)
    prep = build_preprocess(data_config, decode, max_pixels=max_pixels)
    if decode == "nvjpeg":
        check_nvjpeg(dev)
        if prep.tensor_resize is None:
            log.warning("nvjpeg: transform of %s not recognised; decoding with PIL instead", timm_name)

    table = pq.read_table(shard_path, columns=["row_id", "image"])
    row_ids = table["row_id"].to_numpy()
    n = len(row_ids)
    identity = {
        "timm_name": timm_name,
        "timm_version": timm.__version__,
        "pretrained": bool(pretrained),
        "weights_fingerprint": fingerprint,
        "data_config": _json_safe(data_config),
        "decode": decode,
        "dtype": str(dtype).replace("torch.", ""),
    }
    key = {
        "version": _STATE_VERSION,
        **identity,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "device_type": dev.type,
        "batch_size": batch_size,
        "compile": bool(compile),
        "shard": _shard_key(shard_path, row_ids),
    }
    ckpt = Checkpoints(out_path, key)
    done = ckpt.load(row_ids, batch_size) if checkpoint_every else []
    done_dim = done[0]["embedding"].type.list_size if done else None
    start = sum(t.num_rows for t in done)
    if start:
        log.info("resuming %s after %d of %d rows from %s", Path(out_path).name, start, n, ckpt.dir)

    ds = ShardImages(table["image"], prep, gpu_jpeg=decode == "nvjpeg")
    pieces, per_batch = plan_pieces(start, n, batch_size)
    loader_kw: dict[str, Any] = {}
    if workers > 0:
        # keep about two model batches decoded ahead
        loader_kw["prefetch_factor"] = (
            max(2, math.ceil(2 * batch_size / (len(pieces[0]) * workers))) if pieces else 2
        )
        if "fork" in multiprocessing.get_all_start_methods():
            loader_kw["multiprocessing_context"] = "fork"  # share the shard, don't pickle it
    loader = DataLoader(
        ds,
        batch_sampler=pieces,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=dev.type == "cuda",
        **loader_kw,
    )

    # rows finished in this run since the last checkpoint, and the chunks saved so far
    emb_buf: list[np.ndarray] = []
    ok_buf: list[np.ndarray] = []
    err_buf: list = []
    saved: list[pa.Table] = []
    chunk_start = start
    n_fail_new = 0

    def take_buffer(stop: int) -> pa.Table:
        nonlocal chunk_start
        t = embedding_table(
            row_ids[chunk_start:stop], np.concatenate(emb_buf), np.concatenate(ok_buf), err_buf
        )
        emb_buf.clear(), ok_buf.clear(), err_buf.clear()
        chunk_start = stop
        return t

    # CPU: leave the decoding workers their cores. OpenMP threads that share a core with a
    # busy process wait at every barrier (seen here: 2 threads 36x slower than 1).
    old_threads = torch.get_num_threads()
    if dev.type == "cpu" and (workers > 0 or threads):
        torch.set_num_threads(max(1, (threads or _n_cores()) - workers))
    try:
        t_loop = time.perf_counter()
        iterator = iter(loader)  # start the workers (fork) before CUDA is initialised
        channels_last = True  # also on CPU: oneDNN convolutions prefer it (~10 % for convnext here)
        model = model.to(dev)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        compiled = torch.compile(model, dynamic=False) if compile else model
        runner = _Runner(
            compiled,
            model,
            prep,
            dev,
            dtype,
            batch_size,
            pad=compile,
            channels_last=channels_last,
            dim=done_dim,
        )
        if checkpoint_every and start < n:
            ckpt.begin()
        log.info(
            "embedding %s: %d rows (%d to go) with %s on %s, %s, decode=%s, batch %d, %d workers",
            Path(shard_path).name,
            n,
            n - start,
            timm_name,
            dev,
            identity["dtype"],
            decode,
            batch_size,
            workers,
        )
        bar = tqdm(
            total=n,
            initial=start,
            unit="img",
            desc=Path(shard_path).stem,
            file=sys.stderr,
            disable=not progress,
            mininterval=1.0 if sys.stderr.isatty() else 15.0,
            smoothing=0.05,
        )
        first_batch_s = None
        first_batch_rows = 0
        batches_since_ckpt = 0
        pending = None  # (batch, host tensor, event) of the batch in flight on the GPU

        def finish(item) -> None:
            nonlocal n_fail_new, batches_since_ckpt, first_batch_s, first_batch_rows
            batch, out_index, host, event = item
            if event is not None:
                event.synchronize()
            idx = batch["index"]
            errors = dict(batch["errors"])
            dim = runner.dim if runner.dim is not None else runner.probe_dim()
            emb = np.zeros((len(idx), dim), dtype=np.float32)
            ok = np.zeros(len(idx), dtype=bool)
            pos = {i: k for k, i in enumerate(idx)}
            if host is not None:
                vals = host.numpy()
                for r, i in enumerate(out_index):
                    emb[pos[i]] = vals[r]
                    ok[pos[i]] = True
            errs = [None if ok[k] else errors.get(i, "no output") for k, i in enumerate(idx)]
            emb_buf.append(emb)
            ok_buf.append(ok)
            err_buf.extend(errs)
            n_fail_new += int((~ok).sum())
            bar.update(len(idx))
            if first_batch_s is None:
                first_batch_s = time.perf_counter() - t_loop
                first_batch_rows = len(idx)
            batches_since_ckpt += 1
            if checkpoint_every and batches_since_ckpt >= checkpoint_every:
                a, b = chunk_start, idx[-1] + 1
                saved.append(take_buffer(b))
                ckpt.save(saved[-1], a, b)
                batches_since_ckpt = 0

        with torch.inference_mode():
            for k in per_batch:
                batch = merge_pieces([next(iterator) for _ in range(k)])
                parts, index = [], []
                if batch["pixels"]:
                    parts += [runner.to_input(p) for p in batch["pixels"]]
                    index += batch["pixel_index"]
                if batch["jpeg"]:
                    decoded, errs = _gpu_jpeg_batch(batch, ds, runner)
                    batch["errors"].update(errs)
                    if decoded:
                        parts.append(runner.to_input(torch.stack([t for _, t in decoded])))
                        index += [i for i, _ in decoded]
                host = event = None
                if parts:
                    x = parts[0] if len(parts) == 1 else torch.cat(parts)
                    out = runner.forward(x)
                    if dev.type == "cuda":
                        host = out.to("cpu", non_blocking=True)
                        event = torch.cuda.Event()
                        event.record()
                    else:
                        host = out
                if pending is not None:
                    finish(pending)
                pending = (batch, index, host, event)
            if pending is not None:
                finish(pending)
        bar.close()
        seconds = time.perf_counter() - t_loop
        dim = runner.dim if runner.dim is not None else runner.probe_dim()

        parts = list(done) + saved
        if emb_buf:
            parts.append(take_buffer(n))
        result = (
            pa.concat_tables(parts)
            if parts
            else embedding_table(row_ids, np.zeros((0, dim), np.float32), np.zeros(0, bool), [])
        )
        if result["embedding"].type.list_size != dim:
            raise RuntimeError(
                f"resumed chunks have dimension {result['embedding'].type.list_size}, model {dim}"
            )
        if not np.array_equal(result["row_id"].to_numpy(), row_ids):
            raise RuntimeError("internal error: embedded rows do not match the shard's rows")
        n_failed = result.num_rows - int(pc.sum(result["error"].is_null()).as_py() or 0)
        processed = n - start
        img_per_s = processed / seconds if seconds > 0 else float("nan")
        steady = float("nan")
        if first_batch_s is not None and processed > first_batch_rows and seconds > first_batch_s:
            steady = (processed - first_batch_rows) / (seconds - first_batch_s)
        provenance = {
            **identity,
            "embedding_dim": dim,
            "precision": precision,
            "torch_version": torch.__version__,
            "torchvision_version": torchvision.__version__,
            "device": str(dev),
            "device_name": _device_name(dev),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "batch_size": batch_size,
            "workers": workers,
            "compile": bool(compile),
            "shard": Path(shard_path).name,
            "rows": n,
            "failures": n_failed,
            "resumed_rows": start,
            "seconds": round(seconds, 3),
            "img_per_s": round(img_per_s, 2),
            "steady_img_per_s": round(steady, 2) if steady == steady else None,
            "first_batch_s": round(first_batch_s, 3) if first_batch_s is not None else None,
        }
        write_parquet(with_meta(result, provenance), out_path)
        ckpt.cleanup()
    finally:
        torch.set_num_threads(old_threads)
    wall = time.perf_counter() - t_start
    log.info(
        "%s: %d rows, %d failed, %.1f img/s (%d embedded in %.1f s; %.1f s with setup) on %s",
        Path(out_path).name,
        n,
        n_failed,
        img_per_s,
        processed,
        seconds,
        wall,
        provenance["device_name"],
    )
    return {
        "img_per_s": img_per_s,
        "steady_img_per_s": steady,
        "device": str(dev),
        "device_name": provenance["device_name"],
        "dtype": identity["dtype"],
        "n_rows": n,
        "n_failed": n_failed,
        "n_failed_this_run": n_fail_new,
        "n_resumed": start,
        "seconds": seconds,
        "wall_seconds": wall,
        "first_batch_s": first_batch_s,
        "embedding_dim": dim,
    }


# --------------------------------------------------------------------------- merge


class MergeError(ValueError):
    """The embedding shards don't add up to the dataset; nothing was written."""


def _fmt_ids(ids, limit: int = 10) -> str:
    ids = [int(i) for i in ids]
    more = f" … (+{len(ids) - limit} more)" if len(ids) > limit else ""
    return ", ".join(map(str, ids[:limit])) + more


def merge_embeddings(
    embedding_paths: list,
    shard_paths: list,
    split_path,
    out_path,
    failures_path,
    *,
    targets: list[str],
) -> None:
    """Join per-shard embeddings with targets (from the shards) and split; write both outputs.

    ``embedding_paths[i]`` must hold exactly the rows of ``shard_paths[i]``. Raises
    :class:`MergeError` (writing nothing) when a row is missing, doubled or unknown, or when
    the shards disagree on model provenance or embedding dimension.
    """
    if len(embedding_paths) != len(shard_paths):
        raise MergeError(f"{len(embedding_paths)} embedding files for {len(shard_paths)} shards")
    if not embedding_paths:
        raise MergeError("no embedding shards to merge")
    problems: list[str] = []
    ref = None
    ref_path = None
    classes = None
    throughput = []
    ok_tables, fail_tables, target_tables = [], [], []
    for emb_path, shard_path in zip(embedding_paths, shard_paths):
        emb_path, shard_path = Path(emb_path), Path(shard_path)
        meta = read_meta(emb_path)
        emb = pq.read_table(emb_path, columns=["row_id", "embedding", "error"])
        shard_schema = pq.read_schema(shard_path)
        missing_targets = [t for t in targets if t not in shard_schema.names]
        if missing_targets:
            problems.append(f"{shard_path}: no target column(s) {missing_targets}")
            continue
        shard = pq.read_table(shard_path, columns=["row_id", *targets])
        shard_meta = read_meta(shard_schema)
        if classes is None:
            classes = shard_meta.get("classes")
        if not pa.types.is_fixed_size_list(emb["embedding"].type):
            problems.append(f"{emb_path}: embedding column is {emb['embedding'].type}, not fixed_size_list")
            continue
        ident = {k: meta.get(k) for k in IDENTITY_KEYS}
        ident["embedding_dim"] = emb["embedding"].type.list_size
        if ref is None:
            ref, ref_path = ident, emb_path
        else:
            diff = {k: (ref[k], ident[k]) for k in IDENTITY_KEYS if ref[k] != ident[k]}
            if diff:
                detail = "; ".join(f"{k}: {a!r} vs {b!r}" for k, (a, b) in diff.items())
                problems.append(f"{emb_path} was embedded differently from {ref_path}: {detail}")
                continue
        e_ids = emb["row_id"].to_numpy()
        s_ids = shard["row_id"].to_numpy()
        uniq, counts = np.unique(e_ids, return_counts=True)
        doubled = uniq[counts > 1]
        missing = np.setdiff1d(s_ids, e_ids)
        extra = np.setdiff1d(e_ids, s_ids)
        if len(doubled):
            problems.append(f"{emb_path}: row_id(s) embedded more than once: {_fmt_ids(doubled)}")
        if len(missing):
            problems.append(
                f"{emb_path}: {len(missing)} row_id(s) of shard {shard_path.name} missing: {_fmt_ids(missing)}"
            )
        if len(extra):
            problems.append(
                f"{emb_path}: {len(extra)} row_id(s) not in shard {shard_path.name}: {_fmt_ids(extra)}"
            )
        if len(doubled) or len(missing) or len(extra):
            continue
        is_ok = pc.and_(emb["error"].is_null(), emb["embedding"].is_valid())
        ok_tables.append(emb.filter(is_ok).select(["row_id", "embedding"]))
        failed = emb.filter(pc.invert(is_ok))
        reasons = pc.fill_null(failed["error"], "no embedding")
        fail_tables.append(pa.table({"row_id": failed["row_id"], "reason": reasons}))
        target_tables.append(shard)
        throughput.append(
            {k: meta.get(k) for k in ("shard", "rows", "failures", "seconds", "img_per_s", "device_name")}
            | {"file": emb_path.name}
        )
    if not problems:
        all_ids = np.concatenate([t["row_id"].to_numpy() for t in target_tables])
        uniq, counts = np.unique(all_ids, return_counts=True)
        if (counts > 1).any():
            problems.append(f"row_id(s) present in more than one shard: {_fmt_ids(uniq[counts > 1])}")
    if problems:
        raise MergeError("cannot merge embeddings:\n  " + "\n  ".join(problems))

    embedded = pa.concat_tables(ok_tables).combine_chunks()
    embedded = embedded.take(pc.sort_indices(embedded["row_id"]))
    ids = embedded["row_id"].to_numpy()
    labels = pa.concat_tables(target_tables).combine_chunks()
    lab_ids = labels["row_id"].to_numpy()
    lab_order = np.argsort(lab_ids, kind="stable")
    lab_pos = lab_order[np.searchsorted(lab_ids[lab_order], ids)]  # every embedded id is a shard id

    split = pq.read_table(split_path, columns=["row_id", "split"]).combine_chunks()
    sp_ids = split["row_id"].to_numpy()
    sp_uniq, sp_counts = np.unique(sp_ids, return_counts=True)
    if (sp_counts > 1).any():
        raise MergeError(f"{split_path}: row_id(s) listed more than once: {_fmt_ids(sp_uniq[sp_counts > 1])}")
    sp_order = np.argsort(sp_ids, kind="stable")
    found = np.searchsorted(sp_ids[sp_order], ids)
    found_c = np.minimum(found, max(len(sp_ids) - 1, 0))
    has = (
        (found < len(sp_ids)) & (sp_ids[sp_order][found_c] == ids)
        if len(sp_ids)
        else np.zeros(len(ids), bool)
    )
    if not has.all():
        raise MergeError(
            f"{int((~has).sum())} embedded row_id(s) have no split in {split_path}: {_fmt_ids(ids[~has])}"
        )
    merged = pa.table(
        {
            "row_id": embedded["row_id"],
            "split": split["split"].take(pa.array(sp_order[found])),
            **{t: labels[t].take(pa.array(lab_pos)) for t in targets},
            "embedding": embedded["embedding"],
        }
    )
    failures = pa.concat_tables(fail_tables).combine_chunks()
    failures = failures.take(pc.sort_indices(failures["row_id"]))
    meta = read_meta(ref_path)
    for k in (
        "shard",
        "rows",
        "failures",
        "resumed_rows",
        "seconds",
        "img_per_s",
        "steady_img_per_s",
        "first_batch_s",
    ):
        meta.pop(k, None)
    meta.update(
        classes=classes,
        targets=list(targets),
        rows=merged.num_rows,
        failures=failures.num_rows,
        shards=throughput,
    )
    write_parquet(with_meta(failures, {"rows": failures.num_rows}), failures_path)
    write_parquet(with_meta(merged, meta), out_path)


# --------------------------------------------------------------------------- diagnostics
# Throughput of the two halves of embed_shard, for benchmarks (bench/) and for finding the
# bottleneck on a new machine: the model alone on ready-made batches, and the input pipeline
# alone (decode + preprocess + copy to the device) without the model.


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def model_only_rate(
    timm_name: str,
    pretrained: bool,
    *,
    batch_size: int = 32,
    precision: str = "auto",
    device: str = "auto",
    compile: bool = False,
    iters: int = 10,
    warmup: int = 2,
    threads: int | None = None,
) -> dict:
    """img/s of the forward pass alone, on pre-made uint8 batches already on the device."""
    import torch
    from timm.data import resolve_model_data_config

    dev = resolve_device(device)
    dtype = resolve_dtype(precision, dev)
    model, _ = load_model(timm_name, pretrained)
    prep = build_preprocess(resolve_model_data_config(model), "exact")
    old = torch.get_num_threads()
    if dev.type == "cpu" and threads:
        torch.set_num_threads(threads)
    try:
        model = model.to(dev)
        channels_last = True
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        compiled = torch.compile(model, dynamic=False) if compile else model
        runner = _Runner(
            compiled, model, prep, dev, dtype, batch_size, pad=compile, channels_last=channels_last
        )
        h, w = prep.crop
        gen = torch.Generator().manual_seed(0)
        batches = [
            torch.randint(0, 256, (batch_size, 3, h, w), dtype=torch.uint8, generator=gen).to(dev)
            for _ in range(2)
        ]
        with torch.inference_mode():
            t0 = time.perf_counter()
            for k in range(warmup):
                runner.forward(runner.to_input(batches[k % 2]))
            _sync(dev)
            warm_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            for k in range(iters):
                runner.forward(runner.to_input(batches[k % 2]))
            _sync(dev)
            s = time.perf_counter() - t0
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(old)
    return {
        "img_per_s": iters * batch_size / s,
        "seconds": s,
        "warmup_s": warm_s,
        "batch_size": batch_size,
        "dtype": str(dtype).replace("torch.", ""),
        "device": str(dev),
        "threads": used_threads,
    }


def decode_only_rate(
    shard_path,
    timm_name: str,
    pretrained: bool = False,
    *,
    decode: str = "fast",
    batch_size: int = 32,
    workers: int = 0,
    device: str = "auto",
    limit: int | None = None,
) -> dict:
    """img/s of the input pipeline alone: read, decode, preprocess, copy to the device."""
    import torch
    from timm.data import resolve_model_data_config
    from torch.utils.data import DataLoader

    dev = resolve_device(device)
    if decode == "nvjpeg":
        check_nvjpeg(dev)
    model, _ = load_model(timm_name, pretrained)
    prep = build_preprocess(resolve_model_data_config(model), decode)
    table = pq.read_table(shard_path, columns=["image"])
    n = table.num_rows if limit is None else min(limit, table.num_rows)
    ds = ShardImages(table["image"], prep, gpu_jpeg=decode == "nvjpeg")
    kw: dict[str, Any] = {}
    if workers > 0 and "fork" in multiprocessing.get_all_start_methods():
        kw["multiprocessing_context"] = "fork"
    pieces, per_batch = plan_pieces(0, n, batch_size)
    if workers > 0 and pieces:
        kw["prefetch_factor"] = max(2, math.ceil(2 * batch_size / (len(pieces[0]) * workers)))
    loader = DataLoader(
        ds, batch_sampler=pieces, num_workers=workers, collate_fn=collate, pin_memory=dev.type == "cuda", **kw
    )
    runner = _Runner(None, None, prep, dev, torch.float32, batch_size, pad=False, channels_last=True)
    rows = failed = 0
    t0 = time.perf_counter()
    iterator = iter(loader)
    first = None
    with torch.inference_mode():
        for k in per_batch:
            batch = merge_pieces([next(iterator) for _ in range(k)])
            for p in batch["pixels"]:
                runner.to_input(p)
            if batch["jpeg"]:
                decoded, errs = _gpu_jpeg_batch(batch, ds, runner)
                failed += len(errs)
                if decoded:
                    runner.to_input(torch.stack([t for _, t in decoded]))
            failed += len(batch["errors"])
            rows += len(batch["index"])
            if first is None:
                _sync(dev)
                first = (time.perf_counter() - t0, rows)
    _sync(dev)
    s = time.perf_counter() - t0
    steady = (
        (rows - first[1]) / (s - first[0]) if first and rows > first[1] and s > first[0] else float("nan")
    )
    return {
        "img_per_s": rows / s,
        "steady_img_per_s": steady,
        "rows": rows,
        "failed": failed,
        "seconds": s,
        "workers": workers,
        "decode": decode,
    }
