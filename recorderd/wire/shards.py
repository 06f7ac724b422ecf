"""Shards: which recorder of a session records which nodes, and who is left out.

Every recorder answers queries on :func:`~recorderd.wire.keys.shard_key` with a
:class:`ShardClaim` (JSON): its session, its shard name (None: the whole session) and its
node patterns. From the claims and the nodes' liveliness tokens, :func:`coverage` tells
which nodes no recorder of the session records and which two or more record
(``docs/deployment.md``). Pure: no Zenoh.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from recorderd.wire.keys import check_node_pattern, node_matches
from recorderd.wire.names import is_safe_name

#: Node ids listed at most in each list of a coverage report (all are counted).
COVERAGE_LISTED = 100
#: Bytes of a claim read at most; node patterns per claim at most.
MAX_CLAIM_BYTES = 64 << 10
MAX_CLAIM_PATTERNS = 256


@dataclass(frozen=True, slots=True)
class ShardClaim:
    """One recorder's part of a session's key space."""

    session: str
    shard: str | None  # None: an unsharded recorder (every node)
    nodes: tuple[str, ...] = ("*",)

    @property
    def name(self) -> str:
        """The shard's name, or ``(whole session)``."""
        return self.shard if self.shard is not None else "(whole session)"

    def covers(self, node_id: str) -> bool:
        """Whether this recorder records ``node_id``."""
        return any(node_matches(p, node_id) for p in self.nodes)

    def encode(self) -> bytes:
        """The JSON answer to a shard query."""
        doc = {"session": self.session, "shard": self.shard, "nodes": list(self.nodes)}
        return json.dumps(doc).encode()

    @classmethod
    def decode(cls, payload: bytes) -> ShardClaim | None:
        """A claim from an answer; None if it is not a valid one (never raises)."""
        if len(payload) > MAX_CLAIM_BYTES:
            return None
        try:
            doc = json.loads(payload)
            session, shard, nodes = doc["session"], doc["shard"], doc["nodes"]
            if not (isinstance(session, str) and is_safe_name(session)):
                return None
            if shard is not None and not (isinstance(shard, str) and is_safe_name(shard)):
                return None
            if not isinstance(nodes, list) or not 0 < len(nodes) <= MAX_CLAIM_PATTERNS:
                return None
            return cls(session, shard, tuple(check_node_pattern(str(p)) for p in nodes))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(slots=True)
class Coverage:
    """Which alive nodes of a session are recorded by no recorder, and by two or more."""

    session: str
    shards: dict[str, list[str]]  # shard name -> node patterns
    nodes_alive: int = 0
    uncovered: list[str] = field(default_factory=list)
    uncovered_count: int = 0
    overlapping: dict[str, list[str]] = field(default_factory=dict)  # node -> shard names
    overlapping_count: int = 0

    @property
    def complete(self) -> bool:
        """Every alive node is recorded by exactly one recorder."""
        return self.uncovered_count == 0 and self.overlapping_count == 0

    def to_dict(self) -> dict[str, object]:
        """JSON form (statistics, ``recorderctl status --json``)."""
        return {
            "shards": self.shards,
            "nodes_alive": self.nodes_alive,
            "uncovered": self.uncovered,
            "uncovered_count": self.uncovered_count,
            "overlapping": self.overlapping,
            "overlapping_count": self.overlapping_count,
            "listed_at_most": COVERAGE_LISTED,
        }


def coverage(session: str, claims: Iterable[ShardClaim], alive: Iterable[str]) -> Coverage:
    """Check the claims of ``session``'s recorders against the nodes alive.

    Lists at most :data:`COVERAGE_LISTED` node ids of each kind, counts all of them.
    """
    mine = sorted({c for c in claims if c.session == session}, key=lambda c: c.name)
    report = Coverage(session, {c.name: list(c.nodes) for c in mine})
    for node in sorted(set(alive)):
        report.nodes_alive += 1
        owners = [c.name for c in mine if c.covers(node)]
        if not owners:
            report.uncovered_count += 1
            if len(report.uncovered) < COVERAGE_LISTED:
                report.uncovered.append(node)
        elif len(owners) > 1:
            report.overlapping_count += 1
            if len(report.overlapping) < COVERAGE_LISTED:
                report.overlapping[node] = owners
    return report
