"""Opening sessions that a crash or a live writer left with a journal.

:func:`recover` applies a session's journal (:mod:`recorderd.session.journal`) to its HDF5
file: the state of the last flush. The next writer does it on start; a reader does it
through :func:`recover_if_idle` when no writer holds the session, as SQLite readers
roll back a hot journal. A reader of a live session reads the journal itself (the
analysis reader's committed view). Recovery works one dataset at a time with HDF5's
chunk cache off, so its memory follows the journal, not the number of streams.

A crashed file that cannot be recovered where it lies (no room, no write permission)
is still read: :func:`open_readonly` then reads it through a view whose superblock has
its "open for write" flags cleared in memory only.
"""

from __future__ import annotations

import errno
import io
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Literal

import h5py

from recorderd.session import layout as L
from recorderd.session.journal import JournalError, Replay, replay
from recorderd.session.lock import SessionLock
from recorderd.session.safefs import fsync_path
from recorderd.session.schema import LIBVER, is_appendable, stream_groups
from recorderd.session.superblock import clear_status_flags, cleared_superblock, status_flags

log = logging.getLogger(__name__)

#: Free space beyond the tails' bytes that recovery asks for (HDF5 metadata).
RECOVERY_HEADROOM_BYTES = 4 << 20

SessionState = Literal["clean", "recovered", "live", "read-only"]


def recover_if_idle(
    session_dir: Path, *, may_recover: bool = True, shard: str | None = None
) -> SessionState:
    """For readers: recover a crashed session unless a writer holds it.

    ``clean``: closed cleanly. ``recovered``: a killed writer's journal applied, or
    only its "open for write" flags cleared (killed before it wrote a journal).
    ``live``: a writer holds the session. ``read-only``: left by a crash, but this
    process may not or cannot recover it (no write permission, no room, an unusable
    journal), or was asked not to (``may_recover=False``): left exactly as it is.
    """
    files = L.SessionFiles(session_dir, shard)
    data = files.data
    journal = files.journal.exists()
    try:
        flagged = status_flags(data) != 0
    except (OSError, ValueError):
        flagged = False  # not HDF5, or unreadable: opening it says why
    if not journal and not flagged:
        return "clean"
    try:
        lock = SessionLock.try_acquire(session_dir, create=may_recover, shard=shard)
    except FileNotFoundError:  # no lock file (may_recover=False): no writer ever held it
        return "read-only"
    except OSError:  # no write permission here, or a symlinked lock file
        return "read-only"
    if lock is None:
        return "live"
    if not may_recover:
        lock.release()
        return "read-only"
    try:
        if journal:
            return "recovered" if recover(session_dir, shard=shard) is not None else "clean"
        clear_status_flags(data)
        log.warning("%s: cleared the flags of a recorder killed before its journal", data)
        return "recovered"
    except (OSError, ValueError, JournalError) as exc:
        log.warning("reading %s as it is, without recovering it: %s", session_dir, exc)
        return "read-only"
    finally:
        lock.release()


class _FlagsClearedView(io.RawIOBase):
    """A crashed HDF5 file, read-only, with its superblock patched in memory.

    h5py opens it through its file-object driver; the file on disk is never written.
    """

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed with the view
        patch = cleared_superblock(self._fh)
        self._patch = (0, b"") if patch is None else (patch[0], patch[1])
        self._fh.seek(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        pos = self._fh.tell()
        n = self._fh.readinto(buffer)
        at, body = self._patch
        lo, hi = max(pos, at), min(pos + n, at + len(body))
        if lo < hi:
            memoryview(buffer)[lo - pos : hi - pos] = body[lo - at : hi - at]
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


#: Chunk cache per open dataset of a reader (bytes). Readers read whole chunks in long
#: runs, so a cache buys little; HDF5 2.0's default (8 MiB per dataset) cost 17 MiB per
#: spike stream a reader keeps open (a 1e8-spike summary peaked at 259 MiB, not 127).
READ_CHUNK_CACHE: Final = 1 << 20


def open_readonly(path: Path, attempts: int = 20) -> h5py.File:
    """Open a session file for reading, also while a SWMR writer has it open.

    A writer adding a stream leaves SWMR mode for a few milliseconds, during which
    the file opens neither way: try again a few times. A file left by a crash that
    nobody could recover (its flags still set) is read through a patched view.
    """
    cache = {"rdcc_nbytes": READ_CHUNK_CACHE}
    for attempt in range(attempts):
        try:
            return h5py.File(path, "r", locking=False, **cache)
        except OSError:
            try:
                return h5py.File(path, "r", locking=False, swmr=True, **cache)
            except OSError:
                if attempt >= 2 and _nobody_writes(path):
                    view = _FlagsClearedView(path)
                    try:
                        return h5py.File(view, "r", locking=False, **cache)
                    except OSError:
                        view.close()
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05)
    raise AssertionError("unreachable")


