"""The session writer: the only code that writes a session's files (HDF5 and JSONL).

Lifecycle as in mcap's writer: :meth:`SessionWriter.start`, then ``append_*`` and
:meth:`flush`, then :meth:`finish` (idempotent; also the context manager's exit).
The layout it writes is :mod:`recorderd.layout`, documented in
``docs/recording-format.md``. One writer per session: a lock file enforces it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import h5py
import numpy as np
import numpy.typing as npt

from recorderd import layout as L
from recorderd.protocol import Kind

Compression = Literal["gzip", "lzf", "none"]

#: How often a writer waiting for a busy session retries its lock.
LOCK_POLL_S = 0.2


class WriterError(Exception):
    """Base error of the session writer."""


class SessionBusyError(WriterError):
    """Another process already writes this session."""

    def __init__(self, session_dir: Path) -> None:
        super().__init__(f"session {session_dir} is being written by another process")


class ShapeChangedError(WriterError):
    """A stream's layer size or matrix shape differs from what the file holds."""

    def __init__(self, stream: str, old: tuple[int, ...], new: tuple[int, ...]) -> None:
        super().__init__(f"stream {stream}: shape {new} differs from recorded {old}")


@dataclass
class Frames:
    """Per-message index rows of one batch (one entry per message)."""

    step: npt.NDArray[np.int64]
    time: npt.NDArray[np.float64]
    seq: npt.NDArray[np.uint64]
    incarnation: npt.NDArray[np.uint64]
    count: npt.NDArray[np.uint32]


@dataclass
class StreamHandle:
    """An open stream group and what the writer needs to append to it."""

    kind: Kind
    group: h5py.Group
    recorded_neurons: npt.NDArray[np.uint32]
    shape: tuple[int, ...]  # (layer_size,) or (rows, cols) for weights
    last_time: float  # for the SONATA "sorting" attribute of spike populations
    #: (incarnation, seq) of the stream's last recorded message, from an earlier run.
    last_frame: tuple[int, int] | None = None


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _append(ds: h5py.Dataset, rows: npt.NDArray[Any]) -> None:
    n = ds.shape[0]
    ds.resize(n + rows.shape[0], axis=0)
    ds[n:] = rows


