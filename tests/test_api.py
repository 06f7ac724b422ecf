"""The recording guide's Python snippets, run against the in-process API (import paths aside)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from analysis.reader import SessionReader
from brain_nodes.modules import BrainModule
from recorderd import RecorderConfig, SimulationRecorder, get_global_recorder, set_global_recorder
from recorderd.session import layout as L


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the guide's snippets use relative paths


def run_module(recorder: SimulationRecorder, node_id: str, module: str, steps: int) -> int:
    """A small simulation loop as in the guide's ZenohBrainNode; returns spikes produced."""
    sim = BrainModule(module, seed=1)
    total = 0
    for step in range(steps):
        for i, (layer, fired) in enumerate(zip(sim.layer_names, sim.step(), strict=True)):
            dense = np.zeros(sim.layer_sizes[i], dtype=bool)
            dense[fired] = True
            recorder.record_spikes(node_id, layer, dense)  # the guide passes per-neuron arrays
            recorder.record_membrane(node_id, layer, sim.membrane(i))
            total += fired.size
        status, task, meta = sim.control()
        recorder.record_control_state(
            node_id=node_id,
            module_type=module,
            status=status,
            active_task=task,
            step_count=step + 1,
            metadata=meta,
        )
    return total


def test_guide_python_api_snippet() -> None:
    # "Usage from Python API"
    config = RecorderConfig(
        enable_recording=True,
        record_spikes=True,
        record_membrane=True,
        record_weights=False,
        output_dir="./my_recordings",
        session_name="experiment_xor_task",
        spike_subsample_rate=1.0,  # Record all spikes
        membrane_subsample_rate=0.1,  # Membrane potential is sampled at 10%
        max_recording_duration=300.0,  # Record up to 5 minutes
    )
    recorder = SimulationRecorder(config)
    set_global_recorder(recorder)
    assert get_global_recorder() is recorder
    produced = run_module(get_global_recorder(), "pfc-0", "pfc", 200)  # type: ignore[arg-type]
    recorder.close()
    recorder.close()  # idempotent
    set_global_recorder(None)

    session = Path("my_recordings/experiment_xor_task")
    assert {p.name for p in session.iterdir()} >= {L.DATA_FILE, L.CONTROL_FILE, L.STATISTICS_FILE}
    with SessionReader(session) as r:
        assert r.layers("pfc-0") == ["input", "hidden", "output"]  # as declared
        assert (
            sum(r.spikes("pfc-0", layer).neuron_ids.size for layer in r.layers("pfc-0")) == produced
        )
        steps, v = r.membrane("pfc-0", "hidden")
        assert steps.tolist() == list(range(200)) and v.shape == (200, 40)  # 10% of 400
        assert len(r.control_states()) == 200
    assert recorder.get_statistics()["total_spikes_recorded"] == produced


def test_guide_manual_flush_and_statistics_snippet() -> None:
    # "Manual flush of batch records" with the "Reduce storage" settings
    config = RecorderConfig(
        enable_recording=True,
        record_spikes=True,
        record_membrane=False,
        spike_subsample_rate=0.1,
        max_recording_duration=3600.0,
        buffer_size=2000,
        compression="gzip",
        compression_level=6,
        auto_flush=False,
        session_name="long_run",
    )
    recorder = SimulationRecorder(config)
    rng = np.random.default_rng(0)
    seen = []
    for step in range(1000):
        recorder.record_spikes("visual-0", "v1", rng.random(500) < 0.05)
        if step % 100 == 0:
            recorder.flush_all()
            stats = recorder.get_statistics()
            seen.append(stats["total_spikes_recorded"])
            # flushed data is on disk and readable while recording goes on
            with SessionReader("sim_recordings/long_run") as r:
                assert r.spikes("visual-0", "v1").neuron_ids.size == stats["total_spikes_recorded"]
    recorder.close()
    assert seen == sorted(seen) and seen[-1] > 0
    with SessionReader("sim_recordings/long_run") as r:
        assert r.recorded_neurons("visual-0", "v1").size == 50
        assert r.stream_attrs("visual-0", "v1")["subsample_rate"] == 0.1


def test_guide_context_manager_and_try_finally() -> None:
    with SimulationRecorder(RecorderConfig(session_name="ctx")) as recorder:
        recorder.record_spikes("n", "l", [0, 1, 0, 1])
    recorder = SimulationRecorder(RecorderConfig(session_name="tf"))
    try:
        recorder.record_spikes("n", "l", np.array([3, 1]), layer_size=10)  # indices form
    finally:
        recorder.close()
    with SessionReader("sim_recordings/ctx") as r:
        assert r.spikes("n", "l").neuron_ids.tolist() == [1, 3]
        assert r.metadata()["stop_time_utc"] != ""
    with SessionReader("sim_recordings/tf") as r:
        assert r.spikes("n", "l").neuron_ids.tolist() == [1, 3]


def test_disabled_recording_is_a_no_op() -> None:
    recorder = SimulationRecorder(RecorderConfig(enable_recording=False))
    recorder.record_spikes("n", "l", [1, 0])
    recorder.record_control_state(node_id="n", module_type="pfc", status="Idle")
    recorder.flush_all()
    assert recorder.get_statistics()["total_spikes_recorded"] == 0
    recorder.close()
    assert not Path("sim_recordings").exists()


def test_max_recording_duration_stops_cleanly() -> None:
    recorder = SimulationRecorder(RecorderConfig(session_name="short", max_recording_duration=0.3))
    recorder.record_spikes("n", "l", [1, 1])
    time.sleep(0.4)
    recorder.record_spikes("n", "l", [1, 1])  # past the limit: not recorded
    stats = recorder.get_statistics()
    assert stats["recording"] is False and stats["stopped_reason"] == "max_recording_duration"
    recorder.close()
    with SessionReader("sim_recordings/short") as r:
        assert r.spikes("n", "l").neuron_ids.size == 2
        assert r.metadata()["stop_time_utc"] != ""


@pytest.mark.parametrize(
    "bad",
    [
        {"spike_subsample_rate": 1.5},
        {"membrane_subsample_rate": -0.1},
        {"compression": "zip"},
        {"session_name": "a/b"},
        {"session_name": "../escape"},
        {"compression_level": 12},
        {"unknown_field": 1},
    ],
)
def test_bad_config_values_raise_value_error(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError) as info:
        RecorderConfig(**bad)  # type: ignore[arg-type]
    assert next(iter(bad)) in str(info.value)


def test_caller_mistakes_raise_value_error() -> None:
    with SimulationRecorder(
        RecorderConfig(session_name="mistakes", record_weights=True)
    ) as recorder:
        with pytest.raises(ValueError):
            recorder.record_spikes("../x", "l", [1])
        with pytest.raises(ValueError):
            recorder.record_spikes("n", "l", [12], layer_size=10)
        with pytest.raises(ValueError):
            recorder.record_weights("n", "w", np.zeros(3))
        recorder.record_spikes("n", "l", [1, 0])
    assert recorder.get_statistics()["total_spikes_recorded"] == 1
