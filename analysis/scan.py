"""Chunked scans of recorded data: spike populations and weight snapshots.

The out-of-core half of :class:`analysis.analyzer.SimulationAnalyzer`. A population is
read in slices of ``chunk_rows`` rows (:meth:`SessionReader.iter_spike_chunks`) whose
results are accumulated: spike counts with ``np.bincount``, per-neuron ISI moments
merged chunk by chunk (:mod:`analysis.isi`), histograms summed, rasters collected
(:mod:`analysis.raster`). Memory is bounded by the slice size and the number of
recorded neurons, never by the number of spikes. Weight matrices are read in row blocks
(:mod:`analysis.weights`); their functions are also importable from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from analysis import statistics as S
from analysis.isi import ISI_EDGES_MS, IsiAccumulator
from analysis.raster import DENSITY_THRESHOLD, DENSITY_TIME_BINS, RasterAccumulator, RasterData
from analysis.reader import (
    DEFAULT_CHUNK_ROWS,
    Run,
    SessionReader,
)
from analysis.sample import SampleAccumulator, SampleCounts
from analysis.weights import weight_image, weight_norms

__all__ = [
    "DENSITY_THRESHOLD",
    "DENSITY_TIME_BINS",
    "ISI_EDGES_MS",
    "READABLE_SPIKES_PER_ROW",
    "SPARSE_NEURONS",
    "ControlSpan",
    "PopulationInfo",
    "PopulationScan",
    "RasterData",
    "auto_bin_ms",
    "population_info",
    "readable_window",
    "scan_population",
    "weight_image",
    "weight_norms",
    "window_of",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UIntArray = npt.NDArray[np.uint32]


@dataclass(frozen=True)
class PopulationInfo:
    """What the attributes and the frame index tell about a spike population (no spike read)."""

    node_id: str
    layer: str
    layer_size: int
    dt_ms: float
    subsample_rate: float
    sorting: str
    neurons: UIntArray
    """Recorded neurons (sorted layer indices); silent ones count in every rate. For a
    sparse population (``sparse``): only the neurons that spiked."""
    n_frames: int
    total_spikes: int
    first_step: int | None
    last_step: int | None
    t_start_ms: float | None
    t_stop_ms: float | None
    """Time of the last recorded step plus one ``dt_ms``: the span is half-open."""
    missing_messages: int
    """Gaps in ``frame_seq`` within each incarnation: messages absent from the file."""
    runs: tuple[Run, ...] = ()
    """Per node incarnation: its recorded span (:func:`analysis.reader.runs_of`)."""
    n_neurons: int = -1
    """How many neurons were recorded (``len(neurons)`` unless sparse)."""
    sparse: bool = False
    """More than :data:`SPARSE_NEURONS` neurons recorded: per-neuron arrays hold only the
    neurons that spiked (every other recorded neuron is silent), so memory and time follow
    the spikes, not the layer size."""

    def __post_init__(self) -> None:
        if self.n_neurons < 0:
            object.__setattr__(self, "n_neurons", int(self.neurons.size))

    @property
    def duration_ms(self) -> float:
        """Recorded time: first to last step inclusive, ``(last - first + 1) * dt``.

        Summed over the node's incarnations: a restarted node counts its steps again
        from 0, so its runs overlap in step and time but each lasted its own span, with
        its own dt (a restarted node may use another step length).
        """
        return sum(r.duration_ms for r in self.runs)


@dataclass
class PopulationScan:
    """Everything one pass over a population's spikes gives, for reports and plots."""

    info: PopulationInfo
    spike_counts: IntArray
    isi_n: IntArray
    isi_mean: FloatArray
    isi_m2: FloatArray
    hist_edges: FloatArray | None = None
    hist_counts: IntArray | None = None
    isi_hist: IntArray | None = None
    isi_edges: FloatArray | None = None
    isi_overflow: int = 0
    raster: RasterData | None = None
    hist_coverage: FloatArray | None = None
    """Per time bin: recorded time in it over the bin width, summed over incarnations."""
    hist_tail: int = 0
    """Spikes after the last whole bin (``hist_edges[-1]`` to ``t_stop_ms``): Elephant's
    binning drops them; :meth:`rate_per_neuron` shows them as a last, narrower bin."""
    sample: SampleCounts | None = None
    """Binned counts of a few sampled neurons (correlations, synchrony), if asked for."""

    def rate_per_neuron(self) -> tuple[FloatArray, FloatArray]:
        """Time-histogram edges and the rate per recorded neuron in each bin (Hz).

        Divided by the recorded time in each bin (``hist_coverage``): a partly recorded
        bin is not biased low, and where restarted runs overlap in time their spikes are
        shared out over the runs. Bins with no recorded time are nan. When the span is
        not a whole number of bins, the rest (from the last whole bin to ``t_stop_ms``)
        is a last, narrower bin, divided by its own recorded time: the rate does not
        drop at the right edge.
        """
        edges, counts, cover = self.hist_edges, self.hist_counts, self.hist_coverage
        if edges is None or counts is None or cover is None:
            raise ValueError("the scan has no time histogram; scan with bin_ms")
        t_stop = self.info.t_stop_ms
        counts = counts.astype(np.float64)
        if (
            t_stop is not None
            and edges.size > 1
            and t_stop - edges[-1] > 1e-9 * (edges[1] - edges[0])
        ):
            tail_edges = np.array([edges[-1], t_stop])
            edges = np.append(edges, t_stop)
            counts = np.append(counts, float(self.hist_tail))
            cover = np.append(cover, _coverage(tail_edges, self.info.runs))
        n = self.info.n_neurons
        widths_s = np.diff(edges) / 1000.0 if edges.size > 1 else np.ones(counts.size)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = counts / (n * widths_s * cover)
        rate[(cover <= 0) | (n == 0)] = np.nan
        result: FloatArray = rate
        return edges, result

    @property
    def total_spikes(self) -> int:
        """Spikes of the recorded neurons."""
        return int(self.spike_counts.sum())

    @property
    def rates_hz(self) -> FloatArray:
        """Rate of each recorded neuron over the recorded span."""
        d = self.info.duration_ms
        if d <= 0:
            return np.full(self.spike_counts.size, np.nan)
        return self.spike_counts / d * 1000.0

    @property
    def mean_rate_hz(self) -> float:
        """Spikes / (recorded neurons x duration): the subsampling-corrected population rate."""
        n, d = self.info.n_neurons, self.info.duration_ms
        return self.total_spikes / (n * d) * 1000.0 if n and d > 0 else math.nan

    @property
    def active_fraction(self) -> float:
        """Fraction of the recorded neurons with at least one spike."""
        n = self.info.n_neurons
        return float(np.count_nonzero(self.spike_counts)) / n if n else math.nan

    @property
    def cv_isi(self) -> FloatArray:
        """CV of each neuron's ISIs (ddof=0 as Elephant); nan below two intervals."""
        with np.errstate(divide="ignore", invalid="ignore"):
            cv = np.sqrt(self.isi_m2 / self.isi_n) / self.isi_mean
        cv[self.isi_n < 2] = np.nan
        result: FloatArray = cv
        return result

    @property
    def cv_isi_median(self) -> float:
        """Median ISI CV over the neurons that have one."""
        cv = self.cv_isi
        cv = cv[np.isfinite(cv)]
        return float(np.median(cv)) if cv.size else math.nan


