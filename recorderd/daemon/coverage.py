"""Which recorder records which node, asked on the bus for ``recorderctl status``."""

from __future__ import annotations

from typing import Any

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
