"""Read a recorded session: the analysis side of ``docs/recording-format.md``.

Opens sessions that are finished, still being written, or left by a crashed writer
(files are opened read-only with HDF5 file locking off, so a live writer does not
block readers). All names come from :mod:`recorderd.session.layout`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np
import numpy.typing as npt

from recorderd.session import layout as L
from recorderd.session.closing import ClosesOnExit
from recorderd.session.journal import JournalError, Replay, replay
from recorderd.session.recovery import SessionState, open_readonly, recover_if_idle

#: Rows per slice of the out-of-core spike reads: 2 Mi rows, a whole number of the
#: writer's chunks of every format version (40 MiB for times, ids and steps together).
DEFAULT_CHUNK_ROWS: Final = 1 << 21
#: How long a reader waits for a live session's journal to appear or a closing one's to go.
JOURNAL_WAIT_S: Final = 2.0
#: Rows per slice when reading membrane data or a weight matrix piecewise.
_DATA_BLOCK_ELEMENTS: Final = 1 << 22


log = logging.getLogger(__name__)


class AnalysisError(Exception):
    """Base error of the analysis package."""


class NotASessionError(AnalysisError):
    """The folder holds no recorded session."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} is not a recorded session (no {L.DATA_FILE} of {L.FORMAT_NAME})")


class UnsupportedFormatError(AnalysisError):
    """The session was written in a format version this reader does not know."""

    def __init__(self, path: Path, version: int) -> None:
        super().__init__(
            f"{path} has format version {version}; this reader knows up to {L.FORMAT_VERSION}: "
            "upgrade the analysis package"
        )


@dataclass(frozen=True)
class SpikeTrains:
    """Flat spikes of one population, in recording order."""

    steps: npt.NDArray[np.int64]
    times_ms: npt.NDArray[np.float64]
    neuron_ids: npt.NDArray[np.uint32]


@dataclass(frozen=True)
class Frames:
    """Per-message index of one stream: one row per recorded message."""

    steps: npt.NDArray[np.int64]
    times_ms: npt.NDArray[np.float64]
    seq: npt.NDArray[np.uint64]
    incarnation: npt.NDArray[np.uint64]
    count: npt.NDArray[np.uint32]


@dataclass(frozen=True)
class MembraneTraces:
    """Membrane potentials of a layer: one row per recorded message, one column per neuron."""

    steps: npt.NDArray[np.int64]
    times_ms: npt.NDArray[np.float64]
    neuron_ids: npt.NDArray[np.uint32]
    data_mv: npt.NDArray[np.float32]


