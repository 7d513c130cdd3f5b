"""The report as a reader sees it: a Snakemake HTML report opened in headless Chromium.

A self-contained Snakefile in tmp_path wraps every file of ``artprobe.report.layout`` in
``report()`` with its caption from ``report/``, category and labels (the way rules/common.smk
does), runs the workflow on the classify-made fits of test_report.py, builds
``report.html`` and checks that

* every PNG and HTML table is embedded in the report and every caption is rendered;
* Chromium renders the landing page, a plot (the model colours are on screen) and a table
  (the highlighted best row is on screen) as the report's own viewer shows them;
* the neighbour gallery and the interactive map load every thumbnail (``naturalWidth > 0``)
  and hovering a map dot shows its painting;
* a dataset's own strings are text: the workflow runs on a collection whose class and file
  names are the payloads of test_report_safety.py, to ``--report``; on every page it writes
  (and on every hover of the map) none of them runs or adds an element, and the class names
  show as the literal text (docs/report.md).

Screenshots are kept in the test's tmp dir (``pytest --basetemp=DIR`` to look at them).
Needs the Debian package ``chromium`` (plus ``fonts-dejavu-core``); skipped without it unless
ARTPROBE_REQUIRE_CHROMIUM is set.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from html import unescape as html_unescape
from pathlib import Path

import pytest
from test_report import CHOICES, CLASSIFIERS, KINDS, MODELS, TARGETS, make_results
from test_report_safety import FILE_PAYLOADS, PAYLOADS

from artprobe.report.layout import CATEGORIES, report_files, report_layout

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

ROOT = Path(__file__).resolve().parents[1]
TAB10_BLUE, TAB10_ORANGE = (31, 119, 180), (255, 127, 14)  # the first two model colours
BEST_ROW = (0xE6, 0xF2, 0xE6)  # tr.best background in the HTML tables

SNAKEFILE = """
import json
from artprobe.report.build import ReportInputs, build_report
from artprobe.report.compare import StandingsFiles
from artprobe.report.layout import report_layout
from artprobe.settings import ReportSettings

KW = json.load(open("kwargs.json"))
LAYOUT = report_layout(
    KW["models"], KW["targets"], KW["classifiers"], KW["kinds"], **KW["choices"]
)
IN = KW["inputs"]


report: "report/workflow.rst"


rule all:
    input:
        [f"out/{f.path}" for f in LAYOUT],


rule report:
    input:
        fits=IN["fits"],
        fewshot=IN["fewshot"],
        embeddings=[IN["embeddings"][m] for m in KW["models"]],
        failures=[IN["failures"][m] for m in KW["models"]],
        manifest=IN["manifest"],
        split=IN["split"],
        rows=IN["rows"],
        thumbnails=IN["thumbnails"],
        standings=list(IN["standings"].values()),
    output:
        [
            report(
                f"out/{f.path}",
                caption=f"report/{f.caption}",
                category=f.category,
                subcategory=f.subcategory,
                labels=f.labels,
            )
            for f in LAYOUT
        ],
    run:
        build_report(
            ReportInputs(**{**IN, "standings": StandingsFiles(**IN["standings"])}),
            ReportSettings(
                seed=0,
                pairs_targets=KW["choices"]["pairs_targets"],
                map_method="pca",
                map_grid=32,
            ),
            dict(zip([f.id for f in LAYOUT], output)),
        )
