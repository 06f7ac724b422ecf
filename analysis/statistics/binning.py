"""Binning of spikes on a time grid, and Gaussian smoothing of binned counts.

Every binned statistic of the package goes through :func:`n_bins` and the bin
assignment here, so all of them share the ``BinnedSpikeTrain`` convention described
under *Binning* in the :mod:`analysis.statistics` package docstring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from analysis.statistics._common import (
    MS_PER_S,
    FloatArray,
    IntArray,
    as_times,
    check_positive,
    check_span,
)

BINNING_TOLERANCE = 1e-8
"""Rounding tolerance of the binning, in bin widths (Elephant's ``tolerance=1e-8``)."""


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
    check_span(t_start, t_stop)
    check_positive(bin_ms, "bin_ms")
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


def bin_index(
    times_ms: npt.ArrayLike, t_start: float, t_stop: float, bin_ms: float
) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Bin of every spike in one of the whole bins of ``[t_start, t_stop)``, and which those are.

    The binning of every function here (:func:`n_bins` bins, Elephant's convention):
    returns the bin indices of the spikes that fall in a bin and the boolean mask of
    those spikes within ``times_ms``.
    """
    t = as_times(times_ms, "times_ms")
    return _bin_index(t, t_start, t_stop, bin_ms, n_bins(t_start, t_stop, bin_ms))


def pooled_counts(
    times_ms: FloatArray, t_start: float, t_stop: float, bin_ms: float, unit: str
) -> IntArray:
    """Spikes per bin of all ``times_ms`` pooled; ``ValueError`` naming ``unit`` if no bin fits."""
    nb = n_bins(t_start, t_stop, bin_ms)
    if nb == 0:
        raise ValueError(f"span [{t_start}, {t_stop}) is shorter than one {unit}")
    idx, _ = _bin_index(times_ms, t_start, t_stop, bin_ms, nb)
    return np.bincount(idx, minlength=nb).astype(np.int64)


def binned_keys(
    trains: Sequence[npt.ArrayLike], t_start: float, t_stop: float, bin_ms: float
) -> tuple[int, IntArray]:
    """Number of bins, and ``train * n_bins + bin`` of every spike that falls in a bin."""
    nb = n_bins(t_start, t_stop, bin_ms)
    arrays = [as_times(t, "each spike train") for t in trains]
    if not arrays:
        return nb, np.zeros(0, dtype=np.int64)
    lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
    rows = np.repeat(np.arange(len(arrays), dtype=np.int64), lengths)
    idx, keep = _bin_index(np.concatenate(arrays), t_start, t_stop, bin_ms, nb)
    return nb, rows[keep] * nb + idx


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
        convention, see the package docstring).
    """
    nb, keys = binned_keys(trains, t_start, t_stop, bin_ms)
    flat = np.bincount(keys, minlength=len(trains) * nb)
    return flat.astype(np.int64).reshape(len(trains), nb)


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
    check_positive(sigma_ms, "sigma_ms")
    check_positive(sampling_ms, "sampling_ms")
    check_positive(cutoff, "cutoff")
    half = math.ceil(cutoff * (sigma_ms / sampling_ms))
    t = np.arange(-half, half + 1, dtype=np.float64) * sampling_ms
    pdf = np.exp(-0.5 * (t / sigma_ms) ** 2) / (sigma_ms * math.sqrt(2.0 * math.pi))
    kernel: FloatArray = pdf * MS_PER_S
    return kernel


def convolve_same(x: FloatArray, kernel: FloatArray) -> FloatArray:
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
