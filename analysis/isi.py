"""Inter-spike intervals of a population, accumulated chunk by chunk during a scan.

Per recorded neuron: the ISI count, mean and M2 (sum of squared deviations), merged
slice by slice with the parallel-variance formula, and optionally an ISI histogram.
ISIs are taken in recording order; a time going back is a node restart, not an interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Default ISI histogram: 1 ms bins up to 200 ms (longer intervals are counted apart).
ISI_EDGES_MS: Final = np.arange(0.0, 201.0, 1.0)


@dataclass
class IsiAccumulator:
    """Per-neuron ISI count, mean and M2, merged chunk by chunk (Chan et al.)."""

    k: int
    edges: FloatArray | None
    last: FloatArray = field(init=False)
    n: IntArray = field(init=False)
    mean: FloatArray = field(init=False)
    m2: FloatArray = field(init=False)
    hist: IntArray | None = field(init=False)
    overflow: int = 0

    def __post_init__(self) -> None:
        self.last = np.full(self.k, np.nan)
        self.n = np.zeros(self.k, np.int64)
        self.mean = np.zeros(self.k)
        self.m2 = np.zeros(self.k)
        self.hist = None if self.edges is None else np.zeros(self.edges.size - 1, np.int64)

    def update(self, rank: IntArray, times: FloatArray) -> None:
        """Add a chunk's spikes (rank = position in the recorded neurons)."""
        if rank.size == 0:
            return
        order = np.argsort(rank, kind="stable")  # keeps recording order within a neuron
        r, t = rank[order], times[order]
        first = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
        last = np.r_[first[1:] - 1, r.size - 1]
        same = r[1:] == r[:-1]
        prev = self.last[r[first]]
        seen = ~np.isnan(prev)
        d = np.concatenate([np.diff(t)[same], t[first][seen] - prev[seen]])
        owner = np.concatenate([r[1:][same], r[first][seen]])
        self.last[r[last]] = t[last]
        ok = d >= 0  # a time going back is a node restart, not an interval
        d, owner = d[ok], owner[ok]
        nb = np.bincount(owner, minlength=self.k)
        with np.errstate(divide="ignore", invalid="ignore"):
            mb = np.bincount(owner, weights=d, minlength=self.k) / nb
        mb[nb == 0] = 0.0
        m2b = np.bincount(owner, weights=(d - mb[owner]) ** 2, minlength=self.k)
        total = self.n + nb
        delta = mb - self.mean
        with np.errstate(divide="ignore", invalid="ignore"):
            self.mean = np.where(total > 0, self.mean + delta * nb / total, 0.0)
            self.m2 = self.m2 + m2b + np.where(total > 0, delta**2 * self.n * nb / total, 0.0)
        self.n = total
        if self.edges is not None and self.hist is not None:
            self.hist += np.histogram(d, self.edges)[0]
            self.overflow += int(np.count_nonzero(d >= self.edges[-1]))
