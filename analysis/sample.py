"""Binned spike counts of a few sampled neurons, collected during a population scan.

Correlations and synchrony need each neuron's binned activity, which for a whole layer
and a long session would not fit in memory. :class:`SampleAccumulator` keeps the
counts of at most ``n`` neurons, spread evenly over the recorded ones, in bins of
:data:`SAMPLE_BIN_MS` (coarser for long sessions, so that there are at most
:data:`MAX_SAMPLE_BINS`): memory is ``n x bins`` counts whatever the spikes. From them
:class:`SampleCounts` gives the correlation matrix
(:func:`analysis.statistics.count_correlation`) and the synchrony over time
(:func:`analysis.statistics.synchrony_over_time`). Binning is that of
:mod:`analysis.statistics` (whole bins, Elephant's convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from analysis import statistics as S

if TYPE_CHECKING:
    from analysis.scan import PopulationInfo

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UIntArray = npt.NDArray[np.uint32]

#: Neurons sampled for correlations and synchrony.
SAMPLE_NEURONS: Final = 40
#: Bin of the sampled counts (ms), unless the session is too long for it.
SAMPLE_BIN_MS: Final = 5.0
#: Bins at most: a longer session gets wider bins (a round 1, 2 or 5 x 10^k ms).
MAX_SAMPLE_BINS: Final = 40_000
#: Windows of the synchrony curve (about), each at least MIN_WINDOW_BINS bins.
SYNCHRONY_WINDOWS: Final = 60
MIN_WINDOW_BINS: Final = 20


def sample_bin_ms(span_ms: float, dt_ms: float) -> float:
    """:data:`SAMPLE_BIN_MS`, at least one step, widened to keep :data:`MAX_SAMPLE_BINS`."""
    raw = max(SAMPLE_BIN_MS, dt_ms, span_ms / MAX_SAMPLE_BINS)
    if raw <= SAMPLE_BIN_MS:
        return raw
    exp = math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10.0**exp >= raw * (1 - 1e-12):
            return m * 10.0**exp
    return 10.0 ** (exp + 1)


@dataclass
class SampleCounts:
    """Binned spike counts of sampled neurons over the recorded span."""

    neurons: UIntArray
    """The sampled neurons (layer indices); row ``i`` of ``counts`` is ``neurons[i]``."""
    t_start_ms: float
    bin_ms: float
    counts: IntArray
    """Shape ``(neurons, bins)``."""

    def correlation(self) -> FloatArray:
        """Pearson correlation of the sampled neurons' binned counts (nan for silent ones)."""
        if self.counts.shape[1] < 2:
            return np.full((self.neurons.size, self.neurons.size), np.nan)
        return S.count_correlation(self.counts)

    def synchrony(self, windows: int = SYNCHRONY_WINDOWS) -> tuple[FloatArray, FloatArray, float]:
        """Window edges (ms), Golomb's chi per window, and the window width (ms)."""
        nb = self.counts.shape[1]
        width = max(MIN_WINDOW_BINS, nb // max(1, windows))
        chi = S.synchrony_over_time(self.counts, width) if nb >= width else np.zeros(0)
        edges = self.t_start_ms + np.arange(chi.size + 1) * width * self.bin_ms
        return edges, chi, width * self.bin_ms


class SampleAccumulator:
    """Collects the binned counts of at most ``n`` evenly spread recorded neurons."""

    def __init__(self, info: PopulationInfo, n: int = SAMPLE_NEURONS) -> None:
        rec = info.neurons
        if rec.size > n:
            rec = rec[np.unique(np.linspace(0, rec.size - 1, max(1, n)).round()).astype(np.int64)]
        self.neurons = rec
        self.t0 = info.t_start_ms or 0.0
        t1 = info.t_stop_ms if info.t_stop_ms is not None else self.t0
        self.t1 = t1
        self.bin_ms = sample_bin_ms(t1 - self.t0, info.dt_ms)
        nb = S.n_bins(self.t0, t1, self.bin_ms) if t1 > self.t0 else 0
        self.counts = np.zeros((rec.size, nb), np.int64)

    def update(self, ids: UIntArray, times: FloatArray) -> None:
        """Add a chunk's spikes (those of sampled neurons, in whole bins)."""
        if self.neurons.size == 0 or self.counts.shape[1] == 0 or ids.size == 0:
            return
        rank, hit = S.neuron_ranks(self.neurons, ids)
        if not hit.any():
            return
        idx, keep = S.bin_index(times[hit], self.t0, self.t1, self.bin_ms)
        nb = self.counts.shape[1]
        flat = rank[hit][keep] * nb + idx
        self.counts += np.bincount(flat, minlength=self.counts.size).reshape(self.counts.shape)

    def result(self) -> SampleCounts:
        return SampleCounts(self.neurons, self.t0, self.bin_ms, self.counts)
