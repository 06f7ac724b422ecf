"""What the SONATA, NWB and neo exports share: errors, the recording span, safe writing."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from analysis.reader import AnalysisError, Run, SessionReader, span_of
from recorderd.session import layout as L

FloatArray = npt.NDArray[np.float64]


class MissingDependencyError(AnalysisError):
    """An optional package needed for this export is not installed."""

    def __init__(self, package: str, install: str) -> None:
        super().__init__(f"{package} is not installed ({install})")


class UnknownPopulationError(AnalysisError):
    """A requested spike population is not in the session (or a rename is invalid)."""


class MetadataError(AnalysisError):
    """Export metadata (options or a TOML file) that cannot be used."""


def recording_span(frame_time_ms: npt.ArrayLike, dt_ms: float) -> tuple[float, float]:
    """``[first message time, last message time + dt)`` in ms; ``(0, 0)`` without messages.

    One run's span from its message times alone; a stream's span over all its node
    incarnations, each with its own dt, is ``span_of(reader.runs(node, layer))``.
    """
    t = np.asarray(frame_time_ms, dtype=np.float64)
    if t.size == 0:
        return 0.0, 0.0
    return span_of([Run(0, 0, 0, float(t.min()), float(t.max()) + dt_ms)])


@contextlib.contextmanager
def replacing(out: Path) -> Iterator[Path]:
    """A side file to write, renamed to ``out`` on success and removed on failure.

    So an interrupted export never leaves a truncated file under the final name.
    """
    # Keeps the suffix: pynwb warns about NWB paths not ending in ".nwb".
    partial = out.with_name(f"{out.stem}.partial{out.suffix}")
    try:
        yield partial
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def session_start(reader: SessionReader) -> dt.datetime:
    """The session's ``start_time_utc`` as an aware datetime (UTC now if absent)."""
    text = str(reader.metadata().get(L.ATTR_START_TIME, ""))
    return dt.datetime.fromisoformat(text) if text else dt.datetime.now(dt.UTC)
