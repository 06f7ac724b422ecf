"""SimulationAnalyzer on real sessions recorded from known spikes, states and matrices."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt
import pytest
from matplotlib.figure import Figure

from analysis import SimulationAnalyzer
from analysis import report as R
from analysis import statistics as S
from analysis.reader import NotASessionError, SessionReader, UnsupportedFormatError
from recorderd import RecorderConfig, SimulationRecorder
from recorderd import wire as P
from recorderd.core.recorder import Recorder
from recorderd.daemon.settings import load_settings
from recorderd.session import layout as L

PNG = b"\x89PNG\r\n\x1a\n"
STEPS = 20  # layer n0.L: steps 0..19, dt 1 ms
SILENT = (7, 8, 9)  # neurons of n0.L that never fire
# n1.M: layer of 4, dt 0.5 ms, steps 100..104; the ids that fire at each step.
M_SPIKES = [[0, 1, 2], [], [3], [0, 2], [0]]
WEIGHTS = [(k + 1) * np.arange(12, dtype=np.float32).reshape(3, 4) for k in range(3)]


def l_pattern() -> npt.NDArray[np.bool_]:
    rng = np.random.default_rng(3)
    dense = rng.random((STEPS, 10)) < 0.4
    dense[:, list(SILENT)] = False
    dense[[3, 7]] = False  # steps without any spike
    return dense


def membrane_value(step: int, neuron: int) -> float:
    return -70.0 + step + neuron / 10


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Spikes at rate 0.5 (seed 0 records neurons 0 4 6 7 8 of n0.L, 0 and 2 of n1.M)."""
    out = tmp_path_factory.mktemp("rec")
    config = RecorderConfig(
        output_dir=out,
        session_name="known",
        record_membrane=True,
        record_weights=True,
        spike_subsample_rate=0.5,
        membrane_subsample_rate=0.5,
        auto_flush=False,
    )
    with SimulationRecorder(config) as rec:
        for step, row in enumerate(l_pattern()):
            rec.record_spikes("n0", "L", row, step=step)
            v = [membrane_value(step, i) for i in range(10)]
            rec.record_membrane("n0", "L", v, step=step)
        for k, w in enumerate(WEIGHTS):
            rec.record_weights("n0", "w", w, step=5 * k)
        for i, ids in enumerate(M_SPIKES):
            rec.record_spikes("n1", "M", ids, layer_size=4, step=100 + i, dt_ms=0.5)
        for step, status, task in [
            (0, "Idle", None),
            (5, "Processing", "t1"),
            (12, "Deliberating", "t1"),
            (15, "Idle", None),
        ]:
            rec.record_control_state("n0", "pfc", status, task, step_count=step, step=step)
        # n1 arrives out of time order: the analysis sorts by time.
        rec.record_control_state("n1", "visual", "Processing", "a", step_count=10, step=10)
        rec.record_control_state("n1", "visual", "Idle", None, step_count=0, step=0)
    return out / "known"


@pytest.fixture
def an(session: Path) -> Iterator[SimulationAnalyzer]:
    with SimulationAnalyzer(session) as analyzer:
        yield analyzer


def recorded_l(an: SimulationAnalyzer) -> npt.NDArray[np.uint32]:
    rec = an.reader.recorded_neurons("n0", "L")
    assert rec.size == 5 and 7 in rec  # the subsample keeps a silent neuron in the denominator
    return rec


