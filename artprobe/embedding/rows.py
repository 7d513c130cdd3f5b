"""The embedded rows of one shard: the output table's layout, and the rows collected batch by
batch, saved as a checkpoint every few batches and assembled into the output at the end."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from artprobe.embedding.checkpoints import Checkpoints


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


class EmbeddedRows:
    """Rows ``[start, stop)`` of a shard as they are embedded.

    ``resumed``: the tables loaded from checkpoints (rows ``[0, start)``). Every
    ``checkpoint_every`` batches (0: never) the rows added since the last checkpoint are
    saved to ``checkpoints``.
    """

    def __init__(
        self,
        row_ids: np.ndarray,
        resumed: list[pa.Table],
        checkpoints: Checkpoints,
        checkpoint_every: int,
    ):
        self.row_ids = row_ids
        self.tables = list(resumed)  # resumed + checkpointed in this run
        self.start = self.since = sum(t.num_rows for t in resumed)
        self.checkpoints = checkpoints
        self.checkpoint_every = checkpoint_every
        self.n_failed = 0  # in this run
        self._emb: list[np.ndarray] = []
        self._ok: list[np.ndarray] = []
        self._err: list = []
        self._batches = 0

    @property
    def resumed_dim(self) -> int | None:
        """The embedding width of the resumed rows (None when nothing was resumed)."""
        return self.tables[0]["embedding"].type.list_size if self.tables else None

    def add(self, batch: dict, index: list[int], host, dim: int) -> None:
        """One model batch: ``host[r]`` is the embedding of row ``index[r]``; the batch's other
        rows get their error (or "no output")."""
        idx = batch["index"]
        emb = np.zeros((len(idx), dim), dtype=np.float32)
        ok = np.zeros(len(idx), dtype=bool)
        pos = {i: k for k, i in enumerate(idx)}
        if host is not None:
            vals = host.numpy()
            for r, i in enumerate(index):
                emb[pos[i]] = vals[r]
                ok[pos[i]] = True
        self._emb.append(emb)
        self._ok.append(ok)
        self._err.extend(
            None if ok[k] else batch["errors"].get(i, "no output") for k, i in enumerate(idx)
        )
        self.n_failed += int((~ok).sum())

    @property
    def done(self) -> int:
        """Rows finished so far: resumed, checkpointed, and added since the last checkpoint."""
        return self.since + sum(len(e) for e in self._emb)

    def checkpoint_if_due(self) -> None:
        """After each batch: save the rows added since the last checkpoint, every
        ``checkpoint_every`` batches."""
        self._batches += 1
        if self.checkpoint_every and self._batches >= self.checkpoint_every:
            self.checkpoint_now()

    def checkpoint_now(self) -> None:
        """Save the rows added since the last checkpoint (if checkpointing, and there are any)."""
        if self.checkpoint_every and self._emb:
            a, b = self.since, self.done
            self.tables.append(self._take(b))
            self.checkpoints.save(self.tables[-1], a, b)
        self._batches = 0

    def _take(self, stop: int) -> pa.Table:
        t = embedding_table(
            self.row_ids[self.since : stop],
            np.concatenate(self._emb),
            np.concatenate(self._ok),
            self._err,
        )
        self._emb, self._ok, self._err = [], [], []
        self.since = stop
        return t

    def table(self, dim: int) -> pa.Table:
        """All rows of the shard, checked against its row ids and the embedding width."""
        parts = list(self.tables)
        if self._emb:
            parts.append(self._take(len(self.row_ids)))
        if parts:
            result = pa.concat_tables(parts)
        else:
            result = embedding_table(
                self.row_ids, np.zeros((0, dim), np.float32), np.zeros(0, bool), []
            )
        if result["embedding"].type.list_size != dim:
            raise RuntimeError(
                f"resumed checkpoints have dimension {result['embedding'].type.list_size}, model {dim}"
            )
        if not np.array_equal(result["row_id"].to_numpy(), self.row_ids):
            raise RuntimeError("internal error: embedded rows do not match the shard's rows")
        return result
