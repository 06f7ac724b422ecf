"""Whole chunks compressed on a small thread pool beside the writer, written in order.

HDF5 lets one thread into the library at a time, so compressing inside HDF5 puts gzip in
series with everything else the writer thread does. Here the writer hands each whole
chunk of a dataset with a known codec (:class:`~recorderd.session.chunks.Codec`: gzip
with shuffle, or no filter) to a pool; zlib and numpy release the GIL, so the encoding
runs on another core while the writer decodes the next batch. Encoded chunks are
written with HDF5's direct chunk write, in the order they were handed over, so a
dataset only ever grows by whole chunks and stays an ordinary gzip+shuffle dataset.
At most :data:`MAX_PENDING` chunks wait at a time (the writer waits for the oldest
beyond that), and :meth:`ChunkWriter.drain` writes all of them before a flush commits
them to the journal.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

import h5py
import numpy.typing as npt

from recorderd.session.appendable import Appendable

#: Encoding threads (this machine class has 2 cores: one for the writer, one for this).
WORKERS: Final = 2
#: Chunks handed over and not yet written, at most.
MAX_PENDING: Final = 64


class ChunkWriter:
    """Encodes chunks on a pool and writes them to their datasets in order."""

    def __init__(self, workers: int = WORKERS) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._workers = workers
        # (dataset, first row, rows in the chunk, row shape, encoded chunk)
        self._pending: deque[tuple[Appendable, int, int, tuple[int, ...], Future[bytes]]] = deque()

    def submit(self, file: h5py.File, a: Appendable, first: int, rows: npt.NDArray[Any]) -> None:
        """Hand over one whole chunk (``rows`` starting at row ``first`` of dataset ``a``,
        whose codec is known)."""
        if a.codec is None:
            raise ValueError(f"{a.path}: no codec to encode its chunks with")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="recorderd-gzip")
        n = int(rows.shape[0])
        future = self._pool.submit(a.codec.encode, rows, n)
        self._pending.append((a, first, n, tuple(rows.shape[1:]), future))
        self.write_ready(file)
        while len(self._pending) > MAX_PENDING:
            self._write_oldest(file)

    def write_ready(self, file: h5py.File) -> None:
        """Write the chunks whose encoding is done, oldest first (never out of order)."""
        while self._pending and self._pending[0][4].done():
            self._write_oldest(file)

    def drain(self, file: h5py.File) -> None:
        """Write every chunk handed over (waits for their encoding)."""
        while self._pending:
            self._write_oldest(file)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _write_oldest(self, file: h5py.File) -> None:
        a, first, n, row_shape, future = self._pending.popleft()
        data = future.result()
        dsid = h5py.h5d.open(file.id, a.path.encode())
        extent = dsid.shape
        if extent[0] < first + n:
            dsid.set_extent((first + n, *row_shape))
        dsid.write_direct_chunk((first, *(0,) * len(row_shape)), data)
        a.wrote(len(data))

    def close(self) -> None:
        """Stop the pool (pending chunks are dropped: call :meth:`drain` first)."""
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
