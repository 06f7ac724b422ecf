"""The plot methods of ``SimulationAnalyzer``: compute what a figure shows, then draw it.

Each method scans or reads what it needs through :class:`analysis.access.SessionAccess`
and hands it to :mod:`analysis.plots`, which is imported only when a plot is asked for
(so matplotlib is loaded only then).

Parameter names: ``layer`` and ``bin_ms``, as in the rest of the API. The methods that
took the recording guide's ``layer_name`` and ``bin_size_ms`` still accept those as
keyword aliases (:func:`one_of`): give either spelling, not both.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

import numpy as np
import numpy.typing as npt

from analysis.access import SessionAccess
from analysis.reader import MembraneTraces
from analysis.sample import SAMPLE_NEURONS
from analysis.scan import (
    DENSITY_THRESHOLD,
    ISI_EDGES_MS,
    PopulationInfo,
    auto_bin_ms,
    window_of,
)
from recorderd.session import layout as L

if TYPE_CHECKING:
    from matplotlib.figure import Figure

T = TypeVar("T")

#: Bin of :meth:`PlotMethods.plot_firing_rate_timeline` when none is given.
DEFAULT_BIN_MS: Final = 50.0


def one_of(
    method: str,
    name: str,
    value: T | None,
    alias: str,
    alias_value: T | None,
    default: T | None = None,
) -> T:
    """The argument ``name`` of ``method``, given under its own name or as ``alias``.

    ``None`` means not given. Both given raises TypeError, as Python does for an argument
    given twice; neither gives ``default``, or raises TypeError if there is none.
    """
    if value is not None and alias_value is not None:
        raise TypeError(f"{method}() got both {name!r} and its alias {alias!r}; give one")
    if value is None:
        value = alias_value if alias_value is not None else default
    if value is None:
        raise TypeError(f"{method}() missing required argument {name!r} (alias {alias!r})")
    return value


def _width(window: tuple[float, float] | None, info: PopulationInfo) -> float:
    """The time a raster shows: its window, or the population's recorded time."""
    return info.duration_ms if window is None else window[1] - window[0]