@dataclass(frozen=True)
class ControlSpan:
    """A node's control state from ``t0_ms`` until the next state (or the end)."""

    t0_ms: float
    t1_ms: float
    status: str
    active_task: str | None


#: Above this many recorded neurons a population is analysed sparsely (only the neurons
#: that spiked get per-neuron arrays): a layer of 2**26 neurons with a few spikes costs
#: what its spikes cost.
SPARSE_NEURONS: Final = 1 << 20


def population_info(reader: SessionReader, node_id: str, layer: str) -> PopulationInfo:
    """Attributes and frame index of a spike population (and, if sparse, its active ids)."""
    f = reader.facts(node_id, layer)
    sparse = f.recorded > SPARSE_NEURONS
    if sparse:  # the neurons that spiked: one pass over the neuron ids only
        neurons = np.zeros(0, np.uint32)
        for chunk in reader.iter_spike_chunks(node_id, layer, with_steps=False):
            neurons = np.union1d(neurons, chunk.neuron_ids).astype(np.uint32)
    elif f.recorded == f.layer_size:  # every neuron (a full list is the same): no read
        neurons = np.arange(f.recorded, dtype=np.uint32)
    else:
        neurons = reader.recorded_neurons(node_id, layer)
    return PopulationInfo(
        node_id=node_id,
        layer=layer,
        layer_size=f.layer_size,
        dt_ms=f.dt_ms,
        subsample_rate=f.subsample_rate,
        sorting=f.sorting or "none",
        neurons=neurons,
        n_neurons=f.recorded,
        sparse=sparse,
        n_frames=f.frames,
        total_spikes=f.total_count,
        first_step=f.first_step,
        last_step=f.last_step,
        t_start_ms=f.t_first_ms,
        t_stop_ms=f.t_stop_ms,
        missing_messages=f.missing,
        runs=f.runs,
    )


