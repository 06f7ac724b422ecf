"""The text report of a session summary (``report.txt``, ``generate_summary_report``).

Tables are drawn by rich (:mod:`analysis.console`) at the width their content needs, so
long layer and stream names keep every column in line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from rich.console import RenderableType
from rich.text import Text

from analysis.console import table, to_text
from analysis.formats import fmt_duration
from recorderd.session import layout as L

#: Integrity counters shown per stream, in the text and the HTML report.
INTEGRITY_COLUMNS: Final = ("received", "written", "missing", "duplicates", "restarts", "dropped")
#: Width of the spike count column (counts up to 999,999,999 line up).
SPIKES_WIDTH: Final = 11


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


def settings_text(o: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The recording settings as ``(label, value)`` pairs (text and HTML reports)."""
    s = o.get("settings", {})
    dts = s.get("dt_ms") or []
    pairs = [
        ("compression", str(o.get("compression", "unknown"))),
        (
            "subsampling",
            f"spikes {s.get('spike_subsample_rate', 'n/a')}, membrane "
            f"{s.get('membrane_subsample_rate', 'n/a')}, seed {s.get('subsample_seed', 'n/a')}",
        ),
        ("dt", ", ".join(f"{d:g} ms" for d in dts) or "n/a"),
        ("flush interval", num(s.get("flush_interval_s"), "g", " s")),
        ("recorded", ", ".join(s.get("record") or []) or "n/a"),
    ]
    bps = o.get("bytes_per_spike")
    if bps is not None:
        pairs.append(("bytes per spike", f"{bps:.2f} (spike datasets on disk)"))
    version = o.get("recorder_version") or "not stored in the session"
    pairs.append(("recorderd version", f"{version} (analysed with {o.get('analysis_version')})"))
    return pairs


def layer_rows(layers: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for layer, e in layers.items():
        steps = "-" if e["first_step"] is None else f"{e['first_step']}..{e['last_step']}"
        span = "-" if e["t_start_ms"] is None else f"{e['t_start_ms']:.1f}-{e['t_stop_ms']:.1f}"
        rows.append(
            [
                layer,
                f"{e['neurons_recorded']}/{e['layer_size']}",
                f"{e['total_spikes']:,}",
                num(e["mean_rate_hz"], ".2f", " Hz"),
                pct(e["active_fraction"]),
                steps,
                span,
                num(e["cv_isi_median"]),
            ]
        )
    return rows


LAYER_COLUMNS: Final[Sequence[str | tuple[str, str]]] = (
    "layer",
    ("recorded/size", "right"),
    ("spikes", "right"),
    ("mean rate", "right"),
    ("active", "right"),
    ("steps", "right"),
    ("time span (ms)", "right"),
    ("CV ISI", "right"),
)


def format_text(summary: Mapping[str, Any]) -> str:
    """The text report of a session summary."""
    state = (
        f"complete (stopped {summary['stop_time_utc']})"
        if summary["complete"]
        else "not finished: still being written, or the writer stopped without closing"
    )
    o = summary.get("overview") or {}
    out: list[RenderableType] = [
        Text("Simulation recording analysis report\n" + "=" * 36),
        Text(
            "\n".join(
                [
                    f"Session:        {summary['session']}",
                    f"Folder:         {summary['session_dir']}",
                    f"Format:         {L.FORMAT_NAME} v{summary['format_version']}",
                    f"Started:        {summary['start_time_utc'] or 'n/a'}",
                    f"State:          {state}",
                    f"Recorder runs:  {summary['recorder_runs']}",
                    f"Nodes:          {len(summary['nodes'])}",
                ]
                + (
                    [
                        f"Duration:       {fmt_duration(o.get('sim_duration_s'))} simulated, "
                        f"{fmt_duration(o.get('wall_s'))} wall clock",
                        f"Total spikes:   {o.get('total_spikes', 0):,} in "
                        f"{o.get('total_messages', 0):,} messages",
                        f"Integrity:      {o.get('integrity', 'n/a')}",
                    ]
                    if o
                    else []
                )
            )
        ),
    ]
    if o:
        out.append(table(["setting", "value"], settings_text(o), title="Recording settings"))
    if not summary["nodes"]:
        out.append(Text("\nNo nodes recorded."))
    for node, n in summary["nodes"].items():
        title = f"Node {node} (module {n['module_type'] or 'unknown'})"
        out.append(
            Text(f"\n{title}\n{'-' * len(title)}\n" + "\n".join(behavior_lines(n["behavior"])))
        )
        if n["layers"]:
            out.append(
                table(
                    LAYER_COLUMNS,
                    layer_rows(n["layers"]),
                    title="  Spikes (rates per recorded neuron, corrected for subsampling)",
                    min_widths={"spikes": SPIKES_WIDTH},
                )
            )
        extra = [
            f"  Membrane {layer}: {m['frames']} frames x {m['neurons_recorded']} "
            f"of {m['layer_size']} neurons"
            for layer, m in n["membrane"].items()
        ] + [
            f"  Weights {name}: {w['snapshots']} snapshots of {w['shape']}"
            for name, w in n["weights"].items()
        ]
        if extra:
            out.append(Text("\n".join(extra)))
    out.append(Text("\nIntegrity (recording_statistics.json, all runs)\n" + "-" * 47))
    if summary["streams"]:
        rows = [
            [key, *(f"{c[k]:,}" for k in INTEGRITY_COLUMNS)]
            for key, c in summary["streams"].items()
        ]
        out.append(table(["stream", *((c, "right") for c in INTEGRITY_COLUMNS)], rows))
    else:
        out.append(Text("  no statistics recorded"))
    rejected = summary["rejected"]
    out.append(
        Text(
            "  rejected: "
            + (", ".join(f"{k} {v}" for k, v in rejected.items()) if rejected else "none")
        )
    )
    return to_text(out)
