"""Row-level reading of a stream's datasets for :class:`analysis.reader.SessionReader`.

Which rows of a spike population are complete (a live writer appends datasets one after
the other), the per-spike steps (the frames' steps repeated by count, or a format 2
``steps`` dataset), and binary search on a time-sorted population.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from analysis.records import SpikeTrains
from recorderd.session import layout as L
from recorderd.session.reader import DatasetView, StreamView

FRAME_NAMES: Final = (
    L.FRAME_STEP,
    L.FRAME_TIME,
    L.FRAME_SEQ,
    L.FRAME_INCARNATION,
    L.FRAME_COUNT,
)


def frame_rows(g: StreamView) -> int:
    # Version 1 writers appended the five datasets one by one: keep the common rows.
    return min(g.dataset(name).rows for name in FRAME_NAMES)


def spike_extent(g: StreamView, counts: npt.NDArray[np.uint32] | None = None) -> tuple[int, int]:
    """Usable ``(frames, spike rows)`` of a population: frames whose rows are all written.

    ``counts``: the ``frame_count`` rows of :func:`frame_rows`, if already read.
    """
    names = (L.TIMESTAMPS, L.NODE_IDS, L.STEPS) if L.STEPS in g else (L.TIMESTAMPS, L.NODE_IDS)
    rows = min(g.dataset(name).rows for name in names)
    if counts is None:
        counts = g.dataset(L.FRAME_COUNT).read(0, frame_rows(g))
    ends = np.cumsum(counts, dtype=np.int64)
    n = int(np.searchsorted(ends, rows, side="right"))
    return n, int(ends[n - 1]) if n else 0


def read_spike_rows(g: StreamView, lo: int, hi: int) -> SpikeTrains:
    return SpikeTrains(
        Steps(g).read(lo, hi),
        g.dataset(L.TIMESTAMPS).read(lo, hi),
        g.dataset(L.NODE_IDS).read(lo, hi),
    )


class Steps:
    """Per-spike steps of a population: the frames' steps repeated by their spike counts
    (format 3), or the ``steps`` dataset of a format 2 stream."""

    def __init__(self, g: StreamView) -> None:
        self._ds = g.dataset(L.STEPS) if L.STEPS in g else None
        if self._ds is None:
            n = frame_rows(g)
            self._steps = g.dataset(L.FRAME_STEP).read(0, n)
            counts = g.dataset(L.FRAME_COUNT).read(0, n).astype(np.int64)
            self._ends = np.cumsum(counts)
            self._starts = self._ends - counts

    def read(self, lo: int, hi: int) -> npt.NDArray[np.int64]:
        """Steps of spike rows ``lo`` to ``hi``."""
        if self._ds is not None:
            out: npt.NDArray[np.int64] = self._ds.read(lo, hi)
            return out
        if hi <= lo:
            return np.zeros(0, dtype=np.int64)
        f0 = int(np.searchsorted(self._ends, lo, side="right"))
        f1 = int(np.searchsorted(self._ends, hi - 1, side="right")) + 1
        reps = np.minimum(self._ends[f0:f1], hi) - np.maximum(self._starts[f0:f1], lo)
        return np.repeat(self._steps[f0:f1].astype(np.int64), reps)


def concat(parts: list[SpikeTrains]) -> SpikeTrains:
    if not parts:
        return SpikeTrains(np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.uint32))
    return SpikeTrains(
        np.concatenate([p.steps for p in parts]),
        np.concatenate([p.times_ms for p in parts]),
        np.concatenate([p.neuron_ids for p in parts]),
    )


def bisect_left(ds: DatasetView, value: float, lo: int, hi: int) -> int:
    """First row in ``[lo, hi)`` of a sorted dataset whose value is ``>= value``.

    Halves with single-row reads until one chunk's worth of rows is left, then reads that.
    """
    while hi - lo > ds.chunk_rows:
        mid = (lo + hi) // 2
        if float(ds.row(mid)) < value:
            lo = mid + 1
        else:
            hi = mid
    return lo + int(np.searchsorted(ds.read(lo, hi), value, side="left"))