"""

# Shown after the app has mounted: the Results category in the navbar and one result in the
# content pane, exactly as a click on it does (AbstractResults.handleImg / handleHtml).
SHOW = """<script>
(function show() {
  if (typeof app === "undefined" || !app) { return setTimeout(show, 50); }
  const path = Object.keys(results).find((p) => p.endsWith(%(suffix)s));
  const category = %(category)s;
  const single = isSingleSubcategory(category);
  app.setView({
    navbarMode: single ? "subcategory" : "category", category: category,
    subcategory: single ? Object.keys(categories[category])[0] : undefined,
    content: %(content)s, contentPath: results[path].data_uri, resultPath: path,
  });
})();
</script></body>"""


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def screenshot(url: str, png: Path, profile: Path) -> None:
    cmd = [
        chromium_binary(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        f"--screenshot={png}",
        "--window-size=1400,1000",
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert png.is_file() and png.stat().st_size > 0, (
        f"no screenshot from chromium:\n{proc.stderr[-3000:]}"
    )


def pixels(png: Path):
    from PIL import Image

    return Image.open(png).convert("RGB")


def count_near(img, rgb, tol: int = 12) -> int:
    import numpy as np

    a = np.asarray(img, dtype=np.int16)
    return int((np.abs(a - np.array(rgb)).max(axis=2) <= tol).sum())


def distinct_colors(img) -> int:
    return len(img.getcolors(maxcolors=1 << 20) or [])


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("report_html")
    kw = make_results(work / "results", n_boot=50)
    kw["standings"] = dataclasses.asdict(kw["standings"])
    (work / "kwargs.json").write_text(
        json.dumps(
            {
                "models": MODELS,
                "targets": list(TARGETS),
                "classifiers": CLASSIFIERS,
                "kinds": KINDS,
                "choices": CHOICES,
                "inputs": kw,
            }
        )
    )
    (work / "Snakefile").write_text(SNAKEFILE)
    shutil.copytree(ROOT / "report", work / "report")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    snakemake = [str(Path(sys.executable).parent / "snakemake"), "--cores", "1"]
    for args in ([], ["--report", "report.html"]):
        proc = subprocess.run(
            snakemake + args, cwd=work, env=env, capture_output=True, text=True, timeout=1800
        )
        assert proc.returncode == 0, (
            f"snakemake {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return work, work / "report.html"


def test_report_embeds_every_file_and_caption(report_html):
    work, page = report_html
    text = page.read_text()
    files = sorted(p for p in (work / "out").rglob("*") if p.is_file())
    layout = report_files(MODELS, list(TARGETS), CLASSIFIERS, KINDS, **CHOICES)
    assert {str(f.relative_to(work / "out")) for f in files} == set(layout.values())
    for f in files:
        # Snakemake embeds each result as a base64 data URI
        assert base64.b64encode(f.read_bytes()).decode() in text, (
            f"{f.relative_to(work)} not embedded"
        )
    assert text.count("data:image/png") >= sum(1 for f in files if f.suffix == ".png") > 0
    layout_files = report_layout(MODELS, list(TARGETS), CLASSIFIERS, KINDS, **CHOICES)
    captions = {"workflow.rst"} | {f.caption for f in layout_files}
    # the report rule's captions (the leaderboard rule's: tests/test_workflow.py)
    for rst in (ROOT / "report" / c for c in sorted(captions)):
        # the first four plain words on one line of the caption, as rendered to HTML
        phrase = next(
            m.group()
            for line in rst.read_text().splitlines()
            for m in [re.search(r"[A-Za-z]+(?: [A-Za-z]+){3}", line)]
            if m
        )
        assert phrase in text, f"caption {rst.name} not rendered (no {phrase!r})"
    for category in CATEGORIES.values():
        assert category in text, f"category {category!r} not in the report"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if chromium_binary() is None:
        if os.environ.get("ARTPROBE_REQUIRE_CHROMIUM"):
            pytest.fail(
                "chromium not found but ARTPROBE_REQUIRE_CHROMIUM is set (apt-get install chromium)"
            )
        pytest.skip("chromium not installed (Debian: apt-get install chromium fonts-dejavu-core)")
    return tmp_path_factory.mktemp("chromium-profile")


def _view(page: Path, suffix: str, category: str, content: str) -> Path:
    """A copy of the report that opens ``category`` and shows the result ending in ``suffix``."""
    script = SHOW % {
        "suffix": json.dumps(suffix),
        "category": json.dumps(category),
        "content": json.dumps(content),
    }
    out = page.with_name(f"view-{content}-{Path(suffix).stem}.html")
    head, sep, tail = page.read_text().rpartition("</body>")
    assert sep, "no </body> in the report"
    out.write_text(head + script + tail)
    return out


@pytest.mark.browser
def test_landing_page_renders(report_html, browser):
    work, page = report_html
    shot = work / "landing.png"
    screenshot(page.as_uri(), shot, browser)
    img = pixels(shot)
    assert img.size == (1400, 1000)
    assert distinct_colors(img) > 50, "landing page is blank"


@pytest.mark.browser
def test_plot_renders_in_report(report_html, browser):
    work, page = report_html
    shot = work / "accuracy-view.png"
    screenshot(_view(page, "accuracy.png", "2. Results", "img").as_uri(), shot, browser)
    img = pixels(shot)
    # the accuracy bars of the two models, in their report-wide colours
    assert count_near(img, TAB10_BLUE) > 3000, "accuracy plot not visible (no model-1 blue)"
    assert count_near(img, TAB10_ORANGE) > 3000, "accuracy plot not visible (no model-2 orange)"


@pytest.mark.browser
def test_table_renders_in_report(report_html, browser):
    work, page = report_html
    shot = work / "summary-view.png"
    screenshot(_view(page, "summary.html", "2. Results", "html").as_uri(), shot, browser)
    img = pixels(shot)
    assert count_near(img, BEST_ROW, tol=3) > 2000, (
        "summary table not visible (no highlighted best row)"
    )


# Run in the page once it has loaded: every <img> and every thumbnail of the map decoded,
# then a hover on the first dot that carries a painting; the outcome lands in data-check.
CHECK = """<script>
window.addEventListener("load", async () => {
  const load = (src) => new Promise((ok) => { const im = new Image();
    im.onload = () => ok(im.naturalWidth); im.onerror = () => ok(0); im.src = src; });
  const imgs = [...document.images].filter((i) => i.getAttribute("src"));
  const widths = await Promise.all(imgs.map((i) => load(i.src)));
  const out = {images: imgs.length, loaded: widths.filter((w) => w > 0).length,
               shown: imgs.filter((i) => i.complete && i.naturalWidth > 0).length};
  if (typeof D !== "undefined") {
    const thumbs = D.thumbs.filter(Boolean);
    const tw = await Promise.all(thumbs.map(load));
    Object.assign(out, {thumbs: thumbs.length, thumbs_loaded: tw.filter((w) => w > 0).length});
    const dot = document.querySelector("circle.t");
    dot.dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));
    const hover = document.getElementById("hover");
    await hover.decode().catch(() => null);
    Object.assign(out, {hover_width: hover.naturalWidth, hover_display: hover.style.display,
                        info: document.getElementById("info").textContent, row: D.rows[+dot.dataset.i]});
  }
  document.body.dataset.check = JSON.stringify(out);
});
</script></body>"""


def _checked(page: Path, dest: Path, check: str = CHECK) -> Path:
    head, sep, tail = page.read_text().rpartition("</body>")
    assert sep, f"no </body> in {page}"
    dest.write_text(head + check + tail)
    return dest


def dump_dom(page: Path, profile: Path, window: str = "1400,1000") -> str:
    """The page's DOM as Chromium serialises it once its scripts ran (in a ``window`` of
    width,height pixels)."""
    cmd = [
        chromium_binary(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={window}",
        "--virtual-time-budget=15000",
        "--dump-dom",
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert "<html" in proc.stdout, f"no DOM from chromium:\n{proc.stderr[-3000:]}"
    return proc.stdout


def run_checks(page: Path, profile: Path) -> dict:
    """The page's data-check (see CHECK) from Chromium's DOM after it ran."""
    m = re.search(r'data-check="([^"]*)"', dump_dom(page, profile))
    assert m, f"{page.name} did not finish its checks"
    import html as _html

    return json.loads(_html.unescape(m.group(1)))


@pytest.mark.browser
def test_gallery_sheet_shows_every_painting(report_html, browser):
    work, _ = report_html
    page = _checked(work / "out" / "galleries" / "style.html", work / "gallery-check.html")
    got = run_checks(page, browser)
    # 8 queries, each with 4 neighbours for each of the 2 models (tests/test_report.py THUMBS)
    assert got["images"] == 8 * (1 + 2 * 4)
    assert got["loaded"] == got["shown"] == got["images"], got
    shot = work / "gallery-sheet.png"
    screenshot(page.as_uri(), shot, browser)
    img = pixels(shot)
    assert count_near(img, (0x1A, 0x96, 0x41), tol=20) > 500, "no green frames"  # same class
    assert count_near(img, (0xD7, 0x19, 0x1C), tol=20) > 500, "no red frames"  # other class
    print(f"screenshot: {shot}")


@pytest.mark.browser
def test_interactive_map_shows_the_painting_on_hover(report_html, browser):
    work, _ = report_html
    page = _checked(work / "out" / "maps" / "interactive.html", work / "map-check.html")
    assert "http://" not in page.read_text().replace("http://www.w3.org/2000/svg", "")  # offline
    got = run_checks(page, browser)
    assert got["thumbs"] == 200 and got["thumbs_loaded"] == 200, got  # THUMBS["map_thumbnails"]
    assert got["hover_width"] > 0 and got["hover_display"] == "block", got
    assert f"row {got['row']}" in got["info"] and "style:" in got["info"]
    shot = work / "map-hover.png"
    screenshot(page.as_uri(), shot, browser)
    assert distinct_colors(pixels(shot)) > 200, "map page blank"
    print(f"screenshot: {shot}")


@pytest.mark.browser
def test_paintings_render_inside_the_report(report_html, browser):
    work, page = report_html
    shot = work / "gallery-view.png"
    screenshot(
        _view(page, "galleries/style.html", "3. Paintings and maps", "html").as_uri(), shot, browser
    )
    assert count_near(pixels(shot), (0x1A, 0x96, 0x41), tol=20) > 300, (
        "gallery not shown in the report"
    )
    print(f"screenshot: {shot}")


# ------------------------------------------- a dataset's own strings are text (issue 25)

HOSTILE_OVERLAY = """
use_datasets: [xss]
datasets:
  xss:
    source: ./collection
    targets: [style, school]
    split:
      method: stratified
      stratify_by: style
