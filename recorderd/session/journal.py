"""The session journal: rows not yet in a whole compressed chunk, durable at every flush.

While recording, every appendable dataset of ``simulation_data.h5`` receives whole
chunks only, so no compressed chunk is ever rewritten (rewrites are what made the file
unreadable after a kill -9, see ``docs/crash-safety.md``). The rows of each dataset's
unfinished last chunk (its *tail*) live in memory and, at every flush, go to this
append-only journal beside the file (``simulation_data.h5-journal``), after the HDF5
flush. A record says, for each dataset that changed: how many rows of the HDF5
dataset are committed (``main``), where in the tail the new rows start, and the rows.

Replaying the journal gives, per dataset, the committed rows: ``main`` rows of the HDF5
dataset followed by the tail. Rows of the HDF5 dataset past ``main`` were written after
the last journal record and are ignored. A torn last record (a crash while appending)
fails its CRC and is ignored. A new journal (at open and when it grows large) is
written to a temporary file, fsynced and renamed over the old one, so there is always
exactly one complete journal.

File layout (little-endian)::

    header   b"RDJOURNAL\\0\\0\\0" (12 bytes), u32 version
    record*  b"RJRC", u32 body length, u32 CRC-32 of the body, body
    body     u32 JSON length, JSON, the entries' rows back to back (C order)
    JSON     {"n": record number, "snapshot": bool,
              "entries": [[path, main, start, rows, dtype, row_shape], ...]}

A snapshot record (the first of every journal) lists every appendable dataset with its
whole tail; later records list only changes. Imports numpy only.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from recorderd.session.safefs import fsync_path, open_fd, read_bytes, write_all, write_atomic

MAGIC: Final = b"RDJOURNAL\0\0\0"
VERSION: Final = 1
RECORD_MAGIC: Final = b"RJRC"
_HEADER: Final = struct.Struct("<12sI")
_RECORD: Final = struct.Struct("<4sII")
_U32: Final = struct.Struct("<I")


class JournalError(Exception):
    """A journal that cannot be used at all (not a journal, unknown version)."""


@dataclass
class Entry:
    """New tail rows of one dataset: rows ``start..`` of the tail after ``main`` rows."""

    path: str
    main: int
    start: int
    rows: npt.NDArray[Any]


@dataclass
class Tail:
    """What the journal says of one dataset: committed HDF5 rows and the tail after them."""

    main: int
    parts: list[npt.NDArray[Any]] = field(default_factory=list)
    rows: int = 0

    def array(self, dtype: np.dtype[Any], row_shape: tuple[int, ...]) -> npt.NDArray[Any]:
        if not self.parts:
            return np.zeros((0, *row_shape), dtype=dtype)
        if len(self.parts) > 1:  # joined once: readers ask for a tail again and again
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0]


@dataclass
class Replay:
    """The result of reading a journal."""

    tails: dict[str, Tail]
    records: int
    #: Bytes after the last valid record (a torn record from a crash), ignored.
    ignored_bytes: int
    dtypes: dict[str, tuple[np.dtype[Any], tuple[int, ...]]]

    def tail(self, path: str) -> npt.NDArray[Any]:
        dtype, row_shape = self.dtypes[path]
        return self.tails[path].array(dtype, row_shape)


def _encode(n: int, snapshot: bool, entries: list[Entry]) -> bytes:
    meta = {
        "n": n,
        "snapshot": snapshot,
        "entries": [
            [
                e.path,
                e.main,
                e.start,
                int(e.rows.shape[0]),
                e.rows.dtype.str,
                list(e.rows.shape[1:]),
            ]
            for e in entries
        ],
    }
    text = json.dumps(meta, separators=(",", ":")).encode()
    body = b"".join(
        [_U32.pack(len(text)), text, *(np.ascontiguousarray(e.rows).tobytes() for e in entries)]
    )
    return _RECORD.pack(RECORD_MAGIC, len(body), zlib.crc32(body)) + body


class Journal:
    """An open journal, appended to at every flush. Create it with :meth:`create`."""

    def __init__(self, path: Path, fd: int, records: int, size: int, fsync: bool) -> None:
        self.path = path
        self._fd: int | None = fd
        self._records = records
        self.size = size
        self._fsync = fsync

    @classmethod
    def create(cls, path: Path, snapshot: list[Entry], *, fsync: bool = True) -> Journal:
        """Atomically replace ``path`` by a journal holding ``snapshot``; open it to append."""
        data = _HEADER.pack(MAGIC, VERSION) + _encode(0, True, snapshot)
        write_atomic(path, data, fsync=fsync)
        if fsync:
            fsync_path(path.parent)
        fd = open_fd(path, os.O_WRONLY | os.O_APPEND)
        return cls(path, fd, 1, len(data), fsync)

    def append(self, entries: list[Entry]) -> None:
        """Append one record (nothing if ``entries`` is empty) and make it durable."""
        if not entries:
            return
        if self._fd is None:
            raise JournalError(f"journal {self.path} is closed")
        data = _encode(self._records, False, entries)
        write_all(self._fd, data)
        if self._fsync:
            os.fsync(self._fd)
        self._records += 1
        self.size += len(data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Close and delete the journal (after the HDF5 file holds every row)."""
        self.close()
        self.path.unlink(missing_ok=True)
        if self._fsync:
            fsync_path(self.path.parent)


