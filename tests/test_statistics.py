"""analysis.statistics: checked against Elephant 1.2 where it has the statistic, else by hand.

Tolerances: interval statistics, rates, histograms and the Fano factor use the same
float operations as Elephant and must agree to rtol=1e-12 (in practice bit for bit;
the margin covers units rescaling in quantities). Correlations agree to atol=1e-12
(np.corrcoef and Elephant's sparse formula sum in different orders). Kernel rates
agree to rtol=atol=1e-10 of the peak: both convolve by FFT (numpy.fft here,
scipy.signal.fftconvolve there) whose round-off is ~1e-13 of the peak.

The Elephant comparisons skip without Elephant (``pytest.importorskip`` in the
``el`` fixture); the rest of the file runs with numpy alone.
"""

from __future__ import annotations

import itertools
import math
import types
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import statistics as S

T0, T1 = 250.0, 2250.0  # ms; a nonzero t_start catches offset mistakes
N_REC, LAYER = 300, 1000
SILENT = 20  # the first SILENT recorded neurons never fire
ONE, TWO, THREE = SILENT, SILENT + 1, SILENT + 2  # neurons with 1, 2 and 3 spikes

# Elephant 1.2 passes copy= to Quantity, which quantities >= 0.16 deprecates; silenced
# (by message, so this works without quantities installed) only where Elephant runs.
quantities_copy_deprecation = pytest.mark.filterwarnings(
    "ignore:The 'copy' argument in Quantity is deprecated"
)


class Pop:
    """Flat spikes of a seeded recorded population, in recording (time) order."""

    def __init__(self, times: npt.NDArray[np.float64], ids: npt.NDArray[np.uint32]) -> None:
        self.times = times
        self.ids = ids


def _population(seed: int, on_grid: bool) -> tuple[Pop, npt.NDArray[np.uint32]]:
    rng = np.random.default_rng(seed)
    neurons = np.sort(rng.choice(LAYER, N_REC, replace=False)).astype(np.uint32)
    rates = rng.lognormal(np.log(8.0), 0.6, N_REC)
    rates[:SILENT] = 0.0
    counts = rng.poisson(rates * (T1 - T0) / 1000.0)
    counts[ONE], counts[TWO], counts[THREE] = 1, 2, 3
    ids = np.repeat(neurons, counts)
    if on_grid:  # what a simulation records: step * dt, dt = 0.1 ms
        steps = rng.integers(round(T0 / 0.1), round(T1 / 0.1), ids.size)
        times = steps * 0.1
    else:
        times = rng.uniform(T0, T1, ids.size)
    order = np.argsort(times, kind="stable")  # recording order: by time
    return Pop(times[order], ids[order]), neurons


@pytest.fixture(scope="module")
def pop() -> tuple[Pop, npt.NDArray[np.uint32], list[npt.NDArray[np.float64]]]:
    p, neurons = _population(12345, on_grid=False)
    return p, neurons, S.spike_trains(p.times, p.ids, neurons)


@pytest.fixture(scope="module")
def grid_pop() -> tuple[Pop, npt.NDArray[np.uint32], list[npt.NDArray[np.float64]]]:
    p, neurons = _population(777, on_grid=True)
    return p, neurons, S.spike_trains(p.times, p.ids, neurons)


@pytest.fixture(scope="module")
def el() -> types.SimpleNamespace:
    """Elephant and friends, or skip. Their imports emit no warnings (checked)."""
    pytest.importorskip("elephant")
    import elephant.kernels
    import elephant.spike_train_correlation
    import elephant.statistics
    import neo
    import quantities as pq
    from elephant.conversion import BinnedSpikeTrain

    def to_neo(trains: list[npt.NDArray[np.float64]], t0: float = T0, t1: float = T1) -> Any:
        return [neo.SpikeTrain(t, units="ms", t_start=t0, t_stop=t1) for t in trains]

    return types.SimpleNamespace(
        es=elephant.statistics,
        kernels=elephant.kernels,
        corr=elephant.spike_train_correlation,
        BinnedSpikeTrain=BinnedSpikeTrain,
        pq=pq,
        to_neo=to_neo,
    )


# ------------------------------------------------------------------- spike_trains


