"""What a publisher declares never decides what the recorder spends (in-process, real HDF5).

Each test sends valid but hostile input through the pipeline's decode path and checks
that the cost is bounded, every loss is counted under its documented name, and the rest
of the session is recorded exactly.
"""

from __future__ import annotations

import json
import logging
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis.analyzer import SimulationAnalyzer
from analysis.reader import SessionReader
from recorderd import RecorderConfig, SimulationRecorder
from recorderd import wire as P
from recorderd.core.recorder import Recorder
from recorderd.daemon.pipeline import Pipeline
from recorderd.daemon.settings import RecorderSettings
from recorderd.session import layout as L
from tests.helpers import control_message, data_message, feed

MakeSettings = Callable[..., RecorderSettings]
SPIKES = P.Kind.SPIKES


def spikes_key(node: str, layer: str = "l") -> str:
    return P.data_key("brain", node, SPIKES, layer)


def test_a_nul_in_a_control_text_is_bad_control_and_recording_goes_on(
    make_settings: MakeSettings,
) -> None:
    good = json.loads(control_message("n-0", 0))
    msgs: list[tuple[str, bytes | None]] = []
    for field, text in [
        ("module_type", "a\u0000b"),
        ("status", "run\u0007"),
        ("active_task", "x\u009by"),
        ("module_type", "tab\there"),
    ]:
        msgs.append(("brain/n-0/control", json.dumps(good | {field: text}).encode()))
    msgs.append(("brain/n-0/control", control_message("n-0", 1)))
    msgs.append((spikes_key("n-0"), data_message(SPIKES, 0, [1, 2])))
    settings = make_settings()
    rec = feed(settings, msgs)
    assert rec.statistics.rejected == {"bad_control": 4}
    with SessionReader(settings.session_dir) as r:
        assert r.node_info("n-0")["module_type"] == "pfc"
        assert [c["seq"] for c in r.control_states()] == [1]


def test_stream_limits_reject_new_streams_and_keep_recording_the_others(
    make_settings: MakeSettings,
) -> None:
    msgs: list[tuple[str, bytes | None]] = []
    for layer in range(8):  # node n0 opens 8 layers: 4 per node at most
        msgs.append((spikes_key("n0", f"x{layer}"), data_message(SPIKES, 0, [1])))
    for i in range(1, 31):  # 30 more nodes, one layer each: 10 streams in all
        msgs.append((spikes_key(f"n{i}"), data_message(SPIKES, 0, [1])))
    for seq in range(1, 6):  # existing streams keep recording
        msgs.append((spikes_key("n1"), data_message(SPIKES, seq, [seq])))
    settings = make_settings(max_streams=10, max_streams_per_node=4)
    rec = feed(settings, msgs)
    streams = rec.statistics.streams
    assert len(streams) == 10
    # 4 of n0's layers over its own cap, then 24 nodes over the total.
    assert rec.statistics.rejected["stream_limit"] == 4 + 24
    assert streams["n1/spikes/l"].written == 6
    with SessionReader(settings.session_dir) as r:
        assert r.spikes("n1", "l").neuron_ids.tolist() == [1, 1, 2, 3, 4, 5]
        assert r.layers("n0") == ["x0", "x1", "x2", "x3"]


def test_a_huge_layer_costs_what_is_recorded_not_what_is_declared(
    make_settings: MakeSettings,
) -> None:
    size = P.MAX_ELEMENTS  # 2**26 neurons, allowed by the protocol
    settings = make_settings(record_membrane=True)
    recorder = Recorder(settings.core())
    recorder.start()
    pipe = Pipeline(recorder, prefix="brain", capacity=1000, flush_interval=1.0)
    tracemalloc.start()
    try:
        for i in range(14):  # 14 streams of 76-byte messages reached 4 GB before
            msg = data_message(SPIKES, 0, [1, 5, 7], layer_size=size)
            pipe.handle(spikes_key(f"h{i}"), msg, 0.0)
        recorder.flush()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"{peak / 2**20:.0f} MiB for 14 messages of 76 bytes"
    recorder.finish()
    assert recorder.statistics.rejected == {}
    with h5py.File(settings.session_dir / L.DATA_FILE, "r") as f:
        group = f[f"spikes/{L.population('h0', 'l')}"]
        assert L.RECORDED_NEURONS not in group  # every neuron: no list
    assert (settings.session_dir / L.DATA_FILE).stat().st_size < 2 << 20
    with SessionReader(settings.session_dir) as r:
        assert r.recorded_count("h0", "l") == size
        assert r.spikes("h3", "l").neuron_ids.tolist() == [1, 5, 7]


