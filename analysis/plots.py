"""Figures of a recorded session (matplotlib, Agg canvas, no display needed).

Drawing only: every function takes data computed by :mod:`analysis.scan` or
:class:`analysis.analyzer.SimulationAnalyzer` and returns a
:class:`matplotlib.figure.Figure`. Figures are built on ``Figure`` with an Agg canvas,
not through ``pyplot``, so nothing depends on a display, no global figure list grows
during a long batch run, and importing this module does not change the backend of an
interactive session.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from recorderd.session import layout as L

if TYPE_CHECKING:
    from analysis.analyzer import SimulationAnalyzer
    from analysis.reader import MembraneTraces
    from analysis.scan import ControlSpan, PopulationScan

FloatArray = npt.NDArray[np.float64]

#: Points per membrane trace above which traces are thinned for drawing.
MAX_TRACE_POINTS: Final = 20_000
DPI: Final = 100
_TASK_COLOR: Final = "0.6"  # grey: apart from the status colours


def new_figure(width: float, height: float) -> Figure:
    """A figure with an Agg canvas and constrained layout."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """Write the figure as PNG (creating the folder) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=DPI)
    return out


def finish(fig: Figure, save_path: str | Path | None) -> Figure:
    """Save the figure if a path is given; return it either way."""
    if save_path is not None:
        save(fig, save_path)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


#: tab10 without its grey (C7), which marks task-active time.
_STATUS_PALETTE: Final = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9")


def status_colors(statuses: Sequence[str]) -> dict[str, str]:
    """A stable colour per status (tab10 without grey, in sorted order)."""
    pal = _STATUS_PALETTE
    return {s: pal[i % len(pal)] for i, s in enumerate(sorted(set(statuses)))}


# -- spikes ------------------------------------------------------------------------------


def _draw_raster(ax: Axes, scan: PopulationScan) -> None:
    r = scan.raster
    if r is None:
        raise ValueError("the scan has no raster; scan with raster_neurons")
    n = r.neurons.size
    if r.density is not None and r.t_edges is not None and r.row_edges is not None:
        extent = (r.t_edges[0], r.t_edges[-1], r.row_edges[0], r.row_edges[-1])
        ax.imshow(
            r.density,
            aspect="auto",
            origin="lower",
            extent=extent,
            cmap="Greys",
            interpolation="nearest",
        )
        how = f"density image, {r.n_spikes:,} spikes"
    else:
        assert r.times_ms is not None and r.rows is not None
        size = 4.0 if r.n_spikes < 20_000 else 2.0
        ax.plot(r.times_ms, r.rows, "|", color="k", markersize=size, markeredgewidth=0.6)
        how = f"{r.n_spikes:,} spikes"
    ax.set_xlim(r.t_start_ms, r.t_stop_ms)
    ax.set_ylim(-0.5, max(n, 1) - 0.5)
    if n:  # rows are ranks of the shown neurons; label a few with their layer index
        ticks = np.unique(np.linspace(0, n - 1, min(n, 5)).round().astype(int))
        ax.set_yticks(ticks, [str(int(r.neurons[t])) for t in ticks])
    info = scan.info
    ax.set_ylabel(f"{info.layer}\nneuron")
    ax.set_title(
        f"{info.layer}: {n} of {info.n_neurons} recorded neurons shown "
        f"(layer {info.layer_size}), {how}",
        fontsize=9,
        loc="left",
    )


def raster_figure(scans: Sequence[PopulationScan], title: str) -> Figure:
    """Rasters of one or more layers stacked, population rate per neuron underneath."""
    ratios = [3.0] * len(scans) + [1.5]
    fig = new_figure(10, 1.2 + 2.2 * len(scans) + 1.5)
    axes = fig.subplots(len(scans) + 1, 1, sharex=True, height_ratios=ratios, squeeze=False)
    for ax, scan in zip(axes[:-1, 0], scans, strict=True):
        _draw_raster(ax, scan)
    hist_ax = axes[-1, 0]
    for scan in scans:
        if scan.hist_counts is not None and scan.hist_counts.size:
            edges, rate = scan.rate_per_neuron()
            hist_ax.stairs(rate, edges, label=scan.info.layer)
    hist_ax.set_ylabel("rate per\nneuron (Hz)")
    hist_ax.set_xlabel("time (ms)")
    if len(scans) > 1:
        hist_ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title)
    return fig


