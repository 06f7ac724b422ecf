"""``SessionAccess``: the data of one recorded session, the base of ``SimulationAnalyzer``.

Opening and closing, the recorded nodes and layers, control states, direct access to
spikes, membrane potentials and weights for custom analysis, and chunked population
scans (:mod:`analysis.scan`). :class:`analysis.analyzer.SimulationAnalyzer` adds the
recording guide's figures of merit, the summary report and the plots on top of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from analysis import scan as _scan
from analysis.reader import DEFAULT_CHUNK_ROWS, MembraneTraces, SessionReader, SpikeTrains
from analysis.scan import DENSITY_THRESHOLD, ControlSpan, PopulationInfo, PopulationScan
from recorderd.session import layout as L
from recorderd.session.closing import ClosesOnExit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Control-state metadata keys read as a firing threshold in mV (:meth:`threshold_mv`).
THRESHOLD_KEYS: Final = ("v_th_mv", "threshold_mv", "v_threshold_mv")


class SessionAccess(ClosesOnExit):
    """Read access to one recorded session: streams, control states and population scans.

    Opens finished sessions, sessions still being written and sessions left by a
    crashed writer alike (nothing needs the stop time or final statistics). Use it as a
    context manager or call :meth:`close`.
    """

    def __init__(self, session_dir: str | Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        self.reader = SessionReader(session_dir)
        self.session_dir = self.reader.path
        self.chunk_rows = chunk_rows
        self._closed = False
        self._states_cache: tuple[tuple[tuple[int, int], ...], list[dict[str, Any]]] | None = None

    def close(self) -> None:
        """Close the session file (idempotent)."""
        if not self._closed:
            self._closed = True
            self.reader.close()

    # -- the guide's API -----------------------------------------------------------------

    def get_recorded_nodes(self) -> list[str]:
        """Node ids with any recorded stream or control state, sorted."""
        return self.reader.nodes()

    def get_recorded_layers(self, node_id: str) -> list[str]:
        """Layers of a node with recorded spikes, in the order the node declared them."""
        return self.reader.layers(node_id, L.SPIKES)

    def load_control_states(self) -> list[dict[str, Any]]:
        """Every recorded control state, in arrival order (a torn last line is skipped)."""
        key_parts = []
        for shard in self.reader.shards:  # every recorder's control log (shards: several)
            try:
                st = L.SessionFiles(self.session_dir, shard).control.stat()
            except FileNotFoundError:
                continue
            key_parts.append((st.st_size, st.st_mtime_ns))
        if not key_parts:
            return []
        key = tuple(key_parts)
        # A live session's file grows: reuse the parse only while it is unchanged.
        if self._states_cache is None or self._states_cache[0] != key:
            self._states_cache = (key, self.reader.control_states())
        return [dict(s) for s in self._states_cache[1]]

    # -- direct access for custom analysis ------------------------------------------------

    def spikes(
        self,
        node_id: str,
        layer: str,
        t_start_ms: float | None = None,
        t_stop_ms: float | None = None,
    ) -> SpikeTrains:
        """Flat spikes (steps, times in ms, neuron ids) with ``t_start_ms <= t < t_stop_ms``."""
        return self.reader.spikes(node_id, layer, t_start_ms, t_stop_ms)

    def iter_spike_chunks(
        self, node_id: str, layer: str, chunk_rows: int | None = None
    ) -> Iterator[SpikeTrains]:
        """Spikes in recording order, at most ``chunk_rows`` at a time (bounded memory)."""
        return self.reader.iter_spike_chunks(node_id, layer, chunk_rows or self.chunk_rows)

    def membrane(
        self, node_id: str, layer: str, neurons: npt.ArrayLike | None = None
    ) -> MembraneTraces:
        """Membrane potentials (mV): steps, times, neuron ids and data (frames x neurons)."""
        return self.reader.membrane_traces(node_id, layer, neurons)

    def get_membrane_layers(self, node_id: str) -> list[str]:
        """Layers of a node with recorded membrane potentials."""
        return self.reader.layers(node_id, L.MEMBRANE)

    def weights(
        self, node_id: str, name: str
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Steps and weight snapshots (snapshots x rows x cols); see :meth:`weight_norms`."""
        return self.reader.weights(node_id, name)

    def get_weight_names(self, node_id: str) -> list[str]:
        """Weight matrices recorded for a node."""
        return self.reader.layers(node_id, L.WEIGHTS)

    def weight_norms(self, node_id: str, name: str) -> tuple[IntArray, FloatArray]:
        """Frobenius norm of every weight snapshot, read one row block at a time."""
        return _scan.weight_norms(self.reader, node_id, name)

    def weight_image(
        self, node_id: str, name: str, index: int = -1, max_pixels: int = 512
    ) -> tuple[FloatArray, int]:
        """A snapshot averaged over blocks to at most ``max_pixels`` per side, and its step."""
        return _scan.weight_image(self.reader, node_id, name, index, max_pixels)

    def spike_times_of(
        self,
        node_id: str,
        layer: str,
        neurons: npt.ArrayLike,
        t_start_ms: float | None = None,
        t_stop_ms: float | None = None,
    ) -> dict[int, FloatArray]:
        """Spike times (ms, recording order) of a few neurons, in a window.

        Read slice by slice (a ``by_time`` population only over the window's rows), so
        memory is bounded by the chunk size and the spikes of those neurons.
        """
        wanted = np.unique(np.asarray(neurons, dtype=np.int64))
        parts: dict[int, list[FloatArray]] = {int(n): [] for n in wanted}
        rows = self.reader.time_rows(node_id, layer, t_start_ms, t_stop_ms)
        chunks = self.reader.iter_spike_chunks(
            node_id, layer, self.chunk_rows, with_steps=False, rows=rows
        )
        for chunk in chunks:
            keep = np.isin(chunk.neuron_ids, wanted)
            if t_start_ms is not None:
                keep &= chunk.times_ms >= t_start_ms
            if t_stop_ms is not None:
                keep &= chunk.times_ms < t_stop_ms
            for nid in np.unique(chunk.neuron_ids[keep]).tolist():
                parts[int(nid)].append(chunk.times_ms[keep & (chunk.neuron_ids == nid)])
        return {n: np.concatenate(p) if p else np.zeros(0) for n, p in parts.items()}

    def threshold_mv(self, node_id: str, layer: str) -> float | None:
        """A layer's firing threshold (mV) if the node's control states carry one.

        Looked up in the metadata of the node's latest control state that has one of
        :data:`THRESHOLD_KEYS`, either a number or a ``{layer: number}`` mapping. The
        recorder itself stores no threshold.
        """
        for state in reversed(self._node_states(node_id)):
            meta = state.get("metadata") or {}
            for key in THRESHOLD_KEYS:
                value = meta.get(key)
                if isinstance(value, Mapping):
                    value = value.get(layer)
                if isinstance(value, int | float) and math.isfinite(value):
                    return float(value)
        return None

    def control_table(self) -> dict[str, npt.NDArray[Any]]:
        """Control states as columns of numpy arrays (``active_task``, ``metadata``: object)."""
        states = self.load_control_states()

        def col(key: str, dtype: Any) -> npt.NDArray[Any]:
            values = [s.get(key) for s in states]
            if dtype is object:
                out = np.empty(len(values), dtype=object)
                out[:] = values
                return out
            return np.asarray(values, dtype=dtype)

        table = {k: col(k, str) for k in ("node_id", "module_type", "status", "received_at")}
        table["active_task"] = col("active_task", object)
        table["metadata"] = col("metadata", object)
        for k in ("step", "step_count"):
            table[k] = col(k, np.int64)
        table["time_ms"] = col("time_ms", np.float64)
        for k in ("incarnation", "seq"):
            table[k] = col(k, np.uint64)
        return table

    def control_spans(self, node_id: str, t_stop_ms: float | None = None) -> list[ControlSpan]:
        """A node's control states as time spans, each lasting until the next (for shading)."""
        states = self._node_states(node_id)
        if not states:
            return []
        end = t_stop_ms if t_stop_ms is not None else self._node_end_ms(node_id)
        end = max(end, float(states[-1]["time_ms"]))
        times = [float(s["time_ms"]) for s in states] + [end]
        return [
            ControlSpan(times[i], times[i + 1], str(s["status"]), s.get("active_task"))
            for i, s in enumerate(states)
        ]

    # -- population scans -----------------------------------------------------------------

    def population_info(self, node_id: str, layer: str) -> PopulationInfo:
        """Attributes and frame index of a spike population; no spike is read."""
        return _scan.population_info(self.reader, node_id, layer)

    def scan(
        self,
        node_id: str,
        layer: str,
        *,
        bin_ms: float | None = None,
        raster_neurons: int | None = None,
        density_threshold: int = DENSITY_THRESHOLD,
        isi_edges_ms: npt.ArrayLike | None = None,
        raster_window: tuple[float, float] | None = None,
        sample_neurons: int | None = None,
    ) -> PopulationScan:
        """One chunked pass over a population; see :func:`analysis.scan.scan_population`."""
        return _scan.scan_population(
            self.reader,
            node_id,
            layer,
            chunk_rows=self.chunk_rows,
            bin_ms=bin_ms,
            raster_neurons=raster_neurons,
            density_threshold=density_threshold,
            isi_edges_ms=isi_edges_ms,
            raster_window=raster_window,
            sample_neurons=sample_neurons,
        )

    def raster_window(
        self,
        node_id: str,
        t_start_ms: float | None = None,
        t_stop_ms: float | None = None,
    ) -> tuple[float, float] | None:
        """The window of a node's rasters: the one asked for, else a readable one.

        With neither bound given: :func:`analysis.scan.readable_window` of the node's
        layers (``None``: the whole recording is readable). A missing bound is the
        recording's start or end; an empty window raises ``ValueError``.
        """
        infos = [self.population_info(node_id, lay) for lay in self.get_recorded_layers(node_id)]
        return _scan.window_of(infos, t_start_ms, t_stop_ms, True)

    def populations(self) -> list[tuple[str, str]]:
        """Every spike population as ``(node_id, layer)``, sorted."""
        return [
            (n, layer) for n in self.get_recorded_nodes() for layer in self.get_recorded_layers(n)
        ]

    # -- internals ------------------------------------------------------------------------

    def _node_states(self, node_id: str) -> list[dict[str, Any]]:
        states = [s for s in self.load_control_states() if s.get("node_id") == node_id]
        # Arrival order can differ from time order (restarts, several runs).
        states.sort(key=lambda s: float(s["time_ms"]))
        return states

    def _node_end_ms(self, node_id: str) -> float:
        """End of the node's recorded data: last frame time plus dt, over its streams."""
        end = -math.inf
        for kind in (L.SPIKES, L.MEMBRANE, L.WEIGHTS):
            for name in self.reader.layers(node_id, kind):
                f = self.reader.facts(node_id, name, kind)
                if f.t_last_ms is not None:
                    end = max(end, f.t_last_ms + (f.dt_attr or 0.0))
        return end
