"""A dataset's own strings are text on every page of the report, never markup or code.

Each page builder gets class names, model and classifier names, file names and sources that
would add elements or run script if a page took them as HTML (:data:`PAYLOADS`), through the
real classify fits of test_report.py (its class names replaced by these); every page must
show them as the literal text and hold no element or attribute they spell. The browser tier
(tests/test_report_html.py) runs the same strings through the workflow and opens every page.
"""

from __future__ import annotations

import json
import logging
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import test_report

from artprobe.common.io import read_json
from artprobe.report import atlas, html, plots, sheets, tables, verdict
from artprobe.report.escape import formula_cells, script_json
from artprobe.report.load import load_fits

#: strings that add elements or run script where a page takes them as HTML; a payload that
#: runs sets ``data-xss<N>`` on ``<html>`` (what the browser tier looks for)
PAYLOADS = [
    "<img src=x onerror=document.documentElement.dataset.xss1=1>",
    '"><svg onload=document.documentElement.dataset.xss2=1>',
    "x' autofocus tabindex=0 onfocus='document.documentElement.dataset.xss3=1",
    "</script><script>document.documentElement.dataset.xss4=1</script>",
    '\\";document.documentElement.dataset.xss5=1;//',
    "<!--<script>",
    "<marquee>Tom &amp; Jerry",
    '=HYPERLINK("x","$\\bad$")\u2028@SUM(1)',
]
#: file names with the same intent (no "/": they name files)
FILE_PAYLOADS = [
    "x' onerror='document.documentElement.dataset.xss6=1'.png",
    '"><img src=x onerror=document.documentElement.dataset.xss7=1>.jpg',
]
#: what the payloads would add: elements, and attributes of the page's own elements
BAD_TAGS = {"img": "src=x", "svg": "onload", "marquee": "", "script": "", "iframe": ""}


def hostile_names(target: str, n: int) -> list[str]:
    """``n`` distinct class names, every one a payload."""
    return [f"{PAYLOADS[i % len(PAYLOADS)]} {target}{i}" for i in range(n)]


class _Page(HTMLParser):
    """A page's elements (tag, attributes), its text (no CSS) and its scripts' contents."""

    def __init__(self, source: str):
        super().__init__(convert_charrefs=True)
        self.elements, self.text, self.scripts, self._raw = [], [], [], None
        self.feed(source)
        self.close()
        self.text = "".join(self.text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._raw = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag):
        self._raw = None

    def handle_data(self, data):
        if self._raw != "style":
            (self.scripts if self._raw == "script" else self.text).append(data)


