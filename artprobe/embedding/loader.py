"""The shard's images as a DataLoader: decoding in worker processes, small pieces per worker,
assembled into model batches with the same boundaries however the work is resumed."""

from __future__ import annotations

import bisect
import math
import multiprocessing
from typing import Any

import numpy as np
import pyarrow as pa

from artprobe.common.images import ImageDecodeError, is_jpeg
from artprobe.embedding.nvjpeg import gpu_decodable
from artprobe.embedding.preprocess import Preprocess

PIECE = 16  # images per DataLoader item; a model batch is assembled from several


class ShardImages:
    """Map-style dataset: an item ``(index, bytes)`` (what :class:`StreamedPieces` hands out) or
    an index into ``images`` (an ``image`` column held in memory) -> (index, pixels, jpeg, error).

    ``pixels`` is the preprocessed tensor, ``jpeg`` the raw bytes (uint8 tensor) of a JPEG left
    for the GPU decoder (``gpu_jpeg``), ``error`` a short reason when the image is unusable.
    """

    def __init__(
        self, images: pa.ChunkedArray | pa.Array | None, prep: Preprocess, gpu_jpeg: bool = False
    ):
        self.chunks = (
            []
            if images is None
            else images.chunks
            if isinstance(images, pa.ChunkedArray)
            else [images]
        )
        self.offsets = np.cumsum([0] + [len(c) for c in self.chunks]).tolist()
        self.prep = prep
        self.gpu_jpeg = gpu_jpeg and prep.tensor_resize is not None

    def __len__(self) -> int:
        return self.offsets[-1]

    def raw(self, i: int) -> bytes | None:
        j = bisect.bisect_right(self.offsets, i) - 1
        return self.chunks[j][i - self.offsets[j]].as_py()

    def __getitem__(self, item):
        import torch

        i, data = item if isinstance(item, tuple) else (item, None)
        try:
            if not isinstance(item, tuple):
                data = self.raw(i)
            if data is None:
                raise ImageDecodeError("missing image (null)")
            if self.gpu_jpeg and is_jpeg(data) and gpu_decodable(data, self.prep.max_pixels):
                return i, None, torch.from_numpy(np.frombuffer(data, np.uint8).copy()), None
            return i, self.prep.decode_on_host(data), None, None
        except ImageDecodeError as exc:
            return i, None, None, exc.reason
        except Exception as exc:  # noqa: BLE001 - a bad image must never stop the job
            return i, None, None, f"preprocess failed: {type(exc).__name__}: {str(exc)[:160]}"


class StreamedPieces:
    """The loader's batch sampler: each piece of row indices as ``[(index, image bytes)]``,
    read from the shard's ``image`` column one row group at a time, so a job holds one row
    group (and the pieces in flight), however many rows its shard has."""

    def __init__(self, shard_path, pieces: list[list[int]]):
        self.shard_path = shard_path
        self.pieces = pieces

    def __len__(self) -> int:
        return len(self.pieces)

    def __iter__(self):
        import pyarrow.parquet as pq

        with pq.ParquetFile(self.shard_path) as pf:
            sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
            starts = np.cumsum([0] + sizes).tolist()
            group, column = -1, None
            for piece in self.pieces:
                out = []
                for i in piece:
                    g = bisect.bisect_right(starts, i) - 1
                    if g != group:
                        group, column = g, None  # drop the last row group before reading the next,
                        pa.default_memory_pool().release_unused()  # and hand its memory back
                        column = pf.read_row_group(g, columns=["image"], use_threads=False)["image"]
                    out.append((i, column[i - starts[g]].as_py()))
                yield out


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


def plan_pieces(
    start: int, n: int, batch_size: int, piece: int = PIECE
) -> tuple[list[list[int]], list[int]]:
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


def piece_loader(images: ShardImages, pieces, batch_size: int, workers: int, dev):
    """The DataLoader over ``pieces`` (from :func:`plan_pieces`: indices into ``images``; or a
    :class:`StreamedPieces` that carries the bytes); with workers it keeps about two model
    batches decoded ahead and forks them."""
    from torch.utils.data import DataLoader

    kw: dict[str, Any] = {}
    if workers > 0:
        kw["prefetch_factor"] = (
            max(2, math.ceil(2 * batch_size / (_piece_len(pieces) * workers))) if len(pieces) else 2
        )
        if "fork" in multiprocessing.get_all_start_methods():
            kw["multiprocessing_context"] = "fork"
    return DataLoader(
        images,
        batch_sampler=pieces,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=dev.type == "cuda",
        **kw,
    )


def _piece_len(pieces) -> int:
    return len((pieces.pieces if isinstance(pieces, StreamedPieces) else pieces)[0])


def model_batches(iterator, per_batch: list[int]):
    """Model batches (see :func:`merge_pieces`) from an iterator over the loader's pieces."""
    for k in per_batch:
        yield merge_pieces([next(iterator) for _ in range(k)])
