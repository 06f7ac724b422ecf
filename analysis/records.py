"""What the session reader returns: flat spikes, runs, membrane traces, and its errors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from recorderd.session import layout as L
from recorderd.session.frames import Frames


class AnalysisError(Exception):
    """Base error of the analysis package."""


class NotASessionError(AnalysisError):
    """The folder holds no recorded session."""

    def __init__(self, path: Path) -> None:
        why = f"no {L.DATA_FILE} of {L.FORMAT_NAME}" if path.exists() else "no such folder"
        super().__init__(f"{path} is not a recorded session ({why})")
        self.path = path


class UnsupportedFormatError(AnalysisError):
    """The session was written in a format version this reader does not know."""

    def __init__(self, path: Path, version: int) -> None:
        super().__init__(
            f"{path} has format version {version}; this reader knows up to {L.FORMAT_VERSION}: "
            "upgrade the analysis package"
        )


@dataclass(frozen=True)
class SpikeTrains:
    """Flat spikes of one population, in recording order."""

    steps: npt.NDArray[np.int64]
    times_ms: npt.NDArray[np.float64]
    neuron_ids: npt.NDArray[np.uint32]


@dataclass(frozen=True)
class Run:
    """One node incarnation's recorded span of a stream: ``[t_start_ms, t_stop_ms)``.

    ``t_stop_ms`` is the time of the last recorded step plus that run's own step length
    (from its frames, or the stream's ``dt_ms`` for a run of one step): a restarted node
    may use another dt.
    """

    incarnation: int
    first_step: int
    last_step: int
    t_start_ms: float
    t_stop_ms: float

    @property
    def duration_ms(self) -> float:
        return self.t_stop_ms - self.t_start_ms


def runs_of(frames: Frames, dt_ms: float) -> list[Run]:
    """The recorded span of each incarnation of a stream, in time order (the one definition)."""
    extremes = []
    for inc in np.unique(frames.incarnation):
        mine = frames.incarnation == inc
        steps, times = frames.steps[mine], frames.times_ms[mine]
        extremes.append(
            (int(inc), int(steps.min()), int(steps.max()), float(times.min()), float(times.max()))
        )
    return runs_from(extremes, dt_ms)


def runs_from(extremes: Iterable[tuple[int, int, int, float, float]], dt_ms: float) -> list[Run]:
    """:func:`runs_of` from each incarnation's ``(incarnation, first step, last step,
    first time, last time)``, in incarnation order (as a stream summary holds them)."""
    runs = []
    for inc, a, b, t0, t1 in extremes:
        run_dt = (t1 - t0) / (b - a) if b > a else dt_ms
        runs.append(Run(inc, a, b, t0, t1 + run_dt))
    runs.sort(key=lambda r: r.t_start_ms)
    return runs


def missing_messages(frames: Frames) -> int:
    """Gaps in ``frame_seq`` within each incarnation: messages absent from the file."""
    missing = 0
    for inc in np.unique(frames.incarnation):
        seq = frames.seq[frames.incarnation == inc].astype(np.int64)
        missing += int(seq.max()) - int(seq.min()) + 1 - int(seq.size)
    return missing


def span_of(runs: Sequence[Run]) -> tuple[float, float]:
    """``[earliest start, latest stop)`` of some runs in ms; ``(0, 0)`` for none."""
    if not runs:
        return 0.0, 0.0
    return min(r.t_start_ms for r in runs), max(r.t_stop_ms for r in runs)


@dataclass(frozen=True)
class MembraneTraces:
    """Membrane potentials of a layer: one row per recorded message, one column per neuron."""

    steps: npt.NDArray[np.int64]
    times_ms: npt.NDArray[np.float64]
    neuron_ids: npt.NDArray[np.uint32]
    data_mv: npt.NDArray[np.float32]
