"""The report's painting sheets, as self-contained HTML (thumbnails as ``data:`` URIs):

- :func:`gallery_sheet` — one row per query painting, one block per model with its k nearest
  train paintings, each framed green (same class as the query) or red, its label under it;
- :func:`disagreement_sheet` — test paintings the best fit gets right and the runner-up
  wrong, and the reverse, with true and predicted labels;
- :func:`confusion_sheet` — per top confused class pair, paintings of both classes side by
  side (recognised, and mistaken for the other).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import pyarrow.parquet as pq

from artprobe.common.io import write_text
from artprobe.report.escape import page, text
from artprobe.report.load import class_name


class Thumbs:
    """The thumbnail table: a painting's ``data:`` URI and class ids by row and kind."""

    def __init__(self, path: str):
        t = pq.read_table(path).to_pandas()
        self.labels = t.drop_duplicates("row_id").set_index("row_id")
        self._jpeg = {(int(r), k): j for r, k, j in zip(t["row_id"], t["kind"], t["jpeg"])}

    def jpeg(self, row: int, kind: str = "large") -> bytes | None:
        return self._jpeg.get((int(row), kind))

    def uri(self, row: int, kind: str = "large") -> str | None:
        j = self.jpeg(row, kind)
        return None if j is None else "data:image/jpeg;base64," + base64.b64encode(j).decode()

    def label(self, row: int, target: str) -> int | None:
        if row not in self.labels.index or target not in self.labels:
            return None
        return int(self.labels.at[row, target])


def figure(thumbs: Thumbs, row: int, caption: str, cls: str = "", title: str = "") -> str:
    """One painting with its caption (HTML, its names through :func:`text`) and tooltip
    ``title`` (text); a grey box if it has no thumbnail."""
    uri = thumbs.uri(row)
    alt = text(f"row {row}" if uri else f"row {row}: no image")
    img = f"<img src='{text(uri)}' alt='{alt}'>" if uri else f"<img alt='{alt}'>"
    tip = text(title or f"row {row}")
    return f"<figure class='{cls}' title='{tip}'>{img}<figcaption>{caption}</figcaption></figure>"


def _name(classes, target, cid) -> str:
    """A class's name as HTML, breakable after its underscores (WikiArt's names have many)."""
    name = class_name(classes.get(target), cid) if cid is not None and cid >= 0 else "?"
    return text(name).replace("_", "_<wbr>")


def models_note(models: Mapping) -> str:
    """Which models a sheet shows (``rows.json``'s ``models``,
    :func:`artprobe.report.select.shown_models`), as text: "showing the top 3 of 15 models
    by mean rank (report.top_models); others: …"."""
    shown, ranked = models["shown"], models["ranked"]
    top = [m for m in ranked[: models["top_models"]] if m in shown]
    extra = [m for m in shown if m not in top]
    others = [m for m in ranked if m not in shown]
    metric = str(models["metric"]).replace("_", " ")
    line = (
        f"Showing the top {len(top)} of {len(ranked)} models by mean rank "
        f"({metric}, the leaderboard; report.top_models)"
    )
    if extra:
        line += f" and {', '.join(extra)} (report.show_models)"
    return line + (f"; others: {', '.join(others)}." if others else ".")