def test_spike_trains_split_per_neuron_sorted(pop: Any) -> None:
    p, neurons, trains = pop
    assert len(trains) == N_REC
    for k in (0, ONE, TWO, THREE, 100, N_REC - 1):
        expected = np.sort(p.times[p.ids == neurons[k]])
        np.testing.assert_array_equal(trains[k], expected)
    assert all(t.size == 0 for t in trains[:SILENT])
    assert [t.size for t in trains[ONE : THREE + 1]] == [1, 2, 3]
    assert sum(t.size for t in trains) == p.times.size
    assert all(np.all(np.diff(t) >= 0) for t in trains)


def test_spike_trains_unsorted_input_unlisted_ids_and_empty() -> None:
    times = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    ids = np.array([7, 7, 2, 9, 2], dtype=np.uint32)
    trains = S.spike_trains(times, ids, np.array([2, 5, 7], dtype=np.uint32))  # 9 unlisted
    assert [t.tolist() for t in trains] == [[3.0, 4.0], [], [1.0, 5.0]]
    assert S.spike_trains(times, ids, np.array([], dtype=np.uint32)) == []
    assert [t.size for t in S.spike_trains([], np.array([], np.uint32), [0, 1])] == [0, 0]
    with pytest.raises(ValueError, match="duplicates"):
        S.spike_trains(times, ids, [2, 2])
    with pytest.raises(ValueError, match="differ in length"):
        S.spike_trains(times[:3], ids, [2])


# ------------------------------------------------------------------ firing rates


@quantities_copy_deprecation
def test_mean_firing_rate_matches_elephant(pop: Any, el: Any) -> None:
    p, neurons, trains = pop
    fr = S.mean_firing_rate(p.times, p.ids, neurons, T0, T1)
    theirs = np.array(
        [el.es.mean_firing_rate(st).rescale(el.pq.Hz).magnitude.item() for st in el.to_neo(trains)]
    )
    np.testing.assert_allclose(fr.rates_hz, theirs, rtol=1e-12)
    np.testing.assert_allclose(fr.mean_rate_hz, theirs.mean(), rtol=1e-12)
    assert fr.n_spikes == p.times.size
    assert fr.n_neurons == N_REC
    assert fr.active_fraction == (N_REC - SILENT) / N_REC
    np.testing.assert_array_equal(fr.spike_counts, [t.size for t in trains])


def test_mean_firing_rate_span_silent_and_empty_population() -> None:
    neurons = np.array([1, 3, 8], dtype=np.uint32)
    times = np.array([0.0, 10.0, 500.0, 999.9, 1000.0, 20.0])  # 1000.0 is t_stop: excluded
    ids = np.array([1, 1, 3, 3, 3, 4], dtype=np.uint32)  # 4 is not recorded: ignored
    fr = S.mean_firing_rate(times, ids, neurons, 0.0, 1000.0)
    np.testing.assert_array_equal(fr.spike_counts, [2, 2, 0])
    np.testing.assert_allclose(fr.rates_hz, [2.0, 2.0, 0.0], rtol=1e-12)
    assert fr.mean_rate_hz == pytest.approx(4 / 3, rel=1e-12)  # silent neuron 8 counts
    assert fr.active_fraction == pytest.approx(2 / 3)
    empty = S.mean_firing_rate([], np.array([], np.uint32), np.array([], np.uint32), 0.0, 1.0)
    assert math.isnan(empty.mean_rate_hz) and math.isnan(empty.active_fraction)
    assert empty.n_spikes == 0 and empty.rates_hz.size == 0
    with pytest.raises(ValueError, match="t_start < t_stop"):
        S.mean_firing_rate(times, ids, neurons, 5.0, 5.0)


# ---------------------------------------------------------------- time histogram


