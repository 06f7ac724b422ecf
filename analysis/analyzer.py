"""``SimulationAnalyzer``: the recording guide's analysis API over one recorded session.

Built in layers: :class:`analysis.access.SessionAccess` opens the session and gives the
data (streams, control states, chunked population scans of :mod:`analysis.scan`);
:class:`analysis.plot_methods.PlotMethods` adds the figures (drawing is in
:mod:`analysis.plots`, imported only when a plot is asked for); this module adds the
guide's figures of merit and the summary report (:mod:`analysis.report`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis import statistics as S
from analysis.info import SessionInfo, session_info
from analysis.plot_methods import PlotMethods
from analysis.scan import ControlSpan, PopulationInfo, PopulationScan
from recorderd.session import layout as L

FloatArray = npt.NDArray[np.float64]
UIntArray = npt.NDArray[np.uint32]

__all__ = ["ControlSpan", "PopulationInfo", "PopulationScan", "SimulationAnalyzer"]


class SimulationAnalyzer(PlotMethods):
    """Analysis of one recorded session: the recording guide's API plus out-of-core access.

    Opens finished sessions, sessions still being written and sessions left by a
    crashed writer alike (nothing needs the stop time or final statistics). Use it as a
    context manager or call :meth:`close`. Data access and scans come from
    :class:`~analysis.access.SessionAccess`, the plots from
    :class:`~analysis.plot_methods.PlotMethods`.
    """

    # -- the guide's API -----------------------------------------------------------------
    # (get_recorded_nodes, get_recorded_layers and load_control_states are inherited from
    # SessionAccess, plot_spike_raster and plot_firing_rate_timeline from PlotMethods.)

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
        A layer of more than :data:`~analysis.scan.SPARSE_NEURONS` recorded neurons is
        ``sparse``: ``neuron_ids``, ``spike_counts`` and ``rates_hz`` list only the
        neurons that spiked (the others are silent).
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
            "n_recorded_neurons": info.n_neurons,
            "sparse": info.sparse,
            "layer_size": info.layer_size,
            "subsample_rate": info.subsample_rate,
            "duration_s": info.duration_ms / 1000.0,
            "dt_ms": info.dt_ms,
            "first_step": info.first_step,
            "last_step": info.last_step,
            "t_start_ms": info.t_start_ms,
            "t_stop_ms": info.t_stop_ms,
        }

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

    def summary(
        self, scans: Mapping[tuple[str, str], PopulationScan] | None = None
    ) -> dict[str, Any]:
        """The machine-readable session summary (the schema of ``sim-analyzer --json``)."""
        from analysis import report

        return report.build_summary(self, scans)

    def info(self) -> SessionInfo:
        """The one-screen summary of ``sim-analyzer info`` (metadata and frame indexes only)."""
        return session_info(self.reader)

    def _repr_html_(self) -> str | None:
        """Jupyter: the session's info table (see :meth:`info`)."""
        return self.info()._repr_html_()

    def generate_summary_report(self, path: str | Path | None = None) -> str:
        """The text report; also written to ``path`` if given."""
        from analysis import report

        text = report.format_text(self.summary())
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text
