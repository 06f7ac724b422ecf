"""Rasters of a spike population: points, or a 2-D density image once there are too many.

:class:`RasterAccumulator` collects the displayed neurons' spikes chunk by chunk during
a population scan (:func:`analysis.scan.scan_population`); past ``density_threshold``
spikes it switches to a histogram of at most ``DENSITY_TIME_BINS`` x 1000 bins, so
memory and drawing time stop growing with the spikes.
"""

from __future__ import annotations

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

#: Above this many spikes in view a raster is drawn as a 2-D density image.
DENSITY_THRESHOLD: Final = 200_000
#: Time bins of a density raster (at most; fewer for short recordings).
DENSITY_TIME_BINS: Final = 1000


@dataclass
class RasterData:
    """What a raster shows: points, or a density image once there are too many."""

    neurons: UIntArray
    """Displayed neurons; row ``i`` of the raster is ``neurons[i]``."""
    t_start_ms: float
    t_stop_ms: float
    """The window shown: the recorded span, or the ``window`` asked for."""
    times_ms: FloatArray | None = None
    rows: IntArray | None = None
    density: IntArray | None = None
    """Spike counts, shape ``(row bins, time bins)``, when drawn as an image."""
    t_edges: FloatArray | None = None
    row_edges: FloatArray | None = None
    n_spikes: int = 0
    windowed: bool = False
    """True when the raster shows a window of the recorded span, not all of it."""
    span_ms: tuple[float, float] = (0.0, 0.0)
    """The whole recorded span ``[t_start, t_stop)``."""

    @property
    def is_density(self) -> bool:
        """True when the raster is a density image rather than points."""
        return self.density is not None


class RasterAccumulator:
    """Collects displayed spikes as points, switching to a density image past a threshold."""

    def __init__(
        self,
        info: PopulationInfo,
        max_neurons: int,
        threshold: int,
        window: tuple[float, float] | None = None,
    ) -> None:
        rec = info.neurons
        if rec.size > max_neurons:  # evenly spread over the layer, not just its start
            idx = np.unique(np.linspace(0, rec.size - 1, max(1, max_neurons)).round())
            rec = rec[idx.astype(np.int64)]
        s0 = info.t_start_ms or 0.0
        s1 = info.t_stop_ms if info.t_stop_ms is not None else s0 + 1.0
        t0, t1 = (s0, s1) if window is None else (float(window[0]), float(window[1]))
        if t1 <= t0:
            raise ValueError(f"empty raster window [{t0}, {t1}) ms")
        self._window = window is not None
        self.data = RasterData(
            neurons=rec,
            t_start_ms=t0,
            t_stop_ms=t1,
            windowed=window is not None and (t0 > s0 or t1 < s1),
            span_ms=(s0, s1),
        )
        self.threshold = threshold
        n_steps = round((t1 - t0) / info.dt_ms) if info.dt_ms > 0 else 1
        self._t_edges = np.linspace(t0, t1, max(1, min(DENSITY_TIME_BINS, n_steps)) + 1)
        self._row_edges = np.linspace(-0.5, rec.size - 0.5, min(rec.size, 1000) + 1)
        self._times: list[FloatArray] = []
        self._rows: list[IntArray] = []

    def update(self, ids: UIntArray, times: FloatArray) -> None:
        """Add a chunk's spikes; only displayed neurons are kept."""
        rec = self.data.neurons
        if rec.size == 0 or ids.size == 0:
            return
        rank, hit = S.neuron_ranks(rec, ids)
        if self._window:
            hit &= (times >= self.data.t_start_ms) & (times < self.data.t_stop_ms)
        rows, t = rank[hit], times[hit]
        self.data.n_spikes += int(rows.size)
        if self.data.density is None and self.data.n_spikes <= self.threshold:
            self._times.append(t)
            self._rows.append(rows)
            return
        if self.data.density is None:  # past the threshold: points so far go into the image
            self.data.t_edges, self.data.row_edges = self._t_edges, self._row_edges
            self.data.density = np.zeros(
                (self._row_edges.size - 1, self._t_edges.size - 1), np.int64
            )
            rows = np.concatenate([*self._rows, rows])
            t = np.concatenate([*self._times, t])
            self._times, self._rows = [], []
        h, _, _ = np.histogram2d(rows, t, bins=[self._row_edges, self._t_edges])
        self.data.density += h.astype(np.int64)

    def result(self) -> RasterData:
        """The raster: points if at most ``threshold`` spikes were seen, else the image."""
        if self.data.density is None:
            self.data.times_ms = np.concatenate(self._times) if self._times else np.zeros(0)
            self.data.rows = np.concatenate(self._rows) if self._rows else np.zeros(0, np.int64)
        return self.data