def timeline_figure(scan: PopulationScan, spans: Sequence[ControlSpan]) -> Figure:
    """Firing rate per neuron over time; task-active spans shaded, statuses as a strip."""
    fig = new_figure(10, 4.2)
    strip, ax = fig.subplots(2, 1, sharex=True, height_ratios=[0.4, 4])
    info = scan.info
    if scan.hist_counts is not None:
        edges, rate = scan.rate_per_neuron()
        ax.stairs(rate, edges, color="k", label="rate per neuron")
        ax.axhline(scan.mean_rate_hz, color="tab:blue", ls="--", lw=0.8, label="mean")
        ax.legend(fontsize=8, loc="upper right")
    # One collection per colour, not one artist per state: long runs have many states.
    active = [(sp.t0_ms, sp.t1_ms - sp.t0_ms) for sp in spans if sp.active_task]
    if active:
        ax.broken_barh(
            active, (0, 1), transform=ax.get_xaxis_transform(), color=_TASK_COLOR, alpha=0.2, lw=0
        )
    colors = status_colors([sp.status for sp in spans])
    for status, color in colors.items():
        bars = [(sp.t0_ms, sp.t1_ms - sp.t0_ms) for sp in spans if sp.status == status]
        strip.broken_barh(bars, (0, 1), color=color, lw=0)
    strip.set_yticks([])
    strip.set_ylabel("status", rotation=0, ha="right", va="center")
    if spans:
        handles = [Patch(color=c, label=s) for s, c in colors.items()]
        handles.append(Patch(color=_TASK_COLOR, alpha=0.4, label="task active"))
        strip.legend(
            handles=handles,
            fontsize=7,
            ncols=min(6, len(handles)),
            loc="lower left",
            bbox_to_anchor=(0, 1.05),
            frameon=False,
        )
    if info.t_start_ms is not None and info.t_stop_ms is not None:
        ax.set_xlim(info.t_start_ms, info.t_stop_ms)
    bin_ms = (
        scan.hist_edges[1] - scan.hist_edges[0]
        if scan.hist_edges is not None and scan.hist_edges.size > 1
        else float("nan")
    )
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("rate per neuron (Hz)")
    ax.set_title(
        f"{info.node_id} {info.layer}: mean {scan.mean_rate_hz:.2f} Hz over "
        f"{info.n_neurons} recorded neurons, {bin_ms:g} ms bins",
        fontsize=9,
        loc="left",
    )
    return fig


def isi_figure(scan: PopulationScan) -> Figure:
    """Histogram of the inter-spike intervals of a layer's recorded neurons."""
    if scan.isi_hist is None or scan.isi_edges is None:
        raise ValueError("the scan has no ISI histogram; scan with isi_edges_ms")
    fig = new_figure(7, 3.5)
    ax = fig.subplots()
    ax.stairs(scan.isi_hist, scan.isi_edges, fill=True, color="tab:blue")
    info = scan.info
    n = int(scan.isi_hist.sum()) + scan.isi_overflow
    ax.set_title(
        f"{info.node_id} {info.layer}: {n:,} ISIs, median CV {scan.cv_isi_median:.2f}, "
        f"{scan.isi_overflow:,} longer than {scan.isi_edges[-1]:g} ms",
        fontsize=9,
        loc="left",
    )
    ax.set_xlabel("inter-spike interval (ms)")
    ax.set_ylabel("count")
    return fig


# -- membrane and weights -----------------------------------------------------------------


