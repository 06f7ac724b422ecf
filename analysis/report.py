"""Session summary as a JSON-ready document, a text report and a self-contained HTML page.

:func:`build_summary` gathers the figures (the schema of ``sim-analyzer --json``,
documented in ``docs/analysis.md``); :func:`format_text` and :func:`format_html` only
format that document. Integrity counters come from ``recording_statistics.json``,
summed over the recorder runs of the session.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from recorderd.session import layout as L
from recorderd.session.statistics import (
    COUNTERS,  # summed over recorder runs; first/last_step: min/max
)

if TYPE_CHECKING:
    from analysis.analyzer import SimulationAnalyzer
    from analysis.scan import PopulationScan

_INTEGRITY_COLUMNS: Final = ("received", "written", "missing", "duplicates", "restarts", "dropped")


def build_summary(
    an: SimulationAnalyzer, scans: Mapping[tuple[str, str], PopulationScan] | None = None
) -> dict[str, Any]:
    """The session summary; ``scans`` reuses population scans already made (else scans now)."""
    r = an.reader
    meta = r.metadata()
    nodes: dict[str, Any] = {}
    for node in an.get_recorded_nodes():
        behavior = an.analyze_node_behavior(node)
        layers = {}
        for layer in an.get_recorded_layers(node):
            scan = (scans or {}).get((node, layer)) or an.scan(node, layer)
            layers[layer] = layer_entry(scan)
        membrane = {}
        for layer in r.layers(node, L.MEMBRANE):
            fr = r.frames(node, layer, L.MEMBRANE)
            attrs = r.stream_attrs(node, layer, L.MEMBRANE)
            membrane[layer] = {
                "frames": int(fr.steps.size),
                "neurons_recorded": int(r.recorded_neurons(node, layer, L.MEMBRANE).size),
                "layer_size": int(np.atleast_1d(attrs.get(L.ATTR_LAYER_SIZE, 0))[0]),
            }
        weights = {
            name: {
                "snapshots": int(r.frames(node, name, L.WEIGHTS).steps.size),
                "shape": [int(x) for x in r.stream_attrs(node, name, L.WEIGHTS)["layer_size"]],
            }
            for name in r.layers(node, L.WEIGHTS)
        }
        nodes[node] = {
            "module_type": behavior["module_type"],
            "behavior": {k: v for k, v in behavior.items() if k not in ("node_id", "module_type")},
            "layers": layers,
            "membrane": membrane,
            "weights": weights,
        }
    streams, rejected, runs = integrity(r.statistics())
    stop = str(meta.get(L.ATTR_STOP_TIME, ""))
    summary: dict[str, Any] = _jsonable(
        {
            "format_version": r.format_version(),
            "session": meta.get(L.ATTR_SESSION) or an.session_dir.name,
            "session_dir": str(an.session_dir.resolve()),
            "start_time_utc": meta.get(L.ATTR_START_TIME, ""),
            "stop_time_utc": stop,
            "complete": bool(stop),
            "recorder_runs": int(meta.get(L.ATTR_RECORDER_RUNS, runs)),
            "nodes": nodes,
            "streams": streams,
            "rejected": rejected,
        }
    )
    return summary


def layer_entry(scan: PopulationScan) -> dict[str, Any]:
    """The summary of one spike population."""
    info = scan.info
    return {
        "neurons_recorded": int(info.neurons.size),
        "layer_size": info.layer_size,
        "subsample_rate": info.subsample_rate,
        "total_spikes": scan.total_spikes,
        "mean_rate_hz": scan.mean_rate_hz,
        "active_fraction": scan.active_fraction,
        "cv_isi_median": scan.cv_isi_median,
        "first_step": info.first_step,
        "last_step": info.last_step,
        "n_steps": info.n_frames,
        "t_start_ms": info.t_start_ms,
        "t_stop_ms": info.t_stop_ms,
        "duration_s": info.duration_ms / 1000.0,
        "incarnations": len(info.runs),
        "missing_messages": info.missing_messages,
        "sorting": info.sorting,
    }


def integrity(stats: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int], int]:
    """Per-stream counters and rejections summed over the runs, and the number of runs."""
    runs = [*stats.get("previous_runs", []), stats] if stats else []
    streams: dict[str, dict[str, Any]] = {}
    rejected: dict[str, int] = {}
    for run in runs:
        for key, counters in run.get("streams", {}).items():
            acc = streams.setdefault(key, {c: 0 for c in COUNTERS})
            for c in COUNTERS:
                acc[c] += int(counters.get(c, 0))
            for c, pick in (("first_step", min), ("last_step", max)):
                values = [v for v in (acc.get(c), counters.get(c)) if v is not None]
                acc[c] = pick(values) if values else None
        for reason, n in run.get("rejected", {}).items():
            rejected[reason] = rejected.get(reason, 0) + int(n)
    return dict(sorted(streams.items())), rejected, len(runs)


def to_json(summary: Mapping[str, Any]) -> str:
    """The summary as JSON text (nan as null)."""
    return json.dumps(summary, indent=2, allow_nan=False)


# -- text -----------------------------------------------------------------------------------


def _num(x: Any, fmt: str = ".2f", unit: str = "") -> str:
    return "n/a" if x is None else f"{x:{fmt}}{unit}"


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _behavior_lines(b: Mapping[str, Any]) -> list[str]:
    if not b.get("n_states"):
        return ["  Behaviour: no control states"]
    lo, hi = b["step_range"]
    lines = [
        f"  Behaviour: {b['n_states']} control states, steps {lo}..{hi}, "
        f"task active {_pct(b['task_active_ratio'])}",
        f"    statuses: {', '.join(b['unique_statuses'])}",
    ]
    total = sum(b["dwell_ms"].values()) or math.nan
    dwell = ", ".join(f"{s} {ms:.1f} ms ({ms / total:.1%})" for s, ms in b["dwell_ms"].items())
    lines.append(f"    dwell: {dwell}")
    if b["unique_tasks"]:
        lines.append(f"    tasks: {', '.join(b['unique_tasks'])}")
    if b["transitions"]:
        lines.append(
            "    transitions: " + ", ".join(f"{k} x{n}" for k, n in b["transitions"].items())
        )
    return lines


def format_text(summary: Mapping[str, Any]) -> str:
    """The text report of a session summary."""
    state = (
        f"complete (stopped {summary['stop_time_utc']})"
        if summary["complete"]
        else "not finished: still being written, or the writer stopped without closing"
    )
    out = [
        "Simulation recording analysis report",
        "=" * 36,
        f"Session:        {summary['session']}",
        f"Folder:         {summary['session_dir']}",
        f"Format:         {L.FORMAT_NAME} v{summary['format_version']}",
        f"Started:        {summary['start_time_utc'] or 'n/a'}",
        f"State:          {state}",
        f"Recorder runs:  {summary['recorder_runs']}",
        f"Nodes:          {len(summary['nodes'])}",
        "",
    ]
    head = (
        f"  {'layer':<20} {'recorded/size':>14} {'spikes':>11} {'mean rate':>10} "
        f"{'active':>7} {'steps':>13} {'time span (ms)':>19} {'CV ISI':>7}"
    )
    for node, n in summary["nodes"].items():
        title = f"Node {node} (module {n['module_type'] or 'unknown'})"
        out += [title, "-" * len(title), *_behavior_lines(n["behavior"])]
        if n["layers"]:
            out += ["  Spikes (rates per recorded neuron, corrected for subsampling):", head]
        for layer, e in n["layers"].items():
            steps = "-" if e["first_step"] is None else f"{e['first_step']}..{e['last_step']}"
            span = "-" if e["t_start_ms"] is None else f"{e['t_start_ms']:.1f}-{e['t_stop_ms']:.1f}"
            rec = f"{e['neurons_recorded']}/{e['layer_size']}"
            out.append(
                f"  {layer:<20} {rec:>14} {e['total_spikes']:>11,} "
                f"{_num(e['mean_rate_hz'], '.2f', ' Hz'):>10} {_pct(e['active_fraction']):>7} "
                f"{steps:>13} {span:>19} {_num(e['cv_isi_median']):>7}"
            )
        for layer, m in n["membrane"].items():
            out.append(
                f"  Membrane {layer}: {m['frames']} frames x {m['neurons_recorded']} "
                f"of {m['layer_size']} neurons"
            )
        for name, w in n["weights"].items():
            out.append(f"  Weights {name}: {w['snapshots']} snapshots of {w['shape']}")
        out.append("")
    out += ["Integrity (recording_statistics.json, all runs)", "-" * 47]
    if summary["streams"]:
        w = max(len(k) for k in summary["streams"])
        out.append(f"  {'stream':<{w}}" + "".join(f"{c:>11}" for c in _INTEGRITY_COLUMNS))
        for key, c in summary["streams"].items():
            out.append(f"  {key:<{w}}" + "".join(f"{c[k]:>11,}" for k in _INTEGRITY_COLUMNS))
    else:
        out.append("  no statistics recorded")
    rejected = summary["rejected"]
    out.append(
        "  rejected: "
        + (", ".join(f"{k} {v}" for k, v in rejected.items()) if rejected else "none")
    )
    return "\n".join(out) + "\n"


# -- HTML -----------------------------------------------------------------------------------

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
        parts.append("<pre>" + esc("\n".join(_behavior_lines(n["behavior"]))) + "</pre>")
        rows = [
            [
                layer,
                f"{e['neurons_recorded']}/{e['layer_size']}",
                f"{e['total_spikes']:,}",
                _num(e["mean_rate_hz"], ".2f", " Hz"),
                _pct(e["active_fraction"]),
                "-" if e["first_step"] is None else f"{e['first_step']}..{e['last_step']}",
                _num(e["cv_isi_median"]),
            ]
            for layer, e in n["layers"].items()
        ]
        if rows:
            header = ["layer", "recorded/size", "spikes", "mean rate", "active", "steps", "CV ISI"]
            parts.append(_table(header, rows))
        parts += [_image(p) for p in (images or {}).get(node, []) if p.exists()]
    parts.append("<h2>Integrity</h2>")
    rows = [
        [k, *(f"{c[col]:,}" for col in _INTEGRITY_COLUMNS)] for k, c in summary["streams"].items()
    ]
    parts.append(_table(["stream", *_INTEGRITY_COLUMNS], rows))
    rejected = summary["rejected"]
    parts.append(
        "<p>Rejected: "
        + (esc(", ".join(f"{k} {v}" for k, v in rejected.items())) or "none")
        + "</p></body></html>"
    )
    return "\n".join(parts) + "\n"


def _jsonable(obj: Any) -> Any:
    """Plain JSON types: nan to None, tuples to lists, keys to strings.

    A tuple key (a transition) becomes ``"a -> b"``, a ``None`` key (no active task)
    ``"null"``.
    """
    if isinstance(obj, Mapping):
        return {_key(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _key(k: Any) -> str:
    if isinstance(k, tuple):
        return " -> ".join(_key(x) for x in k)
    return "null" if k is None else str(k)
