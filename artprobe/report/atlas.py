"""The map made of paintings: 2-D coordinates (t-SNE or PCA) of the same rows for every
model, drawn three ways:

- :func:`picture_map` — the classic image t-SNE: the paintings themselves, snapped to a grid
  (an optimal assignment of points to cells, so neighbours on the map stay neighbours);
- :func:`interactive_page` — one self-contained HTML page (no server, no CDN): every map row a
  dot, coloured by a chosen target, a model picked from a list, and the painting on hover (the
  thumbnails travel in the page as ``data:`` URIs); a drop-down list, not a button per
  model, so the page is as wide with fifteen models as with two;
- the dot scatter of :func:`artprobe.report.plots.plot_map`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np

from artprobe.common.io import write_text
from artprobe.report.escape import page, script_json, text

METHODS = ("tsne", "pca")
CELL = 48  # px per painting in the picture map


def coordinates(X: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, tuple[str, str]]:
    """(n × 2 coordinates, axis names) of the rows of ``X``: PCA, or seeded t-SNE (on the
    first 50 principal components, PCA-initialised, perplexity ≤ 30 and < n / 3)."""
    if method not in METHODS:
        raise ValueError(f"report.map_method {method!r}: choose one of {METHODS}")
    x = X.astype(np.float64) - X.mean(axis=0, dtype=np.float64)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    pcs = u * s
    if method == "pca" or len(x) < 8:
        var = s**2 / max(float((s**2).sum()), 1e-12)
        return pcs[:, :2], (
            f"PC1 ({100 * var[0]:.1f} % of variance)",
            f"PC2 ({100 * var[1]:.1f} % of variance)",
        )
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (len(x) - 1) / 3.0))
    tsne = TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=seed, learning_rate="auto"
    )
    return tsne.fit_transform(pcs[:, :50]), ("t-SNE 1", "t-SNE 2")


def unit_square(xy: np.ndarray) -> np.ndarray:
    """Coordinates scaled into [0, 1]² keeping the aspect ratio, centred."""
    if not len(xy):
        return xy
    lo, extent = xy.min(axis=0), np.ptp(xy, axis=0)
    span = extent.max() if extent.max() > 0 else 1.0
    return (xy - lo) / span + (1 - extent / span) / 2


def grid_cells(xy: np.ndarray, side: int) -> np.ndarray:
    """The (row, col) cell of each point on a side × side grid: the assignment of points to
    distinct cells with the least total squared distance (scipy's linear_sum_assignment)."""
    from scipy.optimize import linear_sum_assignment

    if side * side < len(xy):
        raise ValueError(f"{len(xy)} points do not fit a {side} × {side} grid")
    p = xy - xy.min(axis=0)
    p = p / np.maximum(p.max(axis=0), 1e-12)  # fill the square both ways
    centres = (
        np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2) + 0.5
    ) / side
    cost = ((p[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    cell = np.empty(len(xy), dtype=np.int64)
    cell[rows] = cols
    return np.stack([cell // side, cell % side], axis=1)  # (y, x)


def picture_map(xy: np.ndarray, jpegs: Sequence[bytes], cell: int = CELL):
    """A PIL image: each painting (JPEG bytes) in its grid cell, the map's y axis upwards."""
    from PIL import Image

    side = max(1, math.ceil(math.sqrt(len(jpegs))))
    canvas = Image.new("RGB", (side * cell, side * cell), (255, 255, 255))
    if not len(jpegs):
        return canvas
    for (r, c), data in zip(grid_cells(xy, side), jpegs):
        img = Image.open(io.BytesIO(data)).convert("RGB")
        img.thumbnail((cell - 2, cell - 2))
        x0 = c * cell + (cell - img.width) // 2
        y0 = (side - 1 - r) * cell + (cell - img.height) // 2
        canvas.paste(img, (x0, y0))
    return canvas


def save_jpeg(img, path, quality: int = 85) -> None:
    from artprobe.common.io import atomic_path

    with atomic_path(path, suffix=".jpg.tmp") as tmp:
        img.save(tmp, format="JPEG", quality=quality, optimize=True)


_BODY = """<p class="note">%s</p>
<div id="bar"><label>model <select id="model"></select></label><br></div><div id="wrap"><svg id="map" viewBox="-20 -20 1040 1040" width="780" height="780"></svg>
<div id="side"><img id="hover" alt="painting"><div id="info">Hover over a dot.</div><div id="legend"></div></div></div>
"""

# Strings from the data reach the DOM as text nodes (textContent, append): never innerHTML.
_SCRIPT = """<script>
const D = JSON.parse(document.getElementById("map-data").textContent);
const PAL = ["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf",
"#aec7e8","#ffbb78","#98df8a","#ff9896","#c5b0d5","#c49c94","#f7b6d2","#c7c7c7","#dbdb8d","#9edae5"];
const NS = "http://www.w3.org/2000/svg", svg = document.getElementById("map");
let model = D.models[0], target = D.target;
const dots = D.rows.map((r, i) => { const c = document.createElementNS(NS, "circle");
  c.setAttribute("r", D.thumbs[i] ? 6 : 3.5); if (D.thumbs[i]) c.setAttribute("class", "t");
  c.dataset.i = i; svg.appendChild(c); return c; });
function el(tag, text) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; }
function colour(i) { const v = D.labels[target][i]; return v < 0 ? "#ddd" : PAL[v % PAL.length]; }
function className(t, i) { return (D.classes[t] || [])[D.labels[t][i]] || "?"; }
function legend() { const box = document.getElementById("legend"), seen = new Set(D.labels[target]);
  box.replaceChildren(el("b", target), el("br"));
  (D.classes[target] || []).forEach((n, v) => { if (!seen.has(v)) return;
    const dot = el("span"); dot.style.background = PAL[v % PAL.length];
    const line = el("div"); line.append(dot, n); box.append(line); }); }
function draw() { const xy = D.xy[model];
  dots.forEach((c, i) => { c.setAttribute("cx", (xy[i][0] * 1000).toFixed(1));
    c.setAttribute("cy", ((1 - xy[i][1]) * 1000).toFixed(1)); c.setAttribute("fill", colour(i)); });
  document.querySelectorAll("#bar button").forEach(b => b.classList.toggle("on", b.dataset.t === target));
  legend(); }
const pick = document.getElementById("model");
D.models.forEach(m => { const o = el("option", m); o.value = m; pick.appendChild(o); });
pick.onchange = () => { model = pick.value; draw(); };
function button(text, value) { const b = el("button", text);
  b.dataset.t = value; b.onclick = () => { target = value; draw(); };
  document.getElementById("bar").appendChild(b); }
Object.keys(D.labels).forEach(t => button("colour: " + t, t));
let last = null;
svg.addEventListener("mouseover", ev => { const i = ev.target.dataset && ev.target.dataset.i; if (i === undefined) return;
  if (last) last.classList.remove("hi"); last = dots[i]; last.classList.add("hi");
  const img = document.getElementById("hover");
  if (D.thumbs[i]) { img.src = D.thumbs[i]; img.style.display = "block"; } else { img.style.display = "none"; }
  const info = document.getElementById("info");
  info.replaceChildren("row " + D.rows[i] + (D.thumbs[i] ? "" : " (no thumbnail)"));
  Object.keys(D.labels).forEach(t => info.append(el("br"), t + ": ", el("b", className(t, i)))); });
draw(); window.mapReady = true;
</script>"""


def interactive_page(
    path,
    xy: Mapping[str, np.ndarray],
    rows: Sequence[int],
    labels: Mapping[str, Sequence[int]],
    classes: Mapping[str, list],
    thumbs: Sequence[str | None],
    target: str,
    note: str,
) -> None:
    """Write the page: ``xy`` per model (aligned with ``rows``), class ids per target,
    a ``data:`` URI or None per row, the target that colours the dots first, and ``note``
    (plain text, escaped here). The data travels as JSON (:func:`script_json`);
    the page's script shows every name in it as text."""
    data = {
        "models": list(xy),
        "xy": {m: np.round(unit_square(v), 4).tolist() for m, v in xy.items()},
        "rows": [int(r) for r in rows],
        "labels": {t: [int(v) for v in ids] for t, ids in labels.items()},
        "classes": {t: [str(n) for n in classes.get(t) or []] for t in labels},
        "thumbs": list(thumbs),
        "target": target,
    }
    body = (
        _BODY % text(note)
        + f'<script type="application/json" id="map-data">{script_json(data)}</script>'
    )
    write_text(path, page("Map of paintings", "map", body, _SCRIPT))
