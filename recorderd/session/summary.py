"""The stream summary: one row of facts per stream, written by the writer at a clean close.

As MCAP ends a file with a summary section (statistics, an index of channels), the writer
ends a cleanly closed session file with ``/metadata/summary`` (``docs/recording-format.md``,
"Stream summary"): per stream its attributes, row counts, storage bytes and, per node
incarnation, the extremes of its frame index. A reader then summarizes a session of
thousands of streams without opening each one. The writer counts while it appends
(:class:`Tally`); a stream it cannot account for whole (continued from a run that left no
summary, or of more than :data:`MAX_RUNS` incarnations) is left out, and readers read that
stream itself.

The summary holds for the file as its last clean close left it: it carries that close's
``stop_time_utc`` and ``recorder_runs``, and :func:`read_summary` ignores it when the file
says otherwise (a later run, crashed or still recording, or a recorder that writes no
summary).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from typing import Any, Final

import h5py
import numpy as np

from recorderd.session import layout as L
from recorderd.session.frames import Frames
from recorderd.session.views import plain

#: Incarnations counted per stream at most; a stream with more is left out of the summary.
MAX_RUNS: Final = L.MAX_NODE_INCARNATIONS

_STREAM_FIELDS: Final = [
    ("kind", "u1"),  # index in L.SUMMARY_KINDS
    ("layer_size", "<i8"),
    ("cols", "<i8"),  # weights: matrix columns; -1 for a 1-D layer_size
    ("dt_ms", "<f8"),  # NaN: the stream has no dt_ms attribute
    ("subsample_rate", "<f8"),
    ("sorting", "i1"),  # the SONATA enum value; -1 for membrane and weights
    ("recorded", "<i8"),
    ("frames", "<i8"),
    ("spike_rows", "<i8"),
    ("total_count", "<i8"),
    ("storage_bytes", "<i8"),
    ("runs", "<i8"),  # rows of the runs table that are this stream's, in order
]
RUN_DTYPE: Final = np.dtype(
    [
        ("incarnation", "<u8"),
        ("first_step", "<i8"),
        ("last_step", "<i8"),
        ("t_first_ms", "<f8"),
        ("t_last_ms", "<f8"),
        ("seq_first", "<u8"),
        ("seq_last", "<u8"),
        ("frames", "<i8"),
    ]
)


@dataclass(frozen=True)
class RunSummary:
    """One node incarnation's frames of a stream: extremes of steps, times and seqs."""

    incarnation: int
    first_step: int
    last_step: int
    t_first_ms: float
    t_last_ms: float
    seq_first: int
    seq_last: int
    frames: int


@dataclass(frozen=True)
class StreamSummary:
    """One stream's row of the summary."""

    kind: str  # spikes, membrane or weights
    population: str
    shape: tuple[int, ...]
    dt_ms: float | None
    subsample_rate: float
    sorting: str | None  # spike streams only
    recorded: int
    frames: int
    spike_rows: int
    total_count: int
    storage_bytes: int
    runs: tuple[RunSummary, ...]  # by incarnation


class Tally:
    """What the writer counts of a stream's frames as it appends them."""

    def __init__(self, runs: Iterable[RunSummary] = (), total_count: int = 0) -> None:
        #: incarnation -> [first step, last step, t first, t last, seq first, seq last, n]
        self.runs: dict[int, list[Any]] | None = {r.incarnation: list(astuple(r)[1:]) for r in runs}
        self.total_count = total_count

    @property
    def frames(self) -> int:
        return sum(r[6] for r in self.runs.values()) if self.runs is not None else -1

    def add(self, frames: Frames) -> None:
        """Count appended frames (a few numpy reductions per batch)."""
        n = int(frames.steps.size)
        if n == 0 or self.runs is None:
            return
        self.total_count += int(frames.count.sum(dtype=np.int64))
        inc = frames.incarnation
        if n == 1:
            self._merge(int(inc[0]), frames.steps, frames.times_ms, frames.seq, 1)
            return
        first = inc[0]
        if inc[-1] == first and not bool((inc != first).any()):
            self._merge(int(first), frames.steps, frames.times_ms, frames.seq, n)
            return
        for value in np.unique(inc):
            mine = inc == value
            steps = frames.steps[mine]
            self._merge(int(value), steps, frames.times_ms[mine], frames.seq[mine], steps.size)

    def _merge(self, inc: int, steps: Any, times: Any, seq: Any, n: int) -> None:
        if self.runs is None:  # left out already (too many incarnations)
            return
        if n == 1:
            s0 = s1 = int(steps[0])
            t0 = t1 = float(times[0])
            q0 = q1 = int(seq[0])
        else:
            s0, s1 = int(steps.min()), int(steps.max())
            t0, t1 = float(times.min()), float(times.max())
            q0, q1 = int(seq.min()), int(seq.max())
        run = self.runs.get(inc)
        if run is None:
            if len(self.runs) >= MAX_RUNS:
                self.runs = None  # too many to list: the stream is left out
                return
            self.runs[inc] = [s0, s1, t0, t1, q0, q1, n]
            return
        run[0], run[1] = min(run[0], s0), max(run[1], s1)
        run[2], run[3] = min(run[2], t0), max(run[3], t1)
        run[4], run[5] = min(run[4], q0), max(run[5], q1)
        run[6] += n

    def run_summaries(self) -> tuple[RunSummary, ...]:
        assert self.runs is not None
        return tuple(RunSummary(inc, *self.runs[inc]) for inc in sorted(self.runs))


