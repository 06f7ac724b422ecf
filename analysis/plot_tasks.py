"""Which figures a session's report holds, with their captions: drawn lazily, one task each.

:func:`session_plot_tasks` lists, per node, a task per figure (raster, timeline,
population figures, ISI, membrane traces, weights) that draws it with
:mod:`analysis.plots`, saves it under ``plots/`` and returns a
:class:`~analysis.report.figures.ReportFigure` with its caption.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from analysis.plots import (
    isi_figure,
    population_figure,
    raster_figure,
    save,
    timeline_figure,
)
from analysis.report.figures import ReportFigure
from recorderd.session import layout as L

if TYPE_CHECKING:
    from analysis.analyzer import SimulationAnalyzer
    from analysis.raster import RasterData
    from analysis.scan import PopulationScan


def _window_caption(r: RasterData | None) -> str:
    if r is None or not r.windowed:
        return " The whole recording is shown."
    return (
        f" Shown: {r.t_start_ms:g}-{r.t_stop_ms:g} ms of the {r.span_ms[0]:g}-"
        f"{r.span_ms[1]:g} ms recorded, a window chosen so that single spikes stay visible "
        "(sim-analyzer --t-start/--t-stop shows another)."
    )


def _raster_caption(scans: Sequence[PopulationScan], what: str) -> str:
    r = scans[0].raster
    dense = [s.info.layer for s in scans if s.raster is not None and s.raster.is_density]
    bins = {
        float(s.hist_edges[1] - s.hist_edges[0])
        for s in scans
        if s.hist_edges is not None and s.hist_edges.size > 1
    }
    text = (
        f"Spike raster of {what}: each row is one recorded neuron (at most "
        f"{max((s.raster.neurons.size for s in scans if s.raster is not None), default=0)} "
        "per layer, spread evenly over the layer; rows are labelled with the neuron's index "
        "in its layer), each tick one spike. Below: population rate per recorded neuron"
        + (f" in {min(bins):g} ms bins." if bins else ".")
    )
    if dense:
        text += (
            f" {', '.join(dense)}: too many spikes in view for single ticks, drawn as a density "
            "image (spikes per pixel, colour bar on the right)."
        )
    return text + _window_caption(r)


def session_plot_tasks(
    an: SimulationAnalyzer,
    scans: Mapping[tuple[str, str], PopulationScan],
    out_dir: Path,
    windows: Mapping[str, tuple[float, float] | None] | None = None,
) -> list[tuple[str, Callable[[], ReportFigure]]]:
    """The automatic analysis's figures as ``(node_id, draw and save)`` tasks, in order.

    Per node ``<node>_raster.png``; per layer ``<node>_<layer>_{raster,timeline,isi}.png``
    and, when the scans have sampled neurons, ``<node>_<layer>_population.png``; per
    membrane stream ``<node>_<layer>_membrane.png`` (over the node's window in
    ``windows``, with the layer's spikes marked) and per weight matrix
    ``<node>_<name>_weights.png``. ``scans`` need a raster, a time histogram and an ISI
    histogram. Each task returns the :class:`ReportFigure` (path and caption).
    """
    tasks: list[tuple[str, Callable[[], ReportFigure]]] = []

    def add(
        node: str,
        name: str,
        kind: str,
        layer: str | None,
        caption: Callable[[], str] | str,
        draw: Callable[[], Figure],
    ) -> None:
        path = out_dir / f"{name}.png"
        tasks.append((node, partial(_draw_and_save, draw, path, node, kind, layer, caption, name)))

    for node in an.get_recorded_nodes():
        window = (windows or {}).get(node)
        layers = [scans[(node, layer)] for layer in an.get_recorded_layers(node)]
        if layers:
            what = f"every layer of {node}" if len(layers) > 1 else f"{node} {layers[0].info.layer}"
            add(
                node,
                f"{node}_raster",
                "node_raster",
                None,
                _raster_caption(layers, what),
                partial(raster_figure, layers, node),
            )
        for scan in layers:
            lay = scan.info.layer
            base = f"{node}_{lay}"
            spans = an.control_spans(node, scan.info.t_stop_ms)
            bin_ms = (
                float(scan.hist_edges[1] - scan.hist_edges[0])
                if scan.hist_edges is not None and scan.hist_edges.size > 1
                else float("nan")
            )
            add(
                node,
                f"{base}_timeline",
                "timeline",
                lay,
                f"Firing rate per recorded neuron of {lay} in {bin_ms:g} ms bins over the whole "
                "recording (a last, shorter bin is divided by its own length); dashed: the mean "
                "rate. The strip above shows the node's status from its control states; grey "
                "shading marks the time a task was active.",
                partial(timeline_figure, scan, spans),
            )
            if scan.sample is not None:
                add(
                    node,
                    f"{base}_population",
                    "population",
                    lay,
                    f"Population statistics of {lay}. Top left: firing rate of each recorded "
                    "neuron over the recording (dashed: the mean). Top middle: coefficient of "
                    "variation of each neuron's inter-spike intervals (neurons with at least "
                    "two; dotted: 1, a Poisson process). Top right: Pearson correlation of the "
                    f"spike counts in {scan.sample.bin_ms:g} ms bins of "
                    f"{scan.sample.neurons.size} neurons spread over the layer (grey: a "
                    "silent neuron). Bottom: synchrony chi (Golomb) of the same neurons in "
                    "consecutive windows; dashed: 1/sqrt(n), the value for independent neurons.",
                    partial(population_figure, scan),
                )
            add(
                node,
                f"{base}_isi",
                "isi",
                lay,
                f"Inter-spike intervals of all recorded neurons of {lay} pooled, in the ISI "
                "histogram's bins (1 ms up to 200 ms by default; longer ones are counted in "
                "the title).",
                partial(isi_figure, scan),
            )
            add(
                node,
                f"{base}_raster",
                "raster",
                lay,
                _raster_caption([scan], f"{node} {lay}"),
                partial(raster_figure, [scan], base),
            )
        for layer in an.reader.layers(node, L.MEMBRANE):
            lo, hi = window if window is not None else (None, None)
            add(
                node,
                f"{node}_{layer}_membrane",
                "membrane",
                layer,
                partial(_membrane_caption, an, node, layer, window),
                partial(
                    an.plot_membrane_traces,
                    node,
                    layer,
                    t_start_ms=lo,
                    t_stop_ms=hi,
                    mark_spikes=True,
                ),
            )
        for name in an.get_weight_names(node):
            if an.reader.frames(node, name, L.WEIGHTS).steps.size:
                shape = "x".join(
                    str(x) for x in an.reader.stream_attrs(node, name, L.WEIGHTS)[L.ATTR_LAYER_SIZE]
                )
                add(
                    node,
                    f"{node}_{name}_weights",
                    "weights",
                    name,
                    f"Weight matrix {name} ({shape}, rows presynaptic, columns postsynaptic): "
                    "left, its last snapshot (block means when it has more than 512 rows or "
                    "columns); right, the Frobenius norm of every snapshot over the steps.",
                    partial(an.plot_weights, node, name),
                )
    return tasks


def _membrane_caption(
    an: SimulationAnalyzer, node: str, layer: str, window: tuple[float, float] | None
) -> str:
    threshold = an.threshold_mv(node, layer)
    where = (
        "over the whole recording"
        if window is None
        else f"from {window[0]:g} to {window[1]:g} ms (the window of the rasters)"
    )
    text = (
        f"Membrane potential of the first recorded neurons of {node} {layer}, {where}, one "
        "row per neuron (labelled with its index in the layer). Red ticks at the top of a row: "
        "that neuron's spikes, where the spike stream records it too."
    )
    if threshold is None:
        return text + (
            " The firing threshold is not in the recording (no control state carries "
            "'v_th_mv'), so no threshold line is drawn."
        )
    return text + f" Dashed: the firing threshold, {threshold:g} mV (control-state metadata)."


def _draw_and_save(
    draw: Callable[[], Figure],
    path: Path,
    node: str,
    kind: str,
    layer: str | None,
    caption: Callable[[], str] | str,
    title: str,
) -> ReportFigure:
    save(draw(), path)
    text = caption() if callable(caption) else caption
    return ReportFigure(path, node, kind, text, layer, title)