def scan_population(
    reader: SessionReader,
    node_id: str,
    layer: str,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    bin_ms: float | None = None,
    raster_neurons: int | None = None,
    density_threshold: int = DENSITY_THRESHOLD,
    isi_edges_ms: npt.ArrayLike | None = None,
    raster_window: tuple[float, float] | None = None,
    sample_neurons: int | None = None,
) -> PopulationScan:
    """One chunked pass over a population: counts and ISI moments, plus what is asked.

    ``bin_ms`` adds a population time histogram over the recorded span (Elephant's
    binning, :func:`analysis.statistics.time_histogram`; a span shorter than a bin is
    one bin), ``raster_neurons`` a raster of at most that many neurons (a density image
    above ``density_threshold`` spikes) over ``raster_window`` (ms, default the whole
    span), ``isi_edges_ms`` an ISI histogram, ``sample_neurons`` the binned counts of
    that many neurons (:mod:`analysis.sample`: correlations, synchrony). Memory is
    bounded by ``chunk_rows``.
    """
    info = population_info(reader, node_id, layer)
    neurons = info.neurons.astype(np.int64)
    k = neurons.size
    counts = np.zeros(k, np.int64)
    edges = None if isi_edges_ms is None else np.asarray(isi_edges_ms, dtype=np.float64)
    isi = IsiAccumulator(k, edges)
    raster = None
    if raster_neurons is not None:
        raster = RasterAccumulator(info, raster_neurons, density_threshold, raster_window)
    sample = None if sample_neurons is None else SampleAccumulator(info, sample_neurons)
    tail = 0
    hist_edges: FloatArray | None = None
    hist: IntArray | None = None
    cover: FloatArray | None = None
    t0 = info.t_start_ms or 0.0
    t1 = info.t_stop_ms if info.t_stop_ms is not None else t0
    b = min(bin_ms or 0.0, t1 - t0)  # a span shorter than a bin becomes one bin
    if bin_ms is not None and t1 > t0:
        hist_edges, hist, _ = S.time_histogram(np.zeros(0), t0, t1, b)
        cover = _coverage(hist_edges, info.runs)
    for chunk in reader.iter_spike_chunks(node_id, layer, chunk_rows, with_steps=False):
        ids, t = chunk.neuron_ids, chunk.times_ms
        if k == 0 or ids.size == 0:
            continue
        pos, hit = S.neuron_ranks(neurons, ids)
        rank = pos[hit]
        counts += np.bincount(rank, minlength=k)
        isi.update(rank, t[hit])
        if hist is not None:
            part = S.time_histogram(t, t0, t1, b)[1]
            hist += part
            tail += int(t.size) - int(part.sum())
        if raster is not None:
            raster.update(ids, t)
        if sample is not None:
            sample.update(ids, t)
    return PopulationScan(
        info=info,
        spike_counts=counts,
        isi_n=isi.n,
        isi_mean=isi.mean,
        isi_m2=isi.m2,
        hist_edges=hist_edges,
        hist_counts=hist,
        isi_hist=isi.hist,
        isi_edges=edges,
        isi_overflow=isi.overflow,
        raster=None if raster is None else raster.result(),
        hist_coverage=cover,
        hist_tail=tail,
        sample=None if sample is None else sample.result(),
    )


