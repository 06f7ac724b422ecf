"""Which recorder records which node: asked on the bus, shown by ``recorderctl status``."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.text import Text

from recorderd.daemon.bus import Client
from recorderd.wire import shards_query_key
from recorderd.wire.shards import ShardClaim, coverage


def add_coverage(
    client: Client, prefix: str, answers: list[dict[str, Any]], timeout: float
) -> None:
    """Put a fresh ``coverage`` report (nodes alive vs the recorders' node patterns) into
    each status answer, per session (one query of the claims and one of the tokens)."""
    sessions = sorted({str(a["session"]) for a in answers})
    if not sessions:
        return
    alive = client.alive(prefix, timeout)
    claims = [
        c
        for payload in client.query(shards_query_key(prefix), timeout)
        if (c := ShardClaim.decode(payload)) is not None
    ]
    reports = {s: coverage(s, claims, alive).to_dict() for s in sessions}
    for answer in answers:
        answer["coverage"] = reports[str(answer["session"])]


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
