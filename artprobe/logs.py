"""Route a script's logging, warnings and stderr into its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def to_log(path: str | os.PathLike | None, level: int = logging.INFO) -> Iterator[None]:
    """Send ``logging``, ``warnings`` and ``sys.stderr`` (tqdm bars included) to ``path``.

    Exceptions raised inside the block are logged with their traceback, then re-raised
    so that Snakemake marks the job as failed.
    """
    if path is None:
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        root = logging.getLogger()
        old_level = root.level
        root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(True)
        old_stderr = sys.stderr
        sys.stderr = fh
        try:
            yield
        except BaseException:
            logging.getLogger("artprobe").exception("job failed")
            raise
        finally:
            sys.stderr = old_stderr
            logging.captureWarnings(False)
            root.removeHandler(handler)
            root.setLevel(old_level)