def _coverage(edges: FloatArray, runs: tuple[Run, ...]) -> FloatArray:
    """Per bin, the recorded time of all runs inside it, in bin widths."""
    lo, hi = edges[:-1], edges[1:]
    cover = np.zeros(lo.size)
    for run in runs:
        cover += np.clip(np.minimum(hi, run.t_stop_ms) - np.maximum(lo, run.t_start_ms), 0.0, None)
    result: FloatArray = cover / (hi - lo)
    return result


def auto_bin_ms(duration_ms: float, dt_ms: float, target_bins: int = 100) -> float:
    """A round bin width (1, 2 or 5 x 10^k ms, at least one step) giving about ``target_bins``."""
    raw = max(duration_ms / target_bins, dt_ms, 1e-9)
    exp = math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10.0**exp >= raw:
            return m * 10.0**exp
    return 10.0 ** (exp + 1)


#: Spikes per raster row, on average, in a readable window (about 20 px apart across a
#: 10 in figure at 100 dpi).
READABLE_SPIKES_PER_ROW: Final = 40
#: The shortest default window, in steps.
MIN_WINDOW_STEPS: Final = 50


def readable_window(
    infos: Sequence[PopulationInfo], spikes_per_row: float = READABLE_SPIKES_PER_ROW
) -> tuple[float, float] | None:
    """A window from the start of the recording in which rasters stay readable.

    Its width gives the busiest population about ``spikes_per_row`` spikes per neuron
    (from its mean rate, which the frame index gives without reading a spike), rounded
    down to 1, 2 or 5 x 10^k ms and at least :data:`MIN_WINDOW_STEPS` steps. ``None``
    when the whole recording is readable (or there is nothing to show).
    """
    spans = [(i.t_start_ms, i.t_stop_ms) for i in infos if i.t_start_ms is not None]
    if not spans:
        return None
    t0 = min(float(a) for a, _ in spans)
    t1 = max(float(b) for _, b in spans if b is not None)
    rates = [
        i.total_spikes / (i.n_neurons * i.duration_ms / 1000.0)
        for i in infos
        if i.n_neurons and i.duration_ms > 0
    ]
    peak = max(rates, default=0.0)
    if peak <= 0:
        return None
    raw = spikes_per_row / peak * 1000.0
    exp = math.floor(math.log10(raw))
    width = max(m * 10.0**exp for m in (1.0, 2.0, 5.0) if m * 10.0**exp <= raw)
    width = max(width, MIN_WINDOW_STEPS * min(i.dt_ms for i in infos))
    if width >= t1 - t0:
        return None
    return t0, t0 + width


def window_of(
    infos: Sequence[PopulationInfo],
    t_start_ms: float | None,
    t_stop_ms: float | None,
    auto: bool,
) -> tuple[float, float] | None:
    """A raster window: ``[t_start_ms, t_stop_ms)`` (a missing bound is the recording's
    start or end), or with neither given :func:`readable_window` if ``auto`` else None
    (the whole recording). An empty window raises ``ValueError``."""
    if t_start_ms is None and t_stop_ms is None:
        return readable_window(infos) if auto else None
    starts = [i.t_start_ms for i in infos if i.t_start_ms is not None]
    stops = [i.t_stop_ms for i in infos if i.t_stop_ms is not None]
    lo = t_start_ms if t_start_ms is not None else min(starts, default=0.0)
    hi = t_stop_ms if t_stop_ms is not None else max(stops, default=lo + 1.0)
    if hi <= lo:
        raise ValueError(f"empty time window: t_start {lo} ms >= t_stop {hi} ms")
    return lo, hi