def write_summary(
    meta: h5py.Group,
    streams: list[StreamSummary],
    *,
    stop_time_utc: str,
    recorder_runs: int,
    filters: dict[str, Any],
) -> None:
    """Replace ``/metadata/summary`` (``meta`` is ``/metadata``; outside SWMR)."""
    if L.SUMMARY in meta:
        del meta[L.SUMMARY]
    group = meta.create_group(L.SUMMARY)
    names = np.array([s.population.encode() for s in streams] or [b""], dtype=np.bytes_)
    dtype = np.dtype([("population", names.dtype), *_STREAM_FIELDS])
    table = np.zeros(len(streams), dtype=dtype)
    runs = [r for s in streams for r in s.runs]
    for i, s in enumerate(streams):
        table[i] = (
            names[i],
            L.SUMMARY_KINDS.index(s.kind),
            s.shape[0] if s.shape else 0,
            s.shape[1] if len(s.shape) > 1 else -1,
            math.nan if s.dt_ms is None else s.dt_ms,
            s.subsample_rate,
            -1 if s.sorting is None else L.SORTING_ENUM[s.sorting],
            s.recorded,
            s.frames,
            s.spike_rows,
            s.total_count,
            s.storage_bytes,
            len(s.runs),
        )
    # RunSummary's fields are RUN_DTYPE's, in order.
    run_table = np.array([astuple(r) for r in runs], dtype=RUN_DTYPE)
    for name, data in ((L.SUMMARY_STREAMS, table), (L.SUMMARY_RUNS, run_table)):
        if data.size:
            group.create_dataset(name, data=data, chunks=True, **filters)
        else:
            group.create_dataset(name, shape=(0,), dtype=data.dtype)
    group.attrs[L.ATTR_STOP_TIME] = stop_time_utc
    group.attrs[L.ATTR_RECORDER_RUNS] = recorder_runs


def read_summary(h5: h5py.File) -> dict[tuple[str, str], StreamSummary] | None:
    """The summary of a file, by ``(kind, population)``; None if it has none or if the
    file changed since it was written (its stop time or recorder runs differ)."""
    meta = h5[L.METADATA]
    if L.SUMMARY not in meta:
        return None
    group = meta[L.SUMMARY]
    stop = plain(meta.attrs.get(L.ATTR_STOP_TIME, ""))
    runs_now = plain(meta.attrs.get(L.ATTR_RECORDER_RUNS))
    if (
        not stop
        or plain(group.attrs.get(L.ATTR_STOP_TIME)) != stop
        or plain(group.attrs.get(L.ATTR_RECORDER_RUNS)) != runs_now
    ):
        return None
    table = group[L.SUMMARY_STREAMS][()]
    run_table = group[L.SUMMARY_RUNS][()].tolist()
    names = {v: k for k, v in L.SORTING_ENUM.items()}
    out: dict[tuple[str, str], StreamSummary] = {}
    at = 0
    for row in table.tolist():
        (pop, kind, size, cols, dt, rate, sorting, recorded, frames, spikes, total, nbytes, k) = row
        mine = run_table[at : at + k]
        at += k
        summary = StreamSummary(
            kind=L.SUMMARY_KINDS[kind],
            population=pop.decode(),
            shape=(size,) if cols < 0 else (size, cols),
            dt_ms=None if math.isnan(dt) else dt,
            subsample_rate=rate,
            sorting=None if sorting < 0 else names.get(sorting, "none"),
            recorded=recorded,
            frames=frames,
            spike_rows=spikes,
            total_count=total,
            storage_bytes=nbytes,
            runs=tuple(RunSummary(*r) for r in mine),
        )
        out[(summary.kind, summary.population)] = summary
    return out