def check_page(path: Path, shown=(), scripts: int = 0) -> _Page:
    """The page holds no element or attribute a payload spells, exactly ``scripts`` script
    elements (its own), and shows each of ``shown`` as text."""
    page = _Page(Path(path).read_text())
    for tag, attrs in page.elements:
        handlers = [a for a in attrs if a.startswith("on") or a in ("autofocus", "tabindex")]
        assert not handlers, f"{path.name}: <{tag}> got {handlers} from the data"
        assert tag not in ("marquee", "iframe"), f"{path.name}: a <{tag}> from the data"
        assert tag != "img" or attrs.get("src", "data:").startswith("data:"), (path.name, attrs)
    assert sum(tag == "script" for tag, _ in page.elements) == scripts, path.name
    for s in shown:
        assert s in page.text, f"{path.name}: {s!r} not shown as text"
    return page


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """test_report's results with hostile class names: build_report's inputs plus the
    loaded fits, the classes and the manifest."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(test_report, "_names", hostile_names)
        kw = test_report.make_results(tmp_path_factory.mktemp("hostile"))
    man = read_json(kw["manifest"])
    return {**kw, "loaded": load_fits(kw["fits"]), "classes": man["classes"], "man": man}


def overwrite_strings(df: pd.DataFrame, skip=()) -> pd.DataFrame:
    """``df`` with every string cell (outside ``skip``) replaced by a payload, in turn."""
    out, k = df.copy(), 0
    for col in [c for c in df.columns if c not in skip and df[c].dtype == object]:
        vals = []
        for v in df[col]:
            vals.append(PAYLOADS[k % len(PAYLOADS)] if isinstance(v, str) and v else v)
            k += isinstance(v, str) and bool(v)
        out[col] = vals
    return out


def _table_sections(h, page: str) -> tuple[list[str], list[str]]:
    """(sections of the table page ``page`` with payloads in every string column, the
    strings it must show)."""
    fits, targets = h["loaded"], list(test_report.TARGETS)
    summary = tables.summary_table(fits, n_boot=0, seed=0)
    if page in ("summary", "verdict", "comparisons"):
        comps = tables.comparison_table(fits, test_report.MODELS, n_boot=20, seed=0)
        if page == "comparisons":
            c = overwrite_strings(comps, skip=("target", "metric", "method"))
            return html.comparison_sections(c), list(c["model_a"])
        if page == "verdict":
            v = overwrite_strings(verdict.verdict_table(summary, comps), skip=("outcome",))
            return html.verdict_sections(v), list(v["sentence"])
        named = [{**f, "model": PAYLOADS[i % 8]} for i, f in enumerate(fits)]
        s = overwrite_strings(summary, skip=("target",))
        return html.summary_sections(s) + html.search_sections(s, named), list(s["model"])
    if page == "dataset":
        dataset, splits = tables.dataset_tables(h["split"], h["embeddings"], targets, h["classes"])
        fails = tables.failure_table(h["failures"], h["embeddings"], h["man"])
        fails["top_reasons"] = [f"cannot decode {FILE_PAYLOADS[0]}: 1"] * len(fails)
        man = {**h["man"], "source": FILE_PAYLOADS[1]}
        shown = [n for t in targets for n in h["classes"][t]] + [FILE_PAYLOADS[1]]
        return html.dataset_sections(splits, fails, dataset, man, {}), shown
    cost = overwrite_strings(tables.cost_table(h["embeddings"], fits, h["man"]["n_rows"]))
    return html.cost_sections(cost, h["man"]["n_rows"]), list(cost["model"])


@pytest.mark.parametrize("page", ["verdict", "summary", "comparisons", "dataset", "cost"])
def test_table_pages_show_every_name_as_text(hostile, page, tmp_path):
    sections, shown = _table_sections(hostile, page)
    out = tmp_path / f"{page}.html"
    html.write_html(out, PAYLOADS[0], sections)
    assert shown
    parsed = check_page(out, shown)
    assert parsed.text.startswith(PAYLOADS[0] + PAYLOADS[0])  # the page's title and heading


def _renamed(d: dict, names: dict) -> dict:
    """A gallery/disagreement/confusion dict with its model names replaced."""
    d = json.loads(json.dumps(d))
    if "neighbours" in d:
        d["neighbours"] = {names.get(m, m): v for m, v in d["neighbours"].items()}
    for fit in [d.get("a"), d.get("b"), d]:
        if isinstance(fit, dict) and "model" in fit:
            fit["model"] = names.get(fit["model"], fit["model"])
    return d


def _pairs(thumbs: sheets.Thumbs, target: str) -> list[dict]:
    """A confused pair (true class i, predicted i + 1) per class with a thumbnail."""
    ids = thumbs.labels[target]
    by_class = {int(c): list(ids.index[ids == c]) for c in sorted(set(ids)) if c >= 0}
    order = list(by_class)
    return [
        {"true": a, "pred": b, "count": 1, "support": len(by_class[a]),
         "a_right": by_class[a][:1], "a_as_b": by_class[a][1:2], "b_right": by_class[b][:1]}
        for a, b in zip(order, order[1:] + order[:1])
    ]  # fmt: skip


@pytest.mark.parametrize("sheet", ["gallery", "disagreements", "confusions"])
def test_painting_sheets_show_every_name_as_text(hostile, sheet, tmp_path):
    chosen, thumbs = read_json(hostile["rows"]), sheets.Thumbs(hostile["thumbnails"])
    names = dict(zip(test_report.MODELS, PAYLOADS[1:]))  # models named as payloads too
    classes, target, out = hostile["classes"], "style", tmp_path / f"{sheet}.html"
    if sheet == "gallery":
        g = _renamed(chosen["gallery"][target], names)
        sheets.gallery_sheet(out, target, g, thumbs, classes, chosen["k"], chosen["center"])
        rows = g["queries"] + [r for m in g["neighbours"].values() for q in m for r in q]
    elif sheet == "disagreements":
        d = _renamed(chosen["disagreements"][target], names)
        sheets.disagreement_sheet(out, target, d, thumbs, classes)
        rows = [r["row_id"] for r in d["a_only"] + d["b_only"]]
    else:  # test_report's best fits make no mistakes: one pair per class, of its paintings
        c = {"model": names["good"], "classifier": PAYLOADS[3], "pairs": _pairs(thumbs, target)}
        sheets.confusion_sheet(out, target, c, thumbs, classes)
        rows = [r for p in c["pairs"] for r in p["a_right"]]
        names = {"good": c["model"]}
    labels = {thumbs.label(r, target) for r in rows}
    shown = [classes[target][i] for i in labels if i is not None and i >= 0]
    assert len(shown) >= 2
    check_page(out, shown + list(names.values()))


def _map_data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', page, re.S)
    assert m, "no map data block"
    return json.loads(m.group(1))


def test_interactive_map_carries_names_as_data_and_shows_them_as_text(hostile, tmp_path):
    classes = hostile["classes"]
    n = 24
    labels = {t: [i % len(classes[t]) for i in range(n)] for t in ("style", "genre")}
    xy = {m: np.random.default_rng(0).normal(size=(n, 2)) for m in PAYLOADS[2:4]}
    out = tmp_path / "interactive.html"
    atlas.interactive_page(
        out, xy, list(range(n)), labels, classes, [None] * n, "style", PAYLOADS[0]
    )
    source = out.read_text()
    check_page(out, [PAYLOADS[0]], scripts=2)  # the data block and the page's code
    assert _map_data(source)["classes"] == {t: classes[t] for t in labels}  # read back exactly
    assert list(_map_data(source)["xy"]) == PAYLOADS[2:4]
    script = source[source.index("<script>") :]
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    assert "textContent" in script
    assert re.findall(r'(?:src|href)=["\']?(?!data:)\w+:', source) == []  # offline


def test_script_json_cannot_end_or_bend_its_script():
    names = ["</script><script>x()</script>", "<!--<script>", "a\u2028b\u2029c", "&amp;"]
    encoded = script_json({"classes": names})
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in encoded
    assert json.loads(encoded) == {"classes": names}


def _plot_texts(fig) -> list[str]:
    """The strings a drawn figure shows (matplotlib's ``\\$`` is a literal ``$``), checking
    that none is parsed as mathtext."""
    from matplotlib import cbook
    from matplotlib.text import Text

    fig.canvas.draw()  # mathtext that cannot be parsed fails here
    out = []
    for t in fig.findobj(Text):
        s = t.get_text()
        assert not cbook.is_math_text(s), f"{s!r} is drawn as mathtext"
        out.append(s.replace(r"\$", "$"))
    return out


def test_plots_draw_class_names_as_written(hostile):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fits, classes, target = hostile["loaded"], hostile["classes"], "style"
    fit = next(f for f in fits if f["target"] == target)
    names = classes[target]
    dataset, _ = tables.dataset_tables(hostile["split"], hostile["embeddings"], [target], classes)
    pairs = tables.confused_pairs(fit, names)
    sel = [f for f in fits if f["target"] == target and f["classifier"] == fit["classifier"]]
    colors = plots.model_colors(test_report.MODELS)
    figs = {
        "confusion": plots.plot_confusion(fit, names),
        "counts": plots.plot_class_counts(dataset, target),
        "f1": plots.plot_per_class_f1(sel, test_report.MODELS, colors, target, "knn"),
        "map": plots.plot_map("m", np.random.default_rng(0).normal(size=(40, 2)),
                              [i % len(names) for i in range(40)], names, target),
        "pairs": plots.plot_confused_pairs(pairs, fit),
    }  # fmt: skip
    for what, fig in figs.items():
        FigureCanvasAgg(fig)
        shown = "\n".join(_plot_texts(fig))
        want = names if what != "pairs" else list(pairs["true_class"])
        missing = [n for n in want if n not in shown]
        assert not missing, f"{what}: {missing} not drawn as written"


def test_csv_keeps_every_name_and_names_the_formulas(hostile, tmp_path, caplog):
    per_class = tables.per_class_table(hostile["loaded"])
    out = tmp_path / "per_class.csv"
    with caplog.at_level(logging.WARNING, logger="artprobe.report.html"):
        html.write_csv(out, per_class)
    names = {n for t in test_report.TARGETS for n in hostile["classes"][t]}
    assert set(pd.read_csv(out)["class"]) == names & set(per_class["class"])
    assert set(pd.read_csv(out, dtype=str)["class"]) == set(per_class["class"])
    pl = pytest.importorskip("polars")
    assert set(pl.read_csv(out)["class"].to_list()) == set(per_class["class"])
    formulas = [n for n in per_class["class"].unique() if n.startswith("=")]
    assert formulas and formula_cells(per_class) == formulas
    assert "per_class.csv" in caplog.text and "formula" in caplog.text


def test_numbers_and_plain_names_are_not_formulas():
    df = pd.DataFrame({"class": ["Baroque", "-0.5", "+3", "Rococo"], "n": [-1, 2, 3, 4]})
    assert formula_cells(df) == []
    assert formula_cells(df.assign(extra=["@x", "", "a", "-b"])) == ["@x", "-b"]