def replay(path: Path) -> Replay:
    """Read a journal: each dataset's committed rows, up to the last intact record."""
    data = read_bytes(path)
    if len(data) < _HEADER.size:
        raise JournalError(f"{path}: too short for a journal header")
    magic, version = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise JournalError(f"{path}: not a recorderd journal")
    if version != VERSION:
        raise JournalError(f"{path}: journal version {version}, this recorder knows {VERSION}")
    tails: dict[str, Tail] = {}
    dtypes: dict[str, tuple[np.dtype[Any], tuple[int, ...]]] = {}
    pos, records = _HEADER.size, 0
    while pos + _RECORD.size <= len(data):
        magic, length, crc = _RECORD.unpack_from(data, pos)
        body = data[pos + _RECORD.size : pos + _RECORD.size + length]
        if magic != RECORD_MAGIC or len(body) != length or zlib.crc32(body) != crc:
            break
        try:
            update = _decode(body, records == 0)
        except (ValueError, KeyError, TypeError, IndexError):
            break
        if update is None:
            break
        snapshot, entries = update
        if snapshot:
            tails.clear()
        if not _apply(tails, dtypes, entries):
            break
        records += 1
        pos += _RECORD.size + length
    if records == 0:
        raise JournalError(f"{path}: no intact record")
    return Replay(tails, records, len(data) - pos, dtypes)


def _decode(body: bytes, first: bool) -> tuple[bool, list[Entry]] | None:
    (meta_len,) = _U32.unpack_from(body, 0)
    meta = json.loads(body[4 : 4 + meta_len])
    snapshot = bool(meta["snapshot"])
    if first != snapshot:
        return None  # a journal starts with its only snapshot
    offset = 4 + meta_len
    entries = []
    for path, main, start, rows, dtype, row_shape in meta["entries"]:
        dt = np.dtype(dtype)
        shape = (int(rows), *(int(x) for x in row_shape))
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if offset + nbytes > len(body) or min(int(main), int(start), int(rows)) < 0:
            return None
        arr = np.frombuffer(body, dtype=dt, count=nbytes // dt.itemsize, offset=offset)
        entries.append(Entry(str(path), int(main), int(start), arr.reshape(shape)))
        offset += nbytes
    return snapshot, entries


def _apply(
    tails: dict[str, Tail],
    dtypes: dict[str, tuple[np.dtype[Any], tuple[int, ...]]],
    entries: list[Entry],
) -> bool:
    """Apply one record's entries, all or none (False if they do not fit the state)."""
    seen: dict[str, tuple[int, int]] = {}
    for e in entries:
        cur = seen.get(e.path)
        if cur is None and e.path in tails:
            cur = (tails[e.path].main, tails[e.path].rows)
        if cur is not None and e.main == cur[0]:
            if e.start != cur[1]:
                return False
        elif e.start != 0 or (cur is not None and e.main < cur[0]):
            return False
        seen[e.path] = (e.main, e.start + int(e.rows.shape[0]))
    for e in entries:
        tail = tails.get(e.path)
        if tail is None or tail.main != e.main:
            tail = tails[e.path] = Tail(e.main)
        tail.parts.append(e.rows)
        tail.rows += int(e.rows.shape[0])
        dtypes[e.path] = (e.rows.dtype, tuple(e.rows.shape[1:]))
    return True
