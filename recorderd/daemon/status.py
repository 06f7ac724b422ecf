"""The recorder's live status: nodes alive, rates, and the document ``recorderctl`` shows."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from typing import Any, Final

from recorderd.core.recorder import Recorder
from recorderd.daemon.pipeline import Pipeline
from recorderd.daemon.settings import RecorderSettings
from recorderd.session import layout as L

#: Seconds over which the per-stream rates of the live status are measured.
RATE_PERIOD_S: Final = 2.0


class LiveStatus:
    """What a running recorder knows of itself and of the nodes on the bus.

    Presence changes come on the event loop; :meth:`document` is built on a query thread
    and reads copies only.
    """

    def __init__(self, settings: RecorderSettings, recorder: Recorder, pipeline: Pipeline) -> None:
        self.settings = settings
        self.recorder = recorder
        self.pipeline = pipeline
        self.files = L.SessionFiles(settings.session_dir, settings.shard)
        self.started = time.monotonic()
        #: Nodes whose liveliness token exists now (bounded like the streams).
        self.alive: set[str] = set()
        #: When each node alive joined (its liveliness token appeared), wall-clock time.
        self.joined: dict[str, float] = {}
        #: When the last node left (``time.monotonic()``), for ``--stop-when-idle``.
        self.idle_since = time.monotonic()
        #: The last coverage check of a sharded session (``recorderd.daemon.coverage``).
        self.coverage: dict[str, object] | None = None
        self._rates: dict[str, tuple[float, float]] = {}

    def presence(self, node_id: str, alive: bool) -> None:
        """A node's liveliness token appeared (``alive``) or went away."""
        if alive:
            if len(self.alive) < self.settings.max_streams:  # bounded like the streams
                self.alive.add(node_id)
                self.joined.setdefault(node_id, time.time())
        else:
            self.alive.discard(node_id)
            self.joined.pop(node_id, None)
            if not self.alive:
                self.idle_since = time.monotonic()

    def line(self) -> str:
        """One line for systemd's STATUS and the log."""
        t = self.recorder.statistics.totals()
        return (
            f"recording {self.settings.session}: {t['spikes_written']} spikes, {t['written']} "
            f"messages in {len(self.recorder.statistics.streams)} streams; {t['rejected']} "
            f"rejected, {t['missing']} missing, {t['intake_dropped']} dropped"
        )

    def document(self) -> dict[str, object]:
        """The live status ``recorderctl status`` shows (answered from a query thread)."""
        s = self.settings
        stats = self.recorder.statistics.to_dict()
        for key, stream in stats["streams"].items():
            msg_rate, spike_rate = self._rates.get(key, (0.0, 0.0))
            stream["messages_per_s"] = round(msg_rate, 1)
            stream["spikes_per_s"] = round(spike_rate, 1)
        done_at = self.pipeline.batch_done_at
        try:
            file_bytes = self.files.data.stat().st_size
        except OSError:
            file_bytes = 0
        return {
            "session": s.session,
            "shard": s.shard,
            "nodes_recorded": list(s.nodes),
            "data_file": self.files.data.name,
            "coverage": self.coverage,
            "session_dir": str(s.session_dir.resolve()),
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "file_bytes": file_bytes,
            "intake_queued": self.pipeline.queued,
            "flushes": self.pipeline.flushes,
            # New streams whose groups are not in the file yet (created at the next flushes).
            "streams_pending": len(self.recorder.writer.streams.pending),
            "longest_flush_gap_s": round(self.pipeline.longest_flush_gap, 3),
            "last_flush_age_s": round(time.monotonic() - self.pipeline.last_flush, 3),
            "last_batch_age_s": (None if done_at is None else round(time.monotonic() - done_at, 4)),
            "nodes_alive": sorted(self.alive),
            "bus_errors": self.recorder.annotations.get("bus_errors", {}),
            "nodes": self.nodes_document(stats["streams"]),
            **stats,
        }

    def nodes_document(self, streams: dict[str, Any]) -> dict[str, object]:
        """Per node seen: module type, incarnations, since when alive, last control state
        and rates (sums over its streams), for ``recorderctl nodes``."""
        now = time.time()
        joined = dict(self.joined)
        seen = self.pipeline.nodes_seen()
        rates: dict[str, list[float]] = {}
        for key, stream in streams.items():
            node = key.partition("/")[0]
            r = rates.setdefault(node, [0.0, 0.0])
            r[0] += float(stream.get("messages_per_s", 0.0))
            r[1] += float(stream.get("spikes_per_s", 0.0))
        out: dict[str, object] = {}
        for node in sorted(set(seen) | set(joined)):
            info: dict[str, object] = dict(seen.get(node, {}))
            since = joined.get(node)
            info["alive"] = node in self.alive
            info["joined_at"] = (
                None if since is None else dt.datetime.fromtimestamp(since, dt.UTC).isoformat()
            )
            info["alive_s"] = None if since is None else round(now - since, 3)
            msg_rate, spike_rate = rates.get(node, [0.0, 0.0])
            info["messages_per_s"] = round(msg_rate, 1)
            info["spikes_per_s"] = round(spike_rate, 1)
            out[node] = info
        return out

    async def measure_rates(self) -> None:
        """Per-stream message and spike rates over the last :data:`RATE_PERIOD_S`, forever."""
        last: dict[str, tuple[int, int]] = {}
        last_t = time.monotonic()
        while True:
            await asyncio.sleep(RATE_PERIOD_S)
            now = time.monotonic()
            span = max(now - last_t, 1e-9)
            current = {
                k: (st.received, st.spikes_received)
                for k, st in list(self.recorder.statistics.streams.items())
            }
            self._rates = {
                k: ((m - last.get(k, (0, 0))[0]) / span, (n - last.get(k, (0, 0))[1]) / span)
                for k, (m, n) in current.items()
            }
            last, last_t = current, now
