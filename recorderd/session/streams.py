"""The streams of an open session: opening them and appending their rows.

A new stream's group and datasets cannot be created in SWMR mode: :meth:`Streams.open`
gives it its appendable datasets at once (rows wait in their tails) and queues its
:class:`~recorderd.session.schema.StreamSpec`; the writer creates the queued streams at
its next flush, a bounded number per window. A stream already in the file is reopened
with what the file says of it (shape, recorded neurons, sort order, last frame).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from recorderd.session import layout as L
from recorderd.session.appendable import Appendable
from recorderd.session.chunks import Codec
from recorderd.session.errors import ShapeChangedError
from recorderd.session.frames import Frames
from recorderd.session.schema import (
    StreamSpec,
    appendable_paths,
    is_sorted_by_time,
    series_of,
    stored_recorded,
    stored_shape,
    stream_path,
)
from recorderd.session.summary import StreamSummary, Tally
from recorderd.session.tails import Tails
from recorderd.session.views import storage_under
from recorderd.wire import Kind

#: The frame index datasets every stream has (frame_zenoh_time only in newer streams).
FRAME_NAMES = (L.FRAME_STEP, L.FRAME_TIME, L.FRAME_SEQ, L.FRAME_INCARNATION, L.FRAME_COUNT)


def top_of(path: str) -> str:
    """The top-level group of a stream group's path (``/spikes/a.b`` -> ``spikes``)."""
    return path[1:].split("/", 1)[0]


@dataclass
class StreamHandle:
    """An open stream and what appending to it needs."""

    kind: Kind
    path: str  # the group's HDF5 path
    #: Sorted recorded neurons of a subsampled layer; None: every neuron (or weights).
    recorded_neurons: npt.NDArray[np.uint32] | None
    shape: tuple[int, ...]  # (layer_size,) or (rows, cols) for weights
    arrays: dict[str, Appendable]  # dataset name -> its appendable
    last_time: float = -np.inf  # for the SONATA "sorting" attribute of spike populations
    #: (incarnation, seq) of the stream's last recorded message, from an earlier run.
    last_frame: tuple[int, int] | None = None
    sorted_by_time: bool = True
    #: What the stream summary says of it besides its counts (summary.StreamSummary):
    #: dt_ms, subsample_rate, recorded neurons, bytes of datasets that do not grow.
    facts: tuple[float | None, float, int, int] = (None, 1.0, 0, 0)
    #: Its frames counted as appended; None: not all known (left out of the summary).
    tally: Tally | None = None

    def summary(self, file: h5py.File) -> StreamSummary | None:
        """The stream's row of the summary (after every row is written), or None if its
        counts do not account for every row of its datasets."""
        tally = self.tally
        if tally is None or tally.runs is None:
            return None
        arrays = self.arrays
        frames = min(arrays[name].main for name in FRAME_NAMES)
        if L.DATA in arrays:
            frames = min(frames, arrays[L.DATA].main)
        spike_rows = 0
        if self.kind is Kind.SPIKES:
            spike_rows = min(
                arrays[n].main for n in (L.TIMESTAMPS, L.NODE_IDS, L.STEPS) if n in arrays
            )
            if spike_rows != tally.total_count:
                return None
        if tally.frames != frames:
            return None
        dt_ms, rate, recorded, fixed_bytes = self.facts
        stored = [a.stored for a in arrays.values()]
        if all(b is not None for b in stored):
            nbytes = fixed_bytes + sum(b for b in stored if b is not None)
        else:  # chunks HDF5 filtered, or written by an earlier run: ask the file
            nbytes = storage_under(h5py.h5g.open(file.id, self.path.encode()))
        sorting = None
        if self.kind is Kind.SPIKES:
            sorting = "by_time" if self.sorted_by_time else "none"
        top, pop = self.path[1:].split("/")
        return StreamSummary(
            kind=top,
            population=pop,
            shape=self.shape,
            dt_ms=dt_ms,
            subsample_rate=rate,
            sorting=sorting,
            recorded=recorded,
            frames=frames,
            spike_rows=spike_rows,
            total_count=tally.total_count,
            storage_bytes=nbytes,
            runs=tally.run_summaries(),
        )