def test_guide_api_exact(an: SimulationAnalyzer) -> None:
    assert an.get_recorded_nodes() == ["n0", "n1"]
    assert an.get_recorded_layers("n0") == ["L"]
    rec = recorded_l(an)
    dense = l_pattern()
    timestamps, arrays = an.get_spike_data("n0", "L")
    assert timestamps.dtype == np.float64 and timestamps.tolist() == [float(s) for s in range(20)]
    expected = [np.intersect1d(np.flatnonzero(row), rec) for row in dense]
    assert len(arrays) == STEPS
    assert all(np.array_equal(a, e) for a, e in zip(arrays, expected, strict=True))
    assert arrays[3].size == 0 and arrays[7].size == 0

    stats = an.compute_firing_rate("n0", "L")
    total = int(dense[:, rec].sum())
    assert stats["total_spikes"] == total
    assert stats["mean_rate_hz"] == pytest.approx(total / (5 * 0.020))  # 5 recorded, 20 ms
    assert stats["rates_hz"] == pytest.approx(dense[:, rec].sum(axis=0) / 0.020)
    assert stats["neuron_ids"].tolist() == rec.tolist()
    assert stats["active_fraction"] == pytest.approx(np.count_nonzero(dense[:, rec].sum(0)) / 5)
    assert stats["n_recorded_neurons"] == 5 and stats["layer_size"] == 10
    assert stats["subsample_rate"] == 0.5 and stats["duration_s"] == pytest.approx(0.020)

    # n1.M: dt 0.5 ms starting at step 100; recorded neurons 0 and 2 fire 5 times in 2.5 ms.
    assert an.reader.recorded_neurons("n1", "M").tolist() == [0, 2]
    timestamps, arrays = an.get_spike_data("n1", "M")
    assert timestamps.tolist() == [50.0, 50.5, 51.0, 51.5, 52.0]
    assert [a.tolist() for a in arrays] == [[0, 2], [], [], [0, 2], [0]]
    m = an.compute_firing_rate("n1", "M")
    assert m["total_spikes"] == 5 and m["mean_rate_hz"] == pytest.approx(1000.0)
    assert (m["first_step"], m["last_step"], m["t_start_ms"], m["t_stop_ms"]) == (
        100,
        104,
        50.0,
        52.5,
    )


