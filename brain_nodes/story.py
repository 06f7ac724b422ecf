"""Task phases and activity statistics behind a module's control state (pure, deterministic)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Phase:
    """A stretch of steps ``[start, start + length)`` with or without an active task."""

    index: int
    start: int
    length: int
    active: bool
    #: A per-phase random size (e.g. working-memory capacity), drawn from 3 to 7.
    capacity: int

    def offset(self, step: int) -> int:
        """Steps since this phase began."""
        return step - self.start


class PhaseSchedule:
    """Alternating idle and task phases of random length, drawn lazily from a seeded generator.

    The first idle phase is short so that even a run of a couple of hundred steps
    sees the node pick up a task; steps may only be queried in non-decreasing order.
    """

    FIRST_IDLE = (50, 150)
    IDLE = (100, 300)
    TASK = (200, 500)

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._phase = self._draw(0, 0, active=False)

    def _draw(self, index: int, start: int, *, active: bool) -> Phase:
        lo, hi = self.TASK if active else (self.FIRST_IDLE if index == 0 else self.IDLE)
        length = int(self._rng.integers(lo, hi + 1))
        capacity = int(self._rng.integers(3, 8))
        return Phase(index, start, length, active, capacity)

    def at(self, step: int) -> Phase:
        """The phase containing ``step``."""
        phase = self._phase
        if step < phase.start:
            raise ValueError(f"step {step} is before the current phase (start {phase.start})")
        while step >= phase.start + phase.length:
            phase = self._draw(phase.index + 1, phase.start + phase.length, active=not phase.active)
        self._phase = phase
        return phase


class ActivityTracker:
    """Exponentially weighted firing statistics: overall rate and output-layer distribution."""

    def __init__(self, layer_sizes: tuple[int, ...], dt_ms: float, window_ms: float = 200.0):
        self._dt_ms = dt_ms
        self._n_total = sum(layer_sizes)
        self._keep = math.exp(-dt_ms / window_ms)
        self._rate_hz = 0.0
        self._output_counts = np.zeros(layer_sizes[-1], dtype=np.float64)

    def update(self, spikes: list[npt.NDArray[np.uint32]]) -> None:
        """Fold in one step's spikes (one index array per layer)."""
        fired = sum(int(s.size) for s in spikes)
        inst_hz = fired / self._n_total * 1000.0 / self._dt_ms
        self._rate_hz = self._keep * self._rate_hz + (1.0 - self._keep) * inst_hz
        self._output_counts *= self._keep
        self._output_counts[spikes[-1]] += 1.0

    @property
    def mean_rate_hz(self) -> float:
        """Recent mean firing rate over all neurons (Hz)."""
        return self._rate_hz

    @property
    def output_entropy_bits(self) -> float:
        """Shannon entropy (bits) of which output neurons fired recently; 0 when silent."""
        total = float(self._output_counts.sum())
        if total <= 0.0:
            return 0.0
        p = self._output_counts[self._output_counts > 0.0] / total
        return float(-(p * np.log2(p)).sum())
