"""The report's four stages (rules/report.smk) and what they draw with.

The compare stage (one job: the standings, computed once):

- :mod:`~artprobe.report.compare` — :func:`run_compare`: the summary, the paired comparisons
  and the verdict of every fit, as Parquet for the other two stages
- :mod:`~artprobe.report.tables` — the pandas tables (summary, comparisons and the report's others)
- :mod:`~artprobe.report.verdict` — the verdict table and its sentences

The thumbnails stage (the paintings the report shows):

- :mod:`~artprobe.report.thumbnails` — :func:`run_thumbnails`: the rows, then their JPEGs
- :mod:`~artprobe.report.select` — which rows each painting section shows

The report stage (tables, plots, pages):

- :mod:`~artprobe.report.build` — :func:`build_report`, writing every file of the layout
- :mod:`~artprobe.report.layout` — the report's file list (stdlib only; parse time)
- :mod:`~artprobe.report.choices` — what the data decides (pairs or matrix, F1/map target)
- :mod:`~artprobe.report.load` — reading fits and embedding rows
- :mod:`~artprobe.report.plots` — the matplotlib figures
- :mod:`~artprobe.report.html` — the HTML renderings of the tables
- :mod:`~artprobe.report.sheets` — the gallery, disagreement and confusion pages
- :mod:`~artprobe.report.atlas` — the maps' coordinates, the map of paintings, the
  interactive page
- :mod:`~artprobe.report.escape` — strings from data as text; :func:`page`, every page's shell
- :mod:`~artprobe.report.style` — the one stylesheet of every page
- :mod:`~artprobe.report.leaderboard` — ranks with 95 % rank intervals and mean ranks,
  across targets and datasets (the compare stage's per dataset, the leaderboard stage's over all)

The leaderboard stage (one job over every dataset):

- :mod:`~artprobe.report.overall` — :func:`run_leaderboard`: every dataset's fits ranked at
  once, the CSVs and the page

Importing this package (or ``layout``) loads neither pandas nor matplotlib.
"""

from artprobe.report.layout import (
    CATEGORIES,
    ReportFile,
    report_files,
    report_layout,
    report_sections,
)

__all__ = ["CATEGORIES", "ReportFile", "report_files", "report_layout", "report_sections"]
