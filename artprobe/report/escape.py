"""Strings from data are text: the one way a class name, a file name or a name from the
config reaches a page of the report.

A report is opened by people other than the one who ran it, so nothing a dataset says may
become markup or code in their browser (docs/report.md):

- :func:`text` — a string as HTML text, safe in element content and in quoted attributes;
  every page's HTML is built with it, and every page is one :func:`page`;
- :func:`script_json` — data for a page's script, as JSON in a ``<script
  type="application/json">`` block that no string can end or bend (the page's code reads it
  with ``JSON.parse`` and shows strings with ``textContent``, never ``innerHTML``);
- :func:`plot_text` — a string as a matplotlib label, drawn as written (no mathtext);
- :func:`formula_cells` — the CSV cells a spreadsheet would take for a formula (the CSVs
  keep them as they are; the report job names them in its log).
"""

from __future__ import annotations

import html
import json
from typing import Any

import pandas as pd

from artprobe.report.style import KINDS, STYLESHEET

#: characters that make a spreadsheet read a cell as a formula (OWASP's CSV injection list)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# "<" and ">" end or bend a script ("</script>", "<!--"); "&" only for good measure
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def text(value: Any) -> str:
    """``value`` as HTML text: ``& < > " '`` escaped, so it is text in an element and in an
    attribute quoted with either quote."""
    return html.escape(str(value), quote=True)


def script_json(value: Any) -> str:
    """``value`` as JSON to put inside ``<script type="application/json">``.

    No ``<``, ``>`` or ``&`` is left (``\\u003c`` …), so no string can close the script
    (``</script>``) or open a comment in it (``<!--``); every non-ASCII character, U+2028 and
    U+2029 among them, is a ``\\u`` escape. ``JSON.parse`` reads back every string as it was.
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).translate(_SCRIPT_SAFE)


def page(title: str, kind: str, body: str, script: str = "") -> str:
    """One self-contained page: ``title`` (text) as its title and heading, the report's one
    stylesheet (:data:`artprobe.report.style.STYLESHEET`) with the rules of ``kind`` (one of
    :data:`~artprobe.report.style.KINDS`), ``body`` (HTML built with :func:`text`) and
    ``script`` (HTML: the page's own ``<script>`` blocks)."""
    if kind not in KINDS:
        raise ValueError(f"page kind {kind!r}: not one of {KINDS}")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{text(title)}</title>"
        f"<style>{STYLESHEET}</style></head><body class='{kind}'><h1>{text(title)}</h1>"
        f"{body}{script}</body></html>\n"
    )


def plot_text(value: Any) -> str:
    """``value`` for a matplotlib label: its ``$`` escaped, so a name with two of them is
    drawn as written instead of parsed as mathtext (which fails on unknown commands)."""
    return str(value).replace("$", r"\$")


def formula_cells(df: pd.DataFrame) -> list[str]:
    """The distinct string cells of ``df`` that begin with a :data:`FORMULA_START` character."""
    found: dict[str, None] = {}
    for col in df.columns:
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col]):
            for v in df[col]:
                if isinstance(v, str) and v.startswith(FORMULA_START) and not _number(v):
                    found[v] = None
    return list(found)


def _number(v: str) -> bool:
    """Whether a spreadsheet reads ``v`` as a number (``-0.5``: a value, not a formula)."""
    try:
        float(v)
    except ValueError:
        return False
    return True