shards:
  rows: 24
models:
  - name: vit
    timm: test_vit
    pretrained: false
  - name: convnext
    timm: test_convnext
    pretrained: false
embed:
  precision: fp32
embed_runtime:
  batch_size: 16
  workers: 0
classifiers:
  - name: knn
    kind: knn
    k: 3
  - name: linear
    kind: linear
probe:
  bootstrap: 20
report:
  map_rows: 40
  map_thumbnails: 40
"""

# Run in every page once it has loaded: on the map, every colouring button clicked and every
# dot hovered (legend and hover box kept); then whatever the data could have added.
SAFETY = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const out = {legends: {}, infos: []};
  if (typeof D !== "undefined") {
    for (const b of document.querySelectorAll("#bar button")) {
      b.click(); if (b.dataset.t) out.legends[b.dataset.t] = document.getElementById("legend").textContent; }
    for (const c of document.querySelectorAll("circle")) {
      c.dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));
      out.infos.push(document.getElementById("info").textContent); }
  }
  const added = "marquee, iframe, [onerror], [onload], [onfocus], [autofocus], img[src='x']";
  out.added = [...document.querySelectorAll(added)].map((e) => e.outerHTML.slice(0, 100));
  out.external = [...document.querySelectorAll("[src], [href]")]
    .map((e) => e.getAttribute("src") || e.getAttribute("href")).filter((u) => !/^(data:|#)/.test(u));
  out.scripts = document.scripts.length - 1;
  out.marks = Object.keys(document.documentElement.dataset);
  out.text = document.body.textContent;
  document.body.dataset.check = JSON.stringify(out);
}, 300));
</script></body>"""


