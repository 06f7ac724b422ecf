"""The HTML report: one self-contained page from jinja2 templates, figures as base64 PNGs.

The page (``templates/report.html.j2``, styles in ``templates/report.css``) starts with
the session, its duration, nodes and spikes, an integrity badge and the recording
settings, then a table of contents, one section per node (behaviour as tables, the
layer table, the node raster, and per layer its figures with captions in a collapsible
block), and the integrity of every stream at the end. ``templates/info.html.j2`` is
``sim-analyzer info`` as HTML, for Jupyter. jinja2 is imported when a page is made.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from analysis.formats import fmt_duration
from analysis.report.figures import KINDS, ReportFigure
from analysis.report.text import (
    INTEGRITY_COLUMNS,
    LAYER_COLUMNS,
    layer_rows,
    num,
    pct,
    settings_text,
)

if TYPE_CHECKING:
    import jinja2

    from analysis.info import SessionInfo

#: Badge colour of each session state.
STATE_CLASS: Final = {"finished": "ok", "recording": "warn", "crashed, recovered": "warn"}
#: Counters whose non-zero values are marked in the integrity table.
LOSSES: Final = ("missing", "dropped")


def _thousands(x: Any) -> str:
    return "-" if x is None else f"{x:,}"


@cache
def environment() -> jinja2.Environment:
    """The jinja2 environment of the report templates (autoescaped, strict)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("analysis.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(thousands=_thousands, pct=pct, dur=fmt_duration, num=num)
    return env


def _css() -> str:
    return (resources.files("analysis.report") / "templates" / "report.css").read_text("utf-8")


def _src(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _figures(node: str, items: Sequence[Path | ReportFigure]) -> list[ReportFigure]:
    figs = [i if isinstance(i, ReportFigure) else ReportFigure.from_path(i, node) for i in items]
    return [f for f in figs if f.path.exists()]


def _view(f: ReportFigure) -> dict[str, Any]:
    return {
        "name": f.path.stem,
        "title": f.heading,
        "caption": f.caption,
        "kind": f.kind,
        "src": _src(f.path),
    }


def _shares(dwell: Mapping[str, float]) -> list[tuple[str, float, float | None]]:
    total = sum(dwell.values())
    return [(k, v, v / total if total else None) for k, v in dwell.items()]


def _node_view(node: str, n: Mapping[str, Any], figs: list[ReportFigure]) -> dict[str, Any]:
    order = {k: i for i, k in enumerate(KINDS)}
    figs = sorted(figs, key=lambda f: order.get(f.kind, len(order)))
    layer_sections = []
    for layer, e in n["layers"].items():
        mine = [f for f in figs if f.layer == layer and f.kind not in ("membrane", "weights")]
        layer_sections.append(
            {
                "name": layer,
                "anchor": f"layer-{node}-{layer}",
                "line": f"{e['total_spikes']:,} spikes, {num(e['mean_rate_hz'], '.2f', ' Hz')}, "
                f"{e['neurons_recorded']}/{e['layer_size']} neurons recorded",
                "figures": [_view(f) for f in mine],
            }
        )
    b = n["behavior"]
    streams_text = [
        f"membrane {layer}: {m['frames']:,} frames x {m['neurons_recorded']} of "
        f"{m['layer_size']} neurons"
        for layer, m in n["membrane"].items()
    ] + [
        f"weights {name}: {w['snapshots']} snapshots of {'x'.join(map(str, w['shape']))}"
        for name, w in n["weights"].items()
    ]
    return {
        "id": node,
        "anchor": f"node-{node}",
        "module": n["module_type"],
        "behavior": b,
        "dwell": _shares(b.get("dwell_ms", {})),
        "task_dwell": [
            ("none" if k == "null" else k, v, s) for k, v, s in _shares(b.get("task_dwell_ms", {}))
        ],
        "transitions": [(*k.split(" -> ", 1), v) for k, v in b.get("transitions", {}).items()],
        "layers": layer_rows(n["layers"]),
        "layer_sections": layer_sections,
        "streams_text": streams_text,
        "node_figures": [_view(f) for f in figs if f.kind == "node_raster"],
        "other_figures": [_view(f) for f in figs if f.kind in ("membrane", "weights")],
    }


def format_html(
    summary: Mapping[str, Any],
    images: Mapping[str, Sequence[Path | ReportFigure]] | None = None,
) -> str:
    """One self-contained page: the summary's tables and, per node, its figures.

    ``images`` maps node ids to :class:`ReportFigure` objects (with captions), or to
    bare PNG paths (captions from the file names); files that do not exist are left out.
    """
    o = summary.get("overview") or {}
    nodes = [
        _node_view(node, n, _figures(node, (images or {}).get(node, [])))
        for node, n in summary["nodes"].items()
    ]
    streams = [
        (
            key,
            [
                {"v": c.get(col, 0), "bad": col in LOSSES and c.get(col, 0) > 0}
                for col in INTEGRITY_COLUMNS
            ],
        )
        for key, c in summary["streams"].items()
    ]
    defaults = {
        "integrity": "n/a",
        "state": "complete" if summary["complete"] else "not finished",
        "state_detail": "",
        "sim_duration_s": None,
        "wall_s": None,
        "sim_t_start_ms": None,
        "sim_t_stop_ms": None,
        "total_spikes": sum(
            e["total_spikes"] for n in summary["nodes"].values() for e in n["layers"].values()
        ),
        "total_messages": None,
        "duplicates": 0,
        "stale": 0,
        "analysis_version": "",
    }
    o = {**defaults, **o}
    page = (
        environment()
        .get_template("report.html.j2")
        .render(
            s=summary,
            o=o,
            css=_css(),
            state_class=STATE_CLASS.get(o["state"], "bad"),
            settings=settings_text(o) if "settings" in o else [],
            nodes=nodes,
            streams=streams,
            layer_columns=[c if isinstance(c, str) else c[0] for c in LAYER_COLUMNS],
            integrity_columns=INTEGRITY_COLUMNS,
        )
    )
    return page.strip() + "\n"


def render_info(info: SessionInfo) -> str:
    """``sim-analyzer info`` as an HTML fragment (Jupyter's ``_repr_html_``)."""
    from analysis.info import LOSS_COUNTERS

    return environment().get_template("info.html.j2").render(i=info, loss=LOSS_COUNTERS)
