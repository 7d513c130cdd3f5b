"""One GPU per local job: a lock file per GPU, held for the life of the process that claims it.

Snakemake counts GPUs (``--resources gpu=4``) but does not say *which* GPU a local job may
use, so without this every job would start on GPU 0. A job calls :func:`claim_gpu` before
anything initialises CUDA; it locks the first free slot, sets ``CUDA_VISIBLE_DEVICES`` to that
slot's GPU and keeps the lock until the process ends.

The locks are POSIX record locks (``fcntl.lockf``), not ``flock``: the kernel drops them when
the holder dies, however it dies (a crash, ``SIGKILL``, the OOM killer), and, unlike ``flock``,
a forked child (a DataLoader worker) does not inherit them, so a killed job's GPU is free at
once rather than when its last worker notices. Lock files live on a local disk
(``/tmp/artprobe-gpu-slots``, shared by every user of the machine: the GPUs are too), never in
``results/``, which may be on a network file system.

Which GPUs: ``ARTPROBE_GPU_IDS`` (tests, or a subset by hand), else the parent's
``CUDA_VISIBLE_DEVICES``, else the NVIDIA driver's GPU count (``/proc/driver/nvidia/gpus``,
then ``nvidia-smi -L``); torch is never imported here. SLURM jobs keep the GPUs SLURM gave
them, and CPU runs take no slot.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

IDS_ENV = "ARTPROBE_GPU_IDS"
DIR_ENV = "ARTPROBE_GPU_SLOTS_DIR"
SLOT_ENV = "ARTPROBE_GPU_SLOT"  # what the provenance records: "<host>:<gpu id>"
DEFAULT_DIR = "/tmp/artprobe-gpu-slots"
_held: dict[str, Slot] = {}  # POSIX locks do not exclude their own process: remember ours


@dataclass
class Slot:
    gpu: str
    path: Path
    fd: int

    @property
    def label(self) -> str:
        return f"{socket.gethostname()}:{self.gpu}"


def gpu_ids(env=os.environ) -> list[str]:
    """The GPU ids jobs on this machine share, cheaply and without torch."""
    for name in (IDS_ENV, "CUDA_VISIBLE_DEVICES"):
        if name in env:
            return [i.strip() for i in env[name].split(",") if i.strip()]
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return [str(i) for i in range(len(list(proc.iterdir())))]
    if shutil.which("nvidia-smi"):
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30
        ).stdout
        return [str(i) for i in range(sum(line.startswith("GPU ") for line in out.splitlines()))]
    return []


def needs_slot(device: str | None, env=os.environ) -> bool:
    """Only local jobs that may use CUDA and were not told which GPU (explicit ``cuda:N``) do."""
    if "SLURM_JOB_ID" in env:
        return False
    return device in (None, "auto", "cuda")


def claim_gpu(device: str | None = "auto", poll: float = 1.0, env=os.environ) -> str | None:
    """Pin this process to a free GPU (waiting for one if all are taken); its label or None."""
    if not needs_slot(device, env):
        return None
    ids = gpu_ids(env)
    if not ids:
        return None  # no GPU here: `auto` runs on CPU
    if _cuda_started():
        raise RuntimeError(
            "claim_gpu must run before CUDA is initialised (CUDA_VISIBLE_DEVICES is read once)"
        )
    slot = acquire(Path(env.get(DIR_ENV, DEFAULT_DIR)), ids, poll=poll)
    env["CUDA_VISIBLE_DEVICES"] = slot.gpu
    env[SLOT_ENV] = slot.label
    log.info("GPU slot %s (%s)", slot.label, slot.path)
    return slot.label


def acquire(folder: Path, ids: list[str], poll: float = 1.0, timeout: float | None = None) -> Slot:
    """Lock the first free GPU of ``ids`` under ``folder``; wait while all are held."""
    _make_shared_dir(folder)
    host = socket.gethostname()
    deadline = None if timeout is None else time.monotonic() + timeout
    waiting = False
    while True:
        for gpu in ids:
            slot = _try_lock(folder / f"{host}-gpu{gpu}.lock", gpu)
            if slot is not None:
                return slot
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {ids} after {timeout} s (locks in {folder})")
        if not waiting:
            log.info("all %d GPUs (%s) are in use; waiting for a free one", len(ids), ",".join(ids))
            waiting = True
        time.sleep(poll)


def _try_lock(path: Path, gpu: str) -> Slot | None:
    if str(path) in _held:
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        os.fchmod(fd, 0o666)  # other users' jobs lock it too (the umask took bits away)
    except PermissionError:
        pass  # someone else's file, already shared
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EACCES, errno.EAGAIN):
            return None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
    slot = _held[str(path)] = Slot(gpu, path, fd)
    return slot


def release(slot: Slot) -> None:
    """Give a slot back before the process ends (tests; a job simply exits)."""
    _held.pop(str(slot.path), None)
    os.close(slot.fd)  # closing the descriptor drops the process's lock on the file


def _make_shared_dir(folder: Path) -> None:
    """Create the slot folder writable by every user (sticky, like /tmp)."""
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(folder, 0o1777)
    except PermissionError:
        pass  # made by someone else in the meantime


def _cuda_started() -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_initialized()
