"""Every appendable dataset of a session, its tail in memory, and the journal of the tails.

:class:`Tails` keeps the writer's bookkeeping of what is not yet in whole chunks: which
datasets changed since the last journal record, how many bytes the tails hold, and the
journal itself (:mod:`recorderd.session.journal`), compacted once it grows beyond
max(:data:`JOURNAL_COMPACT_BYTES`, twice the tails).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import h5py
import numpy.typing as npt

from recorderd.session.appendable import Appendable
from recorderd.session.chunkwriter import ChunkWriter
from recorderd.session.journal import Journal
from recorderd.session.schema import appendable_paths, stream_groups

#: Rewrite the journal (one snapshot of all tails) once it is larger than this and more
#: than twice the tails it holds: it stays small beside the file.
JOURNAL_COMPACT_BYTES: Final = 4 << 20
#: Datasets written between two checks for an aborted close.
CHECK_EVERY: Final = 64


class Tails:
    """The appendable datasets of one open session file."""

    def __init__(self) -> None:
        self._arrays: dict[str, Appendable] = {}
        self._dirty: set[Appendable] = set()  # pushed to or grown since the last record
        self._bytes = 0
        self._waiting = 0  # of those, in datasets not created yet
        self._journal: Journal | None = None
        self._chunks = ChunkWriter()

    @property
    def bytes(self) -> int:
        """Bytes held back from unfinished chunks: what closing still has to write."""
        return self._bytes

    @property
    def waiting_bytes(self) -> int:
        """Bytes held by streams waiting for creation (they cannot write a chunk yet)."""
        return self._waiting

    def get(self, path: str) -> Appendable | None:
        return self._arrays.get(path)

    def load(self, root: h5py.File) -> None:
        """Take every dataset's partial last chunk into memory, one dataset at a time."""
        for group in stream_groups(root):
            for path in appendable_paths(group):
                a = self._arrays[path] = Appendable.load(root[path])
                self._bytes += a.tail_bytes

    def start_journal(self, path: Path) -> None:
        """A new journal holding every tail (replaces any older one atomically)."""
        self._journal = Journal.create(path, [a.snapshot() for a in self._arrays.values()])

    def shrink(self, root: h5py.File) -> None:
        """Cut each dataset to its whole chunks (after the journal holds the rest)."""
        for a in self._arrays.values():
            if a.rows:
                root[a.path].resize(a.main, axis=0)

    def add(self, arrays: Iterable[Appendable]) -> None:
        """Datasets of a new stream (created in the file later)."""
        for a in arrays:
            self._arrays[a.path] = a

    def push(self, a: Appendable, rows: npt.NDArray[Any], file: h5py.File) -> None:
        """Append rows; whole chunks go to the file at once (a tail stays under a chunk)."""
        before = a.tail_bytes
        a.push(rows)
        self._bytes += a.tail_bytes - before
        if not a.created:
            self._waiting += a.tail_bytes - before
        self._dirty.add(a)
        if a.full and a.created:
            self.write_chunks(a, file)

    def write_chunks(self, a: Appendable, file: h5py.File) -> None:
        """Move a dataset's whole chunks out of its tail: encoded beside the writer if its
        codec is known (:mod:`recorderd.session.chunkwriter`), else through HDF5 now."""
        before = a.tail_bytes
        if a.codec is None:
            a.write_whole_chunks(file[a.path])
        else:
            for first, rows in a.take_whole_chunks():
                self._chunks.submit(file, a, first, rows)
        self._bytes += a.tail_bytes - before

    def created(self, arrays: Iterable[Appendable], file: h5py.File) -> None:
        """The datasets now exist in the file: write what whole chunks they already hold."""
        for a in arrays:
            a.created = True
            self._waiting -= a.tail_bytes
            if a.full:
                self.write_chunks(a, file)

    def write_full(self, file: h5py.File) -> None:
        """Write the whole chunks of every changed dataset, all of them in the file after."""
        for a in self._dirty:
            if a.full and a.created:  # a stream still waiting for creation keeps its rows
                self.write_chunks(a, file)
        self._chunks.drain(file)

    def drain(self, file: h5py.File) -> None:
        """Write every chunk still being encoded (before a window or a close)."""
        self._chunks.drain(file)

    def write_ready(self, file: h5py.File) -> None:
        """Write the chunks already encoded beside the writer (keeps few waiting)."""
        self._chunks.write_ready(file)

    def commit(self) -> None:
        """One journal record of what changed (or a compacted journal), made durable."""
        if self._journal is None:
            raise ValueError("no journal started")
        if self._journal.size > max(JOURNAL_COMPACT_BYTES, 2 * self._bytes):
            self._journal.close()
            snapshot = [a.snapshot() for a in self._arrays.values() if a.created]
            self._journal = Journal.create(self._journal.path, snapshot)
        else:
            self._journal.append([e for a in self._dirty if (e := a.entry()) is not None])
        self._dirty = {a for a in self._dirty if not a.created}

    def write_all(self, file: h5py.File, checkpoint: Callable[[], None]) -> None:
        """Write every tail into its dataset (at close), checking for an abort regularly."""
        self._chunks.drain(file)
        tails = sorted((a for a in self._arrays.values() if a.rows), key=lambda a: a.path)
        for i, a in enumerate(tails):
            if i % CHECK_EVERY == 0:
                checkpoint()
            a.write_all(file)
        self._bytes = 0

    def close_journal(self, *, remove: bool) -> None:
        """Close the journal (and the encoding pool); ``remove`` it once every row is in
        the file."""
        self._chunks.close()
        if self._journal is not None:
            if remove:
                self._journal.remove()
            else:
                self._journal.close()