def _nobody_writes(path: Path) -> bool:
    """Whether no process holds the lock of the data file ``path`` (its folder's or its
    shard's)."""
    files = L.SessionFiles.of_data_file(path) or L.SessionFiles(path.parent)
    if not files.lock.exists():
        return True
    try:
        lock = SessionLock.try_acquire(path.parent, create=False, shard=files.shard)
    except OSError:
        return True  # cannot even open the lock file read-write: nobody can tell; read
    if lock is None:
        return False
    lock.release()
    return True


def appendable_datasets(root: h5py.File) -> Iterator[h5py.Dataset]:
    """Every dataset of the session that grows along axis 0, one at a time."""
    for group in stream_groups(root):
        for name in group:
            ds = group.get(name)
            if is_appendable(ds):
                yield ds


def recover(
    session_dir: Path,
    h5: h5py.File | None = None,
    *,
    keep_journal: bool = False,
    shard: str | None = None,
) -> dict[str, int] | None:
    """Bring a session left by a crash to its state at the last flush; None if clean.

    Applies the journal: every appendable dataset is cut to its committed rows and gets
    its journaled tail appended; the statistics of ``recording_statistics.json`` go into
    the file. Then deletes the journal. The caller must hold the session lock. With
    ``h5`` (the file already open for writing, not SWMR), works on it and leaves it
    open; without, opens and closes the file itself. Raises ``OSError`` (ENOSPC)
    before writing anything if the disk lacks the room, and :class:`JournalError` if
    the journal is unusable (then nothing is changed; the journal is never deleted
    unless applied). ``keep_journal``: leave it for the caller to replace atomically.
    """
    files = L.SessionFiles(session_dir, shard)
    jpath, data = files.journal, files.data
    if not jpath.exists():
        return None
    rep = replay(jpath)
    # A write failing half-way would leave HDF5 unable even to close the file: check
    # first that the tails fit (uncompressed, plus room for metadata).
    need = sum(rep.tail(p).nbytes for p in rep.tails) + RECOVERY_HEADROOM_BYTES
    free = shutil.disk_usage(session_dir).free
    if free < need:
        raise OSError(
            errno.ENOSPC,
            f"{session_dir} needs recovery from its journal but the disk has {free} bytes "
            f"free, {need} needed; free some space",
        )
    if h5 is None:
        clear_status_flags(data)
        with h5py.File(data, "a", libver=LIBVER, locking=False, rdcc_nbytes=0) as f:
            result = _apply(files, f, rep, keep_journal)
        fsync_path(data)
        return result
    return _apply(files, h5, rep, keep_journal)


def _apply(files: L.SessionFiles, h5: h5py.File, rep: Replay, keep_journal: bool) -> dict[str, int]:
    jpath, data = files.journal, files.data
    for ds in appendable_datasets(h5):  # check everything before changing anything
        tail = rep.tails.get(ds.name)
        if tail is not None and tail.main > ds.shape[0]:
            raise JournalError(
                f"{jpath}: {ds.name} has {ds.shape[0]} rows, the journal says {tail.main}"
            )
    rows = 0
    count = 0
    for ds in appendable_datasets(h5):
        tail = rep.tails.get(ds.name)
        main = tail.main if tail is not None else 0
        if ds.shape[0] != main:
            ds.resize(main, axis=0)
        if tail is not None and tail.rows:
            ds.resize(main + tail.rows, axis=0)
            ds[main:] = rep.tail(ds.name)
            rows += tail.rows
        count += 1
    stats = files.statistics
    if stats.exists():
        h5[L.METADATA].attrs[L.ATTR_STATISTICS] = stats.read_text(encoding="utf-8").strip()
    h5.flush()
    fsync_path(data)
    if not keep_journal:
        jpath.unlink()
    log.warning(
        "recovered %s after a crash: %d datasets, %d rows from the journal%s",
        data,
        count,
        rows,
        f", {rep.ignored_bytes} bytes of a torn record ignored" if rep.ignored_bytes else "",
    )
    return {"datasets": count, "rows": rows, "ignored_bytes": rep.ignored_bytes}
