"""Export a recorded session to SONATA spikes, NWB and neo (see ``docs/exports.md``).

SONATA export streams the spikes in slices and needs no optional package. NWB
(``pynwb``) and neo are optional: they are imported inside the functions that use
them, and a missing package raises :class:`MissingDependencyError`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from analysis.reader import AnalysisError, Run, SessionReader, SpikeTrains, span_of
from recorderd.session import layout as L

__all__ = [
    "COPY_ROWS",
    "SONATA_MAGIC",
    "SONATA_VERSION",
    "MissingDependencyError",
    "UnknownPopulationError",
    "export_nwb",
    "export_sonata",
    "recording_span",
    "to_neo",
]

#: Root attributes of every SONATA HDF5 file (SONATA developer guide, "Common conventions").
SONATA_MAGIC = 0x0A7A
SONATA_VERSION = (0, 1)
#: Rows per slice when copying spikes: 2 Mi rows (whole source chunks of every format
#: version) keep the working set near 100 MB whatever the session size.
COPY_ROWS = 1 << 21

FloatArray = npt.NDArray[np.float64]
#: Reads rows ``lo`` to ``hi`` of one dataset of a stream.
RowReader = Callable[[int, int], npt.NDArray[Any]]


class MissingDependencyError(AnalysisError):
    """An optional package needed for this export is not installed."""

    def __init__(self, package: str, install: str) -> None:
        super().__init__(f"{package} is not installed ({install})")


class UnknownPopulationError(AnalysisError):
    """A requested spike population is not in the session."""


def recording_span(frame_time_ms: npt.ArrayLike, dt_ms: float) -> tuple[float, float]:
    """``[first message time, last message time + dt)`` in ms; ``(0, 0)`` without messages.

    One run's span from its message times alone; a stream's span over all its node
    incarnations, each with its own dt, is ``span_of(reader.runs(node, layer))``.
    """
    t = np.asarray(frame_time_ms, dtype=np.float64)
    if t.size == 0:
        return 0.0, 0.0
    return span_of([Run(0, 0, 0, float(t.min()), float(t.max()) + dt_ms)])


@contextlib.contextmanager
def _replacing(out: Path) -> Iterator[Path]:
    """A side file to write, renamed to ``out`` on success and removed on failure.

    So an interrupted export never leaves a truncated file under the final name.
    """
    # Keeps the suffix: pynwb warns about NWB paths not ending in ".nwb".
    partial = out.with_name(f"{out.stem}.partial{out.suffix}")
    try:
        yield partial
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


# -- SONATA -------------------------------------------------------------------------------


def export_sonata(
    session_dir: str | Path,
    out_path: str | Path,
    *,
    populations: Iterable[str] | None = None,
    chunk_rows: int = COPY_ROWS,
) -> dict[str, int]:
    """Write the session's spikes as a SONATA spike file sorted by time; spikes per population.

    Populations are named ``<node_id>.<layer>`` as in the session; ``node_ids`` are the
    neuron indices within the layer. Datasets are contiguous and uncompressed, so tools
    whose HDF5 lacks the deflate filter (the libsonata wheel) read them. Memory stays
    bounded by ``chunk_rows``: populations already ``by_time`` are copied slice by slice,
    others are merged from their sorted runs.
    """
    counts: dict[str, int] = {}
    with SessionReader(session_dir) as reader:
        names = [L.population(n, layer) for n in reader.nodes() for layer in reader.layers(n)]
        wanted = names if populations is None else list(dict.fromkeys(populations))
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            missing = ", ".join(unknown)
            raise UnknownPopulationError(f"no spike population {missing} in {reader.path}")
        with (
            _replacing(Path(out_path)) as partial,
            h5py.File(partial, "w", libver=("v108", "v110")) as dst,
        ):
            dst.attrs.create("magic", SONATA_MAGIC, dtype=np.uint32)
            dst.attrs.create("version", np.asarray(SONATA_VERSION, dtype=np.uint32))
            top = dst.create_group(L.SPIKES)
            for name in wanted:
                group = top.create_group(name)
                counts[name] = _copy_population(reader, name, group, max(1, chunk_rows))
    return counts


def _copy_population(reader: SessionReader, name: str, dst: h5py.Group, rows: int) -> int:
    node, layer = L.split_population(name)
    # Complete rows only: a live writer may have appended part of a batch.
    n = reader.spike_rows(node, layer)
    out_t = dst.create_dataset(L.TIMESTAMPS, shape=(n,), dtype=L.TIME_DTYPE)
    out_t.attrs[L.ATTR_UNITS] = L.UNITS_TIME
    # SONATA specifies uint64 node ids; libsonata reads uint32 too, but strict is safer.
    out_id = dst.create_dataset(L.NODE_IDS, shape=(n,), dtype=np.uint64)
    enum = h5py.enum_dtype(L.SORTING_ENUM, basetype="u1")
    dst.attrs.create(L.ATTR_SORTING, L.SORTING_ENUM["by_time"], dtype=enum)
    if rows >= L.SPIKE_CHUNK:  # whole source chunks per slice: none is decompressed twice
        rows -= rows % L.SPIKE_CHUNK

    def chunks() -> Iterator[SpikeTrains]:
        return reader.iter_spike_chunks(node, layer, rows, with_steps=False)

    runs = [(0, n)] if reader.sorting(node, layer) == "by_time" else _sorted_runs(chunks(), n)
    if len(runs) <= 1:
        at = 0
        for c in chunks():
            out_t[at : at + c.times_ms.size] = c.times_ms
            out_id[at : at + c.times_ms.size] = c.neuron_ids
            at += c.times_ms.size
        return n
    at = 0

    # The merge reads each run at its own pace: slices straight from the datasets.
    def read(name: str) -> RowReader:
        return lambda lo, hi: reader.read_rows(L.SPIKES, node, layer, name, lo, hi)

    for t, i in _merge_runs(read(L.TIMESTAMPS), read(L.NODE_IDS), runs, rows):
        out_t[at : at + t.size] = t
        out_id[at : at + t.size] = i
        at += t.size
    return n


def _sorted_runs(chunks: Iterable[SpikeTrains], n: int) -> list[tuple[int, int]]:
    """Row ranges ``[a, b)`` of ``n`` rows that are each non-decreasing in time."""
    starts = [0]
    at, last = 0, -np.inf
    for c in chunks:
        t = c.times_ms
        if t.size and t[0] < last:
            starts.append(at)
        starts.extend((at + 1 + np.flatnonzero(t[1:] < t[:-1])).tolist())
        at, last = at + t.size, (float(t[-1]) if t.size else last)
    return list(zip(starts, [*starts[1:], n], strict=True))


def _merge_runs(
    ts: RowReader, ids: RowReader, runs: list[tuple[int, int]], rows: int
) -> Iterator[tuple[FloatArray, npt.NDArray[Any]]]:
    """Merge time-sorted row runs into time order, about ``rows`` rows per batch.

    Equal times keep their row order (a stable sort), except inside a tie longer than
    a run's share of the batch, where SONATA's ``by_time`` allows any order anyway.
    """
    share = max(1, rows // len(runs))
    pos = [a for a, _ in runs]  # next row to read per run
    buf = [np.zeros(0, np.float64) for _ in runs]  # read, not yet written
    while True:
        for r, (_, end) in enumerate(runs):
            need = share + 1 - buf[r].size
            if need > 0 and pos[r] < end:
                buf[r] = np.concatenate([buf[r], ts(pos[r], min(pos[r] + need, end))])
                pos[r] = min(pos[r] + need, end)
        if not any(b.size for b in buf):
            return
        # Every run holds at most `share` rows below the smallest look-ahead time.
        full = [b[share] for b in buf if b.size > share]
        bound = min(full) if full else np.inf
        take = [int(np.searchsorted(b, bound, "left")) for b in buf]
        if not any(take):
            take = [int(np.searchsorted(b, bound, "right")) for b in buf]
        times, idx = [], []
        for r, k in enumerate(take):
            if k:
                first = pos[r] - buf[r].size
                times.append(buf[r][:k])
                idx.append(ids(first, first + k))
                buf[r] = buf[r][k:]
        t = np.concatenate(times)
        order = np.argsort(t, kind="stable")
        yield t[order], np.concatenate(idx)[order]


# -- NWB ----------------------------------------------------------------------------------


def export_nwb(
    session_dir: str | Path, out_path: str | Path, *, include_weights: bool = False
) -> None:
    """Write the session as an NWB file: units, control-state intervals, membrane series.

    Needs ``pynwb`` (extra ``nwb``). Times are simulation time in seconds; membrane data
    stay float32 mV with ``conversion = 1e-3`` to volts. Spike times are held in memory
    (8 bytes per spike); membrane and weight data are streamed from the session.
    """
    try:
        import pynwb  # type: ignore[import-untyped]
        from hdmf.common import DynamicTable  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingDependencyError("pynwb", "pip install 'recorderd[nwb]'") from exc
    with (
        SessionReader(session_dir) as r,
        _replacing(Path(out_path)) as partial,
    ):
        start = _session_start(r)
        name = str(r.metadata().get(L.ATTR_SESSION, r.path.name))
        nwb = pynwb.NWBFile(
            session_description=f"recorderd session {name} (simulation)",
            identifier=f"recorderd/{name}/{start.isoformat()}",
            session_start_time=start,
            notes="Exported by analysis.export.export_nwb; times are simulation time.",
        )
        nwb.units = _units(r)
        intervals = _control_intervals(r)
        if intervals is not None:
            nwb.add_time_intervals(intervals)
        columns = DynamicTable(
            name="membrane_neurons", description="neuron of each membrane series column"
        )
        for col, text in (("series", "series name"), ("column", "column"), ("neuron", "index")):
            columns.add_column(col, f"{text} (neuron: index within the layer)")
        kinds = [(L.MEMBRANE, "mV", 1e-3, "volts")]
        if include_weights:
            kinds.append((L.WEIGHTS, L.UNITS_WEIGHTS, 1.0, L.UNITS_WEIGHTS))
        for kind, units, conversion, nwb_unit in kinds:
            for node in r.nodes():
                for lay in r.layers(node, kind):
                    pop = L.population(node, lay)
                    times = r.frames(node, lay, kind).times_ms  # complete rows only
                    shape = (times.size, *r.stream_attrs(node, lay, kind)[L.ATTR_LAYER_SIZE])
                    if kind == L.MEMBRANE:
                        shape = (times.size, r.recorded_count(node, lay, kind))
                    if times.size == 0 or 0 in shape:
                        continue  # no neuron selected, or nothing recorded
                    series = f"{kind}_{pop}"

                    def read(
                        sel: tuple[slice, ...], kind: str = kind, node: str = node, lay: str = lay
                    ) -> Any:
                        lo, hi, _ = sel[0].indices(r.row_count(kind, node, lay, L.DATA))
                        rows = r.read_rows(kind, node, lay, L.DATA, lo, hi)
                        return rows[(slice(None), *sel[1:])]

                    nwb.add_acquisition(
                        pynwb.TimeSeries(
                            name=series,
                            data=_slices(read, shape),
                            unit=nwb_unit,
                            conversion=conversion,
                            timestamps=times / 1000.0,
                            description=f"{kind} of {pop} in {units}",
                        )
                    )
                    if kind == L.MEMBRANE:
                        for j, nrn in enumerate(r.recorded_neurons(node, lay, kind)):
                            columns.add_row(series=series, column=j, neuron=int(nrn))
        if len(columns):
            nwb.create_processing_module("recording", "recorderd bookkeeping").add(columns)
        with pynwb.NWBHDF5IO(partial, "w") as io:
            io.write(nwb)


def _units(r: SessionReader) -> Any:
    """The NWB Units table: one unit per recorded neuron of every spike population."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb.misc import Units  # type: ignore[import-untyped]

    times: list[FloatArray] = []
    ends: list[npt.NDArray[np.int64]] = []
    nodes: list[str] = []
    layers: list[str] = []
    index: list[npt.NDArray[np.uint32]] = []
    spans: list[tuple[float, float]] = []
    total = 0
    for node in r.nodes():
        for lay in r.layers(node):
            tr = r.spikes(node, lay)
            neurons = r.recorded_neurons(node, lay)
            # NWB wants each unit's times ascending, also after a restart.
            order = np.lexsort((tr.times_ms, tr.neuron_ids))
            ids = tr.neuron_ids[order]
            times.append(tr.times_ms[order] / 1000.0)
            ends.append(total + np.searchsorted(ids, neurons, "right").astype(np.int64))
            total += ids.size
            nodes += [node] * neurons.size
            layers += [lay] * neurons.size
            index.append(neurons)
            t0, t1 = span_of(r.runs(node, lay))
            spans += [(t0 / 1000.0, t1 / 1000.0)] * neurons.size
    n = len(nodes)
    st = VectorData(
        name="spike_times",
        description="the spike times for each unit in seconds",
        data=np.concatenate(times) if times else np.zeros(0),
    )
    obs = VectorData(
        name="obs_intervals",
        description="recording span of the unit's stream [first, last message + dt) in s",
        data=np.asarray(spans, dtype=np.float64).reshape(n, 2),
    )
    cols = [
        st,
        VectorIndex(name="spike_times_index", data=_cat(ends, np.int64), target=st),
        obs,
        VectorIndex(name="obs_intervals_index", data=np.arange(1, n + 1), target=obs),
        VectorData(name="node_id", description="publishing node", data=nodes),
        VectorData(name="layer", description="layer name", data=layers),
        VectorData(
            name="neuron_index", description="index within the layer", data=_cat(index, np.uint32)
        ),
    ]
    return Units(
        name="units", description="recorded neurons (recorderd)", columns=cols, id=list(range(n))
    )


