"""Chunked scans of recorded data: spike populations and weight snapshots.

The out-of-core half of :class:`analysis.analyzer.SimulationAnalyzer`. A population is
read in slices of ``chunk_rows`` rows (:meth:`SessionReader.iter_spike_chunks`) whose
results are accumulated: spike counts with ``np.bincount``, per-neuron ISI moments
merged chunk by chunk, histograms summed. Memory is bounded by the slice size and the
number of recorded neurons, never by the number of spikes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from analysis import statistics as S
from analysis.reader import DEFAULT_CHUNK_ROWS, Run, SessionReader, runs_of, span_of
from recorderd.session import layout as L

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UIntArray = npt.NDArray[np.uint32]

#: Above this many spikes in view a raster is drawn as a 2-D density image.
DENSITY_THRESHOLD: Final = 200_000
#: Time bins of a density raster (at most; fewer for short recordings).
DENSITY_TIME_BINS: Final = 1000
#: Default ISI histogram: 1 ms bins up to 200 ms (longer intervals are counted apart).
ISI_EDGES_MS: Final = np.arange(0.0, 201.0, 1.0)


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
    """Recorded neurons (sorted layer indices); silent ones count in every rate."""
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

    @property
    def duration_ms(self) -> float:
        """Recorded time: first to last step inclusive, ``(last - first + 1) * dt``.

        Summed over the node's incarnations: a restarted node counts its steps again
        from 0, so its runs overlap in step and time but each lasted its own span, with
        its own dt (a restarted node may use another step length).
        """
        return sum(r.duration_ms for r in self.runs)


@dataclass
class RasterData:
    """What a raster shows: points, or a density image once there are too many."""

    neurons: UIntArray
    """Displayed neurons; row ``i`` of the raster is ``neurons[i]``."""
    t_start_ms: float
    t_stop_ms: float
    times_ms: FloatArray | None = None
    rows: IntArray | None = None
    density: IntArray | None = None
    """Spike counts, shape ``(row bins, time bins)``, when drawn as an image."""
    t_edges: FloatArray | None = None
    row_edges: FloatArray | None = None
    n_spikes: int = 0

    @property
    def is_density(self) -> bool:
        """True when the raster is a density image rather than points."""
        return self.density is not None


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

    def rate_per_neuron(self) -> tuple[FloatArray, FloatArray]:
        """Time-histogram edges and the rate per recorded neuron in each bin (Hz).

        Divided by the recorded time in each bin (``hist_coverage``): a partly recorded
        bin is not biased low, and where restarted runs overlap in time their spikes are
        shared out over the runs. Bins with no recorded time are nan.
        """
        edges, counts, cover = self.hist_edges, self.hist_counts, self.hist_coverage
        if edges is None or counts is None or cover is None:
            raise ValueError("the scan has no time histogram; scan with bin_ms")
        n = self.info.neurons.size
        bin_s = (edges[1] - edges[0]) / 1000.0 if edges.size > 1 else 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = counts / (n * bin_s * cover)
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
        n, d = self.info.neurons.size, self.info.duration_ms
        return self.total_spikes / (n * d) * 1000.0 if n and d > 0 else math.nan

    @property
    def active_fraction(self) -> float:
        """Fraction of the recorded neurons with at least one spike."""
        n = self.spike_counts.size
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


@dataclass
class _IsiAccumulator:
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


class _RasterAccumulator:
    """Collects displayed spikes as points, switching to a density image past a threshold."""

    def __init__(self, info: PopulationInfo, max_neurons: int, threshold: int) -> None:
        rec = info.neurons
        if rec.size > max_neurons:  # evenly spread over the layer, not just its start
            idx = np.unique(np.linspace(0, rec.size - 1, max(1, max_neurons)).round())
            rec = rec[idx.astype(np.int64)]
        t0 = info.t_start_ms or 0.0
        t1 = info.t_stop_ms if info.t_stop_ms is not None else t0 + 1.0
        self.data = RasterData(neurons=rec, t_start_ms=t0, t_stop_ms=t1)
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


def population_info(reader: SessionReader, node_id: str, layer: str) -> PopulationInfo:
    """Attributes and frame index of a spike population; no spike is read."""
    attrs = reader.stream_attrs(node_id, layer)
    fr = reader.frames(node_id, layer)
    dt = float(attrs.get(L.ATTR_DT_MS, 1.0))
    missing = 0
    for inc in np.unique(fr.incarnation):
        seq = fr.seq[fr.incarnation == inc].astype(np.int64)
        missing += int(seq.max()) - int(seq.min()) + 1 - int(seq.size)
    runs = runs_of(fr, dt)
    empty = fr.steps.size == 0
    return PopulationInfo(
        node_id=node_id,
        layer=layer,
        layer_size=int(np.atleast_1d(attrs.get(L.ATTR_LAYER_SIZE, 0))[0]),
        dt_ms=dt,
        subsample_rate=float(attrs.get(L.ATTR_SUBSAMPLE_RATE, 1.0)),
        sorting=reader.sorting(node_id, layer),
        neurons=reader.recorded_neurons(node_id, layer),
        n_frames=int(fr.steps.size),
        total_spikes=int(fr.count.sum(dtype=np.int64)),
        first_step=None if empty else int(fr.steps.min()),
        last_step=None if empty else int(fr.steps.max()),
        t_start_ms=None if empty else float(fr.times_ms.min()),
        t_stop_ms=None if empty else span_of(runs)[1],
        missing_messages=missing,
        runs=tuple(runs),
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
) -> PopulationScan:
    """One chunked pass over a population: counts and ISI moments, plus what is asked.

    ``bin_ms`` adds a population time histogram over the recorded span (Elephant's
    binning, :func:`analysis.statistics.time_histogram`; a span shorter than a bin is
    one bin), ``raster_neurons`` a raster of at most that many neurons (a density image
    above ``density_threshold`` spikes), ``isi_edges_ms`` an ISI histogram. Memory is
    bounded by ``chunk_rows``.
    """
    info = population_info(reader, node_id, layer)
    neurons = info.neurons.astype(np.int64)
    k = neurons.size
    counts = np.zeros(k, np.int64)
    edges = None if isi_edges_ms is None else np.asarray(isi_edges_ms, dtype=np.float64)
    isi = _IsiAccumulator(k, edges)
    raster = None
    if raster_neurons is not None:
        raster = _RasterAccumulator(info, raster_neurons, density_threshold)
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
            hist += S.time_histogram(t, t0, t1, b)[1]
        if raster is not None:
            raster.update(ids, t)
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
    )


def _coverage(edges: FloatArray, runs: tuple[Run, ...]) -> FloatArray:
    """Per bin, the recorded time of all runs inside it, in bin widths."""
    lo, hi = edges[:-1], edges[1:]
    cover = np.zeros(lo.size)
    for run in runs:
        cover += np.clip(np.minimum(hi, run.t_stop_ms) - np.maximum(lo, run.t_start_ms), 0.0, None)
    result: FloatArray = cover / (hi - lo)
    return result


def weight_norms(reader: SessionReader, node_id: str, name: str) -> tuple[IntArray, FloatArray]:
    """Frobenius norm of every weight snapshot, read one row block at a time."""
    steps = reader.frames(node_id, name, L.WEIGHTS).steps
    norms = np.zeros(steps.size)
    for i in range(steps.size):
        sq = sum(
            float(np.square(block, dtype=np.float64).sum())
            for _, block in reader.iter_weight_blocks(node_id, name, i)
        )
        norms[i] = math.sqrt(sq)
    return steps, norms


def weight_image(
    reader: SessionReader, node_id: str, name: str, index: int = -1, max_pixels: int = 512
) -> tuple[FloatArray, int]:
    """A snapshot averaged over blocks to at most ``max_pixels`` per side, and its step.

    Read in row blocks of whole pixel rows, so a huge matrix never sits in memory.
    """
    steps = reader.frames(node_id, name, L.WEIGHTS).steps
    if steps.size == 0:
        raise ValueError(f"no snapshots of weights {node_id}.{name}")
    index %= steps.size
    rows, cols = (int(x) for x in reader.stream_attrs(node_id, name, L.WEIGHTS)["layer_size"])
    row_f = max(1, math.ceil(rows / max_pixels))
    col_f = max(1, math.ceil(cols / max_pixels))
    block_rows = row_f * max(1, (1 << 22) // max(1, cols * row_f))
    pieces = []
    for _, block in reader.iter_weight_blocks(node_id, name, index, block_rows):
        pieces.append(_block_mean(_block_mean(block.astype(np.float64), row_f, 0), col_f, 1))
    return np.concatenate(pieces, axis=0), int(steps[index])


def _block_mean(a: FloatArray, factor: int, axis: int) -> FloatArray:
    """Mean over consecutive groups of ``factor`` along ``axis`` (the last group may be short)."""
    if factor == 1:
        return a
    starts = np.arange(0, a.shape[axis], factor)
    sizes = np.diff(np.r_[starts, a.shape[axis]])
    shape = [1, 1]
    shape[axis] = sizes.size
    result: FloatArray = np.add.reduceat(a, starts, axis=axis) / sizes.reshape(shape)
    return result


def auto_bin_ms(duration_ms: float, dt_ms: float, target_bins: int = 100) -> float:
    """A round bin width (1, 2 or 5 x 10^k ms, at least one step) giving about ``target_bins``."""
    raw = max(duration_ms / target_bins, dt_ms, 1e-9)
    exp = math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10.0**exp >= raw:
            return m * 10.0**exp
    return 10.0 ** (exp + 1)
