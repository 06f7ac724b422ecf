"""A dataset grown along axis 0 in whole chunks, its unfinished last chunk kept apart.

While recording, an appendable dataset of the session file only ever receives whole
chunks (no compressed chunk is rewritten, see ``docs/crash-safety.md``). The rows of its
unfinished last chunk, the *tail*, stay in memory and go to the journal at every flush
(:mod:`recorderd.session.journal`). A tail never holds a whole chunk: as soon as it does, the
chunk is written. So a stream's memory is bounded by its chunk sizes, whatever it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from recorderd.session.chunks import Codec, Strategy
from recorderd.session.journal import Entry


@dataclass(eq=False)
class Appendable:
    """One growing dataset: ``main`` rows in the file (whole chunks), then the tail in memory."""

    path: str
    chunk_rows: int
    dtype: np.dtype[Any]
    row_shape: tuple[int, ...]
    main: int  # rows in the HDF5 dataset: a multiple of chunk_rows while recording
    #: False until the dataset exists in the file (new streams are created at a flush).
    created: bool = True
    #: How to encode whole chunks ourselves (a chunk spans whole rows); None: HDF5 writes.
    codec: Codec | None = None
    #: The zlib strategy of its chunks, probed now and then (``chunks.Strategy``).
    strategy: Strategy = field(default_factory=Strategy)
    #: Bytes of its chunks in the file, counted as they are written (the stream summary);
    #: None once unknown (a dataset of an earlier run, or chunks filtered by HDF5).
    stored: int | None = 0
    parts: list[npt.NDArray[Any]] = field(default_factory=list)
    rows: int = 0  # tail rows held in memory
    journaled: int = 0  # of those, already in the journal
    moved: bool = False  # main grew since the last journal record
    row_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        # Asked at every push (the memory bound): computed once.
        self.row_bytes = self.dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64))

    @classmethod
    def load(cls, ds: h5py.Dataset) -> Appendable:
        """Take a dataset's partial last chunk into memory (the caller shrinks it)."""
        chunk_rows = int(ds.chunks[0]) if ds.chunks else 1
        n = int(ds.shape[0])
        main = n // chunk_rows * chunk_rows
        row_shape = tuple(ds.shape[1:])
        whole_rows = ds.chunks is not None and tuple(ds.chunks[1:]) == row_shape
        codec = Codec.of(ds) if whole_rows else None
        a = cls(ds.name, chunk_rows, ds.dtype, row_shape, main, codec=codec, stored=None)
        if n > main:
            a.push(np.asarray(ds[main:n]))
        return a

    @property
    def tail_bytes(self) -> int:
        return self.rows * self.row_bytes

    @property
    def full(self) -> bool:
        """Whether the tail holds at least one whole chunk (to be written)."""
        return self.rows >= self.chunk_rows

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

    def last(self, ds: h5py.Dataset | None) -> Any:
        """The last committed row, or None."""
        if self.rows:
            return self.parts[-1][-1]
        return ds[self.main - 1] if self.main and ds is not None else None

    def take_whole_chunks(self) -> list[tuple[int, npt.NDArray[Any]]]:
        """Move every whole chunk out of the tail: ``(first row, rows)`` for each, in order.

        ``main`` counts them from here on: the caller writes them before the next journal
        record (which says they are in the file).
        """
        n = self.rows // self.chunk_rows * self.chunk_rows
        if n == 0:
            return []
        t = self.tail()
        chunks = [
            (self.main + lo, t[lo : lo + self.chunk_rows]) for lo in range(0, n, self.chunk_rows)
        ]
        self.main += n
        rest = t[n:].copy()
        self.parts = [rest] if rest.shape[0] else []
        self.rows -= n
        self.journaled = 0  # fewer than one chunk was journaled: all of it is in main now
        self.moved = True
        return chunks

    def write_whole_chunks(self, ds: h5py.Dataset) -> None:
        """Move every whole chunk of the tail into the dataset, through HDF5's filters."""
        self.stored = None  # HDF5's filters: their output size is not seen here
        for first, rows in self.take_whole_chunks():
            ds.resize(first + rows.shape[0], axis=0)
            ds[first : first + rows.shape[0]] = rows

    def write_all(self, file: h5py.File) -> None:
        """Write the tail too (at close): the dataset then holds every row.

        Done while the file is still in SWMR mode: the last chunk is written once, as
        a new chunk, and the journal still describes the state before it, so a crash
        here loses nothing. With a known codec the chunks are encoded here and written
        directly (the padded last one by ``Codec.encode_tail``), through HDF5's
        low-level API.
        """
        if self.rows:
            dsid = h5py.h5d.open(file.id, self.path.encode())
            n = self.main + self.rows
            dsid.set_extent((n, *self.row_shape))
            t = self.tail()
            zeros = (0,) * len(self.row_shape)
            for start in range(0, self.rows, self.chunk_rows):
                part = t[start : start + self.chunk_rows]
                at = (self.main + start, *zeros)
                if self.codec is not None:
                    if part.shape[0] < self.chunk_rows:  # mostly padding: fast and small
                        chunk = self.codec.encode_tail(part, self.chunk_rows)
                    else:
                        chunk = self.codec.encode(part, self.chunk_rows, self.strategy.rle)
                    dsid.write_direct_chunk(at, chunk)
                    self.wrote(len(chunk))
                else:
                    self.stored = None
                    fspace = dsid.get_space()
                    fspace.select_hyperslab(at, part.shape)
                    dsid.write(
                        h5py.h5s.create_simple(part.shape), fspace, np.ascontiguousarray(part)
                    )
        self.main += self.rows
        self.parts, self.rows, self.journaled, self.moved = [], 0, 0, False

    def wrote(self, nbytes: int) -> None:
        """Count one chunk of ``nbytes`` written directly (never over another chunk)."""
        if self.stored is not None:
            self.stored += nbytes

    def entry(self) -> Entry | None:
        """The journal entry for what changed since the last one, if anything did."""
        if not self.created or (not self.moved and self.journaled == self.rows):
            return None
        e = Entry(self.path, self.main, self.journaled, self.tail()[self.journaled :])
        self.journaled, self.moved = self.rows, False
        return e

    def snapshot(self) -> Entry:
        self.journaled, self.moved = self.rows, False
        return Entry(self.path, self.main, 0, self.tail())
