"""Brain module types: layer layout, task story and control-state metadata per type."""

from __future__ import annotations

import enum
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from brain_nodes.lif import F32, U32, Network, NetworkParams
from brain_nodes.story import ActivityTracker, PhaseSchedule
from recorderd.wire import check_name

#: Largest layer accepted: dense float32 weights of two such layers take 400 MB.
MAX_LAYER_SIZE = 10_000

IDLE = "Idle"
PROCESSING = "Processing"


class ModuleType(enum.StrEnum):
    """The module types a node can simulate."""

    PFC = "pfc"
    VISUAL = "visual"
    LANG_MAIN = "lang-main"


@dataclass(frozen=True, slots=True)
class Stage:
    """Part of a task phase: its status, where it starts (fraction of the phase) and its drive."""

    status: str
    starts_at: float
    drive: float


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """Static description of a module type."""

    module_type: ModuleType
    layer_names: tuple[str, ...]
    layer_sizes: tuple[int, ...]
    task: str
    stages: tuple[Stage, ...]
    idle_drive: float = 0.7


SPECS: dict[ModuleType, ModuleSpec] = {
    ModuleType.PFC: ModuleSpec(
        ModuleType.PFC,
        ("input", "hidden", "output"),
        (300, 400, 200),
        "working_memory_task",
        (Stage(PROCESSING, 0.0, 1.0), Stage("Deliberating", 0.4, 1.15)),
    ),
    ModuleType.VISUAL: ModuleSpec(
        ModuleType.VISUAL,
        ("retina", "v1", "output"),
        (400, 500, 200),
        "object_recognition",
        (Stage(PROCESSING, 0.0, 1.2),),
    ),
    ModuleType.LANG_MAIN: ModuleSpec(
        ModuleType.LANG_MAIN,
        ("embedding", "transformer_layer_0", "output"),
        (256, 512, 256),
        "sentence_generation",
        (Stage(PROCESSING, 0.0, 1.0), Stage("Generating", 0.3, 1.2)),
    ),
}

#: Steps between working-memory items loaded (pfc), objects recognised (visual), tokens (lang-main).
WM_LOAD_STEPS = 50
OBJECT_STEPS = 100
TOKEN_STEPS = 20


class ControlSnapshot(NamedTuple):
    """What a module reports after a step: status, active task and metadata."""

    status: str
    active_task: str | None
    metadata: dict[str, Any]


def resolve_layer_sizes(spec: ModuleSpec, layer_sizes: Sequence[int] | None) -> tuple[int, ...]:
    """The module's layer sizes, with ``layer_sizes`` overriding the defaults if given."""
    if layer_sizes is None:
        return spec.layer_sizes
    sizes = tuple(int(n) for n in layer_sizes)
    if len(sizes) != len(spec.layer_names):
        names = ",".join(spec.layer_names)
        n = len(spec.layer_names)
        raise ValueError(f"{spec.module_type} has {n} layers ({names}), got {len(sizes)} sizes")
    for name, n in zip(spec.layer_names, sizes, strict=True):
        if not 1 <= n <= MAX_LAYER_SIZE:
            raise ValueError(f"layer {name!r} size {n} outside 1..{MAX_LAYER_SIZE}")
    return sizes


