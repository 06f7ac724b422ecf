"""Leaky integrate-and-fire layers chained into a feed-forward network (pure numpy, no I/O).

Synapses are current pulses that move the membrane by a fixed number of millivolts
per presynaptic spike ("delta synapses"), so inputs are expressed in mV directly.
Every random number comes from one seeded ``numpy.random.Generator`` drawn in a
fixed order, so the same seed and parameters always give the same spikes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U32 = npt.NDArray[np.uint32]


@dataclass(frozen=True, slots=True)
class LIFParams:
    """Membrane constants of one layer (mV and ms)."""

    tau_m_ms: float = 20.0
    v_rest_mv: float = -65.0
    v_reset_mv: float = -70.0
    v_th_mv: float = -50.0
    refractory_ms: float = 2.0


@dataclass(frozen=True, slots=True)
class NetworkParams:
    """Input, coupling and noise constants; the defaults give tens of Hz in every layer."""

    lif: LIFParams = field(default_factory=LIFParams)
    #: Poisson input events per ms per first-layer neuron at drive 1.0.
    input_rate_per_ms: float = 2.8
    #: Membrane jump per input event (mV).
    input_jump_mv: float = 0.5
    #: Net excitation (mV per step) a layer receives if its whole predecessor fires;
    #: divided by the fan-in so firing does not depend on layer sizes.
    coupling_mv: float = 40.0
    connection_prob: float = 0.2
    excitatory_fraction: float = 0.8
    #: Inhibitory weights are this many times stronger than excitatory ones.
    inhibition_ratio: float = 2.0
    #: Constant background input to the later layers (mV per ms).
    bias_mv_per_ms: float = 0.6
    #: Gaussian background noise of the later layers (mV per sqrt(ms)).
    noise_mv: float = 1.0


class LIFLayer:
    """``n`` LIF neurons with exact exponential decay towards rest between inputs."""

    def __init__(
        self, name: str, n: int, params: LIFParams, dt_ms: float, rng: np.random.Generator
    ) -> None:
        if n < 1:
            raise ValueError(f"layer {name!r} needs at least one neuron, got {n}")
        self.name = name
        self.n = n
        self.params = params
        self._decay = np.float32(math.exp(-dt_ms / params.tau_m_ms))
        self._v_rest = np.float32(params.v_rest_mv)
        self._v_reset = np.float32(params.v_reset_mv)
        self._v_th = np.float32(params.v_th_mv)
        self._ref_steps = max(0, math.ceil(params.refractory_ms / dt_ms - 1e-9))
        # Start spread between reset and threshold so the layer does not fire in lockstep.
        self._v: F32 = rng.uniform(params.v_reset_mv, params.v_th_mv, n).astype(np.float32)
        self._refractory = np.zeros(n, dtype=np.int32)

    @property
    def v(self) -> F32:
        """Membrane potentials (mV, float32) after the last step; a read-only view."""
        view = self._v.view()
        view.flags.writeable = False
        return view

    def step(self, input_mv: F32) -> U32:
        """Advance one step with ``input_mv`` added to every membrane; return spiking indices."""
        v = self._v
        v -= self._v_rest
        v *= self._decay
        v += self._v_rest
        v += input_mv
        resting = self._refractory > 0
        v[resting] = self._v_reset
        self._refractory[resting] -= 1
        fired = v >= self._v_th
        v[fired] = self._v_reset
        self._refractory[fired] = self._ref_steps
        return np.flatnonzero(fired).astype(np.uint32)


def weight_name(pre: str, post: str) -> str:
    """Name of the weight matrix from layer ``pre`` to layer ``post``, e.g. ``w_input_hidden``."""
    return f"w_{pre}_{post}"


class Network:
    """A chain of LIF layers: Poisson input drives the first, each layer drives the next."""

    def __init__(
        self,
        layer_names: Sequence[str],
        layer_sizes: Sequence[int],
        *,
        seed: int | np.random.SeedSequence,
        dt_ms: float = 1.0,
        params: NetworkParams | None = None,
    ) -> None:
        if len(layer_names) != len(layer_sizes) or not layer_names:
            raise ValueError("need one size per layer and at least one layer")
        if not (math.isfinite(dt_ms) and dt_ms > 0.0):
            raise ValueError(f"dt_ms must be a positive number, got {dt_ms!r}")
        self.params = params or NetworkParams()
        self.dt_ms = dt_ms
        self.drive = 1.0
        self._rng = np.random.default_rng(seed)
        p = self.params
        self.layers = tuple(
            LIFLayer(name, int(n), p.lif, dt_ms, self._rng)
            for name, n in zip(layer_names, layer_sizes, strict=True)
        )
        self.weights: dict[str, F32] = {}
        for pre, post in zip(self.layers, self.layers[1:], strict=False):
            self.weights[weight_name(pre.name, post.name)] = self._random_weights(pre.n, post.n)
        # Per-neuron input gain: some input neurons are driven harder, as in a real sensory layer.
        self._input_gain = self._rng.gamma(8.0, 1.0 / 8.0, self.layers[0].n)
        self._input_jump = np.float32(p.input_jump_mv)
        self._bias = np.float32(p.bias_mv_per_ms * dt_ms)
        self._noise = np.float32(p.noise_mv * math.sqrt(dt_ms))

    def _random_weights(self, n_pre: int, n_post: int) -> F32:
        """Sparse random weights, shape (n_pre, n_post); the last rows are inhibitory."""
        p = self.params
        connected = self._rng.random((n_pre, n_post)) < p.connection_prob
        magnitude = self._rng.gamma(4.0, 0.25, (n_pre, n_post))
        n_exc = round(p.excitatory_fraction * n_pre)
        sign = np.where(np.arange(n_pre) < n_exc, 1.0, -p.inhibition_ratio)[:, None]
        scale = p.coupling_mv / (n_pre * p.connection_prob)
        return (connected * magnitude * sign * scale).astype(np.float32)

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Layer names, input first."""
        return tuple(layer.name for layer in self.layers)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Neurons per layer, input first."""
        return tuple(layer.n for layer in self.layers)

    def membrane(self, layer: int) -> F32:
        """Membrane potentials (mV, float32) of layer number ``layer``."""
        return self.layers[layer].v

    def step(self) -> list[U32]:
        """Advance every layer by one dt; return each layer's sorted uint32 spike indices."""
        first = self.layers[0]
        lam = (self.params.input_rate_per_ms * self.dt_ms * self.drive) * self._input_gain
        events = self._rng.poisson(lam).astype(np.float32)
        spikes = [first.step(events * self._input_jump)]
        for pre, post in zip(self.layers, self.layers[1:], strict=False):
            w = self.weights[weight_name(pre.name, post.name)]
            noise = self._rng.standard_normal(post.n, dtype=np.float32)
            # Summing the spiking rows (not a BLAS matmul) keeps results bit-identical
            # across thread counts and costs little when few neurons fire.
            synaptic = w[spikes[-1]].sum(axis=0, dtype=np.float32)
            spikes.append(post.step(synaptic + self._bias + self._noise * noise))
        return spikes