class SessionReader(ClosesOnExit):
    """Read-only view of one session folder."""

    def __init__(self, session_dir: str | Path) -> None:
        self.path = Path(session_dir)
        data = self.path / L.DATA_FILE
        if not data.is_file():
            raise NotASessionError(self.path)
        #: ``clean``, ``recovered`` (a crashed recording, repaired on opening), ``live``
        #: (being recorded: read up to the last whole chunk) or ``read-only`` (crashed,
        #: but this process may not repair it: same view as ``live``).
        self.state: SessionState = "clean"
        self._journal: Replay | None = None
        try:
            self._open_journal()
            self._h5 = open_readonly(data)
            if self._journal is None and self._h5.swmr_mode:
                # A recorder started on the session meanwhile: read it as live, the
                # journal first and then the file (never older than the journal).
                self._h5.close()
                self._open_journal()
                self._h5 = open_readonly(data)
        except (OSError, ValueError, RuntimeError) as exc:
            raise AnalysisError(f"cannot open {data}: {exc}") from exc
        if self._h5.attrs.get(L.ATTR_FORMAT) != L.FORMAT_NAME:
            self._h5.close()
            raise NotASessionError(self.path)
        version = int(self._h5.attrs.get(L.ATTR_FORMAT_VERSION, 0))
        if version > L.FORMAT_VERSION:
            self._h5.close()
            raise UnsupportedFormatError(self.path, version)

    def _open_journal(self) -> None:
        """Recover a crashed session, or replay a live one's journal to read through it."""
        deadline = time.monotonic() + JOURNAL_WAIT_S
        while True:
            self.state = recover_if_idle(self.path)
            if self.state not in ("live", "read-only"):
                return
            try:
                self._journal = replay(self.path / L.JOURNAL_FILE)
                return
            except FileNotFoundError:
                # A writer that is closing (journal just deleted) or opening (journal
                # not yet written): look again shortly.
                if time.monotonic() > deadline:
                    log.warning("%s: no journal; reading whole chunks only", self.path)
                    return
                time.sleep(0.05)
            except JournalError as exc:
                log.warning("%s: reading whole chunks only: %s", self.path, exc)
                return

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._h5.close()

    # -- what is there ---------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """Session metadata attributes (recorder config and statistics parsed from JSON)."""
        attrs = dict(self._h5[L.METADATA].attrs)
        for key in (L.ATTR_RECORDER_CONFIG, L.ATTR_STATISTICS):
            if key in attrs:
                attrs[key] = json.loads(attrs[key])
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in attrs.items()}

    def nodes(self) -> list[str]:
        """Node ids with any recorded stream or control state, sorted."""
        names = set(self._h5[L.METADATA][L.NODES].keys())
        for top in (L.SPIKES, L.MEMBRANE, L.WEIGHTS):
            names.update(L.split_population(p)[0] for p in self._h5[top])
        return sorted(names)

    def node_info(self, node_id: str) -> dict[str, Any]:
        """Per-node metadata: module type, dt, incarnations."""
        nodes = self._h5[L.METADATA][L.NODES]
        if node_id not in nodes:
            return {}
        return {
            k: (v.tolist() if isinstance(v, np.ndarray) else v)
            for k, v in nodes[node_id].attrs.items()
        }

    def layers(self, node_id: str, kind: str = L.SPIKES) -> list[str]:
        """Layer (or weight) names of a node under ``spikes``, ``membrane`` or ``weights``."""
        out = []
        for pop in self._h5[kind]:
            node, layer = L.split_population(pop)
            if node == node_id:
                out.append(layer)
        return sorted(out)

    def stream_attrs(self, node_id: str, layer: str, kind: str = L.SPIKES) -> dict[str, Any]:
        """Attributes of a stream group (layer size, dt, subsample rate, ...)."""
        group = self._group(kind, node_id, layer)
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in group.attrs.items()}

    def recorded_neurons(
        self, node_id: str, layer: str, kind: str = L.SPIKES
    ) -> npt.NDArray[np.uint32]:
        """Indices of the neurons that were recorded (after subsampling).

        A stream without a ``recorded_neurons`` dataset (format 3) records every neuron of
        its layer; weights record no neuron list.
        """
        group = self._group(kind, node_id, layer)
        if L.RECORDED_NEURONS in group:
            return np.asarray(group[L.RECORDED_NEURONS][()], dtype=np.uint32)
        if kind == L.WEIGHTS:
            return np.zeros(0, dtype=np.uint32)
        return np.arange(self.recorded_count(node_id, layer, kind), dtype=np.uint32)

    def recorded_count(self, node_id: str, layer: str, kind: str = L.SPIKES) -> int:
        """How many neurons were recorded, without reading their list."""
        group = self._group(kind, node_id, layer)
        if L.RECORDED_NEURONS in group:
            return int(group[L.RECORDED_NEURONS].shape[0])
        if kind == L.WEIGHTS:
            return 0
        return int(np.atleast_1d(group.attrs[L.ATTR_LAYER_SIZE])[0])

    def storage_bytes(self, kind: str = L.SPIKES) -> int:
        """Bytes the datasets under ``spikes``, ``membrane`` or ``weights`` take in the file."""
        total = 0

        def visit(_name: str, obj: object) -> None:
            nonlocal total
            if isinstance(obj, h5py.Dataset):
                total += obj.id.get_storage_size()

        self._h5[kind].visititems(visit)
        return total

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
        g = self._group(L.SPIKES, node_id, layer)
        n = self.spike_rows(node_id, layer)
        if t_start_ms is None and t_stop_ms is None:
            return _read_rows(g, 0, n)
        if self.sorting(node_id, layer) == "by_time":
            ts = g[L.TIMESTAMPS]
            lo = 0 if t_start_ms is None else _bisect_left(ts, t_start_ms, 0, n)
            hi = n if t_stop_ms is None else _bisect_left(ts, t_stop_ms, lo, n)
            return _read_rows(g, lo, max(lo, hi))
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
        return _concat(parts)

    def iter_spike_chunks(
        self,
        node_id: str,
        layer: str,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        *,
        with_steps: bool = True,
    ) -> Iterator[SpikeTrains]:
        """Spikes of a layer in recording order, ``chunk_rows`` rows at a time.

        Memory stays bounded by ``chunk_rows`` whatever the population size. With
        ``with_steps=False`` the ``steps`` dataset is not read and each chunk's
        ``steps`` is empty (a third less I/O when only times and ids are needed).
        """
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        g = self._group(L.SPIKES, node_id, layer)
        n = self.spike_rows(node_id, layer)
        no_steps = np.zeros(0, dtype=np.int64)
        for lo in range(0, n, chunk_rows):
            hi = min(n, lo + chunk_rows)
            steps = g[L.STEPS][lo:hi] if with_steps else no_steps
            yield SpikeTrains(steps, g[L.TIMESTAMPS][lo:hi], g[L.NODE_IDS][lo:hi])

    def spike_rows(self, node_id: str, layer: str) -> int:
        """Number of spike rows that are complete and covered by the frame index.

        A live writer appends the spike datasets one after the other and the frame
        index last, so a reader can see them at different lengths: only rows present in
        all three datasets and indexed by a complete frame count.
        """
        return _spike_extent(self._group(L.SPIKES, node_id, layer))[1]

    def sorting(self, node_id: str, layer: str) -> str:
        """SONATA ``sorting`` of a spike population: ``none``, ``by_id`` or ``by_time``."""
        value = self._group(L.SPIKES, node_id, layer).attrs.get(L.ATTR_SORTING)
        names = {v: k for k, v in L.SORTING_ENUM.items()}
        return names.get(int(value), "none") if value is not None else "none"

    def frames(self, node_id: str, layer: str, kind: str = L.SPIKES) -> Frames:
        """The per-message index of a stream (rows that are complete in every dataset)."""
        g = self._group(kind, node_id, layer)
        data_rows = _spike_extent(g)[0] if kind == L.SPIKES else int(g[L.DATA].shape[0])
        n = min(_frame_rows(g), data_rows)
        return Frames(*(g[name][:n] for name in _FRAME_NAMES))

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
        g = self._group(L.MEMBRANE, node_id, layer)
        fr = self.frames(node_id, layer, L.MEMBRANE)
        recorded = self.recorded_neurons(node_id, layer, L.MEMBRANE)
        n = fr.steps.size
        if neurons is None:
            cols = np.arange(recorded.size)
        else:
            cols = np.flatnonzero(np.isin(recorded, np.asarray(neurons, dtype=np.int64)))
        if cols.size == recorded.size:
            data = g[L.DATA][:n]
        elif cols.size == 0 or n == 0:
            data = np.zeros((n, cols.size), dtype=np.float32)
        else:
            data = g[L.DATA][:n, cols.tolist()]  # h5py reads increasing column lists
        return MembraneTraces(fr.steps, fr.times_ms, recorded[cols], np.asarray(data, np.float32))

    def weights(
        self, node_id: str, name: str
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Steps and weight snapshots (snapshots x rows x cols)."""
        g = self._group(L.WEIGHTS, node_id, name)
        steps = self.frames(node_id, name, L.WEIGHTS).steps
        return steps, g[L.DATA][: steps.size]

    def weight_snapshot(self, node_id: str, name: str, index: int) -> npt.NDArray[np.float32]:
        """One weight snapshot (rows x cols); negative ``index`` counts from the end."""
        g = self._group(L.WEIGHTS, node_id, name)
        n = self.frames(node_id, name, L.WEIGHTS).steps.size
        if not -n <= index < n:
            raise IndexError(f"snapshot {index} out of range for {n} snapshots")
        return np.asarray(g[L.DATA][index % n], dtype=np.float32)

    def iter_weight_blocks(
        self, node_id: str, name: str, index: int, block_rows: int | None = None
    ) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        """One snapshot in row blocks ``(first row, block)``: bounded memory for huge matrices."""
        g = self._group(L.WEIGHTS, node_id, name)
        _, rows, cols = g[L.DATA].shape
        step = block_rows or max(1, _DATA_BLOCK_ELEMENTS // max(1, cols))
        for lo in range(0, rows, step):
            yield lo, np.asarray(g[L.DATA][index, lo : lo + step], dtype=np.float32)

    def control_states(self) -> list[dict[str, Any]]:
        """The control-state records of ``control_states.jsonl`` (not the presence events)."""
        return [r for r in self._control_log() if L.CONTROL_EVENT not in r]

    def presence_events(self) -> list[dict[str, Any]]:
        """Nodes' joins and leaves (``{"event": "join"|"leave", "node_id", "received_at"}``)."""
        return [r for r in self._control_log() if L.CONTROL_EVENT in r]

    def _control_log(self) -> list[dict[str, Any]]:
        # A torn last line (after a crash) is skipped.
        path = self.path / L.CONTROL_FILE
        if not path.exists():
            return []
        records = []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def statistics(self) -> dict[str, Any]:
        """``recording_statistics.json``, or the copy inside the HDF5 file."""
        path = self.path / L.STATISTICS_FILE
        if path.exists():
            parsed: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return parsed
        stats = self.metadata().get(L.ATTR_STATISTICS, {})
        return dict(stats)

    def format_version(self) -> int:
        """The session's ``format_version``."""
        return int(self._h5.attrs.get(L.ATTR_FORMAT_VERSION, 0))

    def stream_group(self, kind: str, node_id: str, layer: str) -> h5py.Group:
        """A stream's group; its datasets as committed (live sessions: with the journal)."""
        return self._group(kind, node_id, layer)

    def _group(self, kind: str, node_id: str, layer: str) -> h5py.Group:
        pop = L.population(node_id, layer)
        try:
            group = self._h5[kind][pop]
        except KeyError:
            raise KeyError(f"no {kind} stream for node {node_id!r} layer {layer!r}") from None
        return group if self._journal is None else _CommittedGroup(group, self._journal)


_FRAME_NAMES: Final = (
    L.FRAME_STEP,
    L.FRAME_TIME,
    L.FRAME_SEQ,
    L.FRAME_INCARNATION,
    L.FRAME_COUNT,
)


def _frame_rows(g: h5py.Group) -> int:
    # Version 1 writers appended the five datasets one by one: keep the common rows.
    return min(int(g[name].shape[0]) for name in _FRAME_NAMES)


def _spike_extent(g: h5py.Group) -> tuple[int, int]:
    """Usable ``(frames, spike rows)`` of a population: frames whose rows are all written."""
    rows = min(g[name].shape[0] for name in (L.TIMESTAMPS, L.NODE_IDS, L.STEPS))
    ends = np.cumsum(g[L.FRAME_COUNT][: _frame_rows(g)], dtype=np.int64)
    n = int(np.searchsorted(ends, rows, side="right"))
    return n, int(ends[n - 1]) if n else 0


def _read_rows(g: h5py.Group, lo: int, hi: int) -> SpikeTrains:
    return SpikeTrains(g[L.STEPS][lo:hi], g[L.TIMESTAMPS][lo:hi], g[L.NODE_IDS][lo:hi])


def _concat(parts: list[SpikeTrains]) -> SpikeTrains:
    if not parts:
        return SpikeTrains(np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.uint32))
    return SpikeTrains(
        np.concatenate([p.steps for p in parts]),
        np.concatenate([p.times_ms for p in parts]),
        np.concatenate([p.neuron_ids for p in parts]),
    )