def test_scan_matches_statistics_in_any_chunking(session: Path) -> None:
    with SimulationAnalyzer(session) as whole, SimulationAnalyzer(session, chunk_rows=3) as tiny:
        rec = whole.reader.recorded_neurons("n0", "L")
        tr = whole.spikes("n0", "L")
        ref = S.mean_firing_rate(tr.times_ms, tr.neuron_ids, rec, 0.0, 20.0)
        for an in (whole, tiny):
            scan = an.scan("n0", "L", bin_ms=5.0)
            assert np.array_equal(scan.spike_counts, ref.spike_counts)
            assert np.allclose(scan.rates_hz, ref.rates_hz, rtol=1e-12)
            assert scan.mean_rate_hz == pytest.approx(ref.mean_rate_hz, rel=1e-12)
            cv_ref = [S.cv(S.isi(t)) for t in S.spike_trains(tr.times_ms, tr.neuron_ids, rec)]
            assert np.allclose(scan.cv_isi, cv_ref, rtol=1e-9, equal_nan=True)
            _, counts, _ = S.time_histogram(tr.times_ms, 0.0, 20.0, 5.0)
            assert scan.hist_counts is not None and scan.hist_counts.tolist() == counts.tolist()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150k spikes over several HDF5 chunks (by_time), and a population whose time goes back."""
    out = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(7)
    with SimulationRecorder(RecorderConfig(output_dir=out, session_name="big")) as rec:
        for step in range(150):
            ids = rng.choice(5000, 1000, replace=False)
            rec.record_spikes("big", "x", ids, layer_size=5000, step=step, dt_ms=0.1)
        for step in [*range(10, 20), *range(10)]:
            rec.record_spikes(
                "big", "y", rng.choice(50, 5, replace=False), layer_size=50, step=step
            )
    return out / "big"


@pytest.mark.parametrize("layer", ["x", "y"])
def test_window_queries(big: Path, layer: str) -> None:
    with SimulationAnalyzer(big, chunk_rows=40_000) as an:
        assert an.reader.sorting("big", layer) == ("by_time" if layer == "x" else "none")
        full = an.spikes("big", layer)
        chunks = list(an.iter_spike_chunks("big", layer))
        assert np.array_equal(np.concatenate([c.times_ms for c in chunks]), full.times_ms)
        t = full.times_ms
        for lo, hi in [(None, 3.05), (7.3, None), (2.0, 9.95), (4.0, 4.0), (100.0, None), (5, 1)]:
            got = an.spikes("big", layer, lo, hi)
            keep = np.ones(t.size, bool)
            keep &= t >= (-np.inf if lo is None else lo)
            keep &= t < (np.inf if hi is None else hi)
            assert np.array_equal(got.times_ms, t[keep])
            assert np.array_equal(got.neuron_ids, full.neuron_ids[keep])
            assert np.array_equal(got.steps, full.steps[keep])


def test_node_behavior_from_known_states(an: SimulationAnalyzer) -> None:
    b = an.analyze_node_behavior("n0")  # observed until the end of n0's data, 20 ms
    assert b["task_active_ratio"] == pytest.approx(0.5)
    assert b["unique_statuses"] == ["Deliberating", "Idle", "Processing"]
    assert b["step_range"] == (0, 15) and b["module_type"] == "pfc"
    assert b["dwell_ms"] == pytest.approx({"Idle": 10.0, "Processing": 7.0, "Deliberating": 3.0})
    assert b["transitions"] == {
        ("Idle", "Processing"): 1,
        ("Processing", "Deliberating"): 1,
        ("Deliberating", "Idle"): 1,
    }
    b1 = an.analyze_node_behavior("n1")  # states arrived in reverse; data ends at 52.5 ms
    assert b1["step_range"] == (0, 10)
    assert b1["task_active_ratio"] == pytest.approx(42.5 / 52.5)
    assert an.analyze_node_behavior("nobody")["n_states"] == 0
    spans = an.control_spans("n0")
    assert [(s.t0_ms, s.t1_ms, s.status) for s in spans][-1] == (15.0, 20.0, "Idle")


def test_control_states_and_table(an: SimulationAnalyzer) -> None:
    states = an.load_control_states()
    assert len(states) == 6 and states[0]["status"] == "Idle"
    table = an.control_table()
    assert table["node_id"].tolist() == ["n0"] * 4 + ["n1"] * 2
    assert table["time_ms"].dtype == np.float64 and table["step"].dtype == np.int64
    assert table["active_task"].tolist() == [None, "t1", "t1", None, "a", None]
    assert table["seq"].dtype == np.uint64


def test_membrane_and_weights(an: SimulationAnalyzer) -> None:
    rec = an.reader.recorded_neurons("n0", "L", L.MEMBRANE)
    tr = an.membrane("n0", "L")
    assert tr.neuron_ids.tolist() == rec.tolist() and tr.data_mv.shape == (STEPS, rec.size)
    want = [[membrane_value(s, int(i)) for i in rec] for s in range(STEPS)]
    assert np.allclose(tr.data_mv, want) and tr.times_ms.tolist() == list(range(STEPS))
    two = an.membrane("n0", "L", neurons=[int(rec[1]), int(rec[3]), 1000])
    assert two.neuron_ids.tolist() == [rec[1], rec[3]] and np.allclose(
        two.data_mv[:, 1], tr.data_mv[:, 3]
    )
    steps, data = an.weights("n0", "w")
    assert steps.tolist() == [0, 5, 10] and np.array_equal(data, np.stack(WEIGHTS))
    _, norms = an.weight_norms("n0", "w")
    assert norms == pytest.approx([np.linalg.norm(w) for w in WEIGHTS])
    image, step = an.weight_image("n0", "w", -1, max_pixels=2)  # 3x4 -> 2x2 block means
    w = WEIGHTS[-1].astype(float)
    blocks = [[w[:2, :2].mean(), w[:2, 2:].mean()], [w[2:, :2].mean(), w[2:, 2:].mean()]]
    assert step == 10 and np.allclose(image, blocks, rtol=1e-12)


def check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 1024, path


def test_plots_write_pngs(an: SimulationAnalyzer, tmp_path: Path) -> None:
    an.plot_spike_raster("n0", "L", save_path=tmp_path / "r.png")
    an.plot_node_raster("n0", save_path=tmp_path / "node.png")
    an.plot_firing_rate_timeline("n0", "L", bin_size_ms=2.0, save_path=tmp_path / "t.png")
    an.plot_isi_histogram("n0", "L", save_path=tmp_path / "isi.png")
    an.plot_membrane_traces("n0", "L", save_path=tmp_path / "m.png")
    an.plot_weights("n0", "w", save_path=tmp_path / "w.png")
    for name in ("r", "node", "t", "isi", "m", "w"):
        check_png(tmp_path / f"{name}.png")


def titles(fig: Figure) -> list[str]:
    return [ax.get_title(loc="left") for ax in fig.axes]


def test_guide_keyword_names_are_aliases(an: SimulationAnalyzer, tmp_path: Path) -> None:
    """``layer_name``/``bin_size_ms`` (the guide's) and ``layer``/``bin_ms`` draw the same."""
    guide = an.plot_firing_rate_timeline(
        node_id="n0", layer_name="L", bin_size_ms=2.0, save_path=tmp_path / "guide.png"
    )
    new = an.plot_firing_rate_timeline(
        node_id="n0", layer="L", bin_ms=2.0, save_path=tmp_path / "new.png"
    )
    positional = an.plot_firing_rate_timeline("n0", "L", 2.0, tmp_path / "positional.png")
    assert titles(guide) == titles(new) == titles(positional)
    assert any("2 ms bins" in t for t in titles(new))
    check_png(tmp_path / "guide.png")
    png = (tmp_path / "guide.png").read_bytes()
    assert (tmp_path / "new.png").read_bytes() == png == (tmp_path / "positional.png").read_bytes()
    default = titles(an.plot_firing_rate_timeline("n0", "L"))
    assert default == titles(an.plot_firing_rate_timeline("n0", "L", bin_size_ms=50.0))
    for plot in (an.plot_spike_raster, an.plot_isi_histogram, an.plot_membrane_traces):
        assert titles(plot("n0", layer_name="L")) == titles(plot("n0", layer="L"))


def test_aliases_given_twice_or_not_at_all(an: SimulationAnalyzer) -> None:
    with pytest.raises(TypeError, match="got both 'layer' and its alias 'layer_name'"):
        an.plot_spike_raster("n0", "L", layer_name="L")
    with pytest.raises(TypeError, match="got both 'layer' and its alias 'layer_name'"):
        an.plot_membrane_traces(node_id="n0", layer="L", layer_name="L")
    with pytest.raises(TypeError, match="got both 'bin_ms' and its alias 'bin_size_ms'"):
        an.plot_firing_rate_timeline("n0", "L", 2.0, bin_size_ms=2.0)
    missing = r"plot_isi_histogram\(\) missing required argument 'layer' \(alias 'layer_name'\)"
    with pytest.raises(TypeError, match=missing):
        an.plot_isi_histogram("n0")
    with pytest.raises(TypeError, match="missing required argument 'layer'"):
        an.plot_firing_rate_timeline(node_id="n0", bin_size_ms=2.0)


def test_density_raster_above_threshold(big: Path, tmp_path: Path) -> None:
    with SimulationAnalyzer(big, chunk_rows=50_000) as an:
        points = an.scan("big", "x", raster_neurons=500)
        dense = an.scan("big", "x", raster_neurons=500, density_threshold=1000)
        assert points.raster is not None and not points.raster.is_density
        assert dense.raster is not None and dense.raster.is_density
        assert dense.raster.density is not None
        assert int(dense.raster.density.sum()) == dense.raster.n_spikes == points.raster.n_spikes
        fig = an.plot_spike_raster("big", "x", 500, tmp_path / "d.png", density_threshold=1000)
        assert fig.axes[0].images  # drawn as an image, not as points
    check_png(tmp_path / "d.png")


def test_summary_report_has_the_numbers(an: SimulationAnalyzer, tmp_path: Path) -> None:
    text = an.generate_summary_report(tmp_path / "report.txt")
    assert (tmp_path / "report.txt").read_text() == text
    stats = an.compute_firing_rate("n0", "L")
    assert f"{stats['total_spikes']:>11,}" in text
    assert f"{stats['mean_rate_hz']:.2f} Hz" in text and "5/10" in text
    assert "task active 50.0%" in text and "Idle -> Processing x1" in text
    assert "n1/spikes/M" in text and "1000.00 Hz" in text
    assert "State:          complete" in text
    summary = an.summary()
    html = R.format_html(summary, {"n0": [tmp_path / "missing.png"]})
    assert html.startswith("<!DOCTYPE html>") and "n0" in html and "<img" not in html


def test_errors_and_close(tmp_path: Path, session: Path) -> None:
    with pytest.raises(NotASessionError):
        SimulationAnalyzer(tmp_path)
    an = SimulationAnalyzer(session)
    an.close()
    an.close()  # idempotent


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    with SimulationRecorder(RecorderConfig(output_dir=tmp_path, session_name="v")) as rec:
        rec.record_spikes("n", "l", [1, 0])
    with h5py.File(tmp_path / "v" / L.DATA_FILE, "a") as f:
        f.attrs[L.ATTR_FORMAT_VERSION] = L.FORMAT_VERSION + 1
    with pytest.raises(UnsupportedFormatError):
        SimulationAnalyzer(tmp_path / "v")


def test_session_of_a_writer_that_never_finished(tmp_path: Path) -> None:
    settings = load_settings(None, session="live", recording_dir=tmp_path)
    recorder = Recorder(settings.core())
    recorder.start()
    try:
        for seq in range(10):
            payload = P.encode(
                P.Kind.SPIKES,
                incarnation=1,
                seq=seq,
                step=seq,
                time_ms=float(seq),
                dt_ms=1.0,
                layer_size=8,
                data=np.array([seq % 8], np.uint32),
            )
            recorder.add("n", "l", P.decode(payload, P.Kind.SPIKES))
        recorder.flush()
        with SimulationAnalyzer(settings.session_dir) as an:
            assert an.reader.metadata()[L.ATTR_STOP_TIME] == ""
            stats = an.compute_firing_rate("n", "l")
            assert stats["total_spikes"] == 10
            assert stats["mean_rate_hz"] == pytest.approx(10 / (8 * 0.010))
            summary = an.summary()
            assert summary["complete"] is False
            assert summary["streams"]["n/spikes/l"]["written"] == 10
        with SessionReader(settings.session_dir) as r:
            assert r.spike_rows("n", "l") == 10
    finally:
        recorder.finish()
    assert math.isfinite(stats["mean_rate_hz"])


def test_restarted_node_counts_each_run(tmp_path: Path) -> None:
    # Two recorder runs on one session, each a new incarnation counting steps from 0.
    for _ in range(2):
        with SimulationRecorder(RecorderConfig(output_dir=tmp_path, session_name="r")) as rec:
            for step in range(10):
                rec.record_spikes("n", "l", np.ones(4, bool), step=step)
    with SimulationAnalyzer(tmp_path / "r") as an:
        assert an.reader.sorting("n", "l") == "none"
        stats = an.compute_firing_rate("n", "l")
        assert stats["total_spikes"] == 80 and stats["duration_s"] == pytest.approx(0.020)
        assert stats["mean_rate_hz"] == pytest.approx(1000.0)  # not 2000: the runs overlap
        scan = an.scan("n", "l", bin_ms=5.0)
        _, rate = scan.rate_per_neuron()
        assert rate == pytest.approx([1000.0, 1000.0])
        assert scan.cv_isi == pytest.approx([0.0] * 4)  # the jump back is no interval
        summary = an.summary()
        assert summary["recorder_runs"] == 2
        assert summary["streams"]["n/spikes/l"]["received"] == 20
        assert summary["nodes"]["n"]["layers"]["l"]["incarnations"] == 2


def test_empty_and_silent_populations(tmp_path: Path) -> None:
    config = RecorderConfig(
        output_dir=tmp_path,
        session_name="e",
        record_membrane=True,
        spike_subsample_rate=0.01,  # round(0.01 * 10) = 0 neurons: frames only
        membrane_subsample_rate=0.01,
    )
    with SimulationRecorder(config) as rec:
        for step in range(10):
            rec.record_spikes("n", "none", np.ones(10, bool), step=step)
            rec.record_membrane("n", "none", np.zeros(10), step=step)
            rec.record_spikes("n", "silent", np.zeros(200, bool), step=step)
    with SimulationAnalyzer(tmp_path / "e") as an:
        none = an.compute_firing_rate("n", "none")
        assert none["n_recorded_neurons"] == 0 and none["total_spikes"] == 0
        # No neuron recorded: no spike, but every message's frame (10 steps of 1 ms).
        assert math.isnan(none["mean_rate_hz"]) and none["duration_s"] == pytest.approx(0.01)
        silent = an.compute_firing_rate("n", "silent")
        assert silent["mean_rate_hz"] == 0.0 and silent["active_fraction"] == 0.0
        per_step = an.get_spike_data("n", "none")[1]
        assert len(per_step) == 10 and all(a.size == 0 for a in per_step)
        for layer in ("none", "silent"):
            an.plot_spike_raster("n", layer, save_path=tmp_path / f"{layer}_r.png")
            an.plot_firing_rate_timeline("n", layer, save_path=tmp_path / f"{layer}_t.png")
            an.plot_isi_histogram("n", layer, save_path=tmp_path / f"{layer}_i.png")
            check_png(tmp_path / f"{layer}_r.png")
        an.plot_membrane_traces("n", "none", save_path=tmp_path / "m.png")
        doc = an.summary()
        assert doc["nodes"]["n"]["layers"]["none"]["mean_rate_hz"] is None
        assert "n/a" in R.format_text(doc)
