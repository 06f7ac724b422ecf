"""Pure simulation tests of brain_nodes: determinism, firing rates, control story."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from brain_nodes.lif import LIFLayer, LIFParams, Network
from brain_nodes.modules import SPECS, BrainModule, ModuleType, simulate
from brain_nodes.node import control_due
from brain_nodes.runtime import Pacer, StopFlag

MODULE_TYPES = [t.value for t in ModuleType]


@pytest.mark.parametrize("module_type", MODULE_TYPES)
def test_same_seed_gives_identical_spikes(module_type: str) -> None:
    a = simulate(module_type, 300, seed=7)
    b = simulate(module_type, 300, seed=7)
    assert a.keys() == b.keys()
    for name in a:
        assert all(np.array_equal(x, y) for x, y in zip(a[name], b[name], strict=True))


@pytest.mark.parametrize("module_type", MODULE_TYPES)
def test_different_seed_gives_different_spikes(module_type: str) -> None:
    a = simulate(module_type, 50, seed=1)
    b = simulate(module_type, 50, seed=2)
    for name in a:
        assert not all(np.array_equal(x, y) for x, y in zip(a[name], b[name], strict=True))


def test_same_seed_other_module_type_differs() -> None:
    sizes = [100, 100, 100]
    a = simulate("pfc", 20, seed=0, layer_sizes=sizes)["input"]
    b = simulate("visual", 20, seed=0, layer_sizes=sizes)["retina"]
    assert not all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("module_type", MODULE_TYPES)
def test_spike_indices_sorted_uint32_in_range(module_type: str) -> None:
    module = BrainModule(module_type, seed=3)
    for _ in range(200):
        for spikes, size in zip(module.step(), module.layer_sizes, strict=True):
            assert spikes.dtype == np.uint32
            assert spikes.ndim == 1
            if spikes.size:
                assert int(spikes[-1]) < size
                assert bool(np.all(np.diff(spikes.astype(np.int64)) > 0))


@pytest.mark.parametrize("module_type", MODULE_TYPES)
def test_firing_fraction_is_plausible(module_type: str) -> None:
    module = BrainModule(module_type, seed=11)
    steps = 2000
    counts = np.zeros(len(module.layer_sizes))
    for _ in range(steps):
        counts += [s.size for s in module.step()]
    fractions = counts / steps / np.array(module.layer_sizes)
    # Tens of Hz at dt = 1 ms: 2-10 % of neurons per step in every layer.
    assert np.all(fractions > 0.02), fractions
    assert np.all(fractions < 0.10), fractions


def test_firing_fraction_independent_of_layer_sizes() -> None:
    module = BrainModule("pfc", seed=0, layer_sizes=[50, 1200, 30])
    counts = np.zeros(3)
    for _ in range(1000):
        counts += [s.size for s in module.step()]
    fractions = counts / 1000 / np.array(module.layer_sizes)
    assert np.all((fractions > 0.02) & (fractions < 0.10)), fractions


def test_membrane_and_weights_exposed() -> None:
    module = BrainModule("pfc", seed=0, layer_sizes=[30, 40, 20])
    module.step()
    v = module.membrane(1)
    assert v.dtype == np.float32 and v.shape == (40,)
    assert bool(np.all((v >= -80.0) & (v < -50.0)))  # reset to threshold, in mV
    assert list(module.weights) == ["w_input_hidden", "w_hidden_output"]
    assert module.weights["w_input_hidden"].shape == (30, 40)
    assert module.weights["w_input_hidden"].dtype == np.float32


def test_default_layers() -> None:
    assert SPECS[ModuleType.PFC].layer_names == ("input", "hidden", "output")
    assert SPECS[ModuleType.VISUAL].layer_names == ("retina", "v1", "output")
    assert SPECS[ModuleType.LANG_MAIN].layer_names == ("embedding", "transformer_layer_0", "output")
    assert BrainModule("visual").layer_sizes == SPECS[ModuleType.VISUAL].layer_sizes


def test_bad_layer_sizes_rejected() -> None:
    with pytest.raises(ValueError, match="3 layers"):
        BrainModule("pfc", layer_sizes=[10, 10])
    with pytest.raises(ValueError, match="outside"):
        BrainModule("pfc", layer_sizes=[10, 0, 10])
    with pytest.raises(ValueError):
        BrainModule("motor")


def test_lif_layer_refractory_and_reset() -> None:
    rng = np.random.default_rng(0)
    layer = LIFLayer("x", 4, LIFParams(refractory_ms=2.0), 1.0, rng)
    kick = np.full(4, 100.0, dtype=np.float32)
    assert layer.step(kick).tolist() == [0, 1, 2, 3]
    assert bool(np.all(layer.v == -70.0))
    # Two refractory steps: no spike however strong the input.
    assert layer.step(kick).size == 0
    assert layer.step(kick).size == 0
    assert layer.step(kick).size == 4


def test_network_drive_changes_input_rate() -> None:
    rates = []
    for drive in (0.5, 1.5):
        net = Network(["a", "b"], [200, 200], seed=5)
        net.drive = drive
        rates.append(sum(net.step()[0].size for _ in range(300)))
    assert rates[1] > rates[0] * 1.5


def _story(module_type: str, steps: int, seed: int = 0) -> list[tuple[int, str, str | None]]:
    module = BrainModule(module_type, seed=seed, layer_sizes=[20, 20, 20])
    changes: list[tuple[int, str, str | None]] = []
    for step in range(steps):
        module.step()
        snap = module.control()
        if not changes or changes[-1][1:] != (snap.status, snap.active_task):
            changes.append((step, snap.status, snap.active_task))
    return changes


@pytest.mark.parametrize(
    ("module_type", "task", "cycle"),
    [
        ("pfc", "working_memory_task", ["Idle", "Processing", "Deliberating"]),
        ("visual", "object_recognition", ["Idle", "Processing"]),
        ("lang-main", "sentence_generation", ["Idle", "Processing", "Generating"]),
    ],
)
def test_control_story_transitions(module_type: str, task: str, cycle: list[str]) -> None:
    changes = _story(module_type, 3000)
    statuses = [status for _, status, _ in changes]
    assert statuses[0] == "Idle" and changes[0][0] == 0
    # The statuses repeat the module's cycle, phase after phase.
    assert statuses == (cycle * len(statuses))[: len(statuses)]
    assert len(statuses) >= 2 * len(cycle)
    for _, status, active in changes:
        assert active == (None if status == "Idle" else task)
    # Phases last a few hundred steps, the first idle one at least 50.
    starts = [step for step, status, _ in changes if status == "Idle"] + [3000]
    assert changes[1][0] >= 50
    assert all(b - a >= 250 for a, b in itertools.pairwise(starts[1:]))


def test_control_story_is_deterministic_and_seed_dependent() -> None:
    assert _story("pfc", 2000, seed=4) == _story("pfc", 2000, seed=4)
    assert _story("pfc", 2000, seed=4) != _story("pfc", 2000, seed=5)


def test_metadata_per_module() -> None:
    pfc = BrainModule("pfc", seed=0)
    sizes_seen = set()
    for _ in range(1500):
        pfc.step()
        meta = pfc.control().metadata
        assert isinstance(meta["pfc_entropy"], float)
        assert 0.0 <= meta["pfc_entropy"] <= np.log2(pfc.layer_sizes[-1]) + 1e-9
        assert isinstance(meta["working_memory_size"], int)
        if pfc.active_task is None:
            assert meta["working_memory_size"] == 0
        sizes_seen.add(meta["working_memory_size"])
    assert max(sizes_seen) >= 3

    visual = BrainModule("visual", seed=0)
    for _ in range(1500):
        visual.step()
    meta = visual.control().metadata
    assert 10.0 < meta["mean_rate_hz"] < 100.0
    assert meta["objects_recognized"] > 0

    lang = BrainModule("lang-main", seed=0)
    tokens = []
    for _ in range(1500):
        lang.step()
        tokens.append(lang.control().metadata["tokens_generated"])
    assert tokens[-1] > 0
    assert tokens == sorted(tokens)


def test_control_due() -> None:
    assert control_due(0, 100, changed=False)
    assert control_due(200, 100, changed=False)
    assert control_due(57, 100, changed=True)
    assert not control_due(57, 100, changed=False)


def test_pacer_real_time_and_unpaced() -> None:
    pacer = Pacer(dt_ms=1.0, speed=2.0, stop=StopFlag())
    t0 = time.monotonic()
    for _ in range(100):
        pacer.wait()
    assert 0.05 <= time.monotonic() - t0 < 2.0
    unpaced = Pacer(dt_ms=1.0, speed=0.0, stop=StopFlag())
    t0 = time.monotonic()
    for _ in range(10_000):
        unpaced.wait()
    assert time.monotonic() - t0 < 0.5


def test_pacer_returns_early_on_stop() -> None:
    stop = StopFlag()
    pacer = Pacer(dt_ms=1000.0, speed=0.001, stop=stop)  # 1000 s per step
    stop.set()
    t0 = time.monotonic()
    pacer.wait()
    assert time.monotonic() - t0 < 0.5
