"""``SimulationAnalyzer``: the recording guide's analysis API over one recorded session.

Data access and computation live here and in :mod:`analysis.scan` (chunked, out-of-core
passes over spike populations); drawing is in :mod:`analysis.plots`, imported only when
a plot is asked for, and report text in :mod:`analysis.report`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from analysis import scan as _scan
from analysis import statistics as S
from analysis.reader import DEFAULT_CHUNK_ROWS, MembraneTraces, SessionReader, SpikeTrains
from analysis.scan import (
    DENSITY_THRESHOLD,
    ISI_EDGES_MS,
    ControlSpan,
    PopulationInfo,
    PopulationScan,
    auto_bin_ms,
)
from recorderd.session import layout as L
from recorderd.session.closing import ClosesOnExit

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UIntArray = npt.NDArray[np.uint32]

__all__ = ["ControlSpan", "PopulationInfo", "PopulationScan", "SimulationAnalyzer"]


class SimulationAnalyzer(ClosesOnExit):
    """Analysis of one recorded session: the recording guide's API plus out-of-core access.

    Opens finished sessions, sessions still being written and sessions left by a
    crashed writer alike (nothing needs the stop time or final statistics). Use it as a
    context manager or call :meth:`close`.
    """

    def __init__(self, session_dir: str | Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        self.reader = SessionReader(session_dir)
        self.session_dir = self.reader.path
        self.chunk_rows = chunk_rows
        self._closed = False
        self._states_cache: tuple[tuple[int, int], list[dict[str, Any]]] | None = None

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
        """Layers of a node with recorded spikes, sorted."""
        return self.reader.layers(node_id, L.SPIKES)

    def get_spike_data(self, node_id: str, layer: str) -> tuple[FloatArray, list[UIntArray]]:
        """Per recorded step: its time in ms and the ids of the neurons that fired.

        Steps without spikes are included (from the per-message frame index).
        """
        fr = self.reader.frames(node_id, layer)
        ids = self.reader.spikes(node_id, layer).neuron_ids
        arrays = np.split(ids, np.cumsum(fr.count, dtype=np.int64)[:-1]) if fr.count.size else []
        return np.asarray(fr.times_ms, dtype=np.float64), arrays

    def compute_firing_rate(self, node_id: str, layer: str) -> dict[str, Any]:
        """Mean and per-neuron firing rates in Hz, corrected for subsampling.

        Rates divide by the recorded neurons (silent ones included), not the layer size,
        over the span from the first to the last recorded step inclusive (summed over
        the node's incarnations when it restarted). Read in chunks: memory stays bounded.
        """
        scan = self.scan(node_id, layer)
        info = scan.info
        return {
            "node_id": node_id,
            "layer": layer,
            "mean_rate_hz": scan.mean_rate_hz,
            "total_spikes": scan.total_spikes,
            "neuron_ids": info.neurons,
            "spike_counts": scan.spike_counts,
            "rates_hz": scan.rates_hz,
            "active_fraction": scan.active_fraction,
            "n_recorded_neurons": int(info.neurons.size),
            "layer_size": info.layer_size,
            "subsample_rate": info.subsample_rate,
            "duration_s": info.duration_ms / 1000.0,
            "dt_ms": info.dt_ms,
            "first_step": info.first_step,
            "last_step": info.last_step,
            "t_start_ms": info.t_start_ms,
            "t_stop_ms": info.t_stop_ms,
        }

    def load_control_states(self) -> list[dict[str, Any]]:
        """Every recorded control state, in arrival order (a torn last line is skipped)."""
        path = self.session_dir / L.CONTROL_FILE
        try:
            st = path.stat()
            key = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            return []
        # A live session's file grows: reuse the parse only while it is unchanged.
        if self._states_cache is None or self._states_cache[0] != key:
            self._states_cache = (key, self.reader.control_states())
        return [dict(s) for s in self._states_cache[1]]

    def analyze_node_behavior(self, node_id: str) -> dict[str, Any]:
        """Control-state figures of a node: task-active ratio, statuses, steps, dwell times.

        The observation runs from the node's first control state to the later of its last
        state and the end of its recorded data; states are taken in time order.
        """
        states = self._node_states(node_id)
        module = self.reader.node_info(node_id).get(L.ATTR_MODULE_TYPE)
        if not states:
            return {
                "node_id": node_id,
                "module_type": module,
                "n_states": 0,
                "task_active_ratio": math.nan,
                "unique_statuses": [],
                "unique_tasks": [],
                "step_range": None,
                "time_range_ms": None,
                "dwell_ms": {},
                "task_dwell_ms": {},
                "transitions": {},
            }
        t_end = max(float(states[-1]["time_ms"]), self._node_end_ms(node_id))
        steps = [int(s["step"]) for s in states]
        return {
            "node_id": node_id,
            "module_type": module or states[-1].get("module_type"),
            "n_states": len(states),
            "task_active_ratio": S.task_active_ratio(states, t_end),
            "unique_statuses": sorted({str(s["status"]) for s in states}),
            "unique_tasks": sorted({str(s["active_task"]) for s in states if s["active_task"]}),
            "step_range": (min(steps), max(steps)),
            "time_range_ms": (float(states[0]["time_ms"]), t_end),
            "dwell_ms": S.control_dwell_times(states, t_end),
            "task_dwell_ms": S.control_dwell_times(states, t_end, key="active_task"),
            "transitions": S.control_transitions(states),
        }

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
        )

    def populations(self) -> list[tuple[str, str]]:
        """Every spike population as ``(node_id, layer)``, sorted."""
        return [
            (n, layer) for n in self.get_recorded_nodes() for layer in self.get_recorded_layers(n)
        ]

    def summary(
        self, scans: Mapping[tuple[str, str], PopulationScan] | None = None
    ) -> dict[str, Any]:
        """The machine-readable session summary (the schema of ``sim-analyzer --json``)."""
        from analysis import report

        return report.build_summary(self, scans)

    def generate_summary_report(self, path: str | Path | None = None) -> str:
        """The text report; also written to ``path`` if given."""
        from analysis import report

        text = report.format_text(self.summary())
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    # -- plots (matplotlib is imported only here) ----------------------------------------

    def plot_spike_raster(
        self,
        node_id: str,
        layer_name: str,
        max_neurons: int = 100,
        save_path: str | Path | None = None,
        *,
        density_threshold: int = DENSITY_THRESHOLD,
    ) -> Figure:
        """Raster of one layer with its population rate under it (density image if huge)."""
        from analysis import plots

        info = self.population_info(node_id, layer_name)
        scan = self.scan(
            node_id,
            layer_name,
            bin_ms=auto_bin_ms(info.duration_ms, info.dt_ms),
            raster_neurons=max_neurons,
            density_threshold=density_threshold,
        )
        return plots.finish(plots.raster_figure([scan], title=f"{node_id} {layer_name}"), save_path)

    def plot_node_raster(
        self,
        node_id: str,
        max_neurons: int = 100,
        save_path: str | Path | None = None,
        *,
        density_threshold: int = DENSITY_THRESHOLD,
    ) -> Figure:
        """All layers of a node stacked, with the layers' population rates under them."""
        from analysis import plots

        scans = []
        for layer in self.get_recorded_layers(node_id):
            info = self.population_info(node_id, layer)
            scans.append(
                self.scan(
                    node_id,
                    layer,
                    bin_ms=auto_bin_ms(info.duration_ms, info.dt_ms),
                    raster_neurons=max_neurons,
                    density_threshold=density_threshold,
                )
            )
        return plots.finish(plots.raster_figure(scans, title=node_id), save_path)

    def plot_firing_rate_timeline(
        self,
        node_id: str,
        layer_name: str,
        bin_size_ms: float = 50.0,
        save_path: str | Path | None = None,
    ) -> Figure:
        """Population rate per neuron over time, with the node's control states shaded."""
        from analysis import plots

        scan = self.scan(node_id, layer_name, bin_ms=bin_size_ms)
        spans = self.control_spans(node_id, scan.info.t_stop_ms)
        return plots.finish(plots.timeline_figure(scan, spans), save_path)

    def plot_isi_histogram(
        self,
        node_id: str,
        layer_name: str,
        save_path: str | Path | None = None,
        *,
        edges_ms: npt.ArrayLike | None = None,
    ) -> Figure:
        """Histogram of the inter-spike intervals of all recorded neurons of a layer."""
        from analysis import plots

        edges = ISI_EDGES_MS if edges_ms is None else edges_ms
        scan = self.scan(node_id, layer_name, isi_edges_ms=edges)
        return plots.finish(plots.isi_figure(scan), save_path)

    def plot_membrane_traces(
        self,
        node_id: str,
        layer_name: str,
        neurons: npt.ArrayLike | None = None,
        save_path: str | Path | None = None,
        *,
        max_traces: int = 5,
        t_start_ms: float | None = None,
        t_stop_ms: float | None = None,
    ) -> Figure:
        """Membrane potential of chosen neurons (default: the first recorded), in a window."""
        from analysis import plots

        if neurons is None:
            rec = self.reader.recorded_neurons(node_id, layer_name, L.MEMBRANE)
            neurons = rec[:max_traces]
        tr = self.membrane(node_id, layer_name, neurons)
        keep = np.ones(tr.times_ms.size, dtype=bool)
        if t_start_ms is not None:
            keep &= tr.times_ms >= t_start_ms
        if t_stop_ms is not None:
            keep &= tr.times_ms < t_stop_ms
        tr = MembraneTraces(tr.steps[keep], tr.times_ms[keep], tr.neuron_ids, tr.data_mv[keep])
        return plots.finish(plots.membrane_figure(tr, f"{node_id} {layer_name}"), save_path)

    def plot_weights(
        self,
        node_id: str,
        name: str,
        snapshot: int = -1,
        save_path: str | Path | None = None,
    ) -> Figure:
        """Heatmap of one weight snapshot and the Frobenius norm over all snapshots."""
        from analysis import plots

        image, step = self.weight_image(node_id, name, snapshot)
        shape = tuple(self.reader.stream_attrs(node_id, name, L.WEIGHTS)["layer_size"])
        steps, norms = self.weight_norms(node_id, name)
        fig = plots.weights_figure(image, step, shape, steps, norms, f"{node_id} {name}")
        return plots.finish(fig, save_path)

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
                fr = self.reader.frames(node_id, name, kind)
                if fr.times_ms.size:
                    dt = float(self.reader.stream_attrs(node_id, name, kind).get(L.ATTR_DT_MS, 0))
                    end = max(end, float(fr.times_ms.max()) + dt)
        return end