@quantities_copy_deprecation
@pytest.mark.parametrize("bin_ms", [1.0, 0.3, 0.7, 3.0])
def test_time_histogram_matches_elephant_on_a_time_grid(
    grid_pop: Any, el: Any, bin_ms: float
) -> None:
    # Spike times step * 0.1 ms land on bin edges up to rounding (e.g. 0.1 * 2533 with
    # 0.3 ms bins): Elephant's 1e-8 tolerance decides the bin, and so must we. 3.0 ms
    # leaves a partial last bin, which Elephant drops (warning about its spikes).
    p, _neurons, trains = grid_pop
    edges, counts, rate = S.time_histogram(p.times, T0, T1, bin_ms, n_neurons=N_REC)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Binning discarded", UserWarning)
        neo_trains = el.to_neo(trains)
        h_counts = el.es.time_histogram(neo_trains, bin_ms * el.pq.ms, output="counts")
        h_rate = el.es.time_histogram(neo_trains, bin_ms * el.pq.ms, output="rate")
        bst = el.BinnedSpikeTrain(neo_trains, bin_size=bin_ms * el.pq.ms)
    np.testing.assert_array_equal(counts, h_counts.magnitude.ravel())
    np.testing.assert_allclose(rate, h_rate.rescale(el.pq.Hz).magnitude.ravel(), rtol=1e-12)
    np.testing.assert_allclose(edges, bst.bin_edges.magnitude, rtol=1e-15)
    assert counts.size == int((T1 - T0) / bin_ms + 1e-9)
    naive = np.floor((p.times - T0) / bin_ms).astype(np.int64)
    if bin_ms == 0.3:  # the tolerance matters here: plain floor bins some spikes lower
        assert np.any(np.bincount(naive[naive < counts.size], minlength=counts.size) != counts)


def test_time_histogram_edges_partial_bin_and_rates() -> None:
    bin_ms = 0.1
    times = np.array([0.0, 3 * bin_ms - 1e-12, 0.45, 0.6999, 0.7, 0.75, -0.1])
    edges, counts, rate = S.time_histogram(times, 0.0, 0.75, bin_ms)
    assert S.n_bins(0.0, 0.7, 0.1) == 7  # 0.7 / 0.1 = 6.999999999999999
    assert counts.size == 7  # [0.7, 0.75) is a partial bin: dropped with its spikes
    assert counts.tolist() == [1, 0, 0, 1, 1, 0, 1]  # 0.3 - 1e-12 is in bin 3
    np.testing.assert_allclose(edges, np.arange(8) * 0.1, rtol=1e-15)
    np.testing.assert_allclose(rate, counts / 1e-4)  # population Hz
    _, _, per_neuron = S.time_histogram(times, 0.0, 0.75, bin_ms, n_neurons=4)
    np.testing.assert_allclose(per_neuron, counts / (4 * 1e-4))
    _, _, none = S.time_histogram(times, 0.0, 0.75, bin_ms, n_neurons=0)
    assert np.all(np.isnan(none))
    _, empty_counts, _ = S.time_histogram([], 0.0, 1.0, 0.25)
    assert empty_counts.tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="shorter than one bin"):
        S.time_histogram(times, 0.0, 0.05, bin_ms)
    with pytest.raises(ValueError, match="bin_ms"):
        S.time_histogram(times, 0.0, 1.0, 0.0)


# ---------------------------------------------------------- instantaneous rate


@quantities_copy_deprecation
@pytest.mark.parametrize(("sigma_ms", "sampling_ms"), [(5.0, 1.0), (4.0, 2.0)])
def test_instantaneous_rate_matches_elephant(
    pop: Any, el: Any, sigma_ms: float, sampling_ms: float
) -> None:
    # Exact agreement needs cutoff * sigma / sampling to be an integer: otherwise
    # Elephant spreads its 2h+1 kernel samples evenly over +-cutoff*sigma instead of
    # sampling at multiples of the period (see the Notes of instantaneous_rate).
    p, _, trains = pop
    times, per_neuron = S.instantaneous_rate(p.times, T0, T1, sigma_ms, sampling_ms, N_REC)
    _, population = S.instantaneous_rate(p.times, T0, T1, sigma_ms, sampling_ms)
    kernel = el.kernels.GaussianKernel(sigma_ms * el.pq.ms)
    theirs = el.es.instantaneous_rate(
        el.to_neo(trains), sampling_ms * el.pq.ms, kernel=kernel, pool_spike_trains=True
    )
    theirs_hz = theirs.rescale(el.pq.Hz).magnitude.ravel()
    tol = 1e-10 * theirs_hz.max()  # FFT round-off, see the module docstring
    np.testing.assert_allclose(per_neuron, theirs_hz, rtol=1e-10, atol=tol)
    np.testing.assert_allclose(population, theirs_hz * N_REC, rtol=1e-10, atol=tol * N_REC)
    np.testing.assert_allclose(times, theirs.times.rescale(el.pq.ms).magnitude, rtol=1e-15)
    assert np.all(per_neuron >= 0)


