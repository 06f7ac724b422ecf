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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import matplotlib
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

if TYPE_CHECKING:
    from analysis.raster import RasterData
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

#: Marker height of a raster row at most (points); rows are thinner with many neurons.
MAX_MARKER_PT: Final = 5.0


def _window_text(r: RasterData) -> str:
    if not r.windowed:
        return ""
    return f", window {r.t_start_ms:g}-{r.t_stop_ms:g} ms of {r.span_ms[0]:g}-{r.span_ms[1]:g} ms"


def _draw_raster(fig: Figure, ax: Axes, scan: PopulationScan) -> None:
    r = scan.raster
    if r is None:
        raise ValueError("the scan has no raster; scan with raster_neurons")
    n = r.neurons.size
    if r.density is not None and r.t_edges is not None and r.row_edges is not None:
        extent = (r.t_edges[0], r.t_edges[-1], r.row_edges[0], r.row_edges[-1])
        im = ax.imshow(
            r.density,
            aspect="auto",
            origin="lower",
            extent=extent,
            cmap="Greys",
            interpolation="nearest",
            vmin=0,
        )
        # Beside the axes, so the raster keeps the width of the rate panel under it.
        cax = ax.inset_axes((1.01, 0.0, 0.012, 1.0))
        bin_ms = (r.t_edges[-1] - r.t_edges[0]) / max(1, r.t_edges.size - 1)
        rows = (r.row_edges[-1] - r.row_edges[0]) / max(1, r.row_edges.size - 1)
        cb = fig.colorbar(im, cax=cax)
        cb.set_label(f"spikes per {bin_ms:.3g} ms\nx {rows:.3g} neuron(s)", fontsize=7)
        cb.ax.tick_params(labelsize=7)
        how = f"density image, {r.n_spikes:,} spikes"
    else:
        assert r.times_ms is not None and r.rows is not None
        # A marker as tall as a row (at most MAX_MARKER_PT): neighbouring rows stay apart.
        height_pt = ax.get_position().height * fig.get_figheight() * 72.0
        size = float(np.clip(0.85 * height_pt / max(n, 1), 1.0, MAX_MARKER_PT))
        ax.plot(
            r.times_ms,
            r.rows,
            "|",
            color="k",
            markersize=size,
            markeredgewidth=0.7,
            rasterized=True,
        )
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
        f"(layer {info.layer_size}), {how}{_window_text(r)}",
        fontsize=9,
        loc="left",
    )


def raster_figure(scans: Sequence[PopulationScan], title: str) -> Figure:
    """Rasters of one or more layers stacked, population rate per neuron underneath.

    The x range is the rasters' window (the whole recording unless the scans were made
    with ``raster_window``); the rate panel shows the same range. Legends sit outside
    the axes, so they cover no data.
    """
    ratios = [3.0] * len(scans) + [1.5]
    fig = new_figure(10, 1.2 + 2.4 * len(scans) + 1.5)
    axes = fig.subplots(len(scans) + 1, 1, sharex=True, height_ratios=ratios, squeeze=False)
    for ax, scan in zip(axes[:-1, 0], scans, strict=True):
        _draw_raster(fig, ax, scan)
    hist_ax = axes[-1, 0]
    for scan in scans:
        if scan.hist_counts is not None and scan.hist_counts.size:
            edges, rate = scan.rate_per_neuron()
            hist_ax.stairs(rate, edges, baseline=None, label=scan.info.layer, lw=1.2)
    hist_ax.set_ylabel("rate per\nneuron (Hz)")
    hist_ax.set_xlabel("time (ms)")
    hist_ax.set_ylim(bottom=0)
    if len(scans) > 1:
        hist_ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(title)
    return fig