class Streams:
    """Opening streams and appending rows; ``file()`` is the writer's open file."""

    def __init__(self, tails: Tails, file: Callable[[], h5py.File], codec: Codec | None) -> None:
        self._tails = tails
        self._file = file
        self._codec = codec
        #: New streams waiting for a window, with their datasets' appendables.
        self.pending: list[tuple[StreamSpec, list[Appendable]]] = []
        #: ``sorting`` attribute changes waiting for a window, by group path.
        self.pending_sorting: dict[str, str] = {}
        #: Every stream opened, by group path (their summary rows at close).
        self.handles: dict[str, StreamHandle] = {}
        #: The summary the file held when it was opened (streams continued from it).
        self.previous: dict[tuple[str, str], StreamSummary] = {}

    def open(
        self,
        kind: Kind,
        node_id: str,
        name: str,
        *,
        shape: tuple[int, ...],
        dt_ms: float,
        subsample_rate: float,
        select: Callable[[], npt.NDArray[np.uint32]],
    ) -> StreamHandle:
        """Open a stream, new or in the file; ``select`` picks a subsampled layer's neurons."""
        path = stream_path(kind, node_id, name)
        top, pop = path[1:].split("/")
        if pop in self._file()[top]:
            handle = self._reopen(kind, f"{node_id}/{kind.key_word}/{name}", path, shape)
            self.handles[path] = handle
            return handle
        recorded = None
        if kind is not Kind.WEIGHTS and subsample_rate < 1.0:
            recorded = select()
            if recorded.size == shape[0]:
                recorded = None  # every neuron after all: no list
        count = 0 if kind is Kind.WEIGHTS else shape[0] if recorded is None else recorded.size
        fixed_bytes = 0 if recorded is None else int(recorded.nbytes)
        spec = StreamSpec(kind, node_id, name, shape, dt_ms, subsample_rate, recorded)
        arrays = {
            s.name: Appendable(
                f"{path}/{s.name}",
                s.chunk_rows,
                s.dtype,
                s.row_shape,
                0,
                created=False,
                codec=self._codec if s.whole_rows else None,
            )
            for s in series_of(spec)
        }
        self._tails.add(arrays.values())
        self.pending.append((spec, list(arrays.values())))
        handle = StreamHandle(kind, path, recorded, shape, arrays)
        handle.facts = (dt_ms, subsample_rate, int(count), fixed_bytes)
        handle.tally = Tally()
        self.handles[path] = handle
        return handle

    def _reopen(self, kind: Kind, stream: str, path: str, shape: tuple[int, ...]) -> StreamHandle:
        group = self._file()[path]
        old = stored_shape(group)
        if old != shape:
            raise ShapeChangedError(stream, old, shape)
        arrays = {
            p.rsplit("/", 1)[1]: a for p in appendable_paths(group) if (a := self._tails.get(p))
        }
        handle = StreamHandle(kind, path, stored_recorded(group, kind), shape, arrays)
        if kind is Kind.SPIKES:
            last = self._last(arrays.get(L.TIMESTAMPS))
            handle.last_time = -np.inf if last is None else float(last)
            handle.sorted_by_time = is_sorted_by_time(group)
        seq = self._last(arrays.get(L.FRAME_SEQ))
        inc = self._last(arrays.get(L.FRAME_INCARNATION))
        if seq is not None and inc is not None:
            handle.last_frame = (int(inc), int(seq))
        before = self.previous.get((top_of(path), path.rsplit("/", 1)[1]))
        if before is not None:  # counted on from the summary of the last clean close
            handle.facts = (before.dt_ms, before.subsample_rate, before.recorded, 0)
            handle.tally = Tally(before.runs, before.total_count)
        return handle

    def _last(self, a: Appendable | None) -> Any:
        if a is None:
            return None
        return a.last(self._file()[a.path] if a.main else None)

    def append_spikes(
        self,
        handle: StreamHandle,
        steps: npt.NDArray[np.int64],
        times: npt.NDArray[np.float64],
        ids: npt.NDArray[np.uint32],
        frames: Frames,
    ) -> None:
        """Append flat (step, time, neuron id) spike rows and their message index rows."""
        if times.size:
            unsorted = times[0] < handle.last_time or bool((times[1:] < times[:-1]).any())
            if unsorted and handle.sorted_by_time:
                handle.sorted_by_time = False
                self.pending_sorting[handle.path] = "none"
            handle.last_time = float(times[-1])
            self._push(handle.arrays[L.TIMESTAMPS], times)
            self._push(handle.arrays[L.NODE_IDS], ids)
            if L.STEPS in handle.arrays:  # a format 2 stream continued
                self._push(handle.arrays[L.STEPS], steps)
        self._append_frames(handle, frames)

    def append_rows(
        self, handle: StreamHandle, data: npt.NDArray[np.float32], frames: Frames
    ) -> None:
        """Append membrane rows (frames x recorded neurons) or weight snapshots."""
        if L.DATA in handle.arrays:  # absent when no neuron is recorded
            self._push(handle.arrays[L.DATA], data)
        self._append_frames(handle, frames)

    def _push(self, a: Appendable, rows: npt.NDArray[Any]) -> None:
        self._tails.push(a, rows, self._file())

    def summaries(self, file: h5py.File) -> list[StreamSummary]:
        """The summary rows of the streams opened (at close, every row written), and of
        the streams of the last clean close's summary that this run did not open (their
        last chunk was rewritten: their bytes are asked of the file)."""
        out = [s for h in self.handles.values() if (s := h.summary(file)) is not None]
        for (top, pop), before in self.previous.items():
            path = f"/{top}/{pop}"
            if path not in self.handles:
                nbytes = storage_under(h5py.h5g.open(file.id, path.encode()))
                out.append(replace(before, storage_bytes=nbytes))
        return out

    def _append_frames(self, handle: StreamHandle, frames: Frames) -> None:
        if handle.tally is not None:
            handle.tally.add(frames)
        arrays = handle.arrays
        self._push(arrays[L.FRAME_STEP], frames.steps)
        self._push(arrays[L.FRAME_TIME], frames.times_ms)
        self._push(arrays[L.FRAME_SEQ], frames.seq)
        self._push(arrays[L.FRAME_INCARNATION], frames.incarnation)
        self._push(arrays[L.FRAME_COUNT], frames.count)
        zenoh_time = arrays.get(L.FRAME_ZENOH_TIME)  # absent in streams of older sessions
        if zenoh_time is not None:
            stamps = frames.zenoh_time
            if stamps is None:
                stamps = np.zeros(frames.steps.size, np.uint64)
            self._push(zenoh_time, stamps)