def test_streams_over_the_claim_cap_are_refused(make_settings: MakeSettings) -> None:
    """A subsampled layer's list, a membrane row, a weight matrix: at most max_stream_neurons."""
    mem, w = P.Kind.MEMBRANE, P.Kind.WEIGHTS

    def key(kind: P.Kind, node: str) -> str:
        return P.data_key("brain", node, kind, "w" if kind is w else "l")

    settings = make_settings(
        spike_subsample_rate=0.5, record_membrane=True, record_weights=True, max_stream_neurons=1000
    )
    rec = feed(
        settings,
        [
            (spikes_key("a"), data_message(SPIKES, 0, [1], layer_size=1001)),
            (spikes_key("b"), data_message(SPIKES, 0, [1], layer_size=1000)),
            (key(mem, "a"), data_message(mem, 0, np.zeros(1001), layer_size=1001)),
            (key(mem, "b"), data_message(mem, 0, np.zeros(1000), layer_size=1000)),
            (key(w, "a"), data_message(w, 0, np.zeros((40, 26)), layer_size=26)),
            (key(w, "b"), data_message(w, 0, np.zeros((40, 25)), layer_size=25)),
        ],
    )
    assert rec.statistics.rejected == {"stream_limit": 3}
    with SessionReader(settings.session_dir) as r:
        assert r.recorded_count("b", "l") == 500 and r.layers("a") == []
        assert r.layers("b", L.MEMBRANE) == ["l"] and r.layers("b", L.WEIGHTS) == ["w"]


def test_incarnation_churn_is_counted_with_a_bounded_list(make_settings: MakeSettings) -> None:
    n = 3000
    msgs: list[tuple[str, bytes | None]] = [
        (spikes_key("churn"), data_message(SPIKES, 0, [1], incarnation=i + 1)) for i in range(n)
    ]
    settings = make_settings()
    rec = feed(settings, msgs)
    st = rec.statistics.streams["churn/spikes/l"]
    assert (st.written, st.restarts, st.missing) == (n, n - 1, 0)
    with SessionReader(settings.session_dir) as r:
        info = r.node_info("churn")
        assert len(info[L.ATTR_INCARNATIONS]) == L.MAX_NODE_INCARNATIONS
        assert info[L.ATTR_INCARNATIONS_TOTAL] == n


