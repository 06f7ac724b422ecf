"""The recording core: accounting, subsampling and batching in front of the writer.

One core, two front ends: the daemon's pipeline feeds it decoded bus messages and
the in-process API feeds it arrays directly. It is single-threaded: exactly one
thread (the writer thread) calls it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from recorderd import layout as L
from recorderd.protocol import ControlState, DataMessage, Kind, Reason, StreamKey
from recorderd.settings import RecorderSettings
from recorderd.stats import Statistics, StreamStats
from recorderd.subsample import RULE, select_neurons
from recorderd.writer import Frames, SessionWriter, ShapeChangedError, StreamHandle

log = logging.getLogger(__name__)

#: Detailed log lines per rejection reason before only the counts are logged.
DETAILED_REJECTIONS = 10
#: A stream is written out once its buffered data passes this many bytes.
MAX_BUFFERED_BYTES = 32 * 1024 * 1024


@dataclass
class _Stream:
    """One data stream's state: sequence tracking, neuron selection and buffers."""

    key: str
    kind: Kind
    node_id: str
    name: str
    stats: StreamStats
    shape: tuple[int, ...]
    dt_ms: float
    handle: StreamHandle | None = None  # None: nothing to record (no neuron selected)
    mask: npt.NDArray[np.bool_] | None = None  # recorded neurons, None = all
    incarnation: int | None = None
    next_seq: int = 0
    data: list[npt.NDArray[Any]] = field(default_factory=list)
    frames: list[tuple[int, float, int, int, int]] = field(default_factory=list)
    buffered_bytes: int = 0