def write_hostile_collection(root: Path) -> dict[str, list[str]]:
    """48 images (metadata.csv layout) whose style and school names are the payloads of
    test_report_safety, some files named as payloads and one of them broken; returns the
    class names per target."""
    import csv

    import numpy as np
    from PIL import Image

    classes = {"style": PAYLOADS[:4], "school": PAYLOADS[4:]}
    rows = []
    for i in range(48):
        name = f"works/{i:02d} {FILE_PAYLOADS[i % 2] if i % 5 == 0 else 'plain.png'}"
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if i == 5:  # broken: its failure is listed on the dataset page
            path.write_bytes(b"not an image")
        else:
            rgb = np.full((32, 32, 3), (60 * (i % 4), 200 - 40 * (i % 4), 90), np.uint8)
            noise = np.random.default_rng(i).integers(0, 60, (32, 32, 3)).astype(np.uint8)
            Image.fromarray(rgb + noise).save(path, "PNG")
        rows.append(
            {
                "file_name": name,
                "style": classes["style"][i % 4],
                "school": classes["school"][i // 4 % 4],
            }
        )
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return classes


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory) -> tuple[Path, dict]:
    """The workflow run on the hostile collection, to ``--report``: (workdir, class names
    per target as the manifest lists them)."""
    from conftest import copy_workflow, snakemake

    work = copy_workflow(tmp_path_factory.mktemp("hostile_report"))
    classes = write_hostile_collection(work / "collection")
    (work / "xss.yaml").write_text(HOSTILE_OVERLAY)
    snakemake(work, "--cores", "2", "--configfile", "xss.yaml")
    snakemake(work, "--cores", "2", "--configfile", "xss.yaml", "--report", "report.html")
    listed = json.loads((work / "results" / "xss" / "manifest.json").read_text())["classes"]
    assert {t: set(v) for t, v in listed.items()} == {t: set(v) for t, v in classes.items()}
    return work, listed  # in the manifest's order, the map's


