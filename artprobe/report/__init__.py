"""The report stage: tables and plots that compare models across targets and probes.

- :mod:`~artprobe.report.layout` — the report's file list (stdlib only; parse time)
- :mod:`~artprobe.report.choices` — what the data decides (pairs or matrix, F1/map target)
- :mod:`~artprobe.report.load` — reading fits and embedding rows
- :mod:`~artprobe.report.tables` — the pandas tables
- :mod:`~artprobe.report.plots` — the matplotlib figures
- :mod:`~artprobe.report.html` — the HTML renderings of the tables, with their CSS
- :mod:`~artprobe.report.build` — :func:`build_report`, writing every file of the layout

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