def _cat(parts: list[npt.NDArray[Any]], dtype: type[np.generic]) -> npt.NDArray[Any]:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _control_intervals(r: SessionReader) -> Any:
    """One interval per control state, until the node's next state (same incarnation).

    The last state of an incarnation lasts to the end of that incarnation's recorded
    data (its latest message time + dt), or is empty if no data stream has any.
    """
    from pynwb.epoch import TimeIntervals  # type: ignore[import-untyped]

    records = r.control_states()
    if not records:
        return None
    ends: dict[tuple[str, int], float] = {}
    for node in r.nodes():
        for kind in (L.SPIKES, L.MEMBRANE, L.WEIGHTS):
            for lay in r.layers(node, kind):
                for run in r.runs(node, lay, kind):
                    key = (node, run.incarnation)
                    ends[key] = max(ends.get(key, -np.inf), run.t_stop_ms)
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec["node_id"], int(rec["incarnation"])), []).append(rec)
    rows = []
    for key, recs in groups.items():
        recs.sort(key=lambda x: int(x["seq"]))
        for rec, nxt in zip(recs, [*recs[1:], None], strict=True):
            t0 = float(rec["time_ms"])
            t1 = float(nxt["time_ms"]) if nxt is not None else ends.get(key, t0)
            rows.append((t0, max(t0, t1), rec))
    table = TimeIntervals(name="control_states", description="node control states")
    for col, text in (
        ("node_id", "node"),
        ("module_type", "module type"),
        ("status", "status"),
        ("active_task", "active task ('' if none)"),
        ("step", "step of the state"),
        ("incarnation", "node incarnation"),
    ):
        table.add_column(col, text)
    for t0, t1, rec in sorted(rows, key=lambda x: x[0]):
        table.add_interval(
            start_time=t0 / 1000.0,
            stop_time=t1 / 1000.0,
            node_id=rec["node_id"],
            module_type=rec.get("module_type") or "",
            status=rec["status"],
            active_task=rec.get("active_task") or "",
            step=int(rec["step"]),
            incarnation=np.uint64(rec["incarnation"]),
        )
    return table


