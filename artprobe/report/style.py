"""The report's one stylesheet: every HTML page the report writes carries it
(:func:`artprobe.report.escape.page`), and its ``<body>`` names the page's kind
(:data:`KINDS`), which scopes the rules that only that kind of page uses."""

#: the kinds of page: the tables (:mod:`.html`), the painting sheets (:mod:`.sheets`) and the
#: interactive map (:mod:`.atlas`)
KINDS = ("tables", "sheets", "map")

STYLESHEET = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222}
p.note{color:#555}
body.tables{font-size:14px;margin:16px}
.tables h1{font-size:19px;margin:0 0 8px} .tables h2{font-size:16px;margin:22px 0 6px}
.tables p.note{margin:4px 0 10px;max-width:70em}
div.scroll{overflow:auto;max-width:100%;max-height:88vh;margin-bottom:8px}
.tables table{border-collapse:collapse;margin-bottom:8px}
.tables th,.tables td{border:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}
.tables th{background:#f0f0f0;position:sticky;top:0}
.tables td.t,.tables th.t{text-align:left}
.tables td.w{white-space:normal;min-width:18em;max-width:36em;text-align:left}
.tables tr:nth-child(even) td{background:#fafafa} .tables tr.best td{background:#e6f2e6;font-weight:600}
.tables span.ci{font-size:12px;color:#666;font-weight:normal}
body.sheets{font-size:13px;margin:14px}
.sheets h1{font-size:18px;margin:0 0 6px} .sheets h2{font-size:15px;margin:18px 0 6px}
.sheets p.note{max-width:75em;margin:4px 0 10px}
.sheets table.g{border-collapse:collapse}
.sheets table.g td,.sheets table.g th{vertical-align:top;padding:4px 6px;border-left:2px solid #ddd}
.sheets table.g th{font-size:13px;text-align:left;background:#f3f3f3;position:sticky;top:0;z-index:1}
.sheets .row{display:flex;gap:4px;flex-wrap:nowrap} .sheets .wrap{display:flex;gap:6px;flex-wrap:wrap}
.sheets figure{margin:0;width:92px;text-align:center}
.sheets figure img{width:86px;height:86px;object-fit:contain;
background:#f4f4f4;border:3px solid #bbb;display:block;margin:0 auto}
.sheets figure.ok img{border-color:#1a9641} .sheets figure.bad img{border-color:#d7191c}
.sheets figure.q img{border-color:#222}
.sheets figcaption{font-size:11px;line-height:1.2;word-break:break-word;max-height:3.7em;overflow:hidden}
.sheets figcaption b{font-weight:600} .sheets .ok b{color:#1a9641} .sheets .bad b{color:#d7191c}
.sheets .group{border:1px solid #ddd;border-radius:4px;padding:4px 6px;margin:0 6px 8px 0}
.sheets .group h3{font-size:12px;margin:0 0 4px;font-weight:600}
body.map{font-size:13px;margin:12px}
.map h1{font-size:17px;margin:0 0 6px} .map p.note{margin:2px 0 8px;max-width:80em}
.map #bar button{margin:0 4px 4px 0;padding:3px 9px;border:1px solid #888;background:#fff;
border-radius:3px;cursor:pointer}
.map #bar select{margin:0 10px 6px 4px;padding:3px 6px;font-size:13px;max-width:40em}
.map #bar button.on{background:#333;color:#fff} .map #wrap{display:flex;gap:14px;align-items:flex-start}
.map svg{border:1px solid #ddd;background:#fcfcfc} .map circle{stroke:#fff;stroke-width:0.6}
.map circle.t{stroke:#222;stroke-width:1} .map circle.hi{stroke:#000;stroke-width:3}
.map #side{width:270px;overflow-wrap:anywhere}
.map #hover{width:200px;height:200px;object-fit:contain;background:#f4f4f4;display:none;border:1px solid #ccc}
.map #info{margin-top:6px;line-height:1.45}
.map #legend{margin-top:10px;font-size:12px;max-height:330px;overflow:auto}
.map #legend span{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:5px}
"""
