"""Binned population measures: pairwise count correlations and synchrony."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analysis.statistics._common import FloatArray, IntArray
from analysis.statistics.binning import (
    binned_keys,
    binned_spike_counts,
    convolve_same,
    gaussian_kernel,
    n_bins,
)

_CHUNK_ELEMENTS = 1 << 20  # dense (neurons x bins) blocks: 8 MiB float64, ~10x that in FFTs


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
        matrix = count_correlation(binned_spike_counts(trains, t_start, t_stop, bin_ms))
        iu, ju = np.triu_indices(n, k=1)
        pairs = np.stack([iu, ju], axis=1).astype(np.int64)
        return PairCorrelations(pairs=pairs, coefficients=matrix[iu, ju], matrix=matrix)

    rng = np.random.default_rng(seed)
    k = np.sort(rng.choice(total_pairs, size=max_pairs, replace=False)).astype(np.int64)
    pi, pj = _pair_from_index(k, n)
    pairs = np.stack([pi, pj], axis=1)

    nb, spike_keys = binned_keys(trains, t_start, t_stop, bin_ms)
    keys, kcounts = np.unique(spike_keys, return_counts=True)
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


def count_correlation(counts: npt.ArrayLike) -> FloatArray:
    """Pearson correlation matrix of the rows of a (neurons x bins) count matrix.

    What :func:`binned_correlation` computes once the trains are binned (``np.corrcoef``
    of the counts, clipped to [-1, 1]); ``nan`` rows and columns for constant rows.
    """
    c = np.asarray(counts, dtype=np.float64)
    centred = c - c.mean(axis=1, keepdims=True)
    cov = centred @ centred.T
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.sqrt(np.diag(cov))
        matrix: FloatArray = cov / std[:, None] / std[None, :]
    np.clip(matrix, -1.0, 1.0, out=matrix)
    return matrix


def synchrony_over_time(counts: npt.ArrayLike, window_bins: int) -> FloatArray:
    """Golomb's chi (:func:`synchrony_chi`, unsmoothed) in consecutive windows of bins.

    ``counts`` is a (neurons x bins) matrix of binned spike counts; window ``k`` covers
    bins ``[k * window_bins, (k + 1) * window_bins)`` (a last partial window is dropped).
    ``nan`` where no neuron's count varies within the window.
    """
    c = np.asarray(counts, dtype=np.float64)
    if window_bins < 1:
        raise ValueError(f"window_bins must be >= 1, got {window_bins}")
    n, nb = c.shape
    k = nb // window_bins
    if n == 0 or k == 0:
        return np.zeros(0)
    w = c[:, : k * window_bins].reshape(n, k, window_bins)
    var_each = w.var(axis=2).mean(axis=0)  # mean over neurons of each one's variance
    var_pop = w.mean(axis=0).var(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        chi: FloatArray = np.sqrt(var_pop / var_each)
    chi[~(var_each > 0)] = np.nan
    return chi


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
            activity = convolve_same(activity, kernel)
        var_sum += float(activity.var(axis=1).sum())
    if kernel is not None:
        population = convolve_same(population, kernel)
    mean_var = var_sum / n
    if not mean_var > 0:
        return math.nan
    return math.sqrt(float(np.var(population / n)) / mean_var)
