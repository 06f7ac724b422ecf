"""Loss accounting: per-stream counters and rejection counts (names: session.statistics)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from recorderd.session.statistics import COUNTERS


@dataclass(slots=True)
class StreamStats:
    """Counters of one stream (one key expression)."""

    received: int = 0  # valid, in-sequence messages accepted for recording
    written: int = 0  # messages whose data reached the file
    dropped: int = 0  # messages dropped unread because the recorder's intake was full
    missing: int = 0  # sequence numbers never received (gaps on the bus)
    duplicates: int = 0  # sequence numbers received twice or out of order (not written)
    stale: int = 0  # late messages of an earlier incarnation of the node (not written)
    rejected: int = 0  # invalid messages on this key (also counted by reason)
    restarts: int = 0  # node incarnation changes seen on this stream
    spikes_received: int = 0
    spikes_written: int = 0  # after subsampling
    first_step: int | None = None
    last_step: int | None = None


@dataclass
class Statistics:
    """Everything the recorder counts; serialised into ``recording_statistics.json``."""

    streams: dict[str, StreamStats] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)
    intake_dropped: int = 0  # messages dropped before decoding because the intake was full

    def stream(self, key: str) -> StreamStats:
        """The counters of ``key``, created on first use."""
        stats = self.streams.get(key)
        if stats is None:
            stats = self.streams[key] = StreamStats()
        return stats

    def totals(self) -> dict[str, int]:
        """Sums over all streams, with the guide's ``total_spikes_recorded``."""
        streams = list(self.streams.values())  # may grow on the writer thread meanwhile
        sums: dict[str, int] = {name: sum(getattr(s, name) for s in streams) for name in COUNTERS}
        sums["total_spikes_recorded"] = sums["spikes_written"]
        # All rejections, including those of keys that never became a stream.
        sums["rejected"] = sum(self.rejected.values())
        sums["intake_dropped"] = self.intake_dropped
        return sums

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot."""
        return {
            "totals": self.totals(),
            "rejected": dict(sorted(self.rejected.items())),
            "streams": {key: asdict(s) for key, s in sorted(list(self.streams.items()))},
        }
