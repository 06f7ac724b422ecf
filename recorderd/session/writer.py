"""The session writer: the only code that writes a session's files (HDF5 and JSONL).

Lifecycle as in mcap's writer: :meth:`SessionWriter.start`, then ``append_*`` and
:meth:`flush`, then :meth:`finish` (idempotent; also the context manager's exit).
The layout it writes is :mod:`recorderd.session.layout`, documented in
``docs/recording-format.md``; it orchestrates the session lock (:mod:`.lock`), the
structure (:mod:`.schema`), the appendable datasets and their tails (:mod:`.appendable`),
the journal (:mod:`.journal`) and the control log (:mod:`.controllog`).

Crash safety (``docs/crash-safety.md``): while recording, the HDF5 file is in SWMR
mode, appendable datasets receive whole chunks only, and the rows of each unfinished
chunk go to the journal at every flush. Groups, datasets and attributes cannot be
created in SWMR mode: new streams are created at the next flush, a bounded number per
short window with the file reopened without SWMR. Closing writes the tails while still
in SWMR mode, then stamps the metadata in one short window. Between windows the close
can be cut short (:attr:`SessionWriter.should_abort`): the session is then left exactly
as a crash would leave it, journal intact, and never in the middle of a window.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import h5py

from recorderd import __version__
from recorderd.session import layout as L
from recorderd.session.chunks import Codec
from recorderd.session.controllog import ControlLog, read_records
from recorderd.session.errors import SessionBusyError, WriteAborted, WriterError
from recorderd.session.journal import JournalError
from recorderd.session.lock import SessionLock
from recorderd.session.nodes import NodeMetadata
from recorderd.session.recovery import recover
from recorderd.session.safefs import (
    UnsafePathError,
    check_regular,
    ensure_session_dir,
    fsync_path,
    same_file,
)
from recorderd.session.schema import (
    LIBVER,
    Compression,
    create_session_file,
    create_stream,
    filters,
    set_sorting,
    utc_now,
)
from recorderd.session.statsfile import StatisticsFile
from recorderd.session.streams import Streams
from recorderd.session.summary import read_summary, write_summary
from recorderd.session.superblock import clear_status_flags
from recorderd.session.tails import Tails

log = logging.getLogger(__name__)

#: How often a writer waiting for a busy session retries its lock.
LOCK_POLL_S: Final = 0.2
#: New streams created per non-SWMR window: bounds how long one window lasts.
STREAMS_PER_WINDOW: Final = 64
#: Seconds a flush may spend creating new streams (the rest wait for the next flush).
STREAM_CREATION_BUDGET_S: Final = 0.25
#: Rows of streams waiting for creation are held in memory; past this many bytes the
#: streams are created at once rather than at the next flush (a heavy new stream would
#: otherwise hold a whole flush interval of its rows: 300 MB at 27 M spikes/s). Small,
#: so that a burst of new streams gets its window at once and its whole chunks flow to
#: the compression pool as they fill, instead of all at the first flush (32 -> 2 MiB:
#: peak RSS 140-147 -> 100-121 MB in workload a, ``bench/results/perf-ab-waiting.json``).
WAITING_BYTES_MAX: Final = 2 << 20
#: Early creation windows at most this often (a flood of new keys must not keep the
#: writer in windows: together with the flushes' own, at most 2 x 0.25 s per second).
EARLY_CREATION_PERIOD_S: Final = 1.0


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
        shard: str | None = None,
        shard_nodes: Sequence[str] = (),
    ) -> None:
        self.session_dir = session_dir
        #: The files this writer owns: the session's, or a shard's (docs/deployment.md).
        self.files = L.SessionFiles(session_dir, shard)
        self._shard_nodes = list(shard_nodes)
        self.session = session
        self._filters = filters(compression, compression_level)
        self._config_json = json.dumps(recorder_config or {}, default=str, sort_keys=True)
        #: The seed in force: a reopened session keeps the seed it was created with.
        self.subsample_seed = subsample_seed
        #: Statistics the session held when it was reopened (an earlier recorder run).
        self.previous_statistics: dict[str, Any] | None = None
        self._subsampling_rule = subsampling_rule
        self._h5: h5py.File | None = None
        self._swmr = False
        self._tails = Tails()
        self._nodes = NodeMetadata()
        #: Opening streams and appending to them.
        self.streams = Streams(self._tails, lambda: self._file, Codec.from_filters(self._filters))
        self._next_early_creation = 0.0  # time.monotonic() of the next early window
        self._statistics = StatisticsFile(session_dir, shard)
        self._control: ControlLog | None = None
        self._lock: SessionLock | None = None
        self._finished = False
        #: Asked at safe points of a close: True cuts it short (:class:`WriteAborted`).
        self.should_abort: Callable[[], bool] = lambda: False

    # -- lifecycle -------------------------------------------------------------------

    def start(self, keep_waiting: Callable[[], bool] | None = None) -> None:
        """Create or reopen the session folder and files; take the session lock.

        If another process holds the lock, raise :class:`SessionBusyError`, or, with
        ``keep_waiting``, poll for the lock for as long as ``keep_waiting()`` is true.
        A session folder that is a symbolic link is refused (:class:`UnsafePathError`).
        """
        ensure_session_dir(self.session_dir)
        while True:
            # Asked before every attempt: a standby whose reason to exist is gone must
            # not take the lock just because it became free.
            if keep_waiting is not None and not keep_waiting():
                raise SessionBusyError(self.session_dir)
            self._lock = SessionLock.try_acquire(self.session_dir, shard=self.files.shard)
            if self._lock is not None:
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
        path = self.files.data
        if not check_regular(path):
            create_session_file(
                path,
                session=self.session,
                subsample_seed=self.subsample_seed,
                subsampling_rule=self._subsampling_rule,
            )
        try:
            clear_status_flags(path)  # set if a writer was killed; we hold the lock
        except ValueError as exc:
            raise WriterError(f"{path}: {exc}") from exc
        root = self._h5 = self._open_file()
        version = int(root.attrs.get(L.ATTR_FORMAT_VERSION, 0))
        if version not in L.APPENDABLE_VERSIONS or root.attrs.get(L.ATTR_FORMAT) != L.FORMAT_NAME:
            raise WriterError(
                f"{path} is not a {L.FORMAT_NAME} file of version "
                f"{' or '.join(map(str, L.APPENDABLE_VERSIONS))}; record into a new session"
            )
        try:
            # The journal stays until Journal.create below replaces it atomically.
            recover(self.session_dir, root, keep_journal=True, shard=self.files.shard)
        except JournalError as exc:
            raise WriterError(
                f"{exc}; the session cannot be continued automatically. Its rows up to "
                f"the last flush are in the journal: keep a copy of the folder, then "
                f"move {self.files.journal.name} aside to continue without them"
            ) from exc
        root.attrs[L.ATTR_FORMAT_VERSION] = L.FORMAT_VERSION  # 2 is a subset of 3
        meta = root[L.METADATA]
        # Existing streams keep the neurons chosen with the session's first seed.
        self.subsample_seed = int(meta.attrs[L.ATTR_SUBSAMPLE_SEED])
        previous = meta.attrs.get(L.ATTR_STATISTICS)
        self.previous_statistics = json.loads(previous) if previous else None
        # The last clean close's stream summary: its streams are counted on from it. It
        # is removed now and written anew at this run's clean close (a crash leaves none).
        self.streams.previous = read_summary(root) or {}
        if L.SUMMARY in meta:
            del meta[L.SUMMARY]
        meta.attrs[L.ATTR_RECORDER_RUNS] = int(meta.attrs[L.ATTR_RECORDER_RUNS]) + 1
        meta.attrs[L.ATTR_RECORDER_VERSION] = __version__
        meta.attrs[L.ATTR_RECORDER_CONFIG] = self._config_json
        meta.attrs[L.ATTR_STOP_TIME] = ""
        if self.files.shard is not None:
            meta.attrs[L.ATTR_SHARD] = self.files.shard
            meta.attrs[L.ATTR_SHARD_NODES] = json.dumps(self._shard_nodes)
        # Partial last chunks move into memory (and the journal) before they leave the
        # file: from here on the datasets only ever receive whole chunks. One dataset
        # at a time, so memory follows the tails, not the number of datasets.
        self._tails.load(root)
        self._tails.start_journal(self.files.journal)
        self._tails.shrink(root)
        root.flush()
        root.swmr_mode = True
        self._swmr = True
        self._control = ControlLog(self.files.control)

    def _open_file(self) -> h5py.File:
        """The session file, opened for writing without SWMR (never through a symlink).

        No chunk cache: whole chunks are written straight through, and an unfinished
        chunk never sits in HDF5's memory (its rows are in the tails).
        """
        path = self.files.data
        check_regular(path)
        h5 = h5py.File(path, "a", libver=LIBVER, locking=False, rdcc_nbytes=0)
        if not same_file(h5.id.get_vfd_handle(), path):
            h5.close()
            raise UnsafePathError(path, "replaced while it was opened")
        return h5

    def finish(self, statistics: dict[str, Any] | None = None) -> None:
        """Write everything, stamp the stop time, close, delete the journal (idempotent).

        Raises :class:`WriteAborted` if :attr:`should_abort` says so at a safe point;
        the caller then abandons the session (it is left as after a crash).
        """
        if self._finished:
            return
        self._finished = True
        try:
            if self._h5 is not None:
                path = self.files.data
                self._create_pending()
                self._tails.write_all(self._file, self.checkpoint)
                self.checkpoint()
                summaries = self.streams.summaries(self._file)
                self.checkpoint()
                # The last window: never cut short, and it ends with the file closed.
                self._reopen(swmr=False)
                root = self._file
                self._apply_pending(root)
                meta = root[L.METADATA]
                stop = utc_now()
                meta.attrs[L.ATTR_STOP_TIME] = stop
                write_summary(
                    meta,
                    summaries,
                    stop_time_utc=stop,
                    recorder_runs=int(meta.attrs[L.ATTR_RECORDER_RUNS]),
                    filters=self._filters,
                )
                if statistics is not None:
                    self._statistics.write(statistics, into=root)
                root.close()
                self._h5 = None
                fsync_path(path)
                self._tails.close_journal(remove=True)  # every row is in the file now
        finally:
            # After a failure self._h5 stays referenced: dropping it would close the
            # file, and closing writes (the caller abandons the session instead).
            self._tails.close_journal(remove=False)
            if self._control is not None:
                self._control.close()
                self._control = None
            self._unlock()

    def write_statistics(self, statistics: dict[str, Any]) -> None:
        """Rewrite ``recording_statistics.json`` now (also after an abandoned session)."""
        self._statistics.write(statistics)

    def checkpoint(self) -> None:
        """A safe point of a long flush or close: raise :class:`WriteAborted` if asked to."""
        if self.should_abort():
            raise WriteAborted()

    def recent_control_records(self, tail_bytes: int = 4 << 20) -> list[dict[str, Any]]:
        """The last records of ``control_states.jsonl`` (its last ``tail_bytes``), oldest first."""
        return read_records(self.files.control, tail_bytes)

    def abandon(self) -> None:
        """Give up after an I/O error or an aborted close: leave HDF5 as it is.

        The HDF5 file is not closed (closing writes), so it stays as of its last flush
        and the journal is kept for the next start to recover from; the process must
        then exit without running h5py's destructors (``os._exit``).
        """
        self._finished = True
        try:
            self._tails.close_journal(remove=False)
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

    def flush(
        self, statistics: dict[str, Any] | Callable[[], dict[str, Any]] | None = None
    ) -> None:
        """Make everything appended so far durable.

        In this order: new streams and pending attributes (short non-SWMR windows),
        whole chunks into the datasets, HDF5 flush and fsync, then the journal record of
        the rows not in a whole chunk, ``recording_statistics.json`` and the control log.
        ``statistics`` may be a function: it is then called only when the document is
        due (a large one is rewritten every :data:`STATISTICS_PERIOD_S`).
        """
        self._create_pending(STREAM_CREATION_BUDGET_S)
        if self._nodes.pending or self.streams.pending_sorting:
            with self._structure() as root:
                self._apply_pending(root)
        root = self._file
        self._tails.write_full(root)
        root.flush()
        os.fsync(root.id.get_vfd_handle())
        self._tails.commit()
        if statistics is not None:
            self._statistics.write(statistics)
        if self._control is not None:
            self._control.sync()

    def create_waiting_streams(self) -> None:
        """Create the streams waiting for a window now if their rows take too much memory
        (at most once per :data:`EARLY_CREATION_PERIOD_S`, beside the flushes' windows)."""
        if self._tails.waiting_bytes <= WAITING_BYTES_MAX or not self.streams.pending:
            return
        now = time.monotonic()
        if now >= self._next_early_creation:
            self._next_early_creation = now + EARLY_CREATION_PERIOD_S
            self._create_pending(STREAM_CREATION_BUDGET_S)

    @property
    def tail_bytes(self) -> int:
        """Bytes held back from unfinished chunks: what closing still has to write."""
        return self._tails.bytes

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
        repeating what is known costs a comparison. At most
        :data:`~recorderd.session.layout.MAX_NODE_INCARNATIONS` incarnations are listed; the
        others are counted.
        """
        self._nodes.note(
            self._file, node_id, module_type=module_type, incarnation=incarnation, dt_ms=dt_ms
        )

    def write_control(self, record: dict[str, Any]) -> None:
        """Append one record to ``control_states.jsonl``."""
        if self._control is None:
            raise WriterError("writer not started")
        self._control.write(record)

    # -- internals -------------------------------------------------------------------

    @property
    def _file(self) -> h5py.File:
        if self._h5 is None:
            raise WriterError("writer not started or already finished")
        return self._h5

    def _reopen(self, *, swmr: bool) -> None:
        """Close and reopen the file: the only way out of SWMR mode."""
        if self._swmr == swmr:
            return
        if self._swmr:
            self._tails.drain(self._file)  # no data is written outside SWMR mode
            self._file.close()
            self._h5 = self._open_file()
            self._swmr = False
        else:
            self._file.flush()
            self._file.swmr_mode = True
            self._swmr = True

    @contextmanager
    def _structure(self) -> Iterator[h5py.File]:
        """A window without SWMR for new groups, datasets and attributes.

        Never cut short from inside (no checkpoint in a window): an abort waits for it.
        """
        self._reopen(swmr=False)
        yield self._file
        self._reopen(swmr=True)

    def _create_pending(self, budget_s: float | None = None) -> None:
        """Create new streams, at most :data:`STREAMS_PER_WINDOW` per window.

        With ``budget_s`` (a flush), stop starting windows after that long: a flood of
        new streams must not keep the writer from draining the bus; the rest wait for
        the next flush (their rows in memory, not yet durable).
        """
        pending = self.streams.pending
        deadline = None if budget_s is None else time.monotonic() + budget_s
        while pending and (deadline is None or time.monotonic() < deadline):
            self.checkpoint()
            batch = pending[:STREAMS_PER_WINDOW]
            del pending[:STREAMS_PER_WINDOW]
            with self._structure() as root:
                for spec, _ in batch:
                    create_stream(root, spec, self._filters)
                self._apply_pending(root)
            for _, arrays in batch:
                self._tails.created(arrays, self._file)

    def _apply_pending(self, root: h5py.File) -> None:
        """Write pending node attributes and sorting changes (inside a window)."""
        self._nodes.apply(root)
        sorting = self.streams.pending_sorting
        for path in [p for p in sorting if p in root]:
            set_sorting(root[path], sorting.pop(path))

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
