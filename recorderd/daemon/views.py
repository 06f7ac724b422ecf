"""What ``recorderctl`` prints: status, coverage, nodes and replay views (rich only)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from recorderd.daemon.replay import ReplayResult


def duration(seconds: float | None) -> str:
    """A duration as people read it: ``12.3 s``, ``4 min 2 s``, ``1 h 5 min``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def status_view(status: dict[str, Any]) -> RenderableType:
    """One recorder's status: head line, per-stream table, totals."""
    t = status["totals"]
    shard = status.get("shard")
    head = Text.assemble(
        ("session ", "dim"),
        (str(status["session"]), "bold"),
        (
            ""
            if shard is None
            else f"  shard {shard} ({', '.join(status.get('nodes_recorded', []))})"
        ),
        f"  pid {status['pid']}  up {duration(status['uptime_s'])}  "
        f"file {status['file_bytes'] / 1e6:.2f} MB  queued {status['intake_queued']}  "
        f"last flush {status.get('last_flush_age_s', 0.0):.1f} s ago",
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("stream", no_wrap=True)
    for name in ("msg/s", "spikes/s", "received", "written", "missing", "dup", "dropped"):
        table.add_column(name, justify="right")
    table.add_column("restarts", justify="right")
    for key, s in status["streams"].items():
        table.add_row(
            key,
            f"{s['messages_per_s']:.1f}",
            f"{s['spikes_per_s']:.1f}",
            str(s["received"]),
            str(s["written"]),
            str(s["missing"]),
            str(s["duplicates"]),
            str(s["dropped"]),
            str(s["restarts"]),
        )
    rejected = ", ".join(f"{k}={v}" for k, v in status["rejected"].items()) or "none"
    foot = Text(
        f"totals: {t['spikes_written']} spikes written, {t['intake_dropped']} dropped at "
        f"intake, rejected: {rejected}"
    )
    return Group(head, Text(f"  {status['session_dir']}", style="dim"), table, foot)


def status_views(answers: list[dict[str, Any]]) -> RenderableType:
    """Every recorder's status, with each session's coverage after its recorders."""
    if not answers:
        return Text("no recorder answered")
    parts: list[RenderableType] = []
    for i, answer in enumerate(answers):
        if i:
            parts.append(Text(""))
        parts.append(status_view(answer))
        last_of_session = i == len(answers) - 1 or answers[i + 1]["session"] != answer["session"]
        if last_of_session and isinstance(answer.get("coverage"), dict):
            parts.append(coverage_view(str(answer["session"]), answer["coverage"]))
    return Group(*parts)


def node_rows(alive: list[str], answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per node alive: what the recorders say of it, merged."""
    rows = []
    for node in alive:
        row: dict[str, Any] = {
            "node_id": node,
            "module_type": None,
            "incarnations": [],
            "alive_s": None,
            "status": None,
            "step": None,
            "messages_per_s": 0.0,
            "spikes_per_s": 0.0,
            "recorded_by": [],
        }
        for answer in answers:
            info = answer.get("nodes", {}).get(node)
            if not isinstance(info, dict):
                continue
            shard = answer.get("shard")
            row["recorded_by"].append(answer["session"] + (f" ({shard})" if shard else ""))
            for name in ("module_type", "status", "step"):
                if info.get(name) is not None:
                    row[name] = info[name]
            for inc in info.get("incarnations", []):
                if inc not in row["incarnations"]:
                    row["incarnations"].append(inc)
            if info.get("alive_s") is not None:
                row["alive_s"] = max(row["alive_s"] or 0.0, float(info["alive_s"]))
            for name in ("messages_per_s", "spikes_per_s"):  # the same node seen by each
                row[name] = max(row[name], float(info.get(name, 0.0)))
        rows.append(row)
    return rows


def nodes_view(rows: list[dict[str, Any]]) -> RenderableType:
    """The table of ``recorderctl nodes``."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name, justify in (
        ("node", "left"),
        ("module", "left"),
        ("incarnation", "left"),
        ("up", "right"),
        ("status", "left"),
        ("step", "right"),
        ("msg/s", "right"),
        ("spikes/s", "right"),
        ("recorded by", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name == "node")  # type: ignore[arg-type]
    for r in rows:
        incs = r["incarnations"]
        shown = ", ".join(f"{i:016x}" for i in incs[-2:]) + (
            f" (+{len(incs) - 2})" * (len(incs) > 2)
        )
        table.add_row(
            r["node_id"],
            r["module_type"] or "-",
            shown or "-",
            duration(r["alive_s"]),
            r["status"] or "-",
            "-" if r["step"] is None else str(r["step"]),
            f"{r['messages_per_s']:.1f}",
            f"{r['spikes_per_s']:.1f}",
            ", ".join(r["recorded_by"]) or "no recorder",
        )
    return table


def play_view(result: ReplayResult) -> RenderableType:
    """What ``recorderctl play`` published, per stream."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("stream", no_wrap=True)
    for name in ("messages", "spikes", "skipped", "from ms", "to ms"):
        table.add_column(name, justify="right")
    for sid, c in sorted(result.streams.items()):
        table.add_row(
            sid,
            str(c.messages),
            str(c.spikes) if c.kind == "spikes" else "-",
            str(c.skipped),
            "-" if c.first_ms is None else f"{c.first_ms:g}",
            "-" if c.last_ms is None else f"{c.last_ms:g}",
        )
    head = Text(
        f"replayed session {result.session} under {result.prefix}: {result.messages} messages "
        f"in {result.wall_s:.1f} s" + (" (interrupted)" if result.interrupted else "")
    )
    return Group(head, table)


def flush_line(result: ReplayResult, timeout: float) -> str:
    """The line saying which sessions confirmed the replay's flush barrier."""
    if timeout <= 0:
        return "flush barrier skipped (--flush-timeout 0)"
    sessions = sorted({s for names in result.flush.values() for s in names})
    return (
        f"flush barrier: {result.confirmed} recorder(s) confirmed receipt for every node"
        f" ({len(result.flush)} nodes; sessions: {', '.join(sessions) or 'none'})"
    )


def coverage_view(session: str, report: dict[str, Any]) -> RenderableType:
    """Lines saying which alive nodes no recorder of ``session`` records, or two do."""
    shards = report.get("shards", {})
    layout = ", ".join(f"{name} ({', '.join(nodes)})" for name, nodes in shards.items())
    lines = [
        Text.assemble(
            ("coverage ", "dim"),
            f"session {session}: {len(shards)} recorder(s): {layout or 'none'}; "
            f"{report.get('nodes_alive', 0)} node(s) alive",
        )
    ]
    uncovered, overlapping = report.get("uncovered_count", 0), report.get("overlapping_count", 0)
    if uncovered:
        names = ", ".join(report.get("uncovered", []))
        more = f" (+{uncovered - len(report.get('uncovered', []))} more)" * (
            uncovered > len(report.get("uncovered", []))
        )
        lines.append(
            Text(f"  {uncovered} node(s) recorded by NO recorder: {names}{more}", style="red")
        )
    if overlapping:
        pairs = ", ".join(f"{n} ({' + '.join(o)})" for n, o in report["overlapping"].items())
        lines.append(
            Text(f"  {overlapping} node(s) recorded by TWO or more: {pairs}", style="yellow")
        )
    if not uncovered and not overlapping:
        lines.append(Text("  every node alive is recorded by exactly one recorder", style="green"))
    out = Text()
    for i, line in enumerate(lines):
        out.append_text(line)
        if i < len(lines) - 1:
            out.append("\n")
    return out