def test_per_message_log_lines_are_bounded(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    msgs: list[tuple[str, bytes | None]] = []
    for seq in range(0, 4000, 2):  # a gap before every message, and dt changing each time
        msgs.append((spikes_key("g"), data_message(SPIKES, seq, [1], dt_ms=1.0 + seq % 4)))
    with caplog.at_level(logging.INFO, logger="recorderd"):
        rec = feed(make_settings(), msgs)
    assert rec.statistics.streams["g/spikes/l"].missing == 1999
    lines = [r for r in caplog.records if r.name.startswith("recorderd")]
    assert len(lines) < 60, "\n".join(r.getMessage() for r in lines[:80])
    assert any("more sequence gap event(s)" in r.getMessage() for r in lines)


def test_poisoned_sequence_numbers_do_not_block_the_real_stream(
    make_settings: MakeSettings,
) -> None:
    real = [(spikes_key("v"), data_message(SPIKES, s, [s % 50])) for s in range(40)]
    poison = (spikes_key("v"), data_message(SPIKES, 2**64 - 2, [1], step=20))
    settings = make_settings()
    rec = feed(settings, [*real[:20], poison, *real[20:]])
    st = rec.statistics.streams["v/spikes/l"]
    assert (st.written, st.duplicates, st.missing) == (40, 0, 0)
    assert rec.statistics.rejected == {"implausible_seq": 1}
    # Nothing of the forged message reached the file, so the next run is not poisoned.
    more = [(spikes_key("v"), data_message(SPIKES, s, [1])) for s in range(40, 50)]
    rec2 = feed(settings, more)
    assert (rec2.statistics.streams["v/spikes/l"].written, rec2.statistics.rejected) == (10, {})
    with SessionReader(settings.session_dir) as r:
        assert r.frames("v", "l").seq.tolist() == list(range(50))


def test_a_rejected_message_is_counted_once_not_also_missing(make_settings: MakeSettings) -> None:
    key = spikes_key("r")
    bad = data_message(SPIKES, 1, [5, 3])  # indices not increasing: bad_index
    rec = feed(
        make_settings(),
        [(key, data_message(SPIKES, 0, [1])), (key, bad), (key, data_message(SPIKES, 2, [1]))],
    )
    st = rec.statistics.streams["r/spikes/l"]
    assert (st.received, st.rejected, st.missing) == (2, 1, 0)


def test_a_late_message_of_an_older_incarnation_is_stale(make_settings: MakeSettings) -> None:
    key = spikes_key("s")
    old = [(key, data_message(SPIKES, q, [1], incarnation=7)) for q in range(3)]
    new = [(key, data_message(SPIKES, q, [2], incarnation=8)) for q in range(3)]
    late = [(key, data_message(SPIKES, q, [3], incarnation=7)) for q in (3, 4, 5)]
    rec = feed(make_settings(), old + new + late + new[:0])
    st = rec.statistics.streams["s/spikes/l"]
    # Before: 3 unseen messages counted as 13 missing and a second restart.
    assert (st.written, st.restarts, st.missing, st.stale) == (6, 1, 0, 3)


def test_empty_layers_and_empty_selections_both_keep_their_frames(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(spike_subsample_rate=0.01)  # round(0.01 * 10) = 0 neurons
    msgs: list[tuple[str, bytes | None]] = []
    for seq in range(5):
        msgs.append((spikes_key("e", "zero"), data_message(SPIKES, seq, [], layer_size=0)))
        msgs.append((spikes_key("e", "none"), data_message(SPIKES, seq, [seq], layer_size=10)))
    rec = feed(settings, msgs)
    for layer in ("zero", "none"):
        st = rec.statistics.streams[f"e/spikes/{layer}"]
        assert (st.received, st.written, st.spikes_written) == (5, 5, 0)
    with SessionReader(settings.session_dir) as r:
        for layer in ("zero", "none"):
            assert r.frames("e", layer).steps.tolist() == [0, 1, 2, 3, 4]
            assert r.recorded_count("e", layer) == 0


def test_a_zenoh_delete_is_counted_under_its_own_reason(make_settings: MakeSettings) -> None:
    rec = feed(make_settings(), [(spikes_key("d"), None), ("brain/d/control", None)])
    assert rec.statistics.rejected == {"delete_sample": 2}


def test_the_analysis_uses_each_incarnations_own_dt(make_settings: MakeSettings) -> None:
    key = spikes_key("dt")
    first = [(key, data_message(SPIKES, s, [1], incarnation=1, dt_ms=1.0)) for s in range(100)]
    second = [(key, data_message(SPIKES, s, [1], incarnation=2, dt_ms=0.5)) for s in range(100)]
    settings = make_settings()
    feed(settings, first + second)
    with SimulationAnalyzer(settings.session_dir) as an:
        rate = an.compute_firing_rate("dt", "l")
    # 100 steps of 1 ms, then 100 of 0.5 ms: 150 ms recorded, not 200.
    assert rate["duration_s"] == pytest.approx(0.150)


def test_a_version_2_session_is_appended_to_and_upgraded(make_settings: MakeSettings) -> None:
    settings = make_settings()
    feed(settings, [(spikes_key("u"), data_message(SPIKES, 0, [1]))])
    path = settings.session_dir / L.DATA_FILE
    with h5py.File(path, "a", libver=("v110", "v114")) as f:  # what version 2 wrote
        f.attrs[L.ATTR_FORMAT_VERSION] = 2
        f[f"spikes/{L.population('u', 'l')}"].create_dataset(
            L.RECORDED_NEURONS, data=np.arange(100, dtype=np.uint32)
        )
    feed(settings, [(spikes_key("u"), data_message(SPIKES, 1, [2]))])
    with SessionReader(settings.session_dir) as r:
        assert r.metadata()  # opens
        assert r.spikes("u", "l").neuron_ids.tolist() == [1, 2]
        assert r.recorded_count("u", "l") == 100
    with h5py.File(path, "r") as f:
        assert int(f.attrs[L.ATTR_FORMAT_VERSION]) == L.FORMAT_VERSION


def test_a_huge_sparse_layer_is_analysed_in_what_its_spikes_cost(tmp_path: Path) -> None:
    """6 spikes in a layer of 2**26 neurons: the analysis follows the spikes, not the size."""
    config = RecorderConfig(output_dir=tmp_path, session_name="huge")
    with SimulationRecorder(config) as rec:
        for step, ids in enumerate([[5], [], [5, 70_000_000 % (1 << 26)], [9, 60], [5]]):
            rec.record_spikes("big", "l", np.asarray(ids), layer_size=1 << 26, step=step)
    tracemalloc.start()
    try:
        with SimulationAnalyzer(tmp_path / "huge") as an:
            rate = an.compute_firing_rate("big", "l")
            summary = an.summary()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB"
    assert rate["sparse"] and rate["n_recorded_neurons"] == 1 << 26
    assert rate["neuron_ids"].tolist() == [5, 9, 60, 70_000_000 % (1 << 26)]
    assert rate["spike_counts"].tolist() == [3, 1, 1, 1] and rate["total_spikes"] == 6
    assert rate["active_fraction"] == pytest.approx(4 / (1 << 26))
    assert rate["mean_rate_hz"] == pytest.approx(6 / (1 << 26) / 0.005)
    assert summary["nodes"]["big"]["layers"]["l"]["total_spikes"] == 6


def test_streams_waiting_for_creation_keep_their_rows_across_flushes(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of new streams can leave a busy stream uncreated for several flushes."""
    from recorderd.session import writer as W

    settings = make_settings()
    recorder = Recorder(settings.core())
    recorder.start()
    pipe = Pipeline(recorder, prefix="brain", capacity=100_000, flush_interval=1.0)
    monkeypatch.setattr(W, "STREAM_CREATION_BUDGET_S", 0.0)  # no time to create streams
    n = 2 * L.FRAME_CHUNK + 5  # more than a whole chunk of frames while uncreated
    for seq in range(n):
        pipe.handle(spikes_key("busy"), data_message(SPIKES, seq, [seq % 90]), 0.0)
        if seq % 1000 == 0:
            recorder.flush()
    recorder.flush()
    assert recorder.writer.streams.pending  # still waiting
    recorder.finish()  # creates it and writes everything
    with SessionReader(settings.session_dir) as r:
        assert r.frames("busy", "l").seq.tolist() == list(range(n))
        assert r.spikes("busy", "l").neuron_ids.tolist() == [s % 90 for s in range(n)]


def test_a_heavy_new_stream_is_created_before_its_rows_outgrow_the_bound(
    make_settings: MakeSettings,
) -> None:
    """A new stream's rows wait in memory until its group exists; a heavy one is created
    as soon as they pass WAITING_BYTES_MAX, not at the next flush (no flush here)."""
    from recorderd.session import writer as W

    settings = make_settings()
    recorder = Recorder(settings.core())
    recorder.start()
    pipe = Pipeline(recorder, prefix="brain", capacity=100_000, flush_interval=3600.0)
    ids = np.arange(0, 100_000, 2)  # 50,000 spikes: 600 kB of rows per message
    waiting = []
    for seq in range(120):  # 72 MB of rows, more than twice the bound
        pipe.handle(spikes_key("heavy"), data_message(SPIKES, seq, ids, layer_size=100_000), 0.0)
        recorder.write_buffered()
        waiting.append(recorder.writer._tails.waiting_bytes)
    assert not recorder.writer.streams.pending  # created without a flush
    assert max(waiting) <= W.WAITING_BYTES_MAX + 2 * ids.size * 12
    assert waiting[-1] == 0
    recorder.finish()
    with SessionReader(settings.session_dir) as r:
        assert r.spike_rows("heavy", "l") == 120 * ids.size