def test_instantaneous_rate_area_and_borders() -> None:
    # One spike in the middle: the estimate integrates to one spike; with a period
    # that does not divide cutoff * sigma the kernel keeps unit area (Elephant's grows).
    for sigma_ms, sampling_ms in [(5.0, 1.0), (3.0, 2.0), (3.3, 1.0)]:
        kernel = S.gaussian_kernel(sigma_ms, sampling_ms)
        assert kernel.size % 2 == 1
        assert kernel.sum() * sampling_ms / 1000.0 == pytest.approx(1.0, abs=1e-6)
        _, rate = S.instantaneous_rate([500.0], 0.0, 1000.0, sigma_ms, sampling_ms)
        assert rate.sum() * sampling_ms / 1000.0 == pytest.approx(1.0, abs=1e-6)
        assert int(np.argmax(rate)) == int(500.0 / sampling_ms)
    # No border correction: a constant train is underestimated at the borders, by
    # about half at the very edge.
    _, rate = S.instantaneous_rate(np.arange(0.0, 1000.0, 1.0), 0.0, 1000.0, 10.0, 1.0)
    assert rate[500] == pytest.approx(1000.0, rel=1e-6)
    assert rate[0] == pytest.approx(500.0, rel=0.05)
    _, silent = S.instantaneous_rate([], 0.0, 100.0, 5.0, 1.0, n_neurons=3)
    assert np.all(silent == 0.0)
    with pytest.raises(ValueError, match="sigma_ms"):
        S.instantaneous_rate([1.0], 0.0, 100.0, 0.0)


# ------------------------------------------------------------ interval statistics


@quantities_copy_deprecation
def test_isi_cv_cv2_lv_match_elephant(pop: Any, el: Any) -> None:
    _, _, trains = pop
    checked = 0
    for st_ours, st_neo in zip(trains, el.to_neo(trains), strict=True):
        if st_ours.size < 3:
            continue
        ours = S.isi(st_ours)
        theirs = el.es.isi(st_neo).magnitude
        np.testing.assert_array_equal(ours, theirs)
        np.testing.assert_allclose(S.cv(ours), el.es.cv(theirs), rtol=1e-12)
        np.testing.assert_allclose(S.cv2(ours), el.es.cv2(theirs), rtol=1e-12)
        np.testing.assert_allclose(S.lv(ours), el.es.lv(theirs), rtol=1e-12)
        checked += 1
    assert checked == sum(t.size >= 3 for t in trains) > N_REC // 2


@quantities_copy_deprecation
def test_interval_statistics_with_few_spikes(pop: Any, el: Any) -> None:
    _, _, trains = pop
    for k in (0, ONE):  # no spike, one spike: no interval
        assert S.isi(trains[k]).size == 0
        assert all(math.isnan(f(S.isi(trains[k]))) for f in (S.cv, S.cv2, S.lv))
    one_isi = S.isi(trains[TWO])
    assert one_isi.size == 1
    # One interval: nan here. Elephant's cv (scipy.stats.variation) says 0.0; cv2 and
    # lv raise, or warn and return nan with with_nan=True.
    assert math.isnan(S.cv(one_isi)) and el.es.cv(one_isi) == 0.0
    for ours_f, theirs_f in ((S.cv2, el.es.cv2), (S.lv, el.es.lv)):
        assert math.isnan(ours_f(one_isi))
        with pytest.raises(ValueError, match="too small"):
            theirs_f(one_isi)
        with pytest.warns(UserWarning, match="too small"):
            assert math.isnan(theirs_f(one_isi, with_nan=True))
    two_isis = S.isi(trains[THREE])  # the smallest input Elephant accepts
    assert S.cv2(two_isis) == pytest.approx(el.es.cv2(two_isis), rel=1e-12)
    assert S.lv(two_isis) == pytest.approx(el.es.lv(two_isis), rel=1e-12)
    assert S.cv(two_isis) == pytest.approx(el.es.cv(two_isis), rel=1e-12)


