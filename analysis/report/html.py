"""The HTML report: one self-contained page, the summary tables and PNGs as base64."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from analysis.report.text import INTEGRITY_COLUMNS, behavior_lines, num, pct

_CSS: Final = """
body { font-family: sans-serif; margin: 2em; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.warn { color: #a40; }
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def format_html(
    summary: Mapping[str, Any], images: Mapping[str, Sequence[Path]] | None = None
) -> str:
    """One self-contained page: summary tables and, per node, its PNGs embedded as base64."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Analysis of {esc(str(summary['session']))}</title><style>{_CSS}</style>",
        f"</head><body><h1>Session {esc(str(summary['session']))}</h1>",
    ]
    if not summary["complete"]:
        parts.append(
            "<p class='warn'>Not finished: still being written, or the writer "
            "stopped without closing.</p>"
        )
    parts.append(
        _table(
            ["", ""],
            [
                ["folder", summary["session_dir"]],
                ["format version", summary["format_version"]],
                ["started", summary["start_time_utc"]],
                ["stopped", summary["stop_time_utc"] or "-"],
                ["recorder runs", summary["recorder_runs"]],
            ],
        )
    )
    for node, n in summary["nodes"].items():
        parts.append(f"<h2>{esc(node)} <small>({esc(str(n['module_type']))})</small></h2>")
        parts.append("<pre>" + esc("\n".join(behavior_lines(n["behavior"]))) + "</pre>")
        rows = [
            [
                layer,
                f"{e['neurons_recorded']}/{e['layer_size']}",
                f"{e['total_spikes']:,}",
                num(e["mean_rate_hz"], ".2f", " Hz"),
                pct(e["active_fraction"]),
                "-" if e["first_step"] is None else f"{e['first_step']}..{e['last_step']}",
                num(e["cv_isi_median"]),
            ]
            for layer, e in n["layers"].items()
        ]
        if rows:
            header = ["layer", "recorded/size", "spikes", "mean rate", "active", "steps", "CV ISI"]
            parts.append(_table(header, rows))
        parts += [_image(p) for p in (images or {}).get(node, []) if p.exists()]
    parts.append("<h2>Integrity</h2>")
    rows = [
        [k, *(f"{c[col]:,}" for col in INTEGRITY_COLUMNS)] for k, c in summary["streams"].items()
    ]
    parts.append(_table(["stream", *INTEGRITY_COLUMNS], rows))
    rejected = summary["rejected"]
    parts.append(
        "<p>Rejected: "
        + (esc(", ".join(f"{k} {v}" for k, v in rejected.items())) or "none")
        + "</p></body></html>"
    )
    return "\n".join(parts) + "\n"