def _slices(read: Callable[[tuple[slice, ...]], Any], shape: tuple[int, ...]) -> Any:
    """An hdmf chunk iterator over the float32 rows ``read(selection)`` returns (bounded memory)."""
    from hdmf.data_utils import GenericDataChunkIterator  # type: ignore[import-untyped]

    class Slices(GenericDataChunkIterator):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(buffer_gb=0.1)

        def _get_data(self, selection: tuple[slice, ...]) -> npt.NDArray[Any]:
            return np.asarray(read(selection))

        def _get_maxshape(self) -> tuple[int, ...]:
            return shape

        def _get_dtype(self) -> np.dtype[Any]:
            return np.dtype(L.VALUE_DTYPE)

    return Slices()


def _session_start(reader: SessionReader) -> dt.datetime:
    """The session's ``start_time_utc`` as an aware datetime (UTC now if absent)."""
    text = str(reader.metadata().get(L.ATTR_START_TIME, ""))
    return dt.datetime.fromisoformat(text) if text else dt.datetime.now(dt.UTC)


# -- neo ----------------------------------------------------------------------------------


def to_neo(session_dir: str | Path, node_id: str | None = None, layer: str | None = None) -> Any:
    """A ``neo.Block`` with one Segment: a SpikeTrain per recorded neuron, membrane signals.

    Filter with ``node_id`` and/or ``layer``. Trains are in ms with ``t_start``/``t_stop``
    the stream's recording span (:func:`recording_span`) and annotations ``node_id``,
    ``layer``, ``neuron_index``. Membrane (mV) becomes one signal per stretch of
    increasing time (a restart starts a new one): an ``AnalogSignal`` when the frames
    are evenly spaced by ``dt_ms``, else an ``IrregularlySampledSignal``.
    """
    try:
        import neo  # type: ignore[import-untyped]
        import quantities as pq  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingDependencyError("neo", "pip install neo quantities") from exc
    block = neo.Block(name=Path(session_dir).name)
    seg = neo.Segment(name="session")
    block.segments.append(seg)
    with SessionReader(session_dir) as r:
        if node_id is not None and node_id not in r.nodes():
            raise UnknownPopulationError(f"no node {node_id!r} in {r.path}")
        block.rec_datetime = _session_start(r)
        for node in r.nodes() if node_id is None else [node_id]:
            for lay in r.layers(node):
                if layer is not None and lay != layer:
                    continue
                t0, t1 = span_of(r.runs(node, lay))
                tr = r.spikes(node, lay)
                order = np.lexsort((tr.times_ms, tr.neuron_ids))
                ids, times = tr.neuron_ids[order], tr.times_ms[order]
                for nrn in r.recorded_neurons(node, lay):
                    a, b = np.searchsorted(ids, [nrn, nrn + 1])
                    seg.spiketrains.append(
                        neo.SpikeTrain(
                            times[a:b],
                            units=pq.ms,
                            t_start=t0 * pq.ms,
                            t_stop=t1 * pq.ms,
                            name=f"{L.population(node, lay)}#{nrn}",
                            node_id=node,
                            layer=lay,
                            neuron_index=int(nrn),
                        )
                    )
            for lay in r.layers(node, L.MEMBRANE):
                if layer is None or lay == layer:
                    _add_membrane(seg, r, node, lay, neo, pq)
    return block