def test_interval_statistics_by_hand() -> None:
    assert S.isi([0.3, 4.5, 6.7, 9.3]) == pytest.approx([4.2, 2.2, 2.6])
    # Elephant's documented examples (statistics.cv2 / statistics.lv docstrings)
    assert S.cv2([0.3, 4.5, 6.7, 9.3]) == pytest.approx(0.8226190476190478, rel=1e-12)
    assert S.lv([0.3, 4.5, 6.7, 9.3]) == pytest.approx(0.8306154336734695, rel=1e-12)
    regular = S.isi(np.arange(0.0, 100.0, 5.0))
    assert (S.cv(regular), S.cv2(regular), S.lv(regular)) == (0.0, 0.0, 0.0)
    isis = np.array([1.0, 3.0])
    assert S.cv(isis) == pytest.approx(0.5)  # ddof=0: std 1, mean 2
    with pytest.raises(ValueError, match="not sorted"):
        S.isi([1.0, 3.0, 2.0])
    with pytest.raises(ValueError, match="one-dimensional"):
        S.cv(np.ones((2, 2)))


# ------------------------------------------------------------------ Fano factor


@quantities_copy_deprecation
def test_fano_factor_matches_elephant(pop: Any, el: Any) -> None:
    _, _, trains = pop
    theirs = el.es.fanofactor(el.to_neo(trains))
    assert S.fano_factor(trains) == pytest.approx(theirs, rel=1e-12)
    counts = np.array([t.size for t in trains])
    assert S.fano_factor(counts) == pytest.approx(theirs, rel=1e-12)
    assert S.fano_factor(counts.tolist()) == pytest.approx(theirs, rel=1e-12)
    silent = trains[:SILENT]
    assert math.isnan(S.fano_factor(silent)) and math.isnan(el.es.fanofactor(el.to_neo(silent)))
    assert math.isnan(S.fano_factor([])) and math.isnan(el.es.fanofactor([]))


def test_fano_factor_by_hand() -> None:
    assert S.fano_factor([2, 4]) == pytest.approx(1 / 3)  # var 1 (ddof=0), mean 3
    assert S.fano_factor([np.zeros(2), np.zeros(4)]) == pytest.approx(1 / 3)
    assert S.fano_factor(np.array([5, 5, 5])) == 0.0
    with pytest.raises(ValueError, match="either spike trains"):
        S.fano_factor([np.zeros(2), 3])


# ------------------------------------------------------------------ correlation


