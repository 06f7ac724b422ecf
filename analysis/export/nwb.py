"""NWB files (``pynwb``, optional): units, control-state intervals, membrane series.

``pynwb`` and ``hdmf`` are imported inside the functions that use them; a missing
package raises :class:`MissingDependencyError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.export._common import (
    FloatArray,
    MissingDependencyError,
    replacing,
    session_start,
)
from analysis.reader import SessionReader, span_of
from recorderd.session import layout as L


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
        replacing(Path(out_path)) as partial,
    ):
        start = session_start(r)
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
        kinds = [(L.MEMBRANE, L.UNITS_MEMBRANE, 1e-3, "volts")]
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
