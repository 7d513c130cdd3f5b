"""Checkpoints for resuming a shard: the rows finished so far, saved every few batches as
checkpoint files (Arrow IPC, written atomically) in a checkpoint dir beside the output,
with the key (everything that could change a result) they were made under."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from artprobe.common.io import atomic_path, json_safe, read_json, write_json

log = logging.getLogger("artprobe.embedding")

#: ``<out dir>/.checkpoints/<out stem>/``: hidden, so no half-done shard looks like an output
CHECKPOINT_DIR = ".checkpoints"
KEY_FILE = "key.json"
#: the batch an earlier run of the job went on with after running out of GPU memory
BATCH_FILE = "batch.json"
KEY_VERSION = 1
_FILE_RE = re.compile(r"^rows-(\d+)-(\d+)\.arrow$")


def shard_key(shard_path, row_ids: np.ndarray) -> dict:
    """The shard's identity: its rows, size and mtime."""
    st = os.stat(shard_path)
    return {
        "rows": int(len(row_ids)),
        "row_ids_sha1": hashlib.sha1(
            np.ascontiguousarray(row_ids, dtype=np.int64).tobytes()
        ).hexdigest(),
        "shard_bytes": st.st_size,
        "shard_mtime_ns": st.st_mtime_ns,
    }


class Checkpoints:
    """Checkpoint files of finished rows in ``<out dir>/.checkpoints/<out stem>/``."""

    def __init__(self, out_path, key: dict):
        out_path = Path(out_path)
        stem = (
            out_path.name[: -len(".parquet")]
            if out_path.name.endswith(".parquet")
            else out_path.name
        )
        self.dir = out_path.parent / CHECKPOINT_DIR / stem
        self.key = json_safe(key)

    def _files(self) -> list[tuple[int, int, Path]]:
        found = []
        for p in self.dir.glob("rows-*.arrow"):
            m = _FILE_RE.match(p.name)
            if m:
                found.append((int(m.group(1)), int(m.group(2)), p))
        return sorted(found)

    def _key_matches(self) -> bool:
        try:
            key = read_json(self.dir / KEY_FILE)
        except Exception:  # noqa: BLE001 - missing or half-written: not ours to trust
            key = None
        return key == self.key

    def load(self, row_ids: np.ndarray, batch_size: int) -> list[pa.Table]:
        """Checkpoints saved by an earlier run with the same key, contiguous from row 0; the
        first unreadable, misplaced or wrong-rowed file and all after it are deleted."""
        if not self.dir.exists():
            return []
        if not self._key_matches():
            log.warning(
                "discarding checkpoints in %s: they were made with other settings", self.dir
            )
            shutil.rmtree(self.dir, ignore_errors=True)
            return []
        tables, pos, n = [], 0, len(row_ids)
        # after an out-of-memory retry the files end at multiples of the smaller batch
        aligned = not self.batch_record()
        for a, b, p in self._files():
            if a != pos or b > n or b <= a or (aligned and b % batch_size and b != n):
                break
            try:
                t = feather.read_table(p)
            except Exception:  # noqa: BLE001 - truncated or garbage: recompute from here
                log.warning("discarding unreadable checkpoint file %s", p)
                break
            if t.num_rows != b - a or not np.array_equal(t["row_id"].to_numpy(), row_ids[a:b]):
                break
            tables.append(t)
            pos = b
        for a, _, p in self._files():
            if a >= pos:
                p.unlink(missing_ok=True)
        return tables

    def begin(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / KEY_FILE).exists():
            write_json(self.dir / KEY_FILE, self.key)

    def save(self, table: pa.Table, start: int, stop: int) -> None:
        with atomic_path(self.dir / f"rows-{start:09d}-{stop:09d}.arrow") as tmp:
            feather.write_feather(table, tmp, compression="uncompressed")

    def record_batch(self, batch_size_used: int, oom_retries: int) -> None:
        """Note the smaller batch the job goes on with (after running out of GPU memory), so
        a rerun of it resumes with that batch instead of running out of memory again."""
        if self.dir.exists():
            write_json(
                self.dir / BATCH_FILE,
                {"batch_size_used": batch_size_used, "oom_retries": oom_retries},
            )

    def batch_record(self) -> dict:
        """``{"batch_size_used", "oom_retries"}`` recorded by an earlier run, or ``{}``."""
        try:
            return read_json(self.dir / BATCH_FILE) if self._key_matches() else {}
        except Exception:  # noqa: BLE001 - missing or half-written: start from the configured batch
            return {}

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            self.dir.parent.rmdir()  # .checkpoints, if no other shard is in progress
        except OSError:
            pass
