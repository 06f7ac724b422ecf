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

Per chunk the writer thread holds the GIL for little: chunks are handed over
:data:`STAGE` at a time as one job on a plain queue (waking a worker costs more than
encoding a chunk's worth of bookkeeping; no ``Future`` either), and the dataset a chunk
goes to is opened once per flush interval (:data:`MAX_OPEN`), not per chunk.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Final

import h5py
import numpy.typing as npt

from recorderd.session.appendable import Appendable
from recorderd.session.chunks import PROBE_EVERY
from recorderd.session.threads import GZIP, name_os_thread

#: Encoding threads (this machine class has 2 cores: one for the writer, one for this).
WORKERS: Final = 2
#: Chunks handed over and not yet written, at most.
MAX_PENDING: Final = 64
#: Datasets kept open between two drains (each open dataset holds HDF5 metadata).
MAX_OPEN: Final = 256
#: Chunks handed to the pool as one job (fewer wake-ups of its threads).
STAGE: Final = 8


class _Job:
    """One chunk to encode: set ``done`` (with ``result`` or ``error``) by a worker."""

    __slots__ = ("args", "done", "error", "fn", "result")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class _Pool:
    """Worker threads taking jobs from one queue; one condition says a job is done."""

    def __init__(self, workers: int) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._finished = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"recorderd-gzip_{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Job:
        job = _Job(fn, args)
        self._jobs.put(job)
        return job

    def result(self, job: _Job) -> Any:
        """The job's result (waits for it); raises what the job raised."""
        if not job.done:
            with self._finished:
                while not job.done:
                    self._finished.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _work(self, i: int) -> None:
        name_os_thread(f"{GZIP}{i}")
        while (job := self._jobs.get()) is not None:
            try:
                job.result = job.fn(*job.args)
            except BaseException as exc:  # handed to the writer by result()
                job.error = exc
            # The inputs refer back to the job (a chunk knows its job): without this, each
            # written chunk and the rows it holds would wait for Python's cyclic garbage
            # collector instead of being freed as soon as the writer drops it.
            job.args = ()
            with self._finished:
                job.done = True
                self._finished.notify_all()

    def shutdown(self) -> None:
        """Drop the jobs not started, let the running ones end, stop the threads."""
        try:
            while True:
                self._jobs.get_nowait()
        except queue.Empty:
            pass
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join()


class _Chunk:
    """One whole chunk handed over: where it goes, how it is encoded, and by which job."""

    __slots__ = ("a", "args", "encode", "first", "index", "job", "n", "probe")

    def __init__(self, a: Appendable, first: int, rows: npt.NDArray[Any]) -> None:
        codec, strategy = a.codec, a.strategy
        if codec is None:
            raise ValueError(f"{a.path}: no codec to encode its chunks with")
        self.a = a
        self.first = first
        self.n = int(rows.shape[0])
        # Every PROBE_EVERY chunks one is deflated both ways: its result says which won.
        self.probe = strategy.until_probe <= 0
        self.encode: Callable[..., Any]
        self.args: tuple[Any, ...]
        if self.probe:
            strategy.until_probe = PROBE_EVERY
            self.encode, self.args = codec.encode_probe, (rows, self.n)
        else:
            strategy.until_probe -= 1
            self.encode, self.args = codec.encode, (rows, self.n, strategy.rle)
        self.job: _Job | None = None  # None while staged
        self.index = 0  # in the job's results


def _encode_all(chunks: list[_Chunk]) -> list[Any]:
    """One job of the pool: every staged chunk's encoding, in order."""
    return [c.encode(*c.args) for c in chunks]


class ChunkWriter:
    """Encodes chunks on a pool and writes them to their datasets in order."""

    def __init__(self, workers: int = WORKERS) -> None:
        self._pool: _Pool | None = None
        self._workers = workers
        self._pending: deque[_Chunk] = deque()  # handed over, not yet written; in order
        self._staged: list[_Chunk] = []  # of those, not yet given to the pool
        # Datasets opened since the last drain: path -> (dataset, rows in its extent).
        # Only this class grows them in between; anything else happens after a drain.
        self._open: OrderedDict[str, tuple[h5py.h5d.DatasetID, int]] = OrderedDict()
        #: Why a chunk could not be encoded or written: from then on every call raises,
        #: so that no later chunk lands after the hole (the session is left to recovery).
        self._failed: BaseException | None = None

    def _check(self) -> None:
        if self._failed is not None:
            raise RuntimeError("an earlier chunk could not be written") from self._failed

    def submit(self, file: h5py.File, a: Appendable, first: int, rows: npt.NDArray[Any]) -> None:
        """Hand over one whole chunk (``rows`` starting at row ``first`` of dataset ``a``,
        whose codec is known), compressed with the dataset's zlib strategy (probed every
        :data:`~recorderd.session.chunks.PROBE_EVERY` chunks)."""
        self._check()
        chunk = _Chunk(a, first, rows)
        self._staged.append(chunk)
        self._pending.append(chunk)
        if len(self._staged) >= STAGE:
            self._dispatch()
        self.write_ready(file)
        while len(self._pending) > MAX_PENDING:
            self._write_oldest(file)

    def _dispatch(self) -> None:
        """Hand the staged chunks to the pool as one job."""
        if not self._staged:
            return
        if self._pool is None:
            self._pool = _Pool(self._workers)
        job = self._pool.submit(_encode_all, self._staged)
        for i, chunk in enumerate(self._staged):
            chunk.job, chunk.index = job, i
        self._staged = []

    def write_ready(self, file: h5py.File) -> None:
        """Write the chunks whose encoding is done, oldest first (never out of order)."""
        self._check()
        while self._pending and (job := self._pending[0].job) is not None and job.done:
            self._write_oldest(file)

    def drain(self, file: h5py.File) -> None:
        """Write every chunk handed over (waits for their encoding); close the datasets."""
        self._check()
        while self._pending:
            self._write_oldest(file)
        self._open.clear()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _write_oldest(self, file: h5py.File) -> None:
        try:
            self._write_one(file)
        except BaseException as exc:
            self._failed = exc
            raise

    def _write_one(self, file: h5py.File) -> None:
        chunk = self._pending.popleft()
        if chunk.job is None:
            self._dispatch()
        assert self._pool is not None and chunk.job is not None
        data = self._pool.result(chunk.job)[chunk.index]
        a, first, n = chunk.a, chunk.first, chunk.n
        if chunk.probe:  # the smaller of the two ways wins until the next probe
            data, a.strategy.rle = data
        known = self._open.get(a.path)
        if known is None:
            dsid = h5py.h5d.open(file.id, a.path.encode())
            extent = int(dsid.shape[0])
            if len(self._open) >= MAX_OPEN:
                self._open.popitem(last=False)
        else:
            dsid, extent = known
            self._open.move_to_end(a.path)
        if extent < first + n:
            extent = first + n
            dsid.set_extent((extent, *a.row_shape))
        self._open[a.path] = (dsid, extent)
        dsid.write_direct_chunk((first, *(0,) * len(a.row_shape)), data)
        a.wrote(len(data))

    def close(self) -> None:
        """Stop the pool (pending chunks are dropped: call :meth:`drain` first)."""
        self._pending.clear()
        self._staged.clear()
        self._open.clear()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
