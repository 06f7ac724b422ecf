"""Spike-train statistics on plain numpy arrays, modeled on ``elephant.statistics``.

Pure functions: no I/O, no plotting, no neo/quantities objects. Times are floats in
milliseconds; rates come out in Hz. A recorded population is described the way
:class:`analysis.reader.SessionReader` returns it: flat ``times_ms`` and
``neuron_ids`` arrays, the sorted ``recorded_neurons`` of the layer (silent recorded
neurons count in every denominator) and a span ``[t_start, t_stop)`` in ms.

Conventions shared with Elephant 1.2 (``elephant.statistics``,
``elephant.conversion.BinnedSpikeTrain``, ``elephant.spike_train_correlation``), which
the tests use as the reference implementation:

* Binning (:func:`time_histogram`, :func:`binned_spike_counts`,
  :func:`binned_correlation`, :func:`synchrony_chi`, :func:`instantaneous_rate`) follows
  ``BinnedSpikeTrain``: ``n_bins = floor((t_stop - t_start) / bin_ms)``, so a last
  partial bin is dropped together with its spikes; bin ``k`` is
  ``[t_start + k*bin_ms, t_start + (k+1)*bin_ms)``; a spike that lies less than
  ``BINNING_TOLERANCE`` bin widths below a bin edge is moved into the bin above (so
  spike times on a simulation time grid that land on a bin edge up to rounding, such as
  ``0.1 * 2530``, are binned as the exact value would be). The same tolerance rounds
  the number of bins up when the span is a whole number of bins up to rounding.
* ISI variability (:func:`cv`, :func:`cv2`, :func:`lv`) uses Elephant's formulas; CV
  is ``scipy.stats.variation``, i.e. the population standard deviation (``ddof=0``)
  over the mean. Where Elephant raises or warns for fewer than two intervals, these
  functions return ``nan``.
* :func:`fano_factor` is ``var(counts) / mean(counts)`` with ``ddof=0``; ``nan`` when
  all counts are zero or there are none.
* :func:`binned_correlation` is the Pearson correlation of binned spike *counts*
  (Elephant's ``correlation_coefficient`` default, ``binary=False``); ``nan`` for a
  neuron whose binned counts have zero variance (for example a silent neuron).

Deliberate differences are listed in each function's Notes. Nothing here warns:
degenerate inputs give ``nan`` (documented per function) or raise ``ValueError``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "BINNING_TOLERANCE",
    "FiringRates",
    "PairCorrelations",
    "binned_correlation",
    "binned_spike_counts",
    "control_dwell_times",
    "control_transitions",
    "cv",
    "cv2",
    "fano_factor",
    "gaussian_kernel",
    "instantaneous_rate",
    "isi",
    "lv",
    "mean_firing_rate",
    "n_bins",
    "spike_trains",
    "synchrony_chi",
    "task_active_ratio",
    "time_histogram",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

BINNING_TOLERANCE = 1e-8
"""Rounding tolerance of the binning, in bin widths (Elephant's ``tolerance=1e-8``)."""

_MS_PER_S = 1000.0
_CHUNK_ELEMENTS = 1 << 20  # dense (neurons x bins) blocks: 8 MiB float64, ~10x that in FFTs


# --------------------------------------------------------------------------- helpers


def _as_times(values: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _as_ids(values: npt.ArrayLike, name: str) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _as_neurons(neurons: npt.ArrayLike) -> IntArray:
    arr = _as_ids(neurons, "neurons")
    if np.unique(arr).size != arr.size:
        raise ValueError("neurons must not contain duplicates")
    return arr


def _check_span(t_start: float, t_stop: float) -> None:
    if not (math.isfinite(t_start) and math.isfinite(t_stop)) or t_stop <= t_start:
        raise ValueError(f"need finite t_start < t_stop, got [{t_start}, {t_stop})")


def _check_positive(value: float, name: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")


def _neuron_positions(neuron_ids: IntArray, neurons: IntArray) -> tuple[IntArray, IntArray]:
    """Index into ``neurons`` of every spike whose id is listed, and which spikes those are."""
    if neurons.size == 0 or neuron_ids.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    sorter = np.argsort(neurons, kind="stable")
    pos = np.searchsorted(neurons, neuron_ids, sorter=sorter)
    pos = np.minimum(pos, neurons.size - 1)
    found = neurons[sorter[pos]] == neuron_ids
    return sorter[pos[found]].astype(np.int64), np.flatnonzero(found).astype(np.int64)


def n_bins(t_start: float, t_stop: float, bin_ms: float) -> int:
    """Number of whole bins of ``bin_ms`` in ``[t_start, t_stop)``, Elephant's rounding.

    Parameters
    ----------
    t_start, t_stop : float
        Span in ms, ``t_start < t_stop``.
    bin_ms : float
        Bin width in ms.

    Returns
    -------
    int
        ``floor((t_stop - t_start) / bin_ms)``, rounded up instead when the quotient is
        less than :data:`BINNING_TOLERANCE` below the next integer. A last partial bin
        is not counted.
    """
    _check_span(t_start, t_stop)
    _check_positive(bin_ms, "bin_ms")
    x = (t_stop - t_start) / bin_ms
    if x % 1.0 >= 1.0 - BINNING_TOLERANCE:
        return int(x + 0.5)
    return int(x)


def _bin_index(
    times_ms: FloatArray, t_start: float, t_stop: float, bin_ms: float, nbins: int
) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Bin of every spike that falls in one of the ``nbins`` bins, and which spikes those are.

    Same arithmetic as ``BinnedSpikeTrain._create_sparse_matrix``: spikes in
    ``[t_start, t_stop]``, index ``(t - t_start) * (1 / bin_ms)`` truncated, moved up one
    bin when within the tolerance of the next edge, dropped when ``>= nbins``.
    """
    keep = (times_ms >= t_start) & (times_ms <= t_stop)
    x = (times_ms[keep] - t_start) * (1.0 / bin_ms)
    near_edge = x % 1.0 >= 1.0 - BINNING_TOLERANCE
    x[near_edge] += 0.5
    idx = x.astype(np.int64)
    valid = idx < nbins
    keep[np.flatnonzero(keep)[~valid]] = False
    return idx[valid], keep


def _concat_trains(trains: Sequence[npt.ArrayLike]) -> tuple[FloatArray, IntArray]:
    arrays = [_as_times(t, "each spike train") for t in trains]
    if not arrays:
        return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
    lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
    rows = np.repeat(np.arange(len(arrays), dtype=np.int64), lengths)
    return np.concatenate(arrays), rows


def _convolve_same(x: FloatArray, kernel: FloatArray) -> FloatArray:
    """Convolve along the last axis, output centred like ``mode='same'`` (odd kernel).

    FFT based (``numpy.fft``); the tiny negative round-off values are clipped to zero
    as Elephant does after ``scipy.signal.fftconvolve``.
    """
    length = x.shape[-1]
    if length == 0:
        return np.zeros(x.shape, dtype=np.float64)
    k = kernel.size
    full = length + k - 1
    nfft = 1 << (full - 1).bit_length()
    spectrum = np.fft.rfft(x, nfft, axis=-1) * np.fft.rfft(kernel, nfft)
    out = np.fft.irfft(spectrum, nfft, axis=-1)[..., (k - 1) // 2 : (k - 1) // 2 + length]
    result: FloatArray = np.clip(out, 0.0, None)
    return result


# ----------------------------------------------------------------- trains and rates


def spike_trains(
    times_ms: npt.ArrayLike, neuron_ids: npt.ArrayLike, neurons: npt.ArrayLike
) -> list[FloatArray]:
    """Split flat spikes into one sorted spike-time array per neuron.

    Parameters
    ----------
    times_ms : array_like of float
        Spike times in ms, any order.
    neuron_ids : array_like of int
        Neuron of each spike (index within the layer), same length as ``times_ms``.
    neurons : array_like of int
        The neurons to return trains for, without duplicates (typically the layer's
        ``recorded_neurons``). Spikes of neurons not listed are ignored.

    Returns
    -------
    list of numpy.ndarray
        ``trains[i]`` holds the sorted spike times (ms, float64) of ``neurons[i]``;
        empty for a silent neuron. The arrays are views into one sorted copy of
        ``times_ms``.

    Notes
    -----
    One ``lexsort`` of all spikes by (neuron, time) and a ``searchsorted`` per neuron
    boundary; the only Python loop is over neurons.
    """
    t = _as_times(times_ms, "times_ms")
    ids = _as_ids(neuron_ids, "neuron_ids")
    nrn = _as_neurons(neurons)
    if t.shape != ids.shape:
        raise ValueError(f"times_ms {t.shape} and neuron_ids {ids.shape} differ in length")
    order = np.lexsort((t, ids))
    t_sorted = t[order]
    ids_sorted = ids[order]
    lo = np.searchsorted(ids_sorted, nrn, side="left")
    hi = np.searchsorted(ids_sorted, nrn, side="right")
    return [t_sorted[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]


@dataclass(frozen=True)
class FiringRates:
    """Mean firing rates of a recorded population over ``[t_start, t_stop)``."""

    mean_rate_hz: float
    """Population mean rate: ``n_spikes / (n_neurons * duration_s)``; nan if no neurons."""
    rates_hz: FloatArray
    """Rate of each neuron in Hz, aligned with ``neurons``."""
    spike_counts: IntArray
    """Spikes of each neuron in the span, aligned with ``neurons``."""
    active_fraction: float
    """Fraction of the neurons with at least one spike in the span; nan if no neurons."""
    n_spikes: int
    """Spikes of the listed neurons in the span."""
    n_neurons: int
    """Number of recorded neurons (the denominator, silent ones included)."""
    duration_ms: float
    """``t_stop - t_start``."""


def mean_firing_rate(
    times_ms: npt.ArrayLike,
    neuron_ids: npt.ArrayLike,
    neurons: npt.ArrayLike,
    t_start: float,
    t_stop: float,
) -> FiringRates:
    """Population and per-neuron mean firing rates in Hz.

    Parameters
    ----------
    times_ms, neuron_ids : array_like
        Flat spikes (ms, neuron index), same length.
    neurons : array_like of int
        Recorded neurons, without duplicates; silent ones count in the denominators.
        Spikes of neurons not listed are ignored.
    t_start, t_stop : float
        Span in ms; spikes in ``[t_start, t_stop)`` are counted.

    Returns
    -------
    FiringRates
        Population mean rate, per-neuron rates and counts, active fraction.

    Notes
    -----
    Per neuron this is Elephant's ``mean_firing_rate(spiketrain)`` for a
    ``neo.SpikeTrain`` with these ``t_start``/``t_stop``: ``len(train) / duration``.
    Elephant's array form counts ``[t_start, t_stop]`` inclusive; here the span is
    half-open like the recording span, which differs only for a spike at exactly
    ``t_stop``. An empty ``neurons`` gives ``nan`` mean rate and active fraction.
    """
    _check_span(t_start, t_stop)
    t = _as_times(times_ms, "times_ms")
    ids = _as_ids(neuron_ids, "neuron_ids")
    nrn = _as_neurons(neurons)
    if t.shape != ids.shape:
        raise ValueError(f"times_ms {t.shape} and neuron_ids {ids.shape} differ in length")
    in_span = (t >= t_start) & (t < t_stop)
    pos, _ = _neuron_positions(ids[in_span], nrn)
    counts = np.bincount(pos, minlength=nrn.size).astype(np.int64)
    duration_ms = t_stop - t_start
    rates = counts / duration_ms * _MS_PER_S
    n_spikes = int(counts.sum())
    n = int(nrn.size)
    if n == 0:
        mean_rate, active = math.nan, math.nan
    else:
        mean_rate = n_spikes / (n * duration_ms) * _MS_PER_S
        active = float(np.count_nonzero(counts)) / n
    return FiringRates(
        mean_rate_hz=mean_rate,
        rates_hz=rates,
        spike_counts=counts,
        active_fraction=active,
        n_spikes=n_spikes,
        n_neurons=n,
        duration_ms=duration_ms,
    )


def time_histogram(
    times_ms: npt.ArrayLike,
    t_start: float,
    t_stop: float,
    bin_ms: float,
    n_neurons: int | None = None,
) -> tuple[FloatArray, IntArray, FloatArray]:
    """Spike counts of all spikes in consecutive bins, and the matching rate.

    Parameters
    ----------
    times_ms : array_like of float
        Spike times in ms of the whole population (all neurons pooled).
    t_start, t_stop : float
        Span in ms.
    bin_ms : float
        Bin width in ms.
    n_neurons : int, optional
        Number of recorded neurons. If given, ``rate_hz`` is the mean rate per neuron,
        ``counts / (n_neurons * bin_s)`` (Elephant's ``output='rate'``); otherwise the
        population rate ``counts / bin_s``. ``0`` gives an all-nan rate.

    Returns
    -------
    edges : numpy.ndarray
        ``n_bins + 1`` bin edges in ms, ``t_start + k * bin_ms`` (as ``linspace``, like
        ``BinnedSpikeTrain.bin_edges``).
    counts : numpy.ndarray of int64
        Spikes per bin.
    rate_hz : numpy.ndarray
        Rate per bin in Hz (see ``n_neurons``).

    Notes
    -----
    Binning is Elephant's ``time_histogram`` / ``BinnedSpikeTrain`` convention (see
    the module docstring): ``n_bins = floor(duration / bin_ms)``, the last partial bin
    and its spikes are dropped (Elephant warns "Binning discarded ... spike(s)"; this
    function does not), spikes within 1e-8 bin of the next edge go into the next bin.
    Raises ``ValueError`` when the span is shorter than one bin (Elephant: TypeError).
    """
    t = _as_times(times_ms, "times_ms")
    nb = n_bins(t_start, t_stop, bin_ms)
    if nb == 0:
        raise ValueError(f"span [{t_start}, {t_stop}) is shorter than one bin of {bin_ms} ms")
    idx, _ = _bin_index(t, t_start, t_stop, bin_ms, nb)
    counts = np.bincount(idx, minlength=nb).astype(np.int64)
    edges = np.linspace(t_start, t_start + nb * bin_ms, nb + 1)
    if n_neurons is None:
        rate = counts / bin_ms * _MS_PER_S
    elif n_neurons > 0:
        rate = counts / (n_neurons * bin_ms) * _MS_PER_S
    elif n_neurons == 0:
        rate = np.full(nb, np.nan)
    else:
        raise ValueError(f"n_neurons must be >= 0, got {n_neurons}")
    return edges, counts, rate


def gaussian_kernel(sigma_ms: float, sampling_ms: float, cutoff: float = 5.0) -> FloatArray:
    """Gaussian kernel in Hz (1/s) sampled every ``sampling_ms``, odd length.

    Parameters
    ----------
    sigma_ms : float
        Standard deviation in ms.
    sampling_ms : float
        Sampling period in ms.
    cutoff : float, optional
        Half-width of the support in multiples of ``sigma_ms``. Default 5.

    Returns
    -------
    numpy.ndarray
        ``pdf(k * sampling_ms)`` in 1/s for ``k = -h..h``,
        ``h = ceil(cutoff * sigma_ms / sampling_ms)``; sums to about
        ``1000 / sampling_ms``.
    """
    _check_positive(sigma_ms, "sigma_ms")
    _check_positive(sampling_ms, "sampling_ms")
    _check_positive(cutoff, "cutoff")
    half = math.ceil(cutoff * (sigma_ms / sampling_ms))
    t = np.arange(-half, half + 1, dtype=np.float64) * sampling_ms
    pdf = np.exp(-0.5 * (t / sigma_ms) ** 2) / (sigma_ms * math.sqrt(2.0 * math.pi))
    kernel: FloatArray = pdf * _MS_PER_S
    return kernel


def instantaneous_rate(
    times_ms: npt.ArrayLike,
    t_start: float,
    t_stop: float,
    sigma_ms: float,
    sampling_ms: float = 1.0,
    n_neurons: int | None = None,
    cutoff: float = 5.0,
) -> tuple[FloatArray, FloatArray]:
    """Gaussian-kernel smoothed rate of all spikes, in Hz.

    Parameters
    ----------
    times_ms : array_like of float
        Spike times in ms of the whole population.
    t_start, t_stop : float
        Span in ms.
    sigma_ms : float
        Standard deviation of the Gaussian kernel in ms.
    sampling_ms : float, optional
        Sampling period of the estimate (and of the kernel) in ms. Default 1 ms.
    n_neurons : int, optional
        If given, the rate per neuron (population rate / ``n_neurons``, Elephant's
        ``pool_spike_trains=True``); otherwise the population rate.
    cutoff : float, optional
        Kernel support in multiples of ``sigma_ms``. Default 5 (Elephant's default).

    Returns
    -------
    times : numpy.ndarray
        ``t_start + i * sampling_ms``: the left edge of sample ``i``'s bin, like the
        ``times`` of Elephant's output. Sample ``i`` is the estimate for the bin
        ``[times[i], times[i] + sampling_ms)``; add ``sampling_ms / 2`` for bin centres.
    rate_hz : numpy.ndarray
        Rate in Hz.

    Notes
    -----
    Same algorithm as ``elephant.statistics.instantaneous_rate`` with
    ``kernels.GaussianKernel(sigma)``, ``center_kernel=True``, ``trim=False``,
    ``border_correction=False``: histogram the spikes in bins of ``sampling_ms``,
    convolve with :func:`gaussian_kernel` (``'same'`` mode), clip round-off negatives.
    Differences:

    * Binning uses the shared ``BinnedSpikeTrain`` convention (half-open bins with
      the 1e-8 edge tolerance); Elephant uses ``np.histogram`` here (last bin closed,
      no tolerance, ``n_bins = int(duration / sampling)`` without tolerance), which
      can differ for spikes within 1e-8 bin of an edge.
    * The kernel is sampled at exact multiples of ``sampling_ms``. Elephant samples
      ``2h + 1`` points evenly over ``[-cutoff*sigma, +cutoff*sigma]``, which is the
      same grid only when ``cutoff * sigma_ms / sampling_ms`` is an integer; otherwise
      its kernel is slightly compressed and its area is off by up to ``1/(2h)``.
    * ``cutoff`` is used as given (Elephant raises it to 3 with a warning).
    * Convolution with ``numpy.fft`` instead of ``scipy.signal.fftconvolve``: equal up
      to FFT round-off (about 1e-13 of the peak rate).

    No border correction: within about ``cutoff * sigma_ms`` of ``t_start`` and
    ``t_stop`` the estimate is biased low, because the kernel mass outside the span is
    lost (at the very edge about half of it).
    """
    t = _as_times(times_ms, "times_ms")
    kernel = gaussian_kernel(sigma_ms, sampling_ms, cutoff)
    nb = n_bins(t_start, t_stop, sampling_ms)
    if nb == 0:
        raise ValueError(f"span [{t_start}, {t_stop}) is shorter than one sample")
    idx, _ = _bin_index(t, t_start, t_stop, sampling_ms, nb)
    counts = np.bincount(idx, minlength=nb).astype(np.float64)
    rate = _convolve_same(counts, kernel)
    if n_neurons is not None:
        if n_neurons < 0:
            raise ValueError(f"n_neurons must be >= 0, got {n_neurons}")
        rate = rate / n_neurons if n_neurons > 0 else np.full(nb, np.nan)
    times = t_start + np.arange(nb, dtype=np.float64) * sampling_ms
    return times, rate


# ------------------------------------------------------------- interval statistics


def isi(times: npt.ArrayLike) -> FloatArray:
    """Inter-spike intervals of one sorted spike train.

    Parameters
    ----------
    times : array_like of float
        Sorted spike times of one neuron.

    Returns
    -------
    numpy.ndarray
        ``np.diff(times)``; empty for fewer than two spikes.

    Notes
    -----
    Elephant's ``isi`` returns negative intervals of an unsorted train with a warning;
    this raises ``ValueError`` instead.
    """
    t = _as_times(times, "times")
    intervals = np.diff(t)
    if np.any(intervals < 0):
        raise ValueError("spike times are not sorted (negative inter-spike interval)")
    return intervals


def _intervals(isis: npt.ArrayLike) -> FloatArray | None:
    """The intervals as float64, or None when there are fewer than two."""
    arr = _as_times(isis, "isis")
    return arr if arr.size >= 2 else None


def cv(isis: npt.ArrayLike) -> float:
    """Coefficient of variation of inter-spike intervals, ``std / mean`` with ddof=0.

    Parameters
    ----------
    isis : array_like of float
        Inter-spike intervals of one neuron (see :func:`isi`).

    Returns
    -------
    float
        ``np.std(isis) / np.mean(isis)`` as ``elephant.statistics.cv``
        (``scipy.stats.variation``, population std); ``nan`` for fewer than two
        intervals (scipy gives ``nan`` with a warning for none and ``0.0`` for one).
    """
    arr = _intervals(isis)
    if arr is None:
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.std(arr) / np.mean(arr))


def cv2(isis: npt.ArrayLike) -> float:
    """Local coefficient of variation CV2 (Holt et al. 1996).

    Parameters
    ----------
    isis : array_like of float
        Consecutive inter-spike intervals of one neuron.

    Returns
    -------
    float
        ``2 * mean(|I[i+1] - I[i]| / (I[i+1] + I[i]))`` over the ``n - 1`` pairs, as
        ``elephant.statistics.cv2``; ``nan`` for fewer than two intervals (Elephant
        raises ``ValueError``, or warns and returns ``nan`` with ``with_nan=True``).
    """
    arr = _intervals(isis)
    if arr is None:
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        cv_i = np.diff(arr) / (arr[:-1] + arr[1:])
        return float(2.0 * np.mean(np.abs(cv_i)))


def lv(isis: npt.ArrayLike) -> float:
    """Local variation LV (Shinomoto et al. 2003).

    Parameters
    ----------
    isis : array_like of float
        Consecutive inter-spike intervals of one neuron.

    Returns
    -------
    float
        ``3 * mean(((I[i+1] - I[i]) / (I[i+1] + I[i]))**2)`` over the ``n - 1`` pairs,
        as ``elephant.statistics.lv``; ``nan`` for fewer than two intervals (Elephant
        raises ``ValueError``, or warns and returns ``nan`` with ``with_nan=True``).
    """
    arr = _intervals(isis)
    if arr is None:
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        cv_i = np.diff(arr) / (arr[:-1] + arr[1:])
        return float(3.0 * np.mean(np.power(cv_i, 2)))


def fano_factor(trains_or_counts: Sequence[npt.ArrayLike] | npt.ArrayLike) -> float:
    """Fano factor of spike counts, ``var / mean`` with ddof=0.

    Parameters
    ----------
    trains_or_counts : sequence of arrays, or array_like of numbers
        Either spike trains (one array of spike times per train; its count is its
        length, every spike counted, as Elephant does) or the counts themselves
        (a one-dimensional array or a sequence of numbers).

    Returns
    -------
    float
        ``counts.var() / counts.mean()`` as ``elephant.statistics.fanofactor``;
        ``nan`` for no trains or when every count is zero (as Elephant).

    Notes
    -----
    Elephant warns when ``neo.SpikeTrain`` durations differ; plain arrays carry no
    duration, so make sure the trains cover equally long windows.
    """
    if isinstance(trains_or_counts, np.ndarray) and trains_or_counts.dtype != object:
        if trains_or_counts.ndim != 1:
            raise ValueError("counts must be one-dimensional")
        counts = trains_or_counts
    else:
        items = list(trains_or_counts)  # type: ignore[arg-type]
        dims = {np.ndim(item) for item in items}
        if dims <= {0}:
            counts = np.asarray(items)
        elif dims == {1}:
            sizes = (np.size(item) for item in items)
            counts = np.fromiter(sizes, dtype=np.int64, count=len(items))
        else:
            raise ValueError("give either spike trains (1-D arrays) or counts (numbers)")
    if counts.size == 0 or np.all(counts == 0):
        return math.nan
    return float(counts.var() / counts.mean())


# ---------------------------------------------------------- binned population measures


def binned_spike_counts(
    trains: Sequence[npt.ArrayLike], t_start: float, t_stop: float, bin_ms: float
) -> IntArray:
    """Dense matrix of spike counts, one row per train, one column per bin.

    Parameters
    ----------
    trains : sequence of array_like
        Spike times in ms, one array per neuron (see :func:`spike_trains`).
    t_start, t_stop : float
        Span in ms.
    bin_ms : float
        Bin width in ms.

    Returns
    -------
    numpy.ndarray of int64, shape (len(trains), n_bins)
        ``BinnedSpikeTrain(...).to_array()`` of the same trains (same binning
        convention, see the module docstring).
    """
    nb = n_bins(t_start, t_stop, bin_ms)
    t, rows = _concat_trains(trains)
    idx, keep = _bin_index(t, t_start, t_stop, bin_ms, nb)
    flat = np.bincount(rows[keep] * nb + idx, minlength=len(trains) * nb)
    return flat.astype(np.int64).reshape(len(trains), nb)


@dataclass(frozen=True)
class PairCorrelations:
    """Pearson correlations of binned spike counts for pairs of neurons."""

    pairs: IntArray
    """Shape (n_pairs, 2): train indices ``(i, j)``, ``i < j``, sorted."""
    coefficients: FloatArray
    """Correlation of each pair; nan where a train's binned counts have zero variance."""
    matrix: FloatArray | None
    """The full (n, n) matrix when every pair was computed, else None."""


def _pair_from_index(k: IntArray, n: int) -> tuple[IntArray, IntArray]:
    """Map linear indices of the row-major upper triangle (``i < j``) to ``(i, j)``."""
    b = 2 * n - 1
    i = np.floor((b - np.sqrt(np.maximum(b * b - 8.0 * k, 0.0))) / 2.0).astype(np.int64)
    i = np.clip(i, 0, n - 2)

    def row_start(r: IntArray) -> IntArray:
        return r * (2 * n - r - 1) // 2

    for _ in range(2):  # fix float rounding of the closed form
        i = np.where(row_start(i) > k, i - 1, i)
        i = np.where(row_start(i + 1) <= k, i + 1, i)
    j = k - row_start(i) + i + 1
    return i, j


def binned_correlation(
    trains: Sequence[npt.ArrayLike],
    t_start: float,
    t_stop: float,
    bin_ms: float,
    max_pairs: int | None = None,
    seed: int = 0,
) -> PairCorrelations:
    """Pearson correlation coefficients of binned spike counts.

    Parameters
    ----------
    trains : sequence of array_like
        Spike times in ms, one array per neuron.
    t_start, t_stop : float
        Span in ms.
    bin_ms : float
        Bin width in ms.
    max_pairs : int, optional
        If the population has more than ``max_pairs`` pairs, compute only
        ``max_pairs`` distinct pairs drawn uniformly at random (without the full
        matrix); ``None`` computes every pair.
    seed : int, optional
        Seed of ``numpy.random.default_rng`` for the pair sample; the same seed and
        population size give the same pairs.

    Returns
    -------
    PairCorrelations
        ``pairs`` and ``coefficients``, plus ``matrix`` (n x n, diagonal 1 for
        non-constant trains) when every pair was computed.

    Notes
    -----
    Matches ``elephant.spike_train_correlation.correlation_coefficient(
    BinnedSpikeTrain(trains, bin_size=bin_ms * pq.ms, t_start=..., t_stop=...))``:
    counts, not binarized (``binary=False``); ``nan`` rows/columns for trains with
    constant binned counts (Elephant warns there). The full matrix is computed like
    ``np.corrcoef`` on the dense count matrix (memory ``n * n_bins`` floats); sampled
    pairs use Elephant's sparse formula
    ``(c_i . c_j - N_i N_j / L) / sqrt((c_i . c_i - N_i^2 / L)(c_j . c_j - N_j^2 / L))``
    on sparse per-neuron counts (memory proportional to the spikes of the sampled
    neurons).
    """
    n = len(trains)
    if max_pairs is not None and max_pairs < 0:
        raise ValueError(f"max_pairs must be >= 0, got {max_pairs}")
    total_pairs = n * (n - 1) // 2
    if max_pairs is None or total_pairs <= max_pairs:
        counts = binned_spike_counts(trains, t_start, t_stop, bin_ms).astype(np.float64)
        centred = counts - counts.mean(axis=1, keepdims=True)
        cov = centred @ centred.T
        with np.errstate(divide="ignore", invalid="ignore"):
            std = np.sqrt(np.diag(cov))
            matrix = cov / std[:, None] / std[None, :]
        np.clip(matrix, -1.0, 1.0, out=matrix)
        iu, ju = np.triu_indices(n, k=1)
        pairs = np.stack([iu, ju], axis=1).astype(np.int64)
        return PairCorrelations(pairs=pairs, coefficients=matrix[iu, ju], matrix=matrix)

    rng = np.random.default_rng(seed)
    k = np.sort(rng.choice(total_pairs, size=max_pairs, replace=False)).astype(np.int64)
    pi, pj = _pair_from_index(k, n)
    pairs = np.stack([pi, pj], axis=1)

    nb = n_bins(t_start, t_stop, bin_ms)
    t, rows = _concat_trains(trains)
    idx, keep = _bin_index(t, t_start, t_stop, bin_ms, nb)
    keys, kcounts = np.unique(rows[keep] * nb + idx, return_counts=True)
    krow = keys // nb
    kval = kcounts.astype(np.float64)
    ptr = np.searchsorted(krow, np.arange(n + 1, dtype=np.int64))
    nnz = np.diff(ptr)
    n_spk = np.bincount(krow, weights=kval, minlength=n)
    sumsq = np.bincount(krow, weights=kval * kval, minlength=n)
    var = sumsq - n_spk * n_spk / nb

    # For each pair walk the nonzero bins of the sparser train and look the other up.
    swap = nnz[pi] > nnz[pj]
    a = np.where(swap, pj, pi)
    b = np.where(swap, pi, pj)
    lens = nnz[a]
    pair_of = np.repeat(np.arange(max_pairs, dtype=np.int64), lens)
    starts = np.cumsum(lens) - lens
    entry = ptr[a][pair_of] + (np.arange(pair_of.size, dtype=np.int64) - starts[pair_of])
    target = b[pair_of] * nb + (keys[entry] - krow[entry] * nb)
    pos = np.minimum(np.searchsorted(keys, target), max(keys.size - 1, 0))
    hit = keys[pos] == target
    dot = np.bincount(pair_of[hit], weights=kval[entry[hit]] * kval[pos[hit]], minlength=max_pairs)
    cov = dot - n_spk[pi] * n_spk[pj] / nb
    with np.errstate(divide="ignore", invalid="ignore"):
        coeffs = cov / (np.sqrt(var[pi]) * np.sqrt(var[pj]))
    coeffs[(var[pi] <= 0) | (var[pj] <= 0)] = np.nan
    return PairCorrelations(pairs=pairs, coefficients=coeffs, matrix=None)


def synchrony_chi(
    trains: Sequence[npt.ArrayLike],
    t_start: float,
    t_stop: float,
    bin_ms: float,
    sigma_ms: float | None = None,
    cutoff: float = 5.0,
) -> float:
    """Golomb's population synchrony measure chi from binned (optionally smoothed) spikes.

    Parameters
    ----------
    trains : sequence of array_like
        Spike times in ms, one array per recorded neuron (silent ones included).
    t_start, t_stop : float
        Span in ms.
    bin_ms : float
        Bin width in ms.
    sigma_ms : float, optional
        If given, each neuron's binned counts are first smoothed with
        :func:`gaussian_kernel` (``sigma_ms``, sampled at ``bin_ms``).
    cutoff : float, optional
        Kernel support in multiples of ``sigma_ms``. Default 5.

    Returns
    -------
    float
        ``chi = sqrt(Var_t[A(t)] / mean_i Var_t[V_i(t)])`` with ``V_i`` the binned
        (smoothed) activity of neuron ``i``, ``A = mean_i V_i`` the population average
        and ``Var_t`` the variance over time bins (ddof=0). ``chi`` is 1 for
        identical trains and about ``1 / sqrt(n)`` for ``n`` independent ones; ``nan``
        when no neuron's activity varies (for example all silent) or there are none.

    Notes
    -----
    Golomb & Rinzel 1993, Golomb 2007 (Scholarpedia "Neuronal synchrony measures"),
    applied to spike counts instead of membrane potentials. Elephant has no
    equivalent. The count matrix is built in blocks of neurons, so memory stays
    bounded for large layers.
    """
    n = len(trains)
    if n == 0:
        return math.nan
    nb = n_bins(t_start, t_stop, bin_ms)
    kernel = None if sigma_ms is None else gaussian_kernel(sigma_ms, bin_ms, cutoff)
    population = np.zeros(nb, dtype=np.float64)
    var_sum = 0.0
    rows_per_block = max(1, _CHUNK_ELEMENTS // max(nb, 1))
    for lo in range(0, n, rows_per_block):
        block = binned_spike_counts(trains[lo : lo + rows_per_block], t_start, t_stop, bin_ms)
        activity = block.astype(np.float64)
        population += activity.sum(axis=0)
        if kernel is not None:
            activity = _convolve_same(activity, kernel)
        var_sum += float(activity.var(axis=1).sum())
    if kernel is not None:
        population = _convolve_same(population, kernel)
    mean_var = var_sum / n
    if not mean_var > 0:
        return math.nan
    return math.sqrt(float(np.var(population / n)) / mean_var)


# ---------------------------------------------------------------- control states


def _states_of_one_node(
    states: Sequence[Mapping[str, Any]], node_id: str | None
) -> list[Mapping[str, Any]]:
    if node_id is not None:
        selected = [s for s in states if s["node_id"] == node_id]
    else:
        nodes = {s["node_id"] for s in states}
        if len(nodes) > 1:
            raise ValueError(
                f"states of several nodes ({sorted(map(str, nodes))}); pass node_id to pick one"
            )
        selected = list(states)
    times = [float(s["time_ms"]) for s in selected]
    if any(b < a for a, b in itertools.pairwise(times)):
        raise ValueError("states are not sorted by time_ms")
    return selected


def control_dwell_times(
    states: Sequence[Mapping[str, Any]],
    t_stop_ms: float,
    key: str = "status",
    node_id: str | None = None,
) -> dict[str | None, float]:
    """Total time in ms spent in each value of ``key`` (by default each status).

    Parameters
    ----------
    states : sequence of mapping
        Control states of one node sorted by ``time_ms`` (records with at least
        ``node_id``, ``time_ms`` and ``key``).
    t_stop_ms : float
        End of the observation; the last state lasts until then.
    key : str, optional
        The field to group by, e.g. ``"status"`` or ``"active_task"`` (whose ``None``
        is a key of its own). Default ``"status"``.
    node_id : str, optional
        Use only the states of this node. Without it, states of several nodes are an
        error.

    Returns
    -------
    dict
        Value -> ms. State ``k`` lasts from its ``time_ms`` to the next state's
        ``time_ms`` (the last one to ``t_stop_ms``), clipped at ``t_stop_ms``; time
        before the first state is not counted. Every value seen is a key, possibly
        with 0.0 (states at or after ``t_stop_ms``). Empty for no states.

    Raises
    ------
    ValueError
        States of several nodes without ``node_id``, or states not sorted by time.
    """
    selected = _states_of_one_node(states, node_id)
    dwell: dict[str | None, float] = {}
    for k, state in enumerate(selected):
        start = float(state["time_ms"])
        end = float(selected[k + 1]["time_ms"]) if k + 1 < len(selected) else t_stop_ms
        value = state[key]
        dwell[value] = dwell.get(value, 0.0) + max(0.0, min(end, t_stop_ms) - start)
    return dwell


def control_transitions(
    states: Sequence[Mapping[str, Any]],
    key: str = "status",
    node_id: str | None = None,
) -> dict[tuple[str | None, str | None], int]:
    """Number of changes of ``key`` from one value to another, ``(a, b) -> count``.

    Parameters
    ----------
    states : sequence of mapping
        Control states of one node sorted by ``time_ms``.
    key : str, optional
        The field whose changes are counted. Default ``"status"``.
    node_id : str, optional
        Use only the states of this node. Without it, states of several nodes are an
        error.

    Returns
    -------
    dict
        ``(previous value, new value) -> count`` over consecutive states; a state
        repeating the previous value is not a transition.
    """
    selected = _states_of_one_node(states, node_id)
    transitions: dict[tuple[str | None, str | None], int] = {}
    for prev, cur in itertools.pairwise(selected):
        a, b = prev[key], cur[key]
        if a != b:
            transitions[(a, b)] = transitions.get((a, b), 0) + 1
    return transitions


def task_active_ratio(
    states: Sequence[Mapping[str, Any]], t_stop_ms: float, node_id: str | None = None
) -> float:
    """Fraction of the time with an active task (``active_task`` not None).

    Parameters
    ----------
    states : sequence of mapping
        Control states of one node sorted by ``time_ms``.
    t_stop_ms : float
        End of the observation.
    node_id : str, optional
        Use only the states of this node.

    Returns
    -------
    float
        Time with ``active_task is not None`` over the time from the first state to
        ``t_stop_ms`` (dwell times as :func:`control_dwell_times`); ``nan`` when that
        time is zero or there are no states.
    """
    dwell = control_dwell_times(states, t_stop_ms, key="active_task", node_id=node_id)
    total = sum(dwell.values())
    if total <= 0:
        return math.nan
    return sum(v for task, v in dwell.items() if task is not None) / total
