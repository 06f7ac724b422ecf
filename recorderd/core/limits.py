"""The recorder's bounds on streams: how many in all and per node, and what one may claim.

A publisher can open streams at will (a new key, a new node id); each stream costs
memory (its unfinished chunks, a neuron list or membrane row) and file space, so the
recorder admits at most ``max_streams`` streams (data and control), at most
``max_streams_per_node`` per node, and no stream needing more than
``max_stream_neurons`` neurons' memory. A refusal is a ``stream_limit`` rejection.
"""

from __future__ import annotations

from collections import Counter

from recorderd.wire import Kind


def claim(kind: Kind, shape: tuple[int, ...], rate: float) -> int:
    """Neurons (or matrix elements) whose memory a stream needs beyond fixed buffers."""
    if kind is Kind.WEIGHTS:
        return shape[0] * shape[1]
    if kind is Kind.MEMBRANE or 0.0 < rate < 1.0:
        return shape[0]  # a membrane row; or the list of recorded neurons
    return 0  # every neuron, or none: no list


class StreamLimits:
    """Counts the admitted streams; says why a new one is refused."""

    def __init__(self, max_streams: int, max_per_node: int, max_neurons: int) -> None:
        self.max_streams = max_streams
        self.max_per_node = max_per_node
        self.max_neurons = max_neurons
        self._per_node: Counter[str] = Counter()
        self._total = 0
        self._presence: set[str] = set()

    def admit(self, key: str, node_id: str) -> str | None:
        """Count one more stream of ``node_id``; or return why it does not fit."""
        if self._total >= self.max_streams:
            return f"{key}: already {self.max_streams} streams (max_streams)"
        if self._per_node[node_id] >= self.max_per_node:
            return f"{key}: node has {self.max_per_node} streams (max_streams_per_node)"
        self._per_node[node_id] += 1
        self._total += 1
        return None

    def release(self, node_id: str) -> None:
        """Uncount a stream that was admitted but could not be opened."""
        self._per_node[node_id] -= 1
        self._total -= 1

    def too_large(self, key: str, kind: Kind, shape: tuple[int, ...], rate: float) -> str | None:
        """Why a stream of this shape claims too much memory, or None."""
        needed = claim(kind, shape, rate)
        if needed <= self.max_neurons:
            return None
        return (
            f"{key}: {'x'.join(map(str, shape))} needs {needed} neurons' memory "
            f"> max_stream_neurons={self.max_neurons}"
        )

    def track_presence(self, node_id: str) -> bool:
        """Whether a node's joins and leaves are logged (at most ``max_streams`` nodes)."""
        if node_id in self._presence:
            return True
        if len(self._presence) >= self.max_streams:
            return False
        self._presence.add(node_id)
        return True
