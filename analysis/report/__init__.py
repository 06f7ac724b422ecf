"""Session summary as a JSON-ready document, a text report and a self-contained HTML page.

:func:`build_summary` gathers the figures (:mod:`~analysis.report.summary`, the schema of
``sim-analyzer --json``, documented in ``docs/analysis.md``); :func:`format_text`
(:mod:`~analysis.report.text`) and :func:`format_html` (:mod:`~analysis.report.html`)
only format that document. Integrity counters come from ``recording_statistics.json``,
summed over the recorder runs of the session.
"""

from __future__ import annotations

from analysis.report.html import format_html
from analysis.report.summary import build_summary, integrity, layer_entry, to_json
from analysis.report.text import format_text

__all__ = ["build_summary", "format_html", "format_text", "integrity", "layer_entry", "to_json"]