def timeline_figure(scan: PopulationScan, spans: Sequence[ControlSpan]) -> Figure:
    """Firing rate per neuron over time; task-active spans shaded, statuses as a strip.

    One legend above the strip (statuses, task shading, the rate and its mean): no
    legend covers data. The last bin, narrower when the span is not a whole number of
    bins, is divided by its own length (:meth:`PopulationScan.rate_per_neuron`).
    """
    fig = new_figure(10, 4.4)
    strip, ax = fig.subplots(2, 1, sharex=True, height_ratios=[0.4, 4])
    info = scan.info
    handles: list[Any] = []
    if scan.hist_counts is not None:
        edges, rate = scan.rate_per_neuron()
        handles.append(ax.stairs(rate, edges, baseline=None, color="k", label="rate per neuron"))
        handles.append(
            ax.axhline(scan.mean_rate_hz, color="tab:blue", ls="--", lw=0.8, label="mean")
        )
        ax.set_ylim(bottom=0)
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
        handles += [Patch(color=c, label=s) for s, c in colors.items()]
        handles.append(Patch(color=_TASK_COLOR, alpha=0.4, label="task active"))
    if handles:
        strip.legend(
            handles=handles,
            fontsize=7,
            ncols=min(8, len(handles)),
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


def population_figure(scan: PopulationScan) -> Figure:
    """Rate and ISI CV distributions, correlation matrix and synchrony of a layer.

    Needs a scan with ``sample_neurons`` for the correlation matrix and the synchrony
    curve (:class:`analysis.sample.SampleCounts`); without it those panels say so.
    """
    info = scan.info
    fig = new_figure(11, 6.4)
    grid = fig.add_gridspec(2, 3, height_ratios=[1.25, 1])
    ax_rate, ax_cv, ax_corr = (fig.add_subplot(grid[0, i]) for i in range(3))
    ax_sync = fig.add_subplot(grid[1, :])
    rates = scan.rates_hz[np.isfinite(scan.rates_hz)]
    if rates.size:
        ax_rate.hist(rates, bins=min(40, max(5, rates.size // 5)), color="tab:blue")
        ax_rate.axvline(scan.mean_rate_hz, color="k", ls="--", lw=0.8)
    sparse = " (spiking ones)" if info.sparse else ""
    ax_rate.set_title(f"rate of {rates.size:,} neurons{sparse}", fontsize=9, loc="left")
    ax_rate.set_xlabel("firing rate (Hz)")
    ax_rate.set_ylabel("neurons")
    cv = scan.cv_isi[np.isfinite(scan.cv_isi)]
    if cv.size:
        ax_cv.hist(cv, bins=min(40, max(5, cv.size // 5)), color="tab:orange")
        ax_cv.axvline(1.0, color="0.4", ls=":", lw=0.8)  # Poisson
    ax_cv.set_title(f"ISI CV of {cv.size:,} neurons (dotted: Poisson)", fontsize=9, loc="left")
    ax_cv.set_xlabel("CV of inter-spike intervals")
    sample = scan.sample
    if sample is None or sample.neurons.size < 2:
        for ax in (ax_corr, ax_sync):
            ax.text(0.5, 0.5, "not computed", ha="center", va="center", transform=ax.transAxes)
        return fig
    corr = sample.correlation()
    off = corr[~np.eye(corr.shape[0], dtype=bool)]
    off = off[np.isfinite(off)]
    vmax = float(np.max(np.abs(off))) if off.size else 1.0
    shown = np.ma.masked_invalid(np.where(np.eye(corr.shape[0], dtype=bool), np.nan, corr))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.85")
    im = ax_corr.imshow(
        shown, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest", origin="upper"
    )
    fig.colorbar(im, ax=ax_corr, label="Pearson r", shrink=0.9)
    k = sample.neurons.size
    ticks = np.unique(np.linspace(0, k - 1, min(k, 5)).round().astype(int))
    ax_corr.set_xticks(ticks, [str(int(sample.neurons[t])) for t in ticks], fontsize=7)
    ax_corr.set_yticks(ticks, [str(int(sample.neurons[t])) for t in ticks], fontsize=7)
    mean_r = float(off.mean()) if off.size else float("nan")
    ax_corr.set_title(
        f"correlation, {k} neurons, {sample.bin_ms:g} ms bins (mean r {mean_r:.3f})",
        fontsize=9,
        loc="left",
    )
    edges, chi, width = sample.synchrony()
    if chi.size:
        ax_sync.stairs(chi, edges, baseline=None, color="k", label="synchrony chi")
        ax_sync.axhline(1 / np.sqrt(k), color="tab:blue", ls="--", lw=0.8, label="independent")
        ax_sync.set_xlim(edges[0], edges[-1])
        ax_sync.legend(
            fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, frameon=False
        )
    ax_sync.set_ylim(0, 1.05)
    ax_sync.set_xlabel("time (ms)")
    ax_sync.set_ylabel("chi")
    ax_sync.set_title(
        f"synchrony (Golomb chi) of the {k} neurons in {width:g} ms windows",
        fontsize=9,
        loc="right",
    )
    fig.suptitle(f"{info.node_id} {info.layer}: population statistics")
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


def membrane_figure(
    traces: MembraneTraces,
    title: str,
    spikes: Mapping[int, FloatArray] | None = None,
    threshold_mv: float | None = None,
) -> Figure:
    """Membrane potential of a few neurons, one row each (thinned above MAX_TRACE_POINTS).

    ``spikes`` (neuron -> spike times in ms) are marked by red ticks at the top of each
    row; ``threshold_mv`` is drawn as a dashed line. Without them the title says so.
    """
    k = max(1, traces.neuron_ids.size)
    fig = new_figure(10, 1.0 + 1.1 * k)
    axes = fig.subplots(k, 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    n = traces.times_ms.size
    stride = max(1, -(-n // MAX_TRACE_POINTS))
    marked = 0
    for j, nid in enumerate(traces.neuron_ids.tolist()):
        ax = axes[j]
        ax.plot(traces.times_ms[::stride], traces.data_mv[::stride, j], lw=0.7, color=f"C{j % 10}")
        ax.set_ylabel(f"#{nid}", rotation=0, ha="right", va="center")
        if threshold_mv is not None:
            ax.axhline(threshold_mv, color="0.3", ls="--", lw=0.8)
        times = None if spikes is None else spikes.get(int(nid))
        if times is not None and times.size:
            marked += 1
            ax.plot(
                times,
                np.ones(times.size),
                "|",
                color="tab:red",
                markersize=6,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
            )
    notes = []
    if stride > 1:
        notes.append(f"every {stride}th step")
    if spikes is not None:
        notes.append(f"red ticks: spikes of {marked} of {traces.neuron_ids.size} neurons")
    notes.append(
        "dashed: threshold" if threshold_mv is not None else "threshold not in the recording"
    )
    axes[0].set_title(
        f"{title}: membrane potential (mV) by neuron; " + ", ".join(notes), fontsize=9, loc="left"
    )
    axes[-1].set_xlabel("time (ms)")
    if n:
        axes[-1].set_xlim(float(traces.times_ms.min()), float(traces.times_ms.max()))
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