def _bisect_left(ds: h5py.Dataset, value: float, lo: int, hi: int) -> int:
    """First row in ``[lo, hi)`` of a sorted dataset whose value is ``>= value``.

    Halves with single-element reads (each decompresses at most one chunk, which the
    HDF5 chunk cache keeps) until one chunk's worth of rows is left, then reads that.
    """
    while hi - lo > L.SPIKE_CHUNK:
        mid = (lo + hi) // 2
        if float(ds[mid]) < value:
            lo = mid + 1
        else:
            hi = mid
    return lo + int(np.searchsorted(ds[lo:hi], value, side="left"))


class _Committed:
    """A dataset of a live session as committed: ``main`` rows from HDF5, then the tail.

    Supports what the reader uses: ``shape``, ``dtype``, ``name``, integer and
    contiguous-slice row keys, optionally followed by keys of the other axes.
    """

    def __init__(self, ds: h5py.Dataset, main: int, tail: npt.NDArray[Any]) -> None:
        if main > ds.shape[0]:
            raise AnalysisError(f"{ds.name}: the journal commits {main} rows, the file has fewer")
        self._ds = ds
        self._main = main
        self._tail = tail
        self.shape = (self._main + int(tail.shape[0]), *ds.shape[1:])
        self.dtype = ds.dtype
        self.name = ds.name
        self.attrs = ds.attrs
        self.chunks = ds.chunks

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, key: Any) -> Any:
        rest: tuple[Any, ...] = ()
        if isinstance(key, tuple):
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
        n, main = self.shape[0], self._main
        if isinstance(key, int | np.integer):
            i = int(key) + (n if key < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"row {key} out of range for {n} rows")
            return self._ds[(i, *rest)] if i < main else self._tail[(i - main, *rest)]
        if not isinstance(key, slice):
            raise TypeError(f"unsupported key {key!r}")
        lo, hi, step = key.indices(n)
        if step != 1:
            raise TypeError("only contiguous row slices are supported")
        hi = max(lo, hi)
        parts = []
        if lo < main:
            parts.append(np.asarray(self._ds[(slice(lo, min(hi, main)), *rest)]))
        if hi > main:
            parts.append(np.asarray(self._tail[(slice(max(lo - main, 0), hi - main), *rest)]))
        if not parts:
            return np.asarray(self._tail[(slice(0, 0), *rest)])
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


class _CommittedGroup:
    """A stream group of a live session whose appendable datasets are :class:`_Committed`."""

    def __init__(self, group: h5py.Group, journal: Replay) -> None:
        self._group = group
        self._journal = journal
        self.attrs = group.attrs
        self.name = group.name

    def __contains__(self, name: str) -> bool:
        return name in self._group

    def __getitem__(self, name: str) -> Any:
        ds = self._group[name]
        if not (isinstance(ds, h5py.Dataset) and ds.maxshape and ds.maxshape[0] is None):
            return ds
        tail = self._journal.tails.get(ds.name)
        if tail is None:  # created after the last journal record: nothing committed
            return _Committed(ds, 0, np.zeros((0, *ds.shape[1:]), dtype=ds.dtype))
        return _Committed(ds, tail.main, self._journal.tail(ds.name))
