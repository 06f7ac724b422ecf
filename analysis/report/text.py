"""The text report of a session summary (``report.txt``, ``generate_summary_report``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from recorderd.session import layout as L

#: Integrity counters shown per stream, in the text and the HTML report.
INTEGRITY_COLUMNS: Final = ("received", "written", "missing", "duplicates", "restarts", "dropped")


def num(x: Any, fmt: str = ".2f", unit: str = "") -> str:
    return "n/a" if x is None else f"{x:{fmt}}{unit}"


def pct(x: Any) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def behavior_lines(b: Mapping[str, Any]) -> list[str]:
    if not b.get("n_states"):
        return ["  Behaviour: no control states"]
    lo, hi = b["step_range"]
    lines = [
        f"  Behaviour: {b['n_states']} control states, steps {lo}..{hi}, "
        f"task active {pct(b['task_active_ratio'])}",
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
        out += [title, "-" * len(title), *behavior_lines(n["behavior"])]
        if n["layers"]:
            out += ["  Spikes (rates per recorded neuron, corrected for subsampling):", head]
        for layer, e in n["layers"].items():
            steps = "-" if e["first_step"] is None else f"{e['first_step']}..{e['last_step']}"
            span = "-" if e["t_start_ms"] is None else f"{e['t_start_ms']:.1f}-{e['t_stop_ms']:.1f}"
            rec = f"{e['neurons_recorded']}/{e['layer_size']}"
            out.append(
                f"  {layer:<20} {rec:>14} {e['total_spikes']:>11,} "
                f"{num(e['mean_rate_hz'], '.2f', ' Hz'):>10} {pct(e['active_fraction']):>7} "
                f"{steps:>13} {span:>19} {num(e['cv_isi_median']):>7}"
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
        out.append(f"  {'stream':<{w}}" + "".join(f"{c:>11}" for c in INTEGRITY_COLUMNS))
        for key, c in summary["streams"].items():
            out.append(f"  {key:<{w}}" + "".join(f"{c[k]:>11,}" for k in INTEGRITY_COLUMNS))
    else:
        out.append("  no statistics recorded")
    rejected = summary["rejected"]
    out.append(
        "  rejected: "
        + (", ".join(f"{k} {v}" for k, v in rejected.items()) if rejected else "none")
    )
    return "\n".join(out) + "\n"
