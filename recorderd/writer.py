"""The session writer: the only code that writes a session's files (HDF5 and JSONL).

Lifecycle as in mcap's writer: :meth:`SessionWriter.start`, then ``append_*`` and
:meth:`flush`, then :meth:`finish` (idempotent; also the context manager's exit).
The layout it writes is :mod:`recorderd.layout`, documented in
``docs/recording-format.md``. One writer per session: a lock file enforces it.

Crash safety (``docs/crash-safety.md``): while recording, the HDF5 file is in SWMR
mode (HDF5 orders its metadata writes so that the file on disk is consistent at every
moment), appendable datasets receive whole chunks only (no compressed chunk is ever
rewritten), and the rows of each unfinished chunk go to the journal
(:mod:`recorderd.journal`) at every flush. Groups, datasets and attributes cannot be
created in SWMR mode: such changes are made in a short window with the file reopened
without SWMR. :meth:`SessionWriter.finish` writes the tails into the datasets and
deletes the journal; after a crash, the next :meth:`SessionWriter.start` (or
:func:`recover`) does it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import h5py
import numpy as np
import numpy.typing as npt

from recorderd import layout as L
from recorderd.journal import Entry, Journal, JournalError, fsync_path
from recorderd.protocol import Kind
from recorderd.recovery import LIBVER, appendable_datasets, recover, try_lock
from recorderd.superblock import clear_status_flags

log = logging.getLogger(__name__)

Compression = Literal["gzip", "lzf", "none"]

#: How often a writer waiting for a busy session retries its lock.
LOCK_POLL_S = 0.2
#: Rewrite the journal (one snapshot of all tails) once it is larger than this and
#: more than twice the tails it holds: it stays small beside the file.
JOURNAL_COMPACT_BYTES = 4 << 20


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
    path: str  # the group's HDF5 path
    recorded_neurons: npt.NDArray[np.uint32]
    shape: tuple[int, ...]  # (layer_size,) or (rows, cols) for weights
    last_time: float  # for the SONATA "sorting" attribute of spike populations
    #: (incarnation, seq) of the stream's last recorded message, from an earlier run.
    last_frame: tuple[int, int] | None = None
    sorted_by_time: bool = True


@dataclass
class _Appendable:
    """A dataset grown along axis 0: whole chunks in the file, the last rows in memory."""

    path: str
    chunk_rows: int
    dtype: np.dtype[Any]
    row_shape: tuple[int, ...]
    main: int  # rows in the HDF5 dataset: a multiple of chunk_rows while recording
    parts: list[npt.NDArray[Any]] = field(default_factory=list)
    rows: int = 0  # tail rows held in memory
    journaled: int = 0  # of those, already in the journal
    moved: bool = False  # main grew since the last journal record

    @classmethod
    def load(cls, ds: h5py.Dataset) -> _Appendable:
        """Take a dataset's partial last chunk into memory (the caller shrinks it)."""
        chunk_rows = int(ds.chunks[0]) if ds.chunks else 1
        n = int(ds.shape[0])
        main = n // chunk_rows * chunk_rows
        a = cls(ds.name, chunk_rows, ds.dtype, tuple(ds.shape[1:]), main)
        if n > main:
            a.push(np.asarray(ds[main:n]))
        return a

    @property
    def tail_bytes(self) -> int:
        return self.rows * self.dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64))

    def push(self, rows: npt.NDArray[Any]) -> None:
        if rows.shape[0]:
            self.parts.append(np.asarray(rows, dtype=self.dtype))
            self.rows += int(rows.shape[0])

    def tail(self) -> npt.NDArray[Any]:
        if not self.parts:
            return np.zeros((0, *self.row_shape), dtype=self.dtype)
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0]

    def last(self, ds: h5py.Dataset) -> Any:
        """The last committed row, or None."""
        if self.rows:
            return self.parts[-1][-1]
        return ds[self.main - 1] if self.main else None

    def write_whole_chunks(self, ds: h5py.Dataset) -> None:
        n = self.rows // self.chunk_rows * self.chunk_rows
        if n == 0:
            return
        t = self.tail()
        ds.resize(self.main + n, axis=0)
        ds[self.main : self.main + n] = t[:n]
        self.main += n
        rest = t[n:].copy()
        self.parts = [rest] if rest.shape[0] else []
        self.rows -= n
        self.journaled = 0  # fewer than one chunk was journaled: all of it is in main now
        self.moved = True

    def write_all(self, ds: h5py.Dataset) -> None:
        """Write the tail too (at close): the dataset then holds every row."""
        if self.rows:
            ds.resize(self.main + self.rows, axis=0)
            ds[self.main :] = self.tail()
        self.main += self.rows
        self.parts, self.rows, self.journaled, self.moved = [], 0, 0, False

    def entry(self) -> Entry | None:
        """The journal entry for what changed since the last one, if anything did."""
        if not self.moved and self.journaled == self.rows:
            return None
        e = Entry(self.path, self.main, self.journaled, self.tail()[self.journaled :])
        self.journaled, self.moved = self.rows, False
        return e

    def snapshot(self) -> Entry:
        self.journaled, self.moved = self.rows, False
        return Entry(self.path, self.main, 0, self.tail())


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


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
        self._swmr = False
        self._journal: Journal | None = None
        self._arrays: dict[str, _Appendable] = {}
        #: Per-node metadata attributes as written or to be written (a cache).
        self._nodes: dict[str, dict[str, Any]] = {}
        self._pending_nodes: set[str] = set()
        self._pending_sorting: dict[str, str] = {}
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
        if not path.exists():
            self._create(path)
        try:
            clear_status_flags(path)  # set if a writer was killed; we hold the lock
        except ValueError as exc:
            raise WriterError(f"{path}: {exc}") from exc
        self._h5 = h5py.File(path, "a", libver=LIBVER, locking=False)
        root = self._h5
        version = int(root.attrs.get(L.ATTR_FORMAT_VERSION, 0))
        if version != L.FORMAT_VERSION or root.attrs.get(L.ATTR_FORMAT) != L.FORMAT_NAME:
            raise WriterError(
                f"{path} is not a {L.FORMAT_NAME} file of version {L.FORMAT_VERSION}; "
                "record into a new session"
            )
        try:
            # The journal stays until Journal.create below replaces it atomically.
            recover(self.session_dir, root, keep_journal=True)
        except JournalError as exc:
            raise WriterError(
                f"{exc}; the session cannot be continued automatically. Its rows up to "
                f"the last flush are in the journal: keep a copy of the folder, then "
                f"move {L.JOURNAL_FILE} aside to continue without them"
            ) from exc
        meta = root[L.METADATA]
        # Existing streams keep the neurons chosen with the session's first seed.
        self.subsample_seed = int(meta.attrs[L.ATTR_SUBSAMPLE_SEED])
        previous = meta.attrs.get(L.ATTR_STATISTICS)
        self.previous_statistics = json.loads(previous) if previous else None
        meta.attrs[L.ATTR_RECORDER_RUNS] = int(meta.attrs[L.ATTR_RECORDER_RUNS]) + 1
        meta.attrs[L.ATTR_RECORDER_CONFIG] = self._config_json
        meta.attrs[L.ATTR_STOP_TIME] = ""
        # Partial last chunks move into memory (and the journal) before they leave the
        # file: from here on the datasets only ever receive whole chunks.
        for ds in appendable_datasets(root):
            self._arrays[ds.name] = _Appendable.load(ds)
        self._journal = Journal.create(
            self.session_dir / L.JOURNAL_FILE, [a.snapshot() for a in self._arrays.values()]
        )
        for a in self._arrays.values():
            ds = root[a.path]
            if ds.shape[0] != a.main:
                ds.resize(a.main, axis=0)
        root.flush()
        root.swmr_mode = True
        self._swmr = True
        self._control = open(self.session_dir / L.CONTROL_FILE, "a", encoding="utf-8")  # noqa: SIM115

    def _create(self, path: Path) -> None:
        """A new session file, built under a temporary name and renamed into place."""
        tmp = path.with_name(path.name + ".creating")
        with h5py.File(tmp, "w", libver=LIBVER, locking=False) as root:
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
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(self.session_dir)

    def finish(self, statistics: dict[str, Any] | None = None) -> None:
        """Write everything, stamp the stop time, close, delete the journal (idempotent)."""
        if self._finished:
            return
        self._finished = True
        try:
            if self._h5 is not None:
                path = self.session_dir / L.DATA_FILE
                self._reopen(swmr=False)
                for a in self._arrays.values():
                    a.write_all(self._file[a.path])
                self._apply_pending()
                meta = self._file[L.METADATA]
                meta.attrs[L.ATTR_STOP_TIME] = _utc_now()
                if statistics is not None:
                    self._write_statistics(statistics)
                self._file.close()
                self._h5 = None
                fsync_path(path)
                if self._journal is not None:
                    self._journal.remove()  # every row is in the file now
        finally:
            # After a failure self._h5 stays referenced: dropping it would close the
            # file, and closing writes (the caller abandons the session instead).
            if self._journal is not None:
                self._journal.close()
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

        The HDF5 file is not closed (closing writes), so it stays as of its last flush
        and the journal is kept for the next start to recover from; the process must
        then exit without running h5py's destructors (``os._exit``).
        """
        self._finished = True
        try:
            if self._journal is not None:
                self._journal.close()
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

    def flush(self, statistics: dict[str, Any] | None = None) -> None:
        """Make everything appended so far durable.

        In this order: pending groups and attributes (a non-SWMR window), whole chunks
        into the datasets, HDF5 flush and fsync, then the journal record of the rows
        not in a whole chunk, ``recording_statistics.json`` and the control log.
        """
        self._apply_pending()
        root = self._file
        for a in self._arrays.values():
            if a.rows >= a.chunk_rows:
                a.write_whole_chunks(root[a.path])
        root.flush()
        os.fsync(root.id.get_vfd_handle())
        self._write_journal()
        if statistics is not None:
            self._write_statistics(statistics, into_file=False)
        if self._control is not None:
            self._control.flush()
            os.fsync(self._control.fileno())

    @property
    def tail_bytes(self) -> int:
        """Bytes held back from unfinished chunks: what closing still has to write."""
        return sum(a.tail_bytes for a in self._arrays.values())

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
        path = f"/{top}/{pop}"
        stream = f"{node_id}/{kind.key_word}/{name}"
        if pop in self._file[top]:
            group = self._file[path]
            old = tuple(int(x) for x in np.atleast_1d(group.attrs[L.ATTR_LAYER_SIZE]))
            if old != shape:
                raise ShapeChangedError(stream, old, shape)
            recorded = np.asarray(group[L.RECORDED_NEURONS][()], dtype=np.uint32)
            last_time = -np.inf
            if kind is Kind.SPIKES:
                last = self._last(f"{path}/{L.TIMESTAMPS}")
                last_time = -np.inf if last is None else float(last)
            last_frame = None
            seq = self._last(f"{path}/{L.FRAME_SEQ}")
            inc = self._last(f"{path}/{L.FRAME_INCARNATION}")
            if seq is not None and inc is not None:
                last_frame = (int(inc), int(seq))
            sorting = group.attrs.get(L.ATTR_SORTING)
            by_time = sorting is None or int(sorting) == L.SORTING_ENUM["by_time"]
            return StreamHandle(kind, path, recorded, shape, last_time, last_frame, by_time)
        recorded = select() if kind is not Kind.WEIGHTS else np.zeros(0, np.uint32)
        with self._structure() as root:
            group = root[top].create_group(pop)
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
            for ds in group.values():
                if isinstance(ds, h5py.Dataset) and ds.maxshape and ds.maxshape[0] is None:
                    self._arrays[ds.name] = _Appendable.load(ds)
        return StreamHandle(kind, path, recorded, shape, -np.inf)

    def note_node(
        self,
        node_id: str,
        *,
        module_type: str | None = None,
        incarnation: int | None = None,
        dt_ms: float | None = None,
    ) -> None:
        """Record per-node metadata: module type, dt and the incarnations seen.

        Changes are written at the next flush (attributes need a non-SWMR window);
        repeating what is known costs nothing.
        """
        known = self._nodes.get(node_id)
        if known is None:
            nodes = self._file[L.METADATA][L.NODES]
            known = dict(nodes[node_id].attrs) if node_id in nodes else {}
            self._nodes[node_id] = known
        changed = False
        if module_type is not None and known.get(L.ATTR_MODULE_TYPE) != module_type:
            known[L.ATTR_MODULE_TYPE] = module_type
            changed = True
        if dt_ms is not None and known.get(L.ATTR_DT_MS) != dt_ms:
            known[L.ATTR_DT_MS] = dt_ms
            changed = True
        if incarnation is not None:
            seen = np.asarray(known.get(L.ATTR_INCARNATIONS, np.zeros(0, np.uint64)))
            if incarnation not in seen:
                known[L.ATTR_INCARNATIONS] = np.append(seen, np.uint64(incarnation)).astype(
                    np.uint64
                )
                changed = True
        if changed:
            self._pending_nodes.add(node_id)

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
        if times.size:
            unsorted = times[0] < handle.last_time or bool(np.any(np.diff(times) < 0))
            if unsorted and handle.sorted_by_time:
                handle.sorted_by_time = False
                self._pending_sorting[handle.path] = "none"
            handle.last_time = float(times[-1])
            self._arrays[f"{handle.path}/{L.TIMESTAMPS}"].push(times)
            self._arrays[f"{handle.path}/{L.NODE_IDS}"].push(ids)
            self._arrays[f"{handle.path}/{L.STEPS}"].push(steps)
        self._append_frames(handle.path, frames)

    def append_rows(
        self, handle: StreamHandle, data: npt.NDArray[np.float32], frames: Frames
    ) -> None:
        """Append membrane rows (frames x recorded neurons) or weight snapshots."""
        self._arrays[f"{handle.path}/{L.DATA}"].push(data)
        self._append_frames(handle.path, frames)

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

    def _append_frames(self, path: str, frames: Frames) -> None:
        self._arrays[f"{path}/{L.FRAME_STEP}"].push(frames.step)
        self._arrays[f"{path}/{L.FRAME_TIME}"].push(frames.time)
        self._arrays[f"{path}/{L.FRAME_SEQ}"].push(frames.seq)
        self._arrays[f"{path}/{L.FRAME_INCARNATION}"].push(frames.incarnation)
        self._arrays[f"{path}/{L.FRAME_COUNT}"].push(frames.count)

    def _last(self, path: str) -> Any:
        a = self._arrays.get(path)
        return a.last(self._file[path]) if a is not None else None

    def _reopen(self, *, swmr: bool) -> None:
        """Close and reopen the file: the only way out of SWMR mode."""
        if self._swmr == swmr:
            return
        path = self._file.filename
        if self._swmr:
            self._file.close()
            self._h5 = h5py.File(path, "a", libver=LIBVER, locking=False)
            self._swmr = False
        else:
            self._file.flush()
            self._file.swmr_mode = True
            self._swmr = True

    @contextmanager
    def _structure(self) -> Iterator[h5py.File]:
        """A window without SWMR for new groups, datasets and attributes."""
        self._reopen(swmr=False)
        yield self._file
        self._reopen(swmr=True)

    def _apply_pending(self) -> None:
        """Write pending node attributes and sorting changes."""
        if not self._pending_nodes and not self._pending_sorting:
            return
        with self._structure() as root:
            nodes = root[L.METADATA][L.NODES]
            for node_id in sorted(self._pending_nodes):
                group = nodes.require_group(node_id)
                for key, value in self._nodes[node_id].items():
                    group.attrs[key] = value
            for path, value in self._pending_sorting.items():
                self._set_sorting(root[path], value)
        self._pending_nodes.clear()
        self._pending_sorting.clear()

    def _write_journal(self) -> None:
        if self._journal is None:
            raise WriterError("writer not started")
        if self._journal.size > max(JOURNAL_COMPACT_BYTES, 2 * self.tail_bytes):
            self._journal.close()
            self._journal = Journal.create(
                self._journal.path, [a.snapshot() for a in self._arrays.values()]
            )
            return
        entries = [e for a in self._arrays.values() if (e := a.entry()) is not None]
        self._journal.append(entries)

    @staticmethod
    def _set_sorting(group: h5py.Group, value: str) -> None:
        enum = h5py.enum_dtype(L.SORTING_ENUM, basetype="u1")
        group.attrs.create(L.ATTR_SORTING, L.SORTING_ENUM[value], dtype=enum)

    def _write_statistics(self, statistics: dict[str, Any], *, into_file: bool = True) -> None:
        """``recording_statistics.json`` (atomically replaced) and, at close, the file."""
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
        self._lock_fd = try_lock(self.session_dir)
        return self._lock_fd is not None

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
