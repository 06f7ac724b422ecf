"""Opening sessions that a crash or a live writer left with a journal.

:func:`recover` applies a session's journal (:mod:`recorderd.journal`) to its HDF5
file: the state of the last flush. The next writer does it on start; a reader does it
through :func:`recover_if_idle` when no writer holds the session, as SQLite readers
roll back a hot journal. A reader of a live session reads the journal itself (the
analysis reader's committed view).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import h5py

from recorderd import layout as L
from recorderd.journal import JournalError, Replay, fsync_path, replay
from recorderd.superblock import clear_status_flags, status_flags

log = logging.getLogger(__name__)

#: HDF5 format bounds: SWMR needs v110 at least; v114 (not "latest", which HDF5 2.0
#: maps to object versions that libsonata's HDF5 1.14 cannot read) at most.
LIBVER: tuple[str, str] = ("v110", "v114")

#: Free space beyond the tails' bytes that recovery asks for (HDF5 metadata).
RECOVERY_HEADROOM_BYTES = 4 << 20

SessionState = Literal["clean", "recovered", "live", "read-only"]


def try_lock(session_dir: Path, *, create: bool = True) -> int | None:
    """Take the session's writer lock without waiting: its fd, or None if held."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    fd = os.open(session_dir / L.LOCK_FILE, flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def release_lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def recover_if_idle(session_dir: Path) -> SessionState:
    """For readers: recover a crashed session unless a writer holds it.

    ``clean``: closed cleanly. ``recovered``: a killed writer's journal applied, or
    only its "open for write" flags cleared (killed before it wrote a journal).
    ``live``: a writer holds the session. ``read-only``: left by a crash, but this
    process may not or cannot recover it (no write permission, no room, an unusable
    journal): left exactly as it is.
    """
    data = session_dir / L.DATA_FILE
    journal = (session_dir / L.JOURNAL_FILE).exists()
    try:
        flagged = status_flags(data) != 0
    except (OSError, ValueError):
        flagged = False  # not HDF5, or unreadable: opening it says why
    if not journal and not flagged:
        return "clean"
    try:
        fd = try_lock(session_dir)
    except OSError:  # no write permission here
        return "read-only"
    if fd is None:
        return "live"
    try:
        if journal:
            return "recovered" if recover(session_dir) is not None else "clean"
        clear_status_flags(data)
        log.warning("%s: cleared the flags of a recorder killed before its journal", data)
        return "recovered"
    except (OSError, ValueError, JournalError) as exc:
        log.warning("reading %s as it is, without recovering it: %s", session_dir, exc)
        return "read-only"
    finally:
        release_lock(fd)


def open_readonly(path: Path, attempts: int = 20) -> h5py.File:
    """Open a session file for reading, also while a SWMR writer has it open.

    A writer adding a stream leaves SWMR mode for a few milliseconds, during which
    the file opens neither way: try again a few times.
    """
    for attempt in range(attempts):
        try:
            return h5py.File(path, "r", locking=False)
        except OSError:
            try:
                return h5py.File(path, "r", locking=False, swmr=True)
            except OSError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05)
    raise AssertionError("unreachable")


def appendable_datasets(root: h5py.File) -> Iterator[h5py.Dataset]:
    """Every dataset of the session that grows along axis 0 (per stream group)."""
    for top in (L.SPIKES, L.MEMBRANE, L.WEIGHTS):
        if top not in root:
            continue
        for group in root[top].values():
            if not isinstance(group, h5py.Group):
                continue
            for ds in group.values():
                if isinstance(ds, h5py.Dataset) and ds.maxshape and ds.maxshape[0] is None:
                    yield ds


def recover(
    session_dir: Path, h5: h5py.File | None = None, *, keep_journal: bool = False
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
    jpath = session_dir / L.JOURNAL_FILE
    data = session_dir / L.DATA_FILE
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
        with h5py.File(data, "a", libver=LIBVER, locking=False) as f:
            result = _apply(session_dir, f, rep, keep_journal)
        fsync_path(data)
        return result
    return _apply(session_dir, h5, rep, keep_journal)


def _apply(session_dir: Path, h5: h5py.File, rep: Replay, keep_journal: bool) -> dict[str, int]:
    jpath = session_dir / L.JOURNAL_FILE
    data = session_dir / L.DATA_FILE
    datasets = list(appendable_datasets(h5))
    for ds in datasets:  # check everything before changing anything
        tail = rep.tails.get(ds.name)
        if tail is not None and tail.main > ds.shape[0]:
            raise JournalError(
                f"{jpath}: {ds.name} has {ds.shape[0]} rows, the journal says {tail.main}"
            )
    rows = 0
    count = 0
    for ds in datasets:
        tail = rep.tails.get(ds.name)
        main = tail.main if tail is not None else 0
        ds.resize(main, axis=0)
        if tail is not None and tail.rows:
            ds.resize(main + tail.rows, axis=0)
            ds[main:] = rep.tail(ds.name)
            rows += tail.rows
        count += 1
    stats = session_dir / L.STATISTICS_FILE
    if stats.exists():
        h5[L.METADATA].attrs[L.ATTR_STATISTICS] = stats.read_text(encoding="utf-8").strip()
    h5.flush()
    fsync_path(data)
    if not keep_journal:
        jpath.unlink()
    log.warning(
        "recovered %s after a crash: %d datasets, %d rows from the journal%s",
        session_dir,
        count,
        rows,
        f", {rep.ignored_bytes} bytes of a torn record ignored" if rep.ignored_bytes else "",
    )
    return {"datasets": count, "rows": rows, "ignored_bytes": rep.ignored_bytes}
