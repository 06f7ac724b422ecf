"""What a stream's attributes and frame index say, gathered once per stream.

A summary of a session with thousands of streams asks about each stream several times
(its population info, its ``sim-analyzer info`` row, its node's end of data); each
answer used to reopen the stream and re-read its attributes and frame index. A
:class:`StreamFacts` is the small record all of them need (no per-message or per-neuron
array), made on first use by :meth:`analysis.reader.SessionReader.facts` and kept for
the reader's life: a few hundred bytes per stream, whatever its length.

A cleanly closed file written by a recent recorder holds these facts in its stream
summary (``/metadata/summary``, :mod:`recorderd.session.summary`): they are then taken
from there (:func:`from_summary`) and the stream is not opened for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.records import Run, missing_messages, runs_from, runs_of, span_of
from recorderd.session import layout as L
from recorderd.session.reader import StreamSummary

if TYPE_CHECKING:
    from analysis.reader import SessionReader


@dataclass(frozen=True)
class StreamFacts:
    """One stream's attributes and frame-index figures (no data row read)."""

    kind: str
    """``spikes``, ``membrane`` or ``weights``."""
    node_id: str
    layer: str
    shape: tuple[int, ...]
    """The ``layer_size`` attribute: ``(n,)``; weights ``(rows, cols)``."""
    dt_attr: float | None
    """The ``dt_ms`` attribute (None if the stream has none)."""
    subsample_rate: float
    sorting: str | None
    """Spike streams: ``none``, ``by_id`` or ``by_time``; None for other kinds."""
    recorded: int
    """Neurons recorded (:meth:`SessionReader.recorded_count`; weights 0)."""
    frames: int
    """Complete messages (rows of the frame index usable in every dataset)."""
    spike_rows: int
    """Spike streams: complete spike rows; 0 for other kinds."""
    total_count: int
    """Sum of ``frame_count`` over the frames (spikes of a spike stream)."""
    first_step: int | None
    last_step: int | None
    t_first_ms: float | None
    """Earliest frame time."""
    t_last_ms: float | None
    """Latest frame time (not plus dt)."""
    runs: tuple[Run, ...]
    """Per node incarnation, its recorded span (:func:`analysis.records.runs_of`)."""
    missing: int
    """Gaps in ``frame_seq`` within each incarnation."""
    storage_bytes: int
    """Bytes the stream's datasets take in the file."""

    @property
    def dt_ms(self) -> float:
        """The step length, 1 ms if the stream stores none."""
        return 1.0 if self.dt_attr is None else self.dt_attr

    @property
    def layer_size(self) -> int:
        """Neurons in the layer (weights: matrix rows)."""
        return self.shape[0] if self.shape else 0

    @property
    def duration_ms(self) -> float:
        """Recorded time summed over the incarnations."""
        return sum(r.duration_ms for r in self.runs)

    @property
    def t_stop_ms(self) -> float | None:
        """End of the recorded span (last run's last step plus its dt); None if empty."""
        return span_of(self.runs)[1] if self.runs else None


def gather(reader: SessionReader, kind: str, node_id: str, layer: str) -> StreamFacts:
    """Read one stream's facts: its attributes, frame index and row counts."""
    fr = reader.frames(node_id, layer, kind)
    dt_raw: Any = reader.stream_attr(node_id, layer, kind, L.ATTR_DT_MS)
    dt_attr = None if dt_raw is None else float(dt_raw)
    empty = fr.steps.size == 0
    runs = () if empty else tuple(runs_of(fr, 1.0 if dt_attr is None else dt_attr))
    size = reader.stream_attr(node_id, layer, kind, L.ATTR_LAYER_SIZE, 0)
    spikes = kind == L.SPIKES
    return StreamFacts(
        kind=kind,
        node_id=node_id,
        layer=layer,
        shape=tuple(int(x) for x in np.atleast_1d(size)),
        dt_attr=dt_attr,
        subsample_rate=float(reader.stream_attr(node_id, layer, kind, L.ATTR_SUBSAMPLE_RATE, 1.0)),
        sorting=reader.sorting(node_id, layer) if spikes else None,
        recorded=reader.recorded_count(node_id, layer, kind),
        frames=int(fr.steps.size),
        spike_rows=reader.spike_rows(node_id, layer) if spikes else 0,
        total_count=int(fr.count.sum(dtype=np.int64)),
        first_step=None if empty else int(fr.steps.min()),
        last_step=None if empty else int(fr.steps.max()),
        t_first_ms=None if empty else float(fr.times_ms.min()),
        t_last_ms=None if empty else float(fr.times_ms.max()),
        runs=runs,
        missing=0 if empty else missing_messages(fr),
        storage_bytes=reader.stream_storage_bytes(node_id, layer, kind),
    )


def from_summary(s: StreamSummary, node_id: str, layer: str) -> StreamFacts:
    """A stream's facts from its row of the file's stream summary: the same values
    :func:`gather` reads from the stream itself."""
    runs = s.runs
    empty = s.frames == 0
    dt = 1.0 if s.dt_ms is None else s.dt_ms
    extremes = [(r.incarnation, r.first_step, r.last_step, r.t_first_ms, r.t_last_ms) for r in runs]
    return StreamFacts(
        kind=s.kind,
        node_id=node_id,
        layer=layer,
        shape=s.shape,
        dt_attr=s.dt_ms,
        subsample_rate=s.subsample_rate,
        sorting=s.sorting,
        recorded=s.recorded,
        frames=s.frames,
        spike_rows=s.spike_rows,
        total_count=s.total_count,
        first_step=None if empty else min(r.first_step for r in runs),
        last_step=None if empty else max(r.last_step for r in runs),
        t_first_ms=None if empty else min(r.t_first_ms for r in runs),
        t_last_ms=None if empty else max(r.t_last_ms for r in runs),
        runs=() if empty else tuple(runs_from(extremes, dt)),
        missing=sum(r.seq_last - r.seq_first + 1 - r.frames for r in runs),
        storage_bytes=s.storage_bytes,
    )