class BrainModule:
    """A module type's network plus its task story; ``step()`` gives the spikes of one dt.

    Two instances built with the same type, seed, sizes and dt produce identical spikes.
    """

    def __init__(
        self,
        module_type: str,
        *,
        seed: int = 0,
        layer_sizes: Sequence[int] | None = None,
        dt_ms: float = 1.0,
        params: NetworkParams | None = None,
    ) -> None:
        self.spec = SPECS[ModuleType(module_type)]
        self.module_type = self.spec.module_type
        self.seed = seed
        for name in self.spec.layer_names:
            check_name(name, "layer name")
        sizes = resolve_layer_sizes(self.spec, layer_sizes)
        # Mix in the type so e.g. pfc and visual nodes with seed 0 do not share random streams.
        root = np.random.SeedSequence([seed, zlib.crc32(self.module_type.value.encode())])
        net_seed, story_seed = root.spawn(2)
        self.network = Network(
            self.spec.layer_names, sizes, seed=net_seed, dt_ms=dt_ms, params=params
        )
        self._schedule = PhaseSchedule(np.random.default_rng(story_seed))
        self._activity = ActivityTracker(sizes, dt_ms)
        self.steps_done = 0
        self._status = IDLE
        self._task: str | None = None
        self._drive = self.spec.idle_drive
        self._offset = 0
        self._capacity = 0
        self._counter = 0  # tokens generated or objects recognised so far

    @property
    def dt_ms(self) -> float:
        """Simulation step (ms)."""
        return self.network.dt_ms

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Layer names, input first."""
        return self.network.layer_names

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Neurons per layer, input first."""
        return self.network.layer_sizes

    @property
    def weights(self) -> dict[str, F32]:
        """Weight matrices by name (``w_<pre>_<post>``), each float32 of shape (n_pre, n_post)."""
        return self.network.weights

    def membrane(self, layer: int) -> F32:
        """Membrane potentials (mV, float32) of layer number ``layer`` after the last step."""
        return self.network.membrane(layer)

    @property
    def status(self) -> str:
        """Status during the last step ("Idle" before the first)."""
        return self._status

    @property
    def active_task(self) -> str | None:
        """Task active during the last step, or None."""
        return self._task

    def _enter_step(self, step: int) -> None:
        """Set status, task and drive for ``step`` from the phase schedule."""
        phase = self._schedule.at(step)
        self._offset = phase.offset(step)
        self._capacity = phase.capacity
        if not phase.active:
            self._status, self._task, self._drive = IDLE, None, self.spec.idle_drive
            return
        stage = self.spec.stages[0]
        for candidate in self.spec.stages:
            if self._offset >= candidate.starts_at * phase.length:
                stage = candidate
        self._status, self._task, self._drive = stage.status, self.spec.task, stage.drive

    def step(self) -> list[U32]:
        """Simulate one dt; return each layer's sorted uint32 spike indices (input layer first)."""
        self._enter_step(self.steps_done)
        self.network.drive = self._drive
        spikes = self.network.step()
        self._activity.update(spikes)
        self._count_events()
        self.steps_done += 1
        return spikes

    def _count_events(self) -> None:
        """Advance the type-specific counters at the end of a step."""
        if self.module_type is ModuleType.VISUAL and self._task is not None:
            every = OBJECT_STEPS
        elif self.module_type is ModuleType.LANG_MAIN and self._status == "Generating":
            every = TOKEN_STEPS
        else:
            return
        if (self._offset + 1) % every == 0:
            self._counter += 1

    def control(self) -> ControlSnapshot:
        """Status, active task and metadata after the last step."""
        # The firing threshold lets the analysis mark it on membrane traces.
        meta: dict[str, Any] = {"drive": self._drive, "v_th_mv": self.network.params.lif.v_th_mv}
        if self.module_type is ModuleType.PFC:
            loaded = 0
            if self._task is not None:
                loaded = min(self._capacity, 1 + self._offset // WM_LOAD_STEPS)
            meta["pfc_entropy"] = round(self._activity.output_entropy_bits, 6)
            meta["working_memory_size"] = loaded
        elif self.module_type is ModuleType.VISUAL:
            meta["mean_rate_hz"] = round(self._activity.mean_rate_hz, 6)
            meta["objects_recognized"] = self._counter
        else:
            meta["mean_rate_hz"] = round(self._activity.mean_rate_hz, 6)
            meta["tokens_generated"] = self._counter
        return ControlSnapshot(self._status, self._task, meta)


def simulate(
    module_type: str,
    steps: int,
    *,
    seed: int = 0,
    layer_sizes: Sequence[int] | None = None,
    dt_ms: float = 1.0,
) -> dict[str, list[U32]]:
    """Re-run a module in-process: per layer name, the spike indices of steps 0..steps-1."""
    module = BrainModule(module_type, seed=seed, layer_sizes=layer_sizes, dt_ms=dt_ms)
    out: dict[str, list[U32]] = {name: [] for name in module.layer_names}
    for _ in range(steps):
        for name, spikes in zip(module.layer_names, module.step(), strict=True):
            out[name].append(spikes)
    return out
