"""What the report shows where config ``report:`` leaves it to the data (stdlib only).

One rule serves the per-class F1 plot and the embedding map: the target with the most
classes that still fit a readable plot (at most :data:`MATRIX_MAX_CLASSES`), else the one
with the fewest. A target with more classes than that gets its top confused pairs instead
of a confusion matrix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: Above this many classes a confusion matrix is unreadable: show the top confused pairs.
MATRIX_MAX_CLASSES = 30


def class_counts(fits: Iterable[Mapping]) -> dict[str, int]:
    """Classes per target, from the fits' metrics (the most any fit of the target saw)."""
    counts: dict[str, int] = {}
    for f in fits:
        n = f["metrics"].get("n_classes") or len(f["class_names"])
        counts[f["target"]] = max(counts.get(f["target"], 0), int(n))
    return counts


def readable_target(counts: Mapping[str, int]) -> str | None:
    """The target with the most classes ≤ MATRIX_MAX_CLASSES, else the one with fewest."""
    if not counts:
        return None
    fits = [t for t, n in counts.items() if n <= MATRIX_MAX_CLASSES]
    if fits:
        return max(fits, key=lambda t: counts[t])
    return min(counts, key=lambda t: counts[t])


def shows_pairs(
    target: str, counts: Mapping[str, int], pairs_targets: Iterable[str] | None
) -> bool:
    """Whether ``target``'s error plot is the top confused pairs rather than a matrix."""
    if pairs_targets is not None:
        return target in set(pairs_targets)
    return counts.get(target, 0) > MATRIX_MAX_CLASSES
