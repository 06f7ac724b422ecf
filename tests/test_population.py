"""The report's population measures and windows, against analysis.statistics on known data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from analysis import SimulationAnalyzer
from analysis import statistics as S
from analysis.sample import MAX_SAMPLE_BINS, sample_bin_ms
from analysis.scan import readable_window
from recorderd import RecorderConfig, SimulationRecorder

STEPS = 1234  # not a whole number of 50 ms bins: a last, shorter bin of 34 ms


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pop")
    config = RecorderConfig(
        output_dir=out, session_name="p", record_membrane=True, auto_flush=False
    )
    rng = np.random.default_rng(9)
    with SimulationRecorder(config) as rec:
        for step in range(STEPS):
            common = rng.random() < 0.05  # shared input: correlated, synchronous
            fired = (rng.random(80) < 0.02) | (common & (rng.random(80) < 0.5))
            rec.record_spikes("n", "l", fired, step=step)
            rec.record_membrane("n", "l", np.where(fired, -70.0, -55.0), step=step)
            if step % 300 == 0:
                rec.record_control_state(
                    "n", "m", "Idle", None, step=step, metadata={"v_th_mv": {"l": -50.5}}
                )
    return out / "p"


@pytest.fixture
def an(session: Path) -> Iterator[SimulationAnalyzer]:
    with SimulationAnalyzer(session, chunk_rows=1000) as analyzer:
        yield analyzer


def test_the_rate_does_not_drop_at_the_right_edge(an: SimulationAnalyzer) -> None:
    scan = an.scan("n", "l", bin_ms=50.0)
    edges, rate = scan.rate_per_neuron()
    assert edges[-1] == STEPS and edges[-2] == 1200.0  # the last bin is 34 ms
    tr = an.spikes("n", "l")
    tail = np.count_nonzero(tr.times_ms >= 1200.0)
    assert scan.hist_tail == tail
    assert rate[-1] == pytest.approx(tail / (80 * 0.034))
    _, counts, _ = S.time_histogram(tr.times_ms, 0.0, float(STEPS), 50.0)
    assert scan.hist_counts is not None and scan.hist_counts.tolist() == counts.tolist()
    assert rate[:-1] == pytest.approx(counts / (80 * 0.05))


def test_sampled_counts_correlation_and_synchrony(an: SimulationAnalyzer) -> None:
    scan = an.scan("n", "l", sample_neurons=20)
    sample = scan.sample
    assert sample is not None and sample.neurons.size == 20 and sample.bin_ms == 5.0
    tr = an.spikes("n", "l")
    trains = S.spike_trains(tr.times_ms, tr.neuron_ids, sample.neurons)
    counts = S.binned_spike_counts(trains, 0.0, float(STEPS), 5.0)
    assert np.array_equal(sample.counts, counts)
    want = S.binned_correlation(trains, 0.0, float(STEPS), 5.0).matrix
    np.testing.assert_allclose(sample.correlation(), want, rtol=1e-12, equal_nan=True)
    edges, chi, width = sample.synchrony()
    assert width == 100.0 and chi.size == STEPS // 100  # windows of 20 bins
    for k in (0, 5, chi.size - 1):
        ref = S.synchrony_chi(trains, edges[k], edges[k + 1], 5.0)
        assert chi[k] == pytest.approx(ref, rel=1e-12)
    assert np.nanmean(chi) > 1.5 / math.sqrt(20)  # the shared input shows


def test_count_correlation_is_binned_correlation() -> None:
    rng = np.random.default_rng(1)
    trains = [np.sort(rng.uniform(0, 500, n)) for n in (40, 10, 0, 25)]
    counts = S.binned_spike_counts(trains, 0.0, 500.0, 10.0)
    got = S.count_correlation(counts)
    want = S.binned_correlation(trains, 0.0, 500.0, 10.0).matrix
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def test_sample_bins_stay_bounded() -> None:
    assert sample_bin_ms(1000.0, 1.0) == 5.0
    assert sample_bin_ms(1000.0, 10.0) == 10.0
    long = 3_600_000.0  # an hour
    b = sample_bin_ms(long, 1.0)
    assert long / b <= MAX_SAMPLE_BINS and b in (100.0, 200.0, 500.0)


def test_readable_window(an: SimulationAnalyzer) -> None:
    info = an.population_info("n", "l")
    rate = info.total_spikes / (80 * STEPS / 1000)
    window = readable_window([info], spikes_per_row=10)
    assert window is not None and window[0] == 0.0
    width = window[1]
    assert width <= 10 / rate * 1000 < 2.5 * width  # 1, 2 or 5 x 10^k, rounded down
    assert readable_window([info], spikes_per_row=1e6) is None  # all of it is readable
    assert an.raster_window("n") == readable_window([info])
    assert an.raster_window("n", 100.0, None) == (100.0, float(STEPS))
    with pytest.raises(ValueError, match="empty time window"):
        an.raster_window("n", 500.0, 400.0)


def test_a_windowed_raster_holds_only_the_window(an: SimulationAnalyzer) -> None:
    scan = an.scan("n", "l", raster_neurons=80, raster_window=(100.0, 300.0))
    r = scan.raster
    assert r is not None and r.windowed and r.span_ms == (0.0, float(STEPS))
    assert r.times_ms is not None and r.times_ms.min() >= 100.0 and r.times_ms.max() < 300.0
    tr = an.spikes("n", "l", 100.0, 300.0)
    assert r.n_spikes == tr.times_ms.size
    fig = an.plot_spike_raster("n", "l", t_start_ms=100.0, t_stop_ms=300.0)
    assert fig.axes[0].get_xlim() == (100.0, 300.0)
    assert "window 100-300 ms" in fig.axes[0].get_title(loc="left")


def test_membrane_marks_spikes_and_threshold(an: SimulationAnalyzer, tmp_path: Path) -> None:
    assert an.threshold_mv("n", "l") == -50.5
    assert an.threshold_mv("n", "other") is None
    times = an.spike_times_of("n", "l", [0, 3], 0.0, 200.0)
    tr = an.spikes("n", "l", 0.0, 200.0)
    for nid in (0, 3):
        assert times[nid].tolist() == tr.times_ms[tr.neuron_ids == nid].tolist()
    fig = an.plot_membrane_traces("n", "l", t_stop_ms=200.0, save_path=tmp_path / "m.png")
    title = fig.axes[0].get_title(loc="left")
    assert "red ticks: spikes of 5 of 5 neurons" in title and "dashed: threshold" in title
    assert any(line.get_ydata()[0] == -50.5 for line in fig.axes[0].get_lines())
    fig = an.plot_membrane_traces("n", "l", mark_spikes=False, threshold_mv=None)
    assert "red ticks" not in fig.axes[0].get_title(loc="left")


def test_population_figure(an: SimulationAnalyzer, tmp_path: Path) -> None:
    fig = an.plot_population_statistics("n", "l", tmp_path / "p.png", sample_neurons=10)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert any(t.startswith("rate of 80 neurons") for t in titles)
    assert any(t.startswith("correlation, 10 neurons, 5 ms bins") for t in titles)
    assert (tmp_path / "p.png").stat().st_size > 10_000
