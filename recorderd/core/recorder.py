"""The recording core: accounting, limits, subsampling and batching in front of the writer.

One core, two front ends: the daemon's pipeline feeds it decoded bus messages and
the in-process API feeds it arrays directly. It is single-threaded: exactly one
thread (the writer thread) calls it.

Everything a publisher declares is bounded here before it costs memory or disk: the
number of streams and what one stream may claim (:mod:`recorderd.core.limits`), the
bytes buffered before they go to the writer, and the log lines that bus input can cause.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from recorderd.core.buffer import one_frame
from recorderd.core.limits import StreamLimits
from recorderd.core.ratelog import RateLimitedLog
from recorderd.core.sequence import SequenceTracker, Verdict
from recorderd.core.settings import CoreSettings
from recorderd.core.stats import Statistics, StreamStats
from recorderd.core.stream import DataStream
from recorderd.core.subsample import RULE, select_neurons
from recorderd.session import layout as L
from recorderd.session.errors import ShapeChangedError
from recorderd.session.frames import Frames
from recorderd.session.writer import SessionWriter
from recorderd.wire import ControlState, DataMessage, Kind, Reason, StreamKey
from recorderd.wire.batch import Batch

log = logging.getLogger(__name__)

#: A stream is written out once its buffered data passes this many bytes.
MAX_BUFFERED_BYTES: Final = 8 * 1024 * 1024
#: Every stream is written out once all buffers together pass this many bytes.
MAX_TOTAL_BUFFERED_BYTES: Final = 64 * 1024 * 1024
#: Streams handled between two checks for an aborted close.
CHECK_EVERY: Final = 64


#: Verdicts after which the stream's incarnation may be one the node metadata lacks.
_NEW_INCARNATION: Final = frozenset({Verdict.FIRST, Verdict.RESTART, Verdict.RESYNC})


class Recorder:
    """Accepts decoded messages, accounts for them and writes them in batches."""

    def __init__(self, settings: CoreSettings, writer: SessionWriter | None = None) -> None:
        self.settings = settings
        self.statistics = Statistics()
        self.writer = writer or SessionWriter(
            settings.session_dir,
            session=settings.session,
            compression=settings.compression,
            compression_level=settings.compression_level,
            recorder_config=settings.recorder_config,
            subsample_seed=settings.subsample_seed,
            subsampling_rule=RULE,
            shard=settings.shard,
            shard_nodes=settings.shard_nodes,
        )
        self.events = RateLimitedLog(log)
        #: Sections the owner adds to the statistics document (the daemon: ``coverage``);
        #: replaced whole, never mutated, so that the writer thread reads a consistent one.
        self.annotations: dict[str, Any] = {}
        self._streams: dict[str, DataStream] = {}
        self._touched: set[DataStream] = set()  # streams with buffered messages
        self._control: dict[str, SequenceTracker] = {}  # node id -> control-stream tracker
        self._resumed_control: dict[str, SequenceTracker] = {}  # from the control log
        self.limits = StreamLimits(
            settings.max_streams, settings.max_streams_per_node, settings.max_stream_neurons
        )
        self._buffered = 0
        self.clock: Callable[[], float] = time.monotonic
        self.started_at = dt.datetime.now(dt.UTC)

    def start(self, keep_waiting: Callable[[], bool] | None = None) -> None:
        """Open the session (see :meth:`SessionWriter.start`)."""
        self.writer.start(keep_waiting)
        # Control streams continue their sequence tracking across recorder runs too.
        for record in self.writer.recent_control_records():
            if "node_id" in record and "seq" in record and "incarnation" in record:
                node = str(record["node_id"])
                self._resumed_control[node] = SequenceTracker.resumed(
                    int(record["incarnation"]), int(record["seq"])
                )
            if len(self._resumed_control) > self.settings.max_streams:
                break

    # -- input -----------------------------------------------------------------------

    def reject(
        self, reason: Reason | str, detail: str, source: str = "", stream: str | None = None
    ) -> None:
        """Count and log a rejected message (in detail for the first few of each reason)."""
        reason = str(reason)
        self.statistics.rejected[reason] += 1
        if stream is not None and stream in self.statistics.streams:
            self.statistics.streams[stream].rejected += 1
        self.events.event(
            f"{reason} rejection",
            logging.WARNING,
            "rejected message (%s) from %s: %s",
            reason,
            source or "?",
            detail[:300],
        )

    def skip(self, stream: str, incarnation: int, seq: int) -> None:
        """Account for the sequence number of a message rejected for its content.

        A rejected message is counted once, as rejected: it must not also show up as a
        gap (missing) when the stream's next message arrives.
        """
        node_id, _, rest = stream.partition("/")
        if rest == "control":
            tracker = self._control.get(node_id)
        else:
            s = self._streams.get(stream)
            tracker = s.tracker if s is not None else None
        if tracker is not None:
            tracker.skip(incarnation, seq, self.clock())

    def add(self, node_id: str, name: str, msg: DataMessage, zenoh_time: int = 0) -> None:
        """Account for one valid data message and buffer what is recorded of it.

        ``zenoh_time``: the sample's Zenoh timestamp, ns since 1970 (0: none)."""
        h = msg.header
        key = StreamKey(node_id, h.kind, name).stream_id
        stream = self._streams.get(key)
        if stream is None:
            stream = self._open(key, node_id, name, msg)
            if stream is None:
                return
        got = (h.n0, h.n1) if h.kind is Kind.WEIGHTS else (h.layer_size,)
        if got != stream.shape:
            self.reject(
                Reason.SHAPE_CHANGED, f"{key}: shape {got} != {stream.shape}", key, stream=key
            )
            self.skip(key, h.incarnation, h.seq)
            return
        if not self._in_sequence(key, stream.stats, stream.tracker, h.incarnation, h.seq):
            return
        if h.dt_ms != stream.dt_ms:
            # Recorded anyway (frame_time holds the true times), but the dt_ms attribute
            # describes the stream's first dt only.
            self.events.event(
                "dt change",
                logging.WARNING,
                "stream %s: dt changed from %g to %g ms; the dt_ms attribute keeps %g, "
                "use frame_time",
                key,
                stream.dt_ms,
                h.dt_ms,
                stream.dt_ms,
            )
            stream.dt_ms = h.dt_ms
        st = stream.stats
        st.received += 1
        if st.first_step is None:
            st.first_step = h.step
        st.last_step = h.step
        if h.kind is Kind.SPIKES:
            st.spikes_received += h.n0
        data = stream.select(msg.data)
        if h.kind is not Kind.SPIKES:
            data = data[np.newaxis]  # one row (membrane) or one snapshot (weights)
        count = data.shape[0] if h.kind is Kind.SPIKES else data.shape[1]
        frame = one_frame(h.step, h.time_ms, h.seq, h.incarnation, count, zenoh_time)
        self._buffer(stream, frame, data)

    def add_batch(self, node_id: str, name: str, kind: Kind, batch: Batch) -> None:
        """Account for a run of valid messages of one stream, in arrival order, at once.

        The fast path: messages that exactly continue the stream (same incarnation, next
        seq numbers, same shape and dt) are accounted for and buffered as arrays. Anything
        else (the stream's first message, a gap, a restart, a shape or dt change) goes
        message by message through :meth:`add`, with the same result.
        """
        h = batch.header
        n = int(h.size)
        key = StreamKey(node_id, kind, name).stream_id
        start = 0
        stream = self._streams.get(key)
        if stream is None:
            self.add(node_id, name, batch.message(0, kind), batch.stamp(0))
            stream, start = self._streams.get(key), 1
        if stream is not None and start < n and stream.continues(h[start:], self.clock()):
            self._add_run(stream, batch, start, n)
            return
        for i in range(start, n):
            self.add(node_id, name, batch.message(i, kind), batch.stamp(i))

    def _add_run(self, stream: DataStream, batch: Batch, lo: int, hi: int) -> None:
        st = stream.stats
        frames, data, spikes = stream.run(batch, lo, hi)
        st.received += hi - lo
        if st.first_step is None:
            st.first_step = int(frames.steps[0])
        st.last_step = int(frames.steps[-1])
        st.spikes_received += spikes
        self._buffer(stream, frames, data)

    def write_buffered(self) -> None:
        """Hand every buffered message to the writer (the daemon does it after each batch:
        whole chunks then leave at once and ``written`` counts every message handled)."""
        touched, self._touched = self._touched, set()
        for stream in touched:
            self._write(stream)

    def _buffer(self, stream: DataStream, frames: Frames, data: npt.NDArray[Any]) -> None:
        self._touched.add(stream)
        self._buffered += stream.buffer.add(frames, data)
        if (
            stream.buffer.messages >= self.settings.buffer_size
            or stream.buffer.bytes > MAX_BUFFERED_BYTES
        ):
            self._write(stream)
        if self._buffered > MAX_TOTAL_BUFFERED_BYTES:
            self._write_all()

    def add_control(self, state: ControlState, received_at: float) -> None:
        """Account for and append one control state to the control log."""
        node = state.node_id
        key = StreamKey(node, None, "").stream_id
        tracker = self._control.get(node)
        if tracker is None:
            if not self._admit(key, node):
                return
            tracker = self._resumed_control.pop(node, None) or SequenceTracker()
            self._control[node] = tracker
        st = self.statistics.stream(key)
        if not self._in_sequence(key, st, tracker, state.incarnation, state.seq):
            return
        st.received += 1
        if st.first_step is None:
            st.first_step = state.step
        st.last_step = state.step
        record = state.model_dump(mode="json")
        record["received_at"] = dt.datetime.fromtimestamp(received_at, dt.UTC).isoformat()
        self.writer.write_control(record)
        self.writer.note_node(node, module_type=state.module_type)
        st.written += 1

    def add_presence(self, node_id: str, event: str, received_at: float) -> None:
        """Log a node's join or leave (its liveliness token) in the control log."""
        if not self.limits.track_presence(node_id):
            self.reject(Reason.STREAM_LIMIT, f"presence of node {node_id}", node_id)
            return
        self.writer.write_control(
            {
                L.CONTROL_EVENT: event,
                "node_id": node_id,
                "received_at": dt.datetime.fromtimestamp(received_at, dt.UTC).isoformat(),
            }
        )
        self.events.event(
            "presence", logging.INFO, "node %s %s", node_id, "joined" if event == "join" else "left"
        )

    # -- output ----------------------------------------------------------------------

    def flush(self) -> None:
        """Write every buffered batch and make the session durable up to here."""
        self._write_all()
        self.events.summarise()
        self.writer.flush(self.statistics_document)

    def finish(self) -> None:
        """Write everything, record final statistics and close the session (idempotent)."""
        self._write_all()
        self.events.summarise()
        self.writer.finish(self.statistics_document())

    def statistics_document(self) -> dict[str, Any]:
        """What ``recording_statistics.json`` holds."""
        doc: dict[str, Any] = {
            "session": self.settings.session,
            "session_dir": str(self.settings.session_dir.resolve()),
            **(
                {"shard": self.settings.shard, "shard_nodes": list(self.settings.shard_nodes)}
                if self.settings.shard is not None
                else {}
            ),
            "started_at": self.started_at.isoformat(),
            "updated_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        doc.update(self.statistics.to_dict())
        doc.update(self.annotations)
        if self.writer.previous_statistics is not None:
            earlier = dict(self.writer.previous_statistics)
            runs = list(earlier.pop("previous_runs", []))
            doc["previous_runs"] = [*runs, earlier]
        return doc

    # -- internals -------------------------------------------------------------------

    def _in_sequence(
        self, key: str, st: StreamStats, tracker: SequenceTracker, incarnation: int, seq: int
    ) -> bool:
        """Run the stream's sequence tracker and count what it concludes; True to record."""
        verdict, missing = tracker.observe(incarnation, seq, self.clock())
        st.missing += missing
        if verdict is Verdict.IN_ORDER or verdict is Verdict.FIRST:
            pass
        elif verdict is Verdict.GAP:
            self.events.event(
                "sequence gap",
                logging.WARNING,
                "stream %s: %d message(s) missing before seq %d",
                key,
                missing,
                seq,
            )
        elif verdict is Verdict.RESTART:
            st.restarts += 1
            self.events.event(
                "restart",
                logging.INFO,
                "stream %s: node restarted (incarnation %x)",
                key,
                incarnation,
            )
        elif verdict is Verdict.RESYNC:
            self.events.event(
                "resync",
                logging.WARNING,
                "stream %s: following a new sequence (incarnation %x, seq %d) after %s",
                key,
                incarnation,
                seq,
                "implausible messages",
            )
        elif verdict is Verdict.DUPLICATE:
            st.duplicates += 1
        elif verdict is Verdict.STALE:
            st.stale += 1
        else:
            self.reject(
                Reason.IMPLAUSIBLE_SEQ,
                f"{key}: seq {seq} of incarnation {incarnation:x}, expected {tracker.expected}",
                key,
                stream=key,
            )
        if not verdict.accepted:
            return False
        if verdict in _NEW_INCARNATION and not key.endswith("/control"):
            self.writer.note_node(key.partition("/")[0], incarnation=incarnation)
        return True

    def _admit(self, key: str, node_id: str) -> bool:
        """Whether one more stream (``key`` of ``node_id``) fits the stream limits."""
        why = self.limits.admit(key, node_id)
        if why is not None:
            self.reject(Reason.STREAM_LIMIT, why, key)
        return why is None

    def _open(self, key: str, node_id: str, name: str, msg: DataMessage) -> DataStream | None:
        h = msg.header
        s = self.settings
        rate = s.membrane_subsample_rate if h.kind is Kind.MEMBRANE else s.spike_subsample_rate
        shape = (h.n0, h.n1) if h.kind is Kind.WEIGHTS else (h.layer_size,)
        too_large = self.limits.too_large(key, h.kind, shape, rate)
        if too_large is not None:
            self.reject(Reason.STREAM_LIMIT, too_large, key)
            return None
        if not self._admit(key, node_id):
            return None
        try:
            handle = self.writer.streams.open(
                h.kind,
                node_id,
                name,
                shape=shape,
                dt_ms=h.dt_ms,
                subsample_rate=rate,
                select=lambda: select_neurons(
                    rate, h.layer_size, self.writer.subsample_seed, h.kind.key_word, node_id, name
                ),
            )
        except ShapeChangedError as exc:
            self.limits.release(node_id)
            self.reject(Reason.SHAPE_CHANGED, str(exc), key)
            return None
        tracker = SequenceTracker()
        if handle.last_frame is not None:
            # An earlier run recorded this stream: messages lost in between are gaps too.
            tracker = SequenceTracker.resumed(*handle.last_frame)
        stream = DataStream(
            key,
            h.kind,
            node_id,
            name,
            self.statistics.stream(key),
            shape,
            h.dt_ms,
            handle,
            tracker,
        )
        self.writer.note_node(node_id, dt_ms=h.dt_ms)
        self._streams[key] = stream
        self.events.event(
            "new stream", logging.INFO, "new stream %s (%s)", key, "x".join(map(str, shape))
        )
        return stream

    def _write_all(self) -> None:
        for i, stream in enumerate(self._streams.values()):
            if i % CHECK_EVERY == 0:
                self.writer.checkpoint()
            self._write(stream)

    def _write(self, stream: DataStream) -> None:
        if not stream.buffer.messages:
            return
        self._buffered -= stream.buffer.bytes
        n = stream.buffer.messages
        frames, data = stream.buffer.take()
        if stream.kind is Kind.SPIKES:
            ids = data.astype(np.uint32, copy=False)
            steps = np.repeat(frames.steps, frames.count)
            times = np.repeat(frames.times_ms, frames.count)
            self.writer.streams.append_spikes(stream.handle, steps, times, ids, frames)
            stream.stats.spikes_written += int(ids.size)
        else:
            self.writer.streams.append_rows(stream.handle, data, frames)
        stream.stats.written += n
        self.writer.create_waiting_streams()
