"""The per-message index of a stream (``frame_*`` datasets), as the writer and readers see it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Frames:
    """Per-message index rows of a stream: one entry per recorded message."""

    steps: npt.NDArray[np.int64]
    times_ms: npt.NDArray[np.float64]
    seq: npt.NDArray[np.uint64]
    incarnation: npt.NDArray[np.uint64]
    count: npt.NDArray[np.uint32]
    #: Zenoh timestamps, ns since 1970 (0: none); None where a reader did not read them.
    zenoh_time: npt.NDArray[np.uint64] | None = None
