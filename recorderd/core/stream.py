"""One data stream as the recorder core holds it: tracking, selection, buffered messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from recorderd.core.buffer import StreamBuffer
from recorderd.core.sequence import SequenceTracker
from recorderd.core.stats import StreamStats
from recorderd.session.frames import Frames
from recorderd.session.streams import StreamHandle
from recorderd.wire import Kind
from recorderd.wire.batch import Batch


@dataclass(eq=False)
class DataStream:
    """One data stream's state: sequence tracking, neuron selection and buffered messages."""

    key: str
    kind: Kind
    node_id: str
    name: str
    stats: StreamStats
    shape: tuple[int, ...]
    dt_ms: float
    handle: StreamHandle
    tracker: SequenceTracker
    buffer: StreamBuffer = field(default_factory=StreamBuffer)

    def select(self, data: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The recorded part of one message's data (all of it unless subsampled)."""
        recorded = self.handle.recorded_neurons
        if recorded is None or self.kind is Kind.WEIGHTS:
            return data
        if self.kind is Kind.MEMBRANE:
            row: npt.NDArray[Any] = data[recorded]
            return row
        kept: npt.NDArray[Any] = data[self.keep(data)]
        return kept

    def keep(self, ids: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        """Which spike indices are of recorded neurons (memory follows the subset)."""
        recorded = self.handle.recorded_neurons
        if recorded is None:
            return np.ones(ids.size, dtype=bool)
        if not ids.size or not recorded.size:
            return np.zeros(ids.size, dtype=bool)
        pos = np.searchsorted(recorded, ids)
        np.minimum(pos, recorded.size - 1, out=pos)
        hit: npt.NDArray[np.bool_] = recorded[pos] == ids
        return hit

    def continues(self, h: npt.NDArray[Any], now: float) -> bool:
        """Whether a run of headers exactly continues the stream; if so, it is accepted.

        The batch fast path: one incarnation, consecutive seq numbers from the expected
        one, the stream's shape and dt. Anything else is observed message by message.
        """
        inc, seq = h["incarnation"], h["seq"]
        if (inc != inc[0]).any() or (h["dt_ms"] != self.dt_ms).any():
            return False
        if h.size > 1 and (np.diff(seq) != 1).any():
            return False
        if self.kind is Kind.WEIGHTS:
            same = (h["n0"] == self.shape[0]) & (h["n1"] == self.shape[1])
        else:
            same = h["layer_size"] == self.shape[0]
        if not same.all():
            return False
        return self.tracker.accept_run(int(inc[0]), int(seq[0]), int(h.size), now)

    def run(self, batch: Batch, lo: int, hi: int) -> tuple[Frames, npt.NDArray[Any], int]:
        """Frames and recorded data of valid messages ``lo`` to ``hi`` of a batch, and the
        spikes they held before subsampling."""
        h = batch.header[lo:hi]
        n = hi - lo
        flat = batch.data[batch.offsets[lo] : batch.offsets[hi]]
        spikes = 0
        recorded = self.handle.recorded_neurons
        if self.kind is Kind.SPIKES:
            spikes = int(flat.size)
            counts = h["n0"].astype(np.uint32)
            if recorded is not None:
                keep = self.keep(flat)
                owner = np.repeat(np.arange(n), h["n0"].astype(np.int64))
                counts = np.bincount(owner[keep], minlength=n).astype(np.uint32)
                flat = flat[keep]
            data: npt.NDArray[Any] = flat
        elif self.kind is Kind.MEMBRANE:
            rows = flat.reshape(n, self.shape[0])
            data = rows if recorded is None else rows[:, recorded]
            counts = np.full(n, data.shape[1], np.uint32)
        else:
            data = flat.reshape(n, *self.shape)
            counts = np.full(n, self.shape[0], np.uint32)
        frames = Frames(
            h["step"].astype(np.int64),
            h["time_ms"].astype(np.float64),
            h["seq"].astype(np.uint64),
            h["incarnation"].astype(np.uint64),
            counts,
            None if batch.stamps is None else batch.stamps[lo:hi],
        )
        return frames, data, spikes