class PlotMethods(SessionAccess):
    """Figures of a session; every method returns the figure and saves a PNG if asked."""

    def plot_spike_raster(
        self,
        node_id: str,
        layer: str | None = None,
        max_neurons: int = 100,
        save_path: str | Path | None = None,
        *,
        density_threshold: int = DENSITY_THRESHOLD,
        layer_name: str | None = None,
        t_start_ms: float | None = None,
        t_stop_ms: float | None = None,
        auto_window: bool = False,
    ) -> Figure:
        """Raster of one layer with its population rate under it (density image if huge).

        ``t_start_ms``/``t_stop_ms`` show a window (default: the whole recording);
        ``auto_window`` a readable one from the start (:func:`analysis.scan.readable_window`).
        ``layer_name`` is the guide's name for ``layer``.
        """
        layer = one_of("plot_spike_raster", "layer", layer, "layer_name", layer_name)
        from analysis import plots

        info = self.population_info(node_id, layer)
        window = window_of([info], t_start_ms, t_stop_ms, auto_window)
        scan = self.scan(
            node_id,
            layer,
            bin_ms=auto_bin_ms(_width(window, info), info.dt_ms),
            raster_neurons=max_neurons,
            density_threshold=density_threshold,
            raster_window=window,
        )
        return plots.finish(plots.raster_figure([scan], title=f"{node_id} {layer}"), save_path)

    def plot_node_raster(
        self,
        node_id: str,
        max_neurons: int = 100,
        save_path: str | Path | None = None,
        *,
        density_threshold: int = DENSITY_THRESHOLD,
        t_start_ms: float | None = None,
        t_stop_ms: float | None = None,
        auto_window: bool = False,
    ) -> Figure:
        """All layers of a node stacked, with the layers' population rates under them.

        The window options are those of :meth:`plot_spike_raster`.
        """
        from analysis import plots

        infos = [self.population_info(node_id, lay) for lay in self.get_recorded_layers(node_id)]
        window = window_of(infos, t_start_ms, t_stop_ms, auto_window)
        scans = [
            self.scan(
                node_id,
                info.layer,
                bin_ms=auto_bin_ms(_width(window, info), info.dt_ms),
                raster_neurons=max_neurons,
                density_threshold=density_threshold,
                raster_window=window,
            )
            for info in infos
        ]
        return plots.finish(plots.raster_figure(scans, title=node_id), save_path)

    def plot_firing_rate_timeline(
        self,
        node_id: str,
        layer: str | None = None,
        bin_ms: float | None = None,
        save_path: str | Path | None = None,
        *,
        layer_name: str | None = None,
        bin_size_ms: float | None = None,
    ) -> Figure:
        """Population rate per neuron over time, with the node's control states shaded.

        ``bin_ms`` defaults to :data:`DEFAULT_BIN_MS` (50 ms). ``layer_name`` and
        ``bin_size_ms`` are the guide's names for ``layer`` and ``bin_ms``.
        """
        where = "plot_firing_rate_timeline"
        layer = one_of(where, "layer", layer, "layer_name", layer_name)
        bin_ms = one_of(where, "bin_ms", bin_ms, "bin_size_ms", bin_size_ms, DEFAULT_BIN_MS)
        from analysis import plots

        scan = self.scan(node_id, layer, bin_ms=bin_ms)
        spans = self.control_spans(node_id, scan.info.t_stop_ms)
        return plots.finish(plots.timeline_figure(scan, spans), save_path)

    def plot_isi_histogram(
        self,
        node_id: str,
        layer: str | None = None,
        save_path: str | Path | None = None,
        *,
        edges_ms: npt.ArrayLike | None = None,
        layer_name: str | None = None,
    ) -> Figure:
        """Histogram of the inter-spike intervals of all recorded neurons of a layer.

        ``layer_name`` is the guide's name for ``layer``.
        """
        layer = one_of("plot_isi_histogram", "layer", layer, "layer_name", layer_name)
        from analysis import plots

        edges = ISI_EDGES_MS if edges_ms is None else edges_ms
        scan = self.scan(node_id, layer, isi_edges_ms=edges)
        return plots.finish(plots.isi_figure(scan), save_path)

    def plot_membrane_traces(
        self,
        node_id: str,
        layer: str | None = None,
        neurons: npt.ArrayLike | None = None,
        save_path: str | Path | None = None,
        *,
        max_traces: int = 5,
        t_start_ms: float | None = None,
        t_stop_ms: float | None = None,
        layer_name: str | None = None,
        mark_spikes: bool = True,
        threshold_mv: float | None = None,
    ) -> Figure:
        """Membrane potential of chosen neurons (default: the first recorded), in a window.

        ``mark_spikes``: the neurons' spikes as red ticks, where the layer's spike stream
        records them too. ``threshold_mv``: a dashed threshold line; by default the one
        the node's control states carry (:meth:`threshold_mv`), none if they carry none.
        ``layer_name`` is the guide's name for ``layer``.
        """
        layer = one_of("plot_membrane_traces", "layer", layer, "layer_name", layer_name)
        from analysis import plots

        if neurons is None:
            rec = self.reader.recorded_neurons(node_id, layer, L.MEMBRANE)
            neurons = rec[:max_traces]
        tr = self.membrane(node_id, layer, neurons)
        keep = np.ones(tr.times_ms.size, dtype=bool)
        if t_start_ms is not None:
            keep &= tr.times_ms >= t_start_ms
        if t_stop_ms is not None:
            keep &= tr.times_ms < t_stop_ms
        tr = MembraneTraces(tr.steps[keep], tr.times_ms[keep], tr.neuron_ids, tr.data_mv[keep])
        spikes = None
        if mark_spikes and layer in self.get_recorded_layers(node_id):
            spikes = self.spike_times_of(node_id, layer, tr.neuron_ids, t_start_ms, t_stop_ms)
        if threshold_mv is None:
            threshold_mv = self.threshold_mv(node_id, layer)
        fig = plots.membrane_figure(tr, f"{node_id} {layer}", spikes, threshold_mv)
        return plots.finish(fig, save_path)

    def plot_population_statistics(
        self,
        node_id: str,
        layer: str,
        save_path: str | Path | None = None,
        *,
        sample_neurons: int = SAMPLE_NEURONS,
    ) -> Figure:
        """Rate and ISI CV distributions, a correlation matrix and synchrony over time.

        Correlations and synchrony are those of ``sample_neurons`` neurons spread over the
        layer (:mod:`analysis.sample`), from one chunked pass.
        """
        from analysis import plots

        scan = self.scan(node_id, layer, sample_neurons=sample_neurons)
        return plots.finish(plots.population_figure(scan), save_path)

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
        shape = tuple(self.reader.stream_attrs(node_id, name, L.WEIGHTS)[L.ATTR_LAYER_SIZE])
        steps, norms = self.weight_norms(node_id, name)
        fig = plots.weights_figure(image, step, shape, steps, norms, f"{node_id} {name}")
        return plots.finish(fig, save_path)
