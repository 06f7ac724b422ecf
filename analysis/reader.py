"""Read a recorded session: the analysis side of ``docs/recording-format.md``.

Opens sessions that are finished, still being written, or left by a crashed writer
(files are opened read-only with HDF5 file locking off, so a live writer does not
block readers). All names come from :mod:`recorderd.session.layout`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from analysis.facts import StreamFacts, from_summary, gather
from analysis.paths import session_dir as folder_of
from analysis.records import (
    AnalysisError,
    MembraneTraces,
    NotASessionError,
    Run,
    SpikeTrains,
    UnsupportedFormatError,
    missing_messages,
    runs_of,
    span_of,
)
from analysis.rows import (
    FRAME_NAMES,
    Steps,
    bisect_left,
    concat,
    frame_rows,
    read_spike_rows,
    spike_extent,
)
from recorderd.session import layout as L
from recorderd.session.closing import ClosesOnExit
from recorderd.session.frames import Frames
from recorderd.session.reader import (
    KINDS,
    SessionFile,
    SessionFileError,
    StreamView,
)
from recorderd.session.recovery import SessionState
from recorderd.session.schema import group_of
from recorderd.wire import Kind

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "AnalysisError",
    "Frames",
    "MembraneTraces",
    "NotASessionError",
    "Run",
    "SessionReader",
    "SpikeTrains",
    "StreamKind",
    "UnsupportedFormatError",
    "missing_messages",
    "runs_of",
    "span_of",
]

#: A stream kind: a :class:`recorderd.wire.Kind` or its group name (``"spikes"``, ...).
StreamKind = Kind | str
#: Rows per slice of the out-of-core spike reads: 2 Mi rows, a whole number of the
#: writer's chunks of every format version (40 MiB for times, ids and steps together).
DEFAULT_CHUNK_ROWS: Final = 1 << 20  # 12 MiB of times and ids per chunk
#: Rows per slice when reading membrane data or a weight matrix piecewise.
_DATA_BLOCK_ELEMENTS: Final = 1 << 22


class SessionReader(ClosesOnExit):
    """Read-only view of one session folder: finished, live or left by a crash.

    ``session_dir`` is the folder, or its ``simulation_data.h5``.
    ``recover`` (default True): a session left by a crashed recorder is repaired in
    place on opening, as the next recorder would do (the reader takes the session lock
    for a moment and applies the journal), so that any HDF5 tool can open it afterwards.
    With ``recover=False`` nothing is ever written: a crashed session is read through
    its journal (``state == "read-only"``). A live session is always read as of the
    recorder's last flush.
    """

    def __init__(self, session_dir: str | Path, *, recover: bool = True) -> None:
        self.path = folder_of(session_dir)  # the folder, or its simulation_data.h5
        if not L.session_file_sets(self.path):  # simulation_data.h5 or a shard's file
            raise NotASessionError(self.path)
        try:
            self._file = SessionFile(self.path, recover=recover)
        except SessionFileError as exc:
            raise AnalysisError(str(exc)) from exc
        root = self._file.root_attrs()
        if root.get(L.ATTR_FORMAT) != L.FORMAT_NAME:
            self._file.close()
            raise NotASessionError(self.path)
        version = int(root.get(L.ATTR_FORMAT_VERSION, 0))
        if version > L.FORMAT_VERSION:
            self._file.close()
            raise UnsupportedFormatError(self.path, version)
        self._version = version
        self._layers: dict[str, dict[str, list[str]]] = {}  # kind -> node -> layers
        self._frames: dict[tuple[str, str, str], Frames] = {}  # the last few streams'
        self._extents: dict[tuple[str, str], tuple[int, int]] = {}
        self._facts: dict[tuple[str, str, str], StreamFacts] = {}

    @property
    def state(self) -> SessionState:
        """``clean``, ``recovered`` (repaired on opening), ``live`` (being recorded) or
        ``read-only`` (crashed and not repaired: read through its journal)."""
        return self._file.state

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._file.close()

    # -- what is there ---------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """Session metadata attributes (recorder config and statistics parsed from JSON)."""
        attrs = self._file.metadata_attrs()
        for key in (L.ATTR_RECORDER_CONFIG, L.ATTR_STATISTICS):
            if key in attrs:
                attrs[key] = json.loads(attrs[key])
        return attrs

    def nodes(self) -> list[str]:
        """Node ids with any recorded stream or control state, sorted."""
        names = set(self._file.node_ids_with_metadata())
        for kind in KINDS:
            names.update(L.split_population(p)[0] for p in self._file.populations(kind))
        return sorted(names)

    def node_info(self, node_id: str) -> dict[str, Any]:
        """Per-node metadata: module type, dt, incarnations."""
        return self._file.node_attrs(node_id)

    def layers(self, node_id: str, kind: StreamKind = L.SPIKES) -> list[str]:
        """Layer (or weight) names of a node under ``spikes``, ``membrane`` or ``weights``,
        in the order the node declared them (its streams' creation order; alphabetical in
        files written before the recorder kept that order)."""
        kind = group_of(kind)
        index = self._layers.get(kind)
        if index is None:  # one listing of the group per reader, not one per node
            index = self._layers[kind] = {}
            for pop in self._file.populations(kind):
                node, layer = L.split_population(pop)
                index.setdefault(node, []).append(layer)
        return list(index.get(node_id, []))

    def stream_attrs(self, node_id: str, layer: str, kind: StreamKind = L.SPIKES) -> dict[str, Any]:
        """Attributes of a stream group (layer size, dt, subsample rate, ...)."""
        return dict(self._stream(kind, node_id, layer).attrs)

    def stream_attr(
        self, node_id: str, layer: str, kind: StreamKind, name: str, default: Any = None
    ) -> Any:
        """One attribute of a stream group (``default`` if absent): reads only that one."""
        return self._stream(kind, node_id, layer).attr(name, default)

    def facts(self, node_id: str, layer: str, kind: StreamKind = L.SPIKES) -> StreamFacts:
        """A stream's attributes and frame-index figures, read once per reader
        (:class:`analysis.facts.StreamFacts`): from the file's stream summary if it has
        one that holds, else from the stream."""
        key = (group_of(kind), node_id, layer)
        found = self._facts.get(key)
        if found is None:
            row = self._file.summary(*key)
            if row is None:
                found = gather(self, *key)
            else:
                found = from_summary(row, node_id, layer)
                if key[0] == L.SPIKES:  # every frame's spike rows are written
                    self._extents.setdefault((node_id, layer), (found.frames, found.spike_rows))
            self._facts[key] = found
        return found

    def layer_size(self, node_id: str, layer: str, kind: StreamKind = L.SPIKES) -> int:
        """Neurons in the layer (weights: matrix rows)."""
        size = self.stream_attr(node_id, layer, kind, L.ATTR_LAYER_SIZE)
        if size is None:
            raise KeyError(f"{L.ATTR_LAYER_SIZE!r} of {node_id}/{layer}")
        return int(np.atleast_1d(size)[0])

    def dt_ms(self, node_id: str, layer: str, kind: StreamKind = L.SPIKES) -> float:
        """Step length of the stream's first message (ms)."""
        return float(self.stream_attr(node_id, layer, kind, L.ATTR_DT_MS, 1.0))

    def recorded_neurons(
        self, node_id: str, layer: str, kind: StreamKind = L.SPIKES
    ) -> npt.NDArray[np.uint32]:
        """Indices of the neurons that were recorded (after subsampling).

        A stream without a ``recorded_neurons`` dataset (format 3) records every neuron of
        its layer; weights record no neuron list.
        """
        kind = group_of(kind)
        stream = self._stream(kind, node_id, layer)
        if L.RECORDED_NEURONS in stream:
            return np.asarray(stream.dataset(L.RECORDED_NEURONS).read_all(), dtype=np.uint32)
        if kind == L.WEIGHTS:
            return np.zeros(0, dtype=np.uint32)
        return np.arange(self.recorded_count(node_id, layer, kind), dtype=np.uint32)

    def recorded_count(self, node_id: str, layer: str, kind: StreamKind = L.SPIKES) -> int:
        """How many neurons were recorded, without reading their list."""
        kind = group_of(kind)
        stream = self._stream(kind, node_id, layer)
        if L.RECORDED_NEURONS in stream:
            return stream.dataset(L.RECORDED_NEURONS).rows
        if kind == L.WEIGHTS:
            return 0
        return self.layer_size(node_id, layer, kind)

    def storage_bytes(self, kind: StreamKind = L.SPIKES) -> int:
        """Bytes the datasets under ``spikes``, ``membrane`` or ``weights`` take in the file."""
        kind = group_of(kind)
        known = [
            self._facts.get((kind, *L.split_population(p))) for p in self._file.populations(kind)
        ]
        if all(f is not None for f in known):  # every stream's own sum is at hand
            return sum(f.storage_bytes for f in known if f is not None)
        return self._file.storage_bytes(kind)

    def stream_storage_bytes(self, node_id: str, layer: str, kind: StreamKind = L.SPIKES) -> int:
        """Bytes one stream's datasets take in the file."""
        return self._stream(kind, node_id, layer).storage_bytes()

    # -- rows ------------------------------------------------------------------------

    def row_count(self, kind: StreamKind, node_id: str, layer: str, dataset: str) -> int:
        """Committed rows of one dataset of a stream (e.g. ``timestamps``, ``data``)."""
        return self._stream(kind, node_id, layer).dataset(dataset).rows

    def read_rows(
        self,
        kind: StreamKind,
        node_id: str,
        layer: str,
        dataset: str,
        lo: int = 0,
        hi: int | None = None,
        cols: Sequence[int] | None = None,
    ) -> npt.NDArray[Any]:
        """Rows ``lo`` to ``hi`` of one dataset of a stream, as committed, as an array.

        The same for finished, live and crashed sessions; ``cols`` reads only those
        columns of a 2-D dataset (membrane ``data``).
        """
        view = self._stream(kind, node_id, layer).dataset(dataset)
        out: npt.NDArray[Any] = view.read(lo, hi, cols)
        return out

    # -- data ------------------------------------------------------------------------

    def spikes(
        self,
        node_id: str,
        layer: str,
        t_start_ms: float | None = None,
        t_stop_ms: float | None = None,
    ) -> SpikeTrains:
        """Spikes of a layer as flat arrays, all or those with ``t_start_ms <= t < t_stop_ms``.

        A ``by_time`` population is cut by binary search on ``timestamps`` (a few chunk
        reads) and only the window is read; an unsorted one is filtered slice by slice.
        """
        g = self._stream(L.SPIKES, node_id, layer)
        n = self.spike_rows(node_id, layer)
        if t_start_ms is None and t_stop_ms is None:
            return read_spike_rows(g, 0, n)
        if self.sorting(node_id, layer) == "by_time":
            ts = g.dataset(L.TIMESTAMPS)
            lo = 0 if t_start_ms is None else bisect_left(ts, t_start_ms, 0, n)
            hi = n if t_stop_ms is None else bisect_left(ts, t_stop_ms, lo, n)
            return read_spike_rows(g, lo, max(lo, hi))
        parts = []
        for chunk in self.iter_spike_chunks(node_id, layer):
            keep = np.ones(chunk.times_ms.size, dtype=bool)
            if t_start_ms is not None:
                keep &= chunk.times_ms >= t_start_ms
            if t_stop_ms is not None:
                keep &= chunk.times_ms < t_stop_ms
            parts.append(
                SpikeTrains(chunk.steps[keep], chunk.times_ms[keep], chunk.neuron_ids[keep])
            )
        return concat(parts)

    def iter_spike_chunks(
        self,
        node_id: str,
        layer: str,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        *,
        with_steps: bool = True,
        rows: tuple[int, int] | None = None,
    ) -> Iterator[SpikeTrains]:
        """Spikes of a layer in recording order, ``chunk_rows`` rows at a time.

        Memory stays bounded by ``chunk_rows`` whatever the population size. With
        ``with_steps=False`` the ``steps`` dataset is not read and each chunk's
        ``steps`` is empty (a third less I/O when only times and ids are needed).
        ``rows`` limits the pass to rows ``[a, b)`` (see :meth:`time_rows`).
        """
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        g = self._stream(L.SPIKES, node_id, layer)
        times, ids = g.dataset(L.TIMESTAMPS), g.dataset(L.NODE_IDS)
        steps_of = Steps(g) if with_steps else None
        n = self.spike_rows(node_id, layer)
        first, end = (0, n) if rows is None else (max(0, rows[0]), min(n, rows[1]))
        no_steps = np.zeros(0, dtype=np.int64)
        for lo in range(first, end, chunk_rows):
            hi = min(end, lo + chunk_rows)
            steps = steps_of.read(lo, hi) if steps_of is not None else no_steps
            yield SpikeTrains(steps, times.read(lo, hi), ids.read(lo, hi))

    def time_rows(
        self,
        node_id: str,
        layer: str,
        t_start_ms: float | None = None,
        t_stop_ms: float | None = None,
    ) -> tuple[int, int]:
        """Rows ``[a, b)`` that hold every spike with ``t_start_ms <= t < t_stop_ms``.

        Exact for a ``by_time`` population (binary search, a few chunk reads); every row
        of an unsorted one (filter the times yourself).
        """
        n = self.spike_rows(node_id, layer)
        if self.sorting(node_id, layer) != "by_time":
            return 0, n
        ts = self._stream(L.SPIKES, node_id, layer).dataset(L.TIMESTAMPS)
        lo = 0 if t_start_ms is None else bisect_left(ts, t_start_ms, 0, n)
        hi = n if t_stop_ms is None else bisect_left(ts, t_stop_ms, lo, n)
        return lo, max(lo, hi)

    def spike_rows(self, node_id: str, layer: str) -> int:
        """Number of spike rows that are complete and covered by the frame index.

        A live writer appends the spike datasets one after the other and the frame
        index last, so a reader can see them at different lengths: only rows present in
        all three datasets and indexed by a complete frame count.
        """
        return self._spike_extent(node_id, layer)[1]

    def _spike_extent(self, node_id: str, layer: str) -> tuple[int, int]:
        extent = self._extents.get((node_id, layer))
        if extent is None:
            extent = self._extents[(node_id, layer)] = spike_extent(
                self._stream(L.SPIKES, node_id, layer)
            )
        return extent

    def sorting(self, node_id: str, layer: str) -> str:
        """SONATA ``sorting`` of a spike population: ``none``, ``by_id`` or ``by_time``."""
        value = self._stream(L.SPIKES, node_id, layer).raw_attr(L.ATTR_SORTING)
        names = {v: k for k, v in L.SORTING_ENUM.items()}
        return names.get(int(value), "none") if value is not None else "none"

    def runs(self, node_id: str, layer: str, kind: StreamKind = L.SPIKES) -> list[Run]:
        """The recorded span of each node incarnation of a stream (:func:`runs_of`)."""
        return runs_of(self.frames(node_id, layer, kind), self.dt_ms(node_id, layer, kind))

    def frames(self, node_id: str, layer: str, kind: StreamKind = L.SPIKES) -> Frames:
        """The per-message index of a stream (rows that are complete in every dataset).

        The last few streams' frames are kept: a summary asks for them several times.
        """
        kind = group_of(kind)
        key = (kind, node_id, layer)
        frames = self._frames.get(key)
        if frames is not None:
            return frames
        g = self._stream(kind, node_id, layer)
        n = frame_rows(g)
        if (kind == L.MEMBRANE and g.dataset(L.DATA).shape[1:] != (0,)) or kind == L.WEIGHTS:
            n = min(n, g.dataset(L.DATA).rows)
        frames = Frames(*(g.dataset(name).read(0, n) for name in FRAME_NAMES))
        if kind == L.SPIKES:  # the frames whose spike rows are all written
            extent = self._extents.get((node_id, layer))
            if extent is None:
                extent = self._extents[(node_id, layer)] = spike_extent(g, frames.count)
            k = extent[0]
            if k < n:
                f = frames
                frames = Frames(
                    f.steps[:k], f.times_ms[:k], f.seq[:k], f.incarnation[:k], f.count[:k]
                )
        if len(self._frames) >= _FRAMES_KEPT:
            del self._frames[next(iter(self._frames))]
        self._frames[key] = frames
        return frames

    def zenoh_times(
        self, node_id: str, layer: str, kind: StreamKind = L.SPIKES
    ) -> npt.NDArray[np.uint64] | None:
        """Each message's Zenoh timestamp (``frame_zenoh_time``: the publisher's hybrid
        logical clock, ns since 1970 UTC, 0 where none), row for row with
        :meth:`frames`; None for a stream recorded before the recorder stored them."""
        g = self._stream(group_of(kind), node_id, layer)
        if L.FRAME_ZENOH_TIME not in g:
            return None
        n = self.frames(node_id, layer, kind).steps.size
        stamps: npt.NDArray[np.uint64] = g.dataset(L.FRAME_ZENOH_TIME).read(0, n)
        return stamps

    def membrane(
        self, node_id: str, layer: str
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Steps and membrane potentials (frames x recorded neurons, mV)."""
        tr = self.membrane_traces(node_id, layer)
        return tr.steps, tr.data_mv

    def membrane_traces(
        self, node_id: str, layer: str, neurons: npt.ArrayLike | None = None
    ) -> MembraneTraces:
        """Membrane potentials with their steps, times and neuron ids.

        ``neurons`` (layer indices) reads only those recorded neurons' columns; ids that
        were not recorded are left out.
        """
        data_ds = self._stream(L.MEMBRANE, node_id, layer).dataset(L.DATA)
        fr = self.frames(node_id, layer, L.MEMBRANE)
        recorded = self.recorded_neurons(node_id, layer, L.MEMBRANE)
        n = fr.steps.size
        if neurons is None:
            cols = np.arange(recorded.size)
        else:
            cols = np.flatnonzero(np.isin(recorded, np.asarray(neurons, dtype=np.int64)))
        if cols.size == 0 or n == 0:
            data = np.zeros((n, cols.size), dtype=np.float32)
        elif cols.size == recorded.size:
            data = data_ds.read(0, n)
        else:
            data = data_ds.read(0, n, cols.tolist())  # increasing column lists
        return MembraneTraces(fr.steps, fr.times_ms, recorded[cols], np.asarray(data, np.float32))

    def weights(
        self, node_id: str, name: str
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Steps and weight snapshots (snapshots x rows x cols)."""
        steps = self.frames(node_id, name, L.WEIGHTS).steps
        data = self._stream(L.WEIGHTS, node_id, name).dataset(L.DATA).read(0, steps.size)
        return steps, data

    def weight_snapshot(self, node_id: str, name: str, index: int) -> npt.NDArray[np.float32]:
        """One weight snapshot (rows x cols); negative ``index`` counts from the end."""
        n = self.frames(node_id, name, L.WEIGHTS).steps.size
        if not -n <= index < n:
            raise IndexError(f"snapshot {index} out of range for {n} snapshots")
        data = self._stream(L.WEIGHTS, node_id, name).dataset(L.DATA)
        return np.asarray(data.row(index % n), dtype=np.float32)

    def iter_weight_blocks(
        self, node_id: str, name: str, index: int, block_rows: int | None = None
    ) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        """One snapshot in row blocks ``(first row, block)``: bounded memory for huge matrices."""
        n = self.frames(node_id, name, L.WEIGHTS).steps.size
        if not -n <= index < n:
            raise IndexError(f"snapshot {index} out of range for {n} snapshots")
        data = self._stream(L.WEIGHTS, node_id, name).dataset(L.DATA)
        _, rows, cols = data.shape
        step = block_rows or max(1, _DATA_BLOCK_ELEMENTS // max(1, cols))
        for lo in range(0, rows, step):
            yield lo, np.asarray(data.read_part(index % n, lo, lo + step), dtype=np.float32)

    @property
    def shards(self) -> list[str | None]:
        """The shards whose files the session holds (``[None]``: an unsharded session)."""
        return self._file.shards

    def shard_files(self) -> list[dict[str, Any]]:
        """The session's data files: ``{"shard", "nodes", "file", "bytes"}`` each, for
        ``simulation_data.h5`` (shard None) and/or each shard's."""
        return self._file.shard_files()

    def _records(self) -> list[dict[str, Any]]:
        """Every record of the control logs; a sharded session's by time received."""
        return self._file.control_records()

    def control_states(self) -> list[dict[str, Any]]:
        """The control-state records of ``control_states.jsonl`` (not the presence events)."""
        return [r for r in self._records() if L.CONTROL_EVENT not in r]

    def presence_events(self) -> list[dict[str, Any]]:
        """Nodes' joins and leaves (``{"event": "join"|"leave", "node_id", "received_at"}``)."""
        return [r for r in self._records() if L.CONTROL_EVENT in r]

    def statistics(self) -> dict[str, Any]:
        """``recording_statistics.json``, or the copy inside the HDF5 file; for a sharded
        session the shards' documents merged (counters summed, ``shards``: each one)."""
        return self._file.statistics()

    def format_version(self) -> int:
        """The session's ``format_version``."""
        return self._version

    def _stream(self, kind: StreamKind, node_id: str, layer: str) -> StreamView:
        return self._file.stream(group_of(kind), node_id, layer)


#: Streams whose frames a reader keeps (they are re-read for later streams).
_FRAMES_KEPT: Final = 4
