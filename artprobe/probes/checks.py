"""Value checks for probe hyper-parameters (torch-free): each returns the value, normalised,
or raises ``ValueError`` saying what it must be. The registry's specs are built from them."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], Any]


def _is_bool(v: Any) -> bool:
    """Python's or numpy's bool (numpy is not imported: the layout reads this at parse time)."""
    return isinstance(v, bool) or (
        type(v).__module__ == "numpy" and type(v).__name__ in ("bool", "bool_")
    )


def is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not _is_bool(v)


def integer(lo: int) -> Check:
    def check(v: Any) -> int:
        whole = isinstance(v, numbers.Integral) or (
            isinstance(v, numbers.Real) and float(v).is_integer()
        )
        if _is_bool(v) or not whole or int(v) < lo:
            raise ValueError(f"must be an integer >= {lo}, got {v!r}")
        return int(v)

    return check


def number(lo: float, hi: float = math.inf, lo_open: bool = True) -> Check:
    interval = f"{'(' if lo_open else '['}{lo}, {hi}]"

    def check(v: Any) -> float:
        if not is_number(v) or not math.isfinite(float(v)):
            raise ValueError(f"must be a number in {interval}, got {v!r}")
        f = float(v)
        if (f <= lo if lo_open else f < lo) or f > hi:
            raise ValueError(f"must be a number in {interval}, got {v!r}")
        return f

    return check


def choice(*options: str) -> Check:
    def check(v: Any) -> str:
        if v is None and "none" in options:
            return "none"
        if not isinstance(v, str) or v not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {v!r}")
        return v

    return check


def one_or_more(check: Check) -> Check:
    """A value or a non-empty list of values, each passing ``check``; always a list."""

    def many(v: Any) -> list:
        values = list(v) if isinstance(v, (list, tuple)) else [v]
        if not values:
            raise ValueError("must be a value or a non-empty list, got []")
        return [check(x) for x in values]

    return many


def boolean(v: Any) -> bool:
    if not _is_bool(v):
        raise ValueError(f"must be true or false, got {v!r}")
    return bool(v)


#: ``class_weight``, a key of every kind: (default, check)
CLASS_WEIGHT = ("none", choice("none", "balanced"))