class Recorder:
    """Accepts decoded messages, accounts for them and writes them in batches."""

    def __init__(self, settings: RecorderSettings, writer: SessionWriter | None = None) -> None:
        self.settings = settings
        self.statistics = Statistics()
        self.writer = writer or SessionWriter(
            settings.session_dir,
            session=settings.session,
            compression=settings.compression,
            compression_level=settings.compression_level,
            recorder_config=settings.model_dump(mode="json"),
            subsample_seed=settings.subsample_seed,
            subsampling_rule=RULE,
        )
        self._streams: dict[str, _Stream] = {}
        self._control_seq: dict[str, tuple[int, int]] = {}  # node -> (incarnation, next seq)
        self._logged: Counter[str] = Counter()
        self.started_at = dt.datetime.now(dt.UTC)

    def start(self, keep_waiting: Callable[[], bool] | None = None) -> None:
        """Open the session (see :meth:`SessionWriter.start`)."""
        self.writer.start(keep_waiting)
        # Control streams continue their sequence tracking across recorder runs too.
        for record in self.writer.recent_control_records():
            if "node_id" in record and "seq" in record and "incarnation" in record:
                node = str(record["node_id"])
                self._control_seq[node] = (int(record["incarnation"]), int(record["seq"]) + 1)

    # -- input -----------------------------------------------------------------------

    def reject(self, reason: Reason | str, detail: str, source: str = "") -> None:
        """Count and log a rejected message (detailed for the first few of each reason)."""
        reason = str(reason)
        self.statistics.rejected[reason] += 1
        self._logged[reason] += 1
        if self._logged[reason] <= DETAILED_REJECTIONS:
            log.warning("rejected message (%s) from %s: %s", reason, source or "?", detail[:300])
            if self._logged[reason] == DETAILED_REJECTIONS:
                log.warning("further %s rejections are counted, not logged one by one", reason)

    def add(self, node_id: str, name: str, msg: DataMessage) -> None:
        """Account for one valid data message and buffer what is recorded of it."""
        h = msg.header
        key = StreamKey(node_id, h.kind, name).stream_id
        stream = self._streams.get(key)
        if stream is None:
            stream = self._open(key, node_id, name, msg)
            if stream is None:
                return
        st = stream.stats
        if not self._same_shape(stream, msg) or not self._in_sequence(stream, h.incarnation, h.seq):
            return
        st.received += 1
        if st.first_step is None:
            st.first_step = h.step
        st.last_step = h.step
        if h.kind is Kind.SPIKES:
            st.spikes_received += h.n0
        if stream.handle is None:
            return
        data = msg.data
        if h.kind is Kind.SPIKES:
            if stream.mask is not None and data.size:
                data = data[stream.mask[data]]
        elif h.kind is Kind.MEMBRANE and stream.mask is not None:
            data = data[stream.mask]
        stream.data.append(data)
        stream.frames.append((h.step, h.time_ms, h.seq, h.incarnation, int(data.shape[0])))
        stream.buffered_bytes += data.nbytes + 40
        if (
            len(stream.frames) >= self.settings.buffer_size
            or stream.buffered_bytes > MAX_BUFFERED_BYTES
        ):
            self._write(stream)

    def add_control(self, state: ControlState, received_at: float) -> None:
        """Account for and append one control state to the control log."""
        key = StreamKey(state.node_id, None, "").stream_id
        st = self.statistics.stream(key)
        inc, next_seq = self._control_seq.get(state.node_id, (None, 0))
        if inc is None or inc != state.incarnation:
            if inc is not None:
                st.restarts += 1
                st.missing += state.seq
        elif state.seq < next_seq:
            st.duplicates += 1
            return
        else:
            st.missing += state.seq - next_seq
        self._control_seq[state.node_id] = (state.incarnation, state.seq + 1)
        st.received += 1
        if st.first_step is None:
            st.first_step = state.step
        st.last_step = state.step
        record = state.model_dump(mode="json")
        record["received_at"] = dt.datetime.fromtimestamp(received_at, dt.UTC).isoformat()
        self.writer.write_control(record)
        self.writer.note_node(state.node_id, module_type=state.module_type)
        st.written += 1

    def add_presence(self, node_id: str, event: str, received_at: float) -> None:
        """Log a node's join or leave (its liveliness token) in the control log."""
        self.writer.write_control(
            {
                L.CONTROL_EVENT: event,
                "node_id": node_id,
                "received_at": dt.datetime.fromtimestamp(received_at, dt.UTC).isoformat(),
            }
        )
        log.info("node %s %s", node_id, "joined" if event == "join" else "left")

    # -- output ----------------------------------------------------------------------

    def flush(self) -> None:
        """Write every buffered batch and make the session durable up to here."""
        for stream in self._streams.values():
            self._write(stream)
        self.writer.flush(self.statistics_document())

    def finish(self) -> None:
        """Write everything, record final statistics and close the session (idempotent)."""
        for stream in self._streams.values():
            self._write(stream)
        self.writer.finish(self.statistics_document())

    def statistics_document(self) -> dict[str, Any]:
        """What ``recording_statistics.json`` holds."""
        doc: dict[str, Any] = {
            "session": self.settings.session,
            "session_dir": str(self.settings.session_dir.resolve()),
            "started_at": self.started_at.isoformat(),
            "updated_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        doc.update(self.statistics.to_dict())
        if self.writer.previous_statistics is not None:
            earlier = dict(self.writer.previous_statistics)
            runs = list(earlier.pop("previous_runs", []))
            doc["previous_runs"] = [*runs, earlier]
        return doc

    # -- internals -------------------------------------------------------------------

    def _in_sequence(self, stream: _Stream, incarnation: int, seq: int) -> bool:
        st = stream.stats
        if stream.incarnation is None:
            pass  # first message heard: the recorder may have joined late, no gap to count
        elif incarnation != stream.incarnation:
            st.restarts += 1
            st.missing += seq  # a new incarnation starts at 0
            log.info("stream %s: node restarted (incarnation %x)", stream.key, incarnation)
        elif seq < stream.next_seq:
            st.duplicates += 1
            return False
        elif seq > stream.next_seq:
            st.missing += seq - stream.next_seq
            log.warning(
                "stream %s: %d message(s) missing before seq %d",
                stream.key,
                seq - stream.next_seq,
                seq,
            )
        if incarnation != stream.incarnation:
            stream.incarnation = incarnation
            self.writer.note_node(stream.node_id, incarnation=incarnation, dt_ms=None)
        stream.next_seq = seq + 1
        return True

    def _open(self, key: str, node_id: str, name: str, msg: DataMessage) -> _Stream | None:
        h = msg.header
        s = self.settings
        rate = s.membrane_subsample_rate if h.kind is Kind.MEMBRANE else s.spike_subsample_rate
        shape = (h.n0, h.n1) if h.kind is Kind.WEIGHTS else (h.layer_size,)
        try:
            handle = self.writer.open_stream(
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
            self.reject(Reason.SHAPE_CHANGED, str(exc), key)
            return None
        stream = _Stream(
            key, h.kind, node_id, name, self.statistics.stream(key), shape, h.dt_ms, handle
        )
        if handle.last_frame is not None:
            # An earlier run recorded this stream: messages lost in between are gaps too.
            stream.incarnation, last_seq = handle.last_frame
            stream.next_seq = last_seq + 1
        if h.kind is not Kind.WEIGHTS and handle.recorded_neurons.size < h.layer_size:
            mask = np.zeros(h.layer_size, dtype=bool)
            mask[handle.recorded_neurons] = True
            stream.mask = mask
            if handle.recorded_neurons.size == 0:
                stream.handle = None
        self.writer.note_node(node_id, dt_ms=h.dt_ms)
        self._streams[key] = stream
        log.info("new stream %s (%s)", key, "x".join(map(str, shape)))
        return stream

    def _same_shape(self, stream: _Stream, msg: DataMessage) -> bool:
        h = msg.header
        if h.dt_ms != stream.dt_ms:
            # Recorded anyway (frame_time holds the true times), but dt_ms attributes
            # describe the stream's first dt only: say so once per change.
            log.warning(
                "stream %s: dt changed from %g to %g ms; the dt_ms attribute keeps "
                "%g, use frame_time",
                stream.key,
                stream.dt_ms,
                h.dt_ms,
                stream.dt_ms,
            )
            stream.dt_ms = h.dt_ms
        got = (h.n0, h.n1) if h.kind is Kind.WEIGHTS else (h.layer_size,)
        if got != stream.shape:
            self.reject(
                Reason.SHAPE_CHANGED, f"{stream.key}: shape {got} != {stream.shape}", stream.key
            )
            return False
        return True

    def _write(self, stream: _Stream) -> None:
        if not stream.frames or stream.handle is None:
            return
        cols = list(zip(*stream.frames, strict=True))
        frames = Frames(
            step=np.asarray(cols[0], dtype=np.int64),
            time=np.asarray(cols[1], dtype=np.float64),
            seq=np.asarray(cols[2], dtype=np.uint64),
            incarnation=np.asarray(cols[3], dtype=np.uint64),
            count=np.asarray(cols[4], dtype=np.uint32),
        )
        if stream.kind is Kind.SPIKES:
            ids = np.concatenate(stream.data).astype(np.uint32, copy=False)
            steps = np.repeat(frames.step, frames.count)
            times = np.repeat(frames.time, frames.count)
            self.writer.append_spikes(stream.handle, steps, times, ids, frames)
            stream.stats.spikes_written += int(ids.size)
        else:
            self.writer.append_rows(stream.handle, np.stack(stream.data), frames)
        stream.stats.written += len(stream.frames)
        stream.data.clear()
        stream.frames.clear()
        stream.buffered_bytes = 0
