"""Route a script's logging, warnings and stderr into its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import weakref
from collections.abc import Iterator


class ClearError(RuntimeError):
    """An error whose one-line message says what went wrong and what to do (the hub cannot be
    reached, no CUDA device): :func:`to_log` ends the log with that line, the traceback only
    at debug level, and the job exits with it instead of a traceback."""


@contextlib.contextmanager
def to_log(path: str | os.PathLike | None, level: int = logging.INFO) -> Iterator[None]:
    """Send ``logging``, ``warnings`` and ``sys.stderr`` (tqdm bars included) to ``path``.

    Exceptions raised inside the block are logged with their traceback, then re-raised
    so that Snakemake marks the job as failed. A :class:`ClearError` is logged as its message
    alone, the log's last line, and ends the process with that message (``SystemExit``), so
    the job's stderr, and Snakemake's output, end with it too.
    """
    if path is None:
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        old_level = root.level
        root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(True)
        old_stderr = sys.stderr
        sys.stderr = fh
        clear = None
        try:
            yield
        except ClearError as err:
            logging.getLogger("artprobe").debug("job failed", exc_info=True)
            logging.getLogger("artprobe").error("%s", err)
            clear = err
        except BaseException:
            logging.getLogger("artprobe").exception("job failed")
            raise
        finally:
            sys.stderr = old_stderr
            logging.captureWarnings(False)
            root.removeHandler(handler)
            root.setLevel(old_level)
    if clear is not None:
        raise SystemExit(str(clear)) from None


def progress(
    iterable=None,
    *,
    total: int | None = None,
    desc: str,
    unit: str = "it",
    initial: int = 0,
    enabled: bool = True,
    **kwargs,
):
    """A tqdm bar with rate for a long loop, written where the job logs (``sys.stderr``, which
    :func:`to_log` sends to the log file): every second on a terminal, every 15 s into a
    file, so a log shows how far the job got and how fast without growing by a line per
    step. ``enabled=False`` shows nothing (the loop runs the same), and neither does a loop
    inside a loop whose bar is shown (the few-shot curve's linear fits: its bar counts them)."""
    from tqdm.auto import tqdm

    kwargs.setdefault("mininterval", 1.0 if sys.stderr.isatty() else 15.0)
    kwargs.setdefault("smoothing", 0.05)
    nested = any(not bar.disable for bar in _SHOWN)  # closing a bar disables it
    bar = tqdm(
        iterable,
        total=total,
        initial=initial,
        unit=unit,
        desc=desc,
        file=sys.stderr,
        disable=not enabled or nested,
        **kwargs,
    )
    if not bar.disable:
        _SHOWN.add(bar)
    return bar


_SHOWN: weakref.WeakSet = weakref.WeakSet()  # the bars progress() has shown (open or closed)