def membrane_figure(traces: MembraneTraces, title: str) -> Figure:
    """Membrane potential of a few neurons, one row each (thinned above MAX_TRACE_POINTS)."""
    k = max(1, traces.neuron_ids.size)
    fig = new_figure(10, 1.0 + 1.1 * k)
    axes = fig.subplots(k, 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    n = traces.times_ms.size
    stride = max(1, -(-n // MAX_TRACE_POINTS))
    for j, nid in enumerate(traces.neuron_ids.tolist()):
        axes[j].plot(traces.times_ms[::stride], traces.data_mv[::stride, j], lw=0.7, color=f"C{j}")
        axes[j].set_ylabel(f"{nid}", rotation=0, ha="right", va="center")
    note = f", every {stride}th step" if stride > 1 else ""
    axes[0].set_title(f"{title}: membrane potential (mV) by neuron{note}", fontsize=9, loc="left")
    axes[-1].set_xlabel("time (ms)")
    return fig


def weights_figure(
    image: npt.NDArray[np.float64],
    step: int,
    shape: Sequence[int],
    steps: npt.NDArray[np.int64],
    norms: npt.NDArray[np.float64],
    title: str,
) -> Figure:
    """Heatmap of one weight snapshot next to the Frobenius norm over the snapshots."""
    fig = new_figure(11, 4.2)
    ax_img, ax_norm = fig.subplots(1, 2, width_ratios=[1.3, 1])
    vmax = float(np.nanmax(np.abs(image))) if image.size else 1.0
    im = ax_img.imshow(
        image, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest"
    )
    fig.colorbar(im, ax=ax_img, label="weight")
    binned = "" if tuple(image.shape) == tuple(shape) else f", block means {image.shape}"
    ax_img.set_title(f"step {step}: {shape[0]}x{shape[1]}{binned}", fontsize=9)
    ax_img.set_xlabel("column (post)")
    ax_img.set_ylabel("row (pre)")
    ax_norm.plot(steps, norms, "o-")
    ax_norm.set_xlabel("step")
    ax_norm.set_ylabel("Frobenius norm")
    ax_norm.set_title("norm over snapshots", fontsize=9)
    fig.suptitle(title)
    return fig


# -- the CLI's set of plots -----------------------------------------------------------------


def session_plot_tasks(
    an: SimulationAnalyzer,
    scans: Mapping[tuple[str, str], PopulationScan],
    out_dir: Path,
) -> list[tuple[str, Callable[[], Path]]]:
    """The automatic analysis's figures as ``(node_id, draw and save)`` tasks, in order.

    Per layer ``<node>_<layer>_{raster,timeline,isi}.png``, per node
    ``<node>_raster.png``, per membrane stream ``<node>_<layer>_membrane.png`` and per
    weight matrix ``<node>_<name>_weights.png``. ``scans`` need a raster, a time
    histogram and an ISI histogram.
    """
    tasks: list[tuple[str, Callable[[], Path]]] = []

    def add(node: str, name: str, draw: Callable[[], Figure]) -> None:
        tasks.append((node, partial(_draw_and_save, draw, out_dir / f"{name}.png")))

    for node in an.get_recorded_nodes():
        layers = [scans[(node, layer)] for layer in an.get_recorded_layers(node)]
        if layers:
            add(node, f"{node}_raster", partial(raster_figure, layers, node))
        for scan in layers:
            base = f"{node}_{scan.info.layer}"
            spans = an.control_spans(node, scan.info.t_stop_ms)
            add(node, f"{base}_raster", partial(raster_figure, [scan], base))
            add(node, f"{base}_timeline", partial(timeline_figure, scan, spans))
            add(node, f"{base}_isi", partial(isi_figure, scan))
        for layer in an.reader.layers(node, L.MEMBRANE):
            add(node, f"{node}_{layer}_membrane", partial(an.plot_membrane_traces, node, layer))
        for name in an.get_weight_names(node):
            if an.reader.frames(node, name, L.WEIGHTS).steps.size:
                add(node, f"{node}_{name}_weights", partial(an.plot_weights, node, name))
    return tasks


def _draw_and_save(draw: Callable[[], Figure], path: Path) -> Path:
    return save(draw(), path)