def _html_tag(dom: str) -> str:
    return re.search(r"<html[^>]*>", dom).group()


def _check_result(dom: str, where: str) -> dict:
    """What SAFETY found; its absence means the page's scripts did not run to their end."""
    m = re.search(r'data-check="([^"]*)"', dom)
    assert m, f"{where}: the checks did not run (a string from the data bent a script?)"
    return json.loads(html_unescape(m.group(1)))


@pytest.mark.browser
def test_no_name_from_the_data_runs_on_any_page(hostile_report, browser):
    work, classes = hostile_report
    report = work / "results" / "xss" / "report"
    pages = sorted(report.rglob("*.html"))
    assert len(pages) == 6 + 3 * 2 + 1  # leaderboard and tables, three sheets per target, map
    must_show = {  # the pages that list every class of a target
        "tables/dataset.html": [n for t in classes for n in classes[t]],
        "galleries/style.html": classes["style"],
        "galleries/school.html": classes["school"],
    }
    checked = work / "checked"
    checked.mkdir()
    for page in pages:
        where = str(page.relative_to(report))
        copy = _checked(page, checked / where.replace("/", "-"), SAFETY)
        dom = dump_dom(copy, browser)
        assert "data-xss" not in _html_tag(dom), f"a payload ran in {where}"
        got = _check_result(dom, where)
        assert got["marks"] == [] and got["added"] == [], (where, got["marks"], got["added"])
        assert got["external"] == [], (where, got["external"])  # self-contained
        assert got["scripts"] == (2 if page.name == "interactive.html" else 0), where
        missing = [n for n in must_show.get(where, []) if n not in got["text"]]
        assert not missing, f"{where}: {missing} not shown as text"
    dom = dump_dom(work / "report.html", browser)  # Snakemake's report, every file in it
    assert "data-xss" not in _html_tag(dom)


# colour the map by one target and hover the first painting of its class 1, for a screenshot
# of the legend and the hover box
HOVER = """<script>window.addEventListener("load", () => {
  document.querySelector("#bar button[data-t=%(t)s]").click();
  const dot = [...document.querySelectorAll("circle.t")].find((c) => D.labels.%(t)s[+c.dataset.i] === 1);
  dot.dispatchEvent(new MouseEvent("mouseover", {bubbles: true})); });
</script></body>"""


@pytest.mark.browser
def test_hostile_names_on_the_map_are_text_in_legend_and_hover(hostile_report, browser):
    work, classes = hostile_report
    page = work / "results" / "xss" / "report" / "maps" / "interactive.html"
    got = _check_result(dump_dom(_checked(page, work / "map-safety.html", SAFETY), browser), "map")
    assert got["marks"] == [] and got["added"] == [], got["added"]
    for t, names in classes.items():  # every class is on the map (40 rows, all 8 classes)
        assert got["legends"][t] == t + "".join(names), got["legends"][t]
    infos = "\n".join(got["infos"])
    assert len(got["infos"]) == 40 and all(n in infos for t in classes for n in classes[t])
    for t in classes:  # docs/report-safety-map.png: the side panels of these, side by side
        shot = work / f"map-hostile-{t}.png"
        hover = _checked(page, work / f"map-hover-{t}.html", HOVER % {"t": t})
        screenshot(hover.as_uri(), shot, browser)
        assert distinct_colors(pixels(shot)) > 100, "map page blank"
        print(f"screenshot: {shot}")
