"""neo (optional): a ``neo.Block`` of spike trains and membrane signals, in memory.

``neo`` and ``quantities`` are imported inside :func:`to_neo`; a missing package
raises :class:`MissingDependencyError`.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from analysis.export._common import MissingDependencyError, UnknownPopulationError, session_start
from analysis.reader import SessionReader, span_of
from recorderd.session import layout as L


def to_neo(session_dir: str | Path, node_id: str | None = None, layer: str | None = None) -> Any:
    """A ``neo.Block`` with one Segment: a SpikeTrain per recorded neuron, membrane signals.

    Filter with ``node_id`` and/or ``layer``. Trains are in ms with ``t_start``/``t_stop``
    the stream's recording span (:func:`~analysis.export.recording_span`) and annotations
    ``node_id``, ``layer``, ``neuron_index``. Membrane (mV) becomes one signal per stretch
    of increasing time (a restart starts a new one): an ``AnalogSignal`` when the frames
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
        block.rec_datetime = session_start(r)
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
