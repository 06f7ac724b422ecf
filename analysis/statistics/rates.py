"""Firing rates: per-neuron and population means, time histograms, kernel rates."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analysis.statistics._common import (
    MS_PER_S,
    FloatArray,
    IntArray,
    as_spikes,
    as_times,
    check_span,
)
from analysis.statistics.binning import convolve_same, gaussian_kernel, pooled_counts
from analysis.statistics.trains import neuron_ranks


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
    check_span(t_start, t_stop)
    t, ids, nrn = as_spikes(times_ms, neuron_ids, neurons)
    in_span = (t >= t_start) & (t < t_stop)
    rank, hit = neuron_ranks(nrn, ids[in_span])
    counts = np.bincount(rank[hit], minlength=nrn.size).astype(np.int64)
    duration_ms = t_stop - t_start
    rates = counts / duration_ms * MS_PER_S
    n_spikes = int(counts.sum())
    n = int(nrn.size)
    if n == 0:
        mean_rate, active = math.nan, math.nan
    else:
        mean_rate = n_spikes / (n * duration_ms) * MS_PER_S
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
    Binning is Elephant's ``time_histogram`` / ``BinnedSpikeTrain`` convention, see
    *Binning* in the package docstring (the last partial bin and its spikes are
    dropped without a warning). Raises ``ValueError`` when the span is shorter than
    one bin (Elephant: TypeError).
    """
    t = as_times(times_ms, "times_ms")
    counts = pooled_counts(t, t_start, t_stop, bin_ms, f"bin of {bin_ms} ms")
    nb = counts.size
    edges = np.linspace(t_start, t_start + nb * bin_ms, nb + 1)
    if n_neurons is None:
        rate = counts / bin_ms * MS_PER_S
    elif n_neurons > 0:
        rate = counts / (n_neurons * bin_ms) * MS_PER_S
    elif n_neurons == 0:
        rate = np.full(nb, np.nan)
    else:
        raise ValueError(f"n_neurons must be >= 0, got {n_neurons}")
    return edges, counts, rate


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
    t = as_times(times_ms, "times_ms")
    kernel = gaussian_kernel(sigma_ms, sampling_ms, cutoff)
    counts = pooled_counts(t, t_start, t_stop, sampling_ms, "sample").astype(np.float64)
    nb = counts.size
    rate = convolve_same(counts, kernel)
    if n_neurons is not None:
        if n_neurons < 0:
            raise ValueError(f"n_neurons must be >= 0, got {n_neurons}")
        rate = rate / n_neurons if n_neurons > 0 else np.full(nb, np.nan)
    times = t_start + np.arange(nb, dtype=np.float64) * sampling_ms
    return times, rate
