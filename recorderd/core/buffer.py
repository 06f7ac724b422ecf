"""What a stream has accepted and not yet handed to the writer, in blocks of messages.

A block is one message (the in-process API, or a stream's slow path) or a run of many
(a batch from the bus); the writer gets all blocks joined at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from recorderd.session.frames import Frames

#: Bytes counted per buffered message besides its data (its index row).
FRAME_OVERHEAD_BYTES: Final = 48


@dataclass
class StreamBuffer:
    """Frames and data of accepted messages of one stream, in arrival order."""

    frames: list[Frames] = field(default_factory=list)
    data: list[npt.NDArray[Any]] = field(default_factory=list)
    messages: int = 0
    bytes: int = 0

    def add(self, frames: Frames, data: npt.NDArray[Any]) -> int:
        """Buffer a block; return the bytes it adds."""
        self.frames.append(frames)
        self.data.append(data)
        n = int(frames.steps.size)
        size = data.nbytes + FRAME_OVERHEAD_BYTES * n
        self.messages += n
        self.bytes += size
        return size

    def take(self) -> tuple[Frames, npt.NDArray[Any]]:
        """Everything buffered, joined, and the buffer emptied."""
        blocks = self.frames
        if len(blocks) == 1:
            frames, data = blocks[0], self.data[0]
        else:
            columns = zip(*(_columns(f) for f in blocks), strict=True)
            frames = Frames(*(np.concatenate(cols) for cols in columns))
            data = np.concatenate(self.data)
        self.frames, self.data, self.messages, self.bytes = [], [], 0, 0
        return frames, data


def _columns(f: Frames) -> tuple[npt.NDArray[Any], ...]:
    stamps = f.zenoh_time if f.zenoh_time is not None else np.zeros(f.steps.size, np.uint64)
    return (f.steps, f.times_ms, f.seq, f.incarnation, f.count, stamps)


def one_frame(
    step: int, time_ms: float, seq: int, incarnation: int, count: int, zenoh_time: int = 0
) -> Frames:
    """The frame of a single message."""
    return Frames(
        np.array([step], np.int64),
        np.array([time_ms], np.float64),
        np.array([seq], np.uint64),
        np.array([incarnation], np.uint64),
        np.array([count], np.uint32),
        np.array([zenoh_time], np.uint64),
    )