def gallery_sheet(
    path, target: str, gallery: Mapping, thumbs: Thumbs, classes: Mapping, k: int, center: bool
) -> None:
    """The neighbour gallery of one target (see the module docstring); ``gallery["models"]``
    (optional): which models it shows and why (:func:`models_note`)."""
    models = list(gallery["neighbours"])
    heads = "".join(f"<th>{text(m)}</th>" for m in models)
    rows, agree = [], {m: [0, 0] for m in models}
    for qi, q in enumerate(gallery["queries"]):
        ql = thumbs.label(q, target)
        cells = [
            f"<td>{figure(thumbs, q, f'<b>{_name(classes, target, ql)}</b>', 'q', f'query: row {q}')}</td>"
        ]
        for m in models:
            figs = []
            for rank, n in enumerate(gallery["neighbours"][m][qi], 1):
                nl = thumbs.label(n, target)
                same = nl is not None and nl == ql
                agree[m][0] += same
                agree[m][1] += 1
                figs.append(
                    figure(
                        thumbs,
                        n,
                        f"{rank}. {_name(classes, target, nl)}",
                        "ok" if same else "bad",
                        f"{m}: neighbour {rank} of row {q}, row {n}",
                    )
                )
            cells.append(f"<td><div class='row'>{''.join(figs)}</div></td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    shares = "; ".join(f"{m} {a}/{n}" for m, (a, n) in agree.items())
    note = (
        f"{len(gallery['queries'])} test paintings (a seeded sample spread over the {text(target)} classes), "
        f"and each model's {k} nearest train paintings by cosine similarity on the features the kNN probe "
        f"uses ({'centred on the train mean, ' if center else ''}unit length), most similar first. "
        f"Green frame: same {text(target)} as the query; red: another (label under each). "
        f"Neighbours of the query's class: {text(shares)}."
    )
    if gallery.get("models"):
        note = f"{text(models_note(gallery['models']))} {note}"
    table = (
        f"<div class='scroll'><table class='g'><thead><tr><th>query</th>{heads}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    write_text(
        path,
        page(f"Nearest train paintings — {target}", "sheets", f"<p class='note'>{note}</p>{table}"),
    )


def _pred_caption(classes, target, r: Mapping, a: str, b: str) -> str:
    t = r["y_true"]
    parts = [f"true <b>{_name(classes, target, t)}</b>"]
    for who, key in ((a, "pred_a"), (b, "pred_b")):
        cls = "ok" if r[key] == t else "bad"
        parts.append(
            f"<span class='{cls}'>{text(who)}: <b>{_name(classes, target, r[key])}</b></span>"
        )
    return "<br>".join(parts)


def disagreement_sheet(
    path, target: str, d: Mapping | None, thumbs: Thumbs, classes: Mapping
) -> None:
    """Where the best fit and the runner-up disagree on one target's test paintings."""
    if d is None:
        write_text(
            path,
            page(
                f"Where models disagree — {target}",
                "sheets",
                "<p class='note'>One model only: nothing to compare.</p>",
            ),
        )
        return
    a = f"{d['a']['model']} + {d['a']['classifier']}"
    b = f"{d['b']['model']} + {d['b']['classifier']}"
    body = [
        f"<p class='note'>The best fit of {text(target)} ({text(a)}) and the runner-up "
        f"({text(b)}) on the {d['n_shared']} test paintings both predicted: up to "
        f"{max(len(d['a_only']), len(d['b_only']))} of each kind shown (a seeded sample, in row order). "
        "Green: the prediction is right; red: wrong.</p>"
    ]
    for key, who, other in (("a_only", a, b), ("b_only", b, a)):
        figs = "".join(
            figure(thumbs, r["row_id"], _pred_caption(classes, target, r, "A", "B")) for r in d[key]
        )
        body.append(
            f"<h2>{text(who)} right, {text(other)} wrong: {d[f'n_{key}']} paintings</h2>"
            f"<div class='wrap'>{figs or '<p class=note>none</p>'}</div>"
        )
    legend = f"<p class='note'>A = {text(a)}, B = {text(b)}.</p>"
    write_text(
        path,
        page(
            f"Where models disagree — {target}",
            "sheets",
            "".join(body[:1]) + legend + "".join(body[1:]),
        ),
    )


def confusion_sheet(path, target: str, c: Mapping | None, thumbs: Thumbs, classes: Mapping) -> None:
    """The best fit's top confused class pairs of one target, paintings of both classes."""
    if c is None or not c["pairs"]:
        write_text(
            path,
            page(
                f"Confusions — {target}",
                "sheets",
                "<p class='note'>No mistakes on the test paintings.</p>",
            ),
        )
        return
    fit = text(f"{c['model']} + {c['classifier']}")
    body = [
        f"<p class='note'>The {len(c['pairs'])} most frequent mistakes of the best fit of "
        f"{text(target)} ({fit}) on its test paintings. For each pair A → B: paintings of A it "
        "recognised, paintings of A it called B, and paintings of B it recognised (a seeded few of "
        "each).</p>"
    ]
    for p in c["pairs"]:
        na, nb = _name(classes, target, p["true"]), _name(classes, target, p["pred"])
        groups = []
        for key, title, cls in (
            ("a_right", f"{na} (recognised)", "ok"),
            ("a_as_b", f"{na} called {nb}", "bad"),
            ("b_right", f"{nb} (recognised)", "ok"),
        ):
            figs = (
                "".join(figure(thumbs, r, f"row {r}", cls) for r in p[key])
                or "<p class='note'>none</p>"
            )
            groups.append(f"<div class='group'><h3>{title}</h3><div class='row'>{figs}</div></div>")
        body.append(
            f"<h2>{na} → {nb}: {p['count']} of {p['support']} test paintings of {na}</h2>"
            f"<div class='wrap'>{''.join(groups)}</div>"
        )
    write_text(path, page(f"Confusions — {target}", "sheets", "".join(body)))