@quantities_copy_deprecation
@pytest.mark.filterwarnings("ignore:Detected empty spike trains:UserWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.filterwarnings(
    "ignore:the matrix subclass is not the recommended:PendingDeprecationWarning"
)
@pytest.mark.parametrize("bin_ms", [20.0, 2.0])  # Elephant: np.corrcoef / sparse formula
def test_binned_correlation_matches_elephant(pop: Any, el: Any, bin_ms: float) -> None:
    _, _, trains = pop
    ours = S.binned_correlation(trains, T0, T1, bin_ms)
    bst = el.BinnedSpikeTrain(el.to_neo(trains), bin_size=bin_ms * el.pq.ms)
    theirs = el.corr.correlation_coefficient(bst)
    assert ours.matrix is not None
    np.testing.assert_array_equal(np.isnan(ours.matrix), np.isnan(theirs))
    assert np.isnan(ours.matrix[:SILENT]).all() and np.isnan(ours.matrix[:, :SILENT]).all()
    np.testing.assert_allclose(ours.matrix, theirs, rtol=0, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(S.binned_spike_counts(trains, T0, T1, bin_ms), bst.to_array())
    iu = np.triu_indices(N_REC, 1)
    np.testing.assert_array_equal(ours.pairs, np.stack(iu, axis=1))
    np.testing.assert_array_equal(ours.coefficients, ours.matrix[iu])


def test_binned_correlation_sampled_pairs(pop: Any) -> None:
    _, _, trains = pop
    full = S.binned_correlation(trains, T0, T1, 5.0)
    assert full.matrix is not None
    sampled = S.binned_correlation(trains, T0, T1, 5.0, max_pairs=500, seed=3)
    assert sampled.matrix is None and sampled.pairs.shape == (500, 2)
    i, j = sampled.pairs.T
    assert np.all(i < j) and np.all(j < N_REC)
    assert len({(a, b) for a, b in sampled.pairs.tolist()}) == 500
    np.testing.assert_allclose(
        sampled.coefficients, full.matrix[i, j], rtol=0, atol=1e-12, equal_nan=True
    )
    again = S.binned_correlation(trains, T0, T1, 5.0, max_pairs=500, seed=3)
    np.testing.assert_array_equal(again.pairs, sampled.pairs)
    other = S.binned_correlation(trains, T0, T1, 5.0, max_pairs=500, seed=4)
    assert not np.array_equal(other.pairs, sampled.pairs)
    everything = S.binned_correlation(trains[:10], T0, T1, 5.0, max_pairs=45)
    assert everything.matrix is not None  # 45 pairs: the full matrix


def test_binned_correlation_small_cases() -> None:
    a = np.array([1.0, 2.0, 5.0])
    res = S.binned_correlation([a, a, np.array([3.0, 4.0])], 0.0, 6.0, 1.0)
    assert res.matrix is not None
    assert res.matrix[0, 1] == pytest.approx(1.0)
    expected = np.corrcoef(S.binned_spike_counts([a, a, [3.0, 4.0]], 0.0, 6.0, 1.0))
    np.testing.assert_allclose(res.matrix, expected, atol=1e-12)
    pairs = S.binned_correlation([a, a, [3.0, 4.0]], 0.0, 6.0, 1.0, max_pairs=2, seed=0)
    for (p, q), c in zip(pairs.pairs.tolist(), pairs.coefficients.tolist(), strict=True):
        assert c == pytest.approx(expected[p, q], abs=1e-12)
    assert S.binned_correlation([], 0.0, 6.0, 1.0).pairs.shape == (0, 2)


def test_pair_index_covers_the_upper_triangle() -> None:
    for n in range(2, 40):
        i, j = S._pair_from_index(np.arange(n * (n - 1) // 2, dtype=np.int64), n)
        iu, ju = np.triu_indices(n, 1)
        np.testing.assert_array_equal(i, iu)
        np.testing.assert_array_equal(j, ju)
    n = 200_000  # large n: the closed form needs its integer correction
    k = np.array([0, 1, n - 2, n - 1, n * (n - 1) // 2 - 1], dtype=np.int64)
    i, j = S._pair_from_index(k, n)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [
        (0, 1),
        (0, 2),
        (0, n - 1),
        (1, 2),
        (n - 2, n - 1),
    ]


# -------------------------------------------------------------------- synchrony


def _poisson_trains(rng: np.random.Generator, n: int, rate_hz: float) -> list[Any]:
    counts = rng.poisson(rate_hz * (T1 - T0) / 1000.0, n)
    return [np.sort(rng.uniform(T0, T1, c)) for c in counts]


def test_synchrony_chi_independent_vs_synchronous() -> None:
    rng = np.random.default_rng(5)
    n = 200
    independent = _poisson_trains(rng, n, 10.0)
    chi_ind = S.synchrony_chi(independent, T0, T1, 5.0)
    assert 0.7 < chi_ind * math.sqrt(n) < 1.4  # independent: chi ~ 1 / sqrt(n)
    mother = np.sort(rng.uniform(T0, T1, 40))
    identical = [mother.copy() for _ in range(n)]
    assert S.synchrony_chi(identical, T0, T1, 5.0) == pytest.approx(1.0, rel=1e-12)
    # each neuron keeps 80 % of the mother spikes, jittered by 1 ms, plus 2 Hz background
    noisy = []
    for _ in range(n):
        kept = mother[rng.random(mother.size) < 0.8]
        jittered = np.clip(kept + rng.normal(0.0, 1.0, kept.size), T0, T1 - 1.0)
        background = rng.uniform(T0, T1, rng.poisson(4))
        noisy.append(np.sort(np.concatenate([jittered, background])))
    chi_sync = S.synchrony_chi(noisy, T0, T1, 5.0, sigma_ms=5.0)
    assert chi_sync > 0.6
    assert S.synchrony_chi(independent, T0, T1, 5.0, sigma_ms=5.0) < 0.2
    assert S.synchrony_chi(independent + [np.zeros(0)] * 5, T0, T1, 5.0) < 0.2


def test_synchrony_chi_formula_and_degenerate_cases() -> None:
    trains = [np.array([0.5, 2.5]), np.array([0.5, 1.5, 3.5]), np.array([])]
    v = S.binned_spike_counts(trains, 0.0, 4.0, 1.0).astype(float)
    expected = math.sqrt(np.var(v.mean(axis=0)) / np.mean(np.var(v, axis=1)))
    assert S.synchrony_chi(trains, 0.0, 4.0, 1.0) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(S.synchrony_chi([], 0.0, 4.0, 1.0))
    assert math.isnan(S.synchrony_chi([np.array([]), np.array([])], 0.0, 4.0, 1.0))


# --------------------------------------------------------------- control states


def _state(t: float, status: str, task: str | None = None, node: str = "pfc") -> dict[str, Any]:
    return {"node_id": node, "status": status, "active_task": task, "step": int(t), "time_ms": t}


STATES = [
    _state(0.0, "idle"),
    _state(10.0, "running", "t1"),
    _state(25.0, "running", "t1"),  # duplicate status: no transition
    _state(40.0, "paused"),
    _state(45.0, "running", "t2"),
    _state(70.0, "idle"),
]


def test_control_dwell_times() -> None:
    assert S.control_dwell_times(STATES, 100.0) == {"idle": 40.0, "running": 55.0, "paused": 5.0}
    assert S.control_dwell_times(STATES, 50.0) == {
        "idle": 10.0,
        "running": 35.0,
        "paused": 5.0,
    }
    assert S.control_dwell_times(STATES, 100.0, key="active_task") == {
        None: 45.0,
        "t1": 30.0,
        "t2": 25.0,
    }
    assert S.control_dwell_times([], 10.0) == {}
    assert S.control_dwell_times([_state(20.0, "idle")], 10.0) == {"idle": 0.0}


def test_control_transitions() -> None:
    assert S.control_transitions(STATES) == {
        ("idle", "running"): 1,
        ("running", "paused"): 1,
        ("paused", "running"): 1,
        ("running", "idle"): 1,
    }
    assert S.control_transitions(STATES, key="active_task") == {
        (None, "t1"): 1,
        ("t1", None): 1,
        (None, "t2"): 1,
        ("t2", None): 1,
    }
    assert S.control_transitions(STATES[:1]) == {}
    assert S.control_transitions([]) == {}


def test_task_active_ratio() -> None:
    assert S.task_active_ratio(STATES, 100.0) == pytest.approx(0.55)
    assert S.task_active_ratio(STATES, 45.0) == pytest.approx(30.0 / 45.0)
    assert math.isnan(S.task_active_ratio([], 100.0))
    assert math.isnan(S.task_active_ratio([_state(5.0, "idle")], 5.0))


def test_control_states_of_several_nodes_and_unsorted() -> None:
    mixed = [*STATES, _state(5.0, "running", "x", node="visual")]
    with pytest.raises(ValueError, match="several nodes"):
        S.control_dwell_times(mixed, 100.0)
    assert S.control_dwell_times(mixed, 100.0, node_id="visual") == {"running": 95.0}
    assert S.control_transitions(mixed, node_id="pfc") == S.control_transitions(STATES)
    assert S.task_active_ratio(mixed, 100.0, node_id="visual") == 1.0
    with pytest.raises(ValueError, match="not sorted"):
        S.control_transitions([STATES[1], STATES[0]])


@settings(max_examples=100, deadline=None)
@given(
    gaps=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=30),
    statuses=st.lists(st.sampled_from(["idle", "running", "paused"]), min_size=30, max_size=30),
    tail=st.floats(0.0, 100.0),
)
def test_control_invariants(gaps: list[float], statuses: list[str], tail: float) -> None:
    times = list(itertools.accumulate(gaps))
    states = [_state(t, s) for t, s in zip(times, statuses, strict=False)]
    t_stop = times[-1] + tail
    dwell = S.control_dwell_times(states, t_stop)
    assert sum(dwell.values()) == pytest.approx(t_stop - times[0], abs=1e-9)
    changes = sum(a != b for a, b in itertools.pairwise(s["status"] for s in states))
    assert sum(S.control_transitions(states).values()) == changes
