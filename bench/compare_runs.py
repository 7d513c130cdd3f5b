"""Do two runs give the same numbers? Compares their fits and few-shot curves.

    python bench/compare_runs.py /tmp/run-a/results/demo results/demo

For every ``classify/<model>/<target>/<classifier>/metrics.json`` and ``fewshot/<model>/<target>.json``
present in both: the JSON without timings (``seconds``, ``*_seconds``, ``*_s``, ``threads``) and
without ``info`` (losses, iteration counts), the classification report text, and the predicted
labels (with the largest probability difference). Prints one line per fit and a count.
"""

from __future__ import annotations

import argparse
import filecmp
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

TIMING = {"seconds", "threads"}


def _strip(o):
    if isinstance(o, dict):
        return {
            k: _strip(v)
            for k, v in o.items()
            if k not in TIMING and k != "info" and not k.endswith(("_seconds", "_s"))
        }
    if isinstance(o, list):
        return [_strip(v) for v in o]
    return o


def _diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{path}/{k}")
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [(path, a, b)]


def _predictions(a: Path, b: Path) -> str:
    ta, tb = pq.read_table(a), pq.read_table(b)
    note = (
        ""
        if ta.column("y_pred").to_pylist() == tb.column("y_pred").to_pylist()
        else " PREDICTIONS DIFFER"
    )
    pa_ = np.stack(ta.column("proba").to_numpy(zero_copy_only=False))
    pb_ = np.stack(tb.column("proba").to_numpy(zero_copy_only=False))
    return note + f" (max |d proba| {np.abs(pa_ - pb_).max():.1e})"


def compare(a: Path, b: Path) -> tuple[int, int]:
    """Print one line per fit found in both runs; return (identical, compared)."""
    same = n = 0
    for fa in sorted(a.glob("classify/*/*/*/metrics.json")) + sorted(a.glob("fewshot/*/*.json")):
        fb = b / fa.relative_to(a)
        if not fb.exists():
            continue
        n += 1
        diffs = _diff(_strip(json.loads(fa.read_text())), _strip(json.loads(fb.read_text())))
        note = ""
        if fa.name == "metrics.json":
            report = "classification_report.txt"
            if not filecmp.cmp(fa.parent / report, fb.parent / report, shallow=False):
                note += " REPORT TEXT DIFFERS"
            note += _predictions(
                fa.parent / "predictions.parquet", fb.parent / "predictions.parquet"
            )
        ok = not diffs and "DIFFER" not in note
        same += ok
        print(f"{'same' if ok else 'DIFF'} {fa.relative_to(a)}{note} {diffs[:3] if diffs else ''}")
    return same, n


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path, help="one run's results/<dataset> folder")
    ap.add_argument("b", type=Path, help="the other's")
    a = ap.parse_args(argv)
    same, n = compare(a.a, a.b)
    print(f"{same}/{n} fits and curves with identical numbers, predictions and report text")


if __name__ == "__main__":
    main()