def _add_membrane(seg: Any, r: SessionReader, node: str, lay: str, neo: Any, pq: Any) -> None:
    """Add a layer's membrane to ``seg``: one signal per stretch of increasing time."""
    tr = r.membrane_traces(node, lay)
    fr = r.frames(node, lay, L.MEMBRANE)
    if tr.data_mv.size == 0:
        return
    dt_ms = float(r.stream_attrs(node, lay, L.MEMBRANE)[L.ATTR_DT_MS])
    # A restart or an appended run sets time back: such stretches are separate signals.
    cuts = [0, *(np.flatnonzero(np.diff(tr.times_ms) <= 0) + 1).tolist(), tr.times_ms.size]
    for a, b in itertools.pairwise(cuts):
        t, v = tr.times_ms[a:b], tr.data_mv[a:b]
        kw: dict[str, Any] = {
            "name": L.population(node, lay),
            "node_id": node,
            "layer": lay,
            "incarnation": int(fr.incarnation[a]),
            "array_annotations": {"neuron_index": tr.neuron_ids},
        }
        if np.allclose(np.diff(t), dt_ms):
            step = dt_ms * pq.ms
            sig = neo.AnalogSignal(v, units=pq.mV, t_start=t[0] * pq.ms, sampling_period=step, **kw)
            seg.analogsignals.append(sig)
        else:
            sig = neo.IrregularlySampledSignal(t, v, units=pq.mV, time_units=pq.ms, **kw)
            seg.irregularlysampledsignals.append(sig)