class SessionWriter:
    """Writes one session folder: ``simulation_data.h5`` and ``control_states.jsonl``."""

    def __init__(
        self,
        session_dir: Path,
        *,
        session: str,
        compression: Compression = "gzip",
        compression_level: int = 4,
        recorder_config: dict[str, Any] | None = None,
        subsample_seed: int = 0,
        subsampling_rule: str = "",
    ) -> None:
        self.session_dir = session_dir
        self.session = session
        self._filters: dict[str, Any] = {}
        if compression == "gzip":
            self._filters = {
                "compression": "gzip",
                "compression_opts": compression_level,
                "shuffle": True,
            }
        elif compression == "lzf":
            self._filters = {"compression": "lzf", "shuffle": True}
        self._config_json = json.dumps(recorder_config or {}, default=str, sort_keys=True)
        #: The seed in force: a reopened session keeps the seed it was created with.
        self.subsample_seed = subsample_seed
        #: Statistics the session held when it was reopened (an earlier recorder run).
        self.previous_statistics: dict[str, Any] | None = None
        self._subsampling_rule = subsampling_rule
        self._h5: h5py.File | None = None
        self._control: IO[str] | None = None
        self._lock_fd: int | None = None
        self._finished = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self, keep_waiting: Callable[[], bool] | None = None) -> None:
        """Create or reopen the session folder and files; take the session lock.

        If another process holds the lock, raise :class:`SessionBusyError`, or, with
        ``keep_waiting``, poll for the lock for as long as ``keep_waiting()`` is true.
        """
        self.session_dir.mkdir(parents=True, exist_ok=True)
        while True:
            # Asked before every attempt: a standby whose reason to exist is gone must
            # not take the lock just because it became free.
            if keep_waiting is not None and not keep_waiting():
                raise SessionBusyError(self.session_dir)
            if self._lock():
                break
            if keep_waiting is None:
                raise SessionBusyError(self.session_dir)
            time.sleep(LOCK_POLL_S)
        try:
            self._open()
        except BaseException:
            if self._h5 is not None:
                self._h5.close()
                self._h5 = None
            self._unlock()
            raise

    def _open(self) -> None:
        path = self.session_dir / L.DATA_FILE
        appending = path.exists()
        self._h5 = h5py.File(path, "a", libver=("v108", "v110"), locking=False)
        root = self._h5
        if appending:
            version = int(root.attrs.get(L.ATTR_FORMAT_VERSION, 0))
            if version != L.FORMAT_VERSION or root.attrs.get(L.ATTR_FORMAT) != L.FORMAT_NAME:
                raise WriterError(
                    f"{path} is not a {L.FORMAT_NAME} file of version {L.FORMAT_VERSION}"
                )
            meta = root[L.METADATA]
            # Existing streams keep the neurons chosen with the session's first seed.
            self.subsample_seed = int(meta.attrs[L.ATTR_SUBSAMPLE_SEED])
            previous = meta.attrs.get(L.ATTR_STATISTICS)
            self.previous_statistics = json.loads(previous) if previous else None
        else:
            root.attrs[L.ATTR_FORMAT] = L.FORMAT_NAME
            root.attrs[L.ATTR_FORMAT_VERSION] = L.FORMAT_VERSION
            for name in (L.SPIKES, L.MEMBRANE, L.WEIGHTS):
                root.create_group(name)
            meta = root.create_group(L.METADATA)
            meta.create_group(L.NODES)
            meta.attrs[L.ATTR_SESSION] = self.session
            meta.attrs[L.ATTR_START_TIME] = _utc_now()
            meta.attrs[L.ATTR_RECORDER_RUNS] = 0
            meta.attrs[L.ATTR_SUBSAMPLE_SEED] = self.subsample_seed
            meta.attrs[L.ATTR_SUBSAMPLING] = self._subsampling_rule
        meta = root[L.METADATA]
        meta.attrs[L.ATTR_RECORDER_RUNS] = int(meta.attrs[L.ATTR_RECORDER_RUNS]) + 1
        meta.attrs[L.ATTR_RECORDER_CONFIG] = self._config_json
        meta.attrs[L.ATTR_STOP_TIME] = ""
        self._h5.flush()
        self._control = open(self.session_dir / L.CONTROL_FILE, "a", encoding="utf-8")  # noqa: SIM115

    def finish(self, statistics: dict[str, Any] | None = None) -> None:
        """Write what is pending, stamp the stop time, close everything (idempotent)."""
        if self._finished:
            return
        self._finished = True
        try:
            if self._h5 is not None:
                meta = self._h5[L.METADATA]
                meta.attrs[L.ATTR_STOP_TIME] = _utc_now()
                if statistics is not None:
                    self._write_statistics(statistics)
                self._h5.close()
        finally:
            self._h5 = None
            if self._control is not None:
                self._control.close()
                self._control = None
            self._unlock()

    def recent_control_records(self, tail_bytes: int = 4 << 20) -> list[dict[str, Any]]:
        """The last records of ``control_states.jsonl`` (its last ``tail_bytes``), oldest first."""
        path = self.session_dir / L.CONTROL_FILE
        try:
            with open(path, "rb") as fh:
                start = max(0, fh.seek(0, os.SEEK_END) - tail_bytes)
                fh.seek(start)
                lines = fh.read().splitlines()
        except FileNotFoundError:
            return []
        if start > 0:
            lines = lines[1:]  # starts mid-line
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # a torn line left by a crash
        return records

    def abandon(self) -> None:
        """Give up after an I/O error: release the lock and the control log, leave HDF5 as is.

        The HDF5 file is not closed (closing writes), so it stays as of its last flush;
        the process must then exit without running h5py's destructors (``os._exit``).
        """
        self._finished = True
        try:
            if self._control is not None:
                self._control.close()
        except OSError:
            pass
        finally:
            self._control = None
            self._unlock()

    def __enter__(self) -> SessionWriter:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish()

    def flush(self, statistics: dict[str, Any] | None = None, *, into_file: bool = True) -> None:
        """Make everything appended so far durable (HDF5 flush, JSONL fsync, statistics).

        The statistics always go to ``recording_statistics.json``; into the HDF5 file
        only when ``into_file`` (rewriting a large attribute often grows the file).
        """
        if statistics is not None:
            self._write_statistics(statistics, into_file=into_file)
        self._file.flush()
        os.fsync(self._file.id.get_vfd_handle())
        if self._control is not None:
            self._control.flush()
            os.fsync(self._control.fileno())

    # -- streams ---------------------------------------------------------------------

    def open_stream(
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
        """Open a stream's group, creating it on first use; ``select`` picks its neurons."""
        top = {Kind.SPIKES: L.SPIKES, Kind.MEMBRANE: L.MEMBRANE, Kind.WEIGHTS: L.WEIGHTS}[kind]
        pop = L.population(node_id, name)
        parent = self._file[top]
        stream = f"{node_id}/{kind.key_word}/{name}"
        if pop in parent:
            group = parent[pop]
            old = tuple(int(x) for x in np.atleast_1d(group.attrs[L.ATTR_LAYER_SIZE]))
            if old != shape:
                raise ShapeChangedError(stream, old, shape)
            recorded = np.asarray(group[L.RECORDED_NEURONS][()], dtype=np.uint32)
            last_time = -np.inf
            if kind is Kind.SPIKES and group[L.TIMESTAMPS].shape[0]:
                last_time = float(group[L.TIMESTAMPS][-1])
            last_frame = None
            if group[L.FRAME_SEQ].shape[0]:
                last_frame = (int(group[L.FRAME_INCARNATION][-1]), int(group[L.FRAME_SEQ][-1]))
            return StreamHandle(kind, group, recorded, shape, last_time, last_frame)
        recorded = select() if kind is not Kind.WEIGHTS else np.zeros(0, np.uint32)
        group = parent.create_group(pop)
        group.attrs[L.ATTR_NODE_ID] = node_id
        group.attrs[L.ATTR_LAYER] = name
        group.attrs[L.ATTR_LAYER_SIZE] = np.asarray(shape, dtype=np.int64)
        group.attrs[L.ATTR_DT_MS] = dt_ms
        group.attrs[L.ATTR_SUBSAMPLE_RATE] = subsample_rate if kind is not Kind.WEIGHTS else 1.0
        group.create_dataset(L.RECORDED_NEURONS, data=recorded, dtype=L.NEURON_DTYPE)
        self._frame_datasets(group)
        if kind is Kind.SPIKES:
            self._series(group, L.TIMESTAMPS, L.TIME_DTYPE, L.SPIKE_CHUNK)
            group[L.TIMESTAMPS].attrs[L.ATTR_UNITS] = L.UNITS_TIME
            self._series(group, L.NODE_IDS, L.NEURON_DTYPE, L.SPIKE_CHUNK)
            self._series(group, L.STEPS, L.STEP_DTYPE, L.SPIKE_CHUNK)
            self._set_sorting(group, "by_time")
        elif kind is Kind.MEMBRANE:
            n = max(1, recorded.size)
            rows = max(1, L.DATA_CHUNK_BYTES // (4 * n))
            ds = group.create_dataset(
                L.DATA,
                shape=(0, recorded.size),
                maxshape=(None, recorded.size),
                dtype=L.VALUE_DTYPE,
                chunks=(rows, n) if recorded.size else None,
                **self._filters,
            )
            ds.attrs[L.ATTR_UNITS] = L.UNITS_MEMBRANE
        else:
            rows_, cols = shape
            r_chunk = max(1, min(rows_, L.DATA_CHUNK_BYTES // (4 * max(1, cols))))
            ds = group.create_dataset(
                L.DATA,
                shape=(0, rows_, cols),
                maxshape=(None, rows_, cols),
                dtype=L.VALUE_DTYPE,
                chunks=(1, max(1, r_chunk), max(1, cols)),
                **self._filters,
            )
            ds.attrs[L.ATTR_UNITS] = L.UNITS_WEIGHTS
        return StreamHandle(kind, group, recorded, shape, -np.inf)

    def note_node(
        self,
        node_id: str,
        *,
        module_type: str | None = None,
        incarnation: int | None = None,
        dt_ms: float | None = None,
    ) -> None:
        """Record per-node metadata: module type, dt and the incarnations seen."""
        nodes = self._file[L.METADATA][L.NODES]
        group = nodes[node_id] if node_id in nodes else nodes.create_group(node_id)
        if module_type is not None:
            group.attrs[L.ATTR_MODULE_TYPE] = module_type
        if dt_ms is not None:
            group.attrs[L.ATTR_DT_MS] = dt_ms
        if incarnation is not None:
            seen = np.asarray(group.attrs.get(L.ATTR_INCARNATIONS, np.zeros(0, np.uint64)))
            if incarnation not in seen:
                group.attrs[L.ATTR_INCARNATIONS] = np.append(seen, np.uint64(incarnation)).astype(
                    np.uint64
                )

    # -- appends ---------------------------------------------------------------------

    def append_spikes(
        self,
        handle: StreamHandle,
        steps: npt.NDArray[np.int64],
        times: npt.NDArray[np.float64],
        ids: npt.NDArray[np.uint32],
        frames: Frames,
    ) -> None:
        """Append flat (step, time, neuron id) spike rows and their message index rows."""
        group = handle.group
        if times.size:
            if times[0] < handle.last_time or bool(np.any(np.diff(times) < 0)):
                self._set_sorting(group, "none")
            handle.last_time = float(times[-1])
            _append(group[L.TIMESTAMPS], times)
            _append(group[L.NODE_IDS], ids)
            _append(group[L.STEPS], steps)
        self._append_frames(group, frames)

    def append_rows(
        self, handle: StreamHandle, data: npt.NDArray[np.float32], frames: Frames
    ) -> None:
        """Append membrane rows (frames x recorded neurons) or weight snapshots."""
        _append(handle.group[L.DATA], data)
        self._append_frames(handle.group, frames)

    def write_control(self, record: dict[str, Any]) -> None:
        """Append one record to ``control_states.jsonl``."""
        if self._control is None:
            raise WriterError("writer not started")
        self._control.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")

    # -- internals -------------------------------------------------------------------

    @property
    def _file(self) -> h5py.File:
        if self._h5 is None:
            raise WriterError("writer not started or already finished")
        return self._h5

    def _series(self, group: h5py.Group, name: str, dtype: np.dtype[Any], chunk: int) -> None:
        group.create_dataset(
            name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(chunk,), **self._filters
        )

    def _frame_datasets(self, group: h5py.Group) -> None:
        for name, dtype in (
            (L.FRAME_STEP, L.STEP_DTYPE),
            (L.FRAME_TIME, L.TIME_DTYPE),
            (L.FRAME_SEQ, L.SEQ_DTYPE),
            (L.FRAME_INCARNATION, L.SEQ_DTYPE),
            (L.FRAME_COUNT, L.COUNT_DTYPE),
        ):
            self._series(group, name, dtype, L.FRAME_CHUNK)
        group[L.FRAME_TIME].attrs[L.ATTR_UNITS] = L.UNITS_TIME

    def _append_frames(self, group: h5py.Group, frames: Frames) -> None:
        _append(group[L.FRAME_STEP], frames.step)
        _append(group[L.FRAME_TIME], frames.time)
        _append(group[L.FRAME_SEQ], frames.seq)
        _append(group[L.FRAME_INCARNATION], frames.incarnation)
        _append(group[L.FRAME_COUNT], frames.count)

    @staticmethod
    def _set_sorting(group: h5py.Group, value: str) -> None:
        enum = h5py.enum_dtype(L.SORTING_ENUM, basetype="u1")
        group.attrs.create(L.ATTR_SORTING, L.SORTING_ENUM[value], dtype=enum)

    def _write_statistics(self, statistics: dict[str, Any], *, into_file: bool = True) -> None:
        text = json.dumps(statistics, indent=2, sort_keys=True)
        if into_file:
            self._file[L.METADATA].attrs[L.ATTR_STATISTICS] = text
        path = self.session_dir / L.STATISTICS_FILE
        tmp = path.with_suffix(".json.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _lock(self) -> bool:
        fd = os.open(self.session_dir / L.LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return True

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
