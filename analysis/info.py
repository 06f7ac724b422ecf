"""``sim-analyzer info``: what a session holds, from its metadata, frame indexes and statistics.

Like ``ros2 bag info`` or ``mcap info``: state, simulation and wall-clock span, nodes,
one row per stream (kind, layer size, recorded neurons, messages, spikes, rate, loss
counters), compression and bytes per spike, format version and recorder runs. No spike
row is read: counts come from the frame index (``frame_count``), rates from the frame
times (:func:`analysis.reader.runs_of`), loss counters from ``recording_statistics.json``
summed over the recorder runs. The session is opened with ``recover=False``, so a
crashed session is described, not repaired.

:func:`session_info` builds a :class:`SessionInfo`; it renders as JSON
(:meth:`SessionInfo.to_dict`), as rich tables (:mod:`analysis.console`) and as HTML in
Jupyter (``_repr_html_``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Final

import numpy as np

from analysis.formats import integrity, jsonable
from analysis.reader import SessionReader, span_of
from recorderd.session import layout as L

#: Loss and bookkeeping counters shown per stream (from ``recording_statistics.json``).
LOSS_COUNTERS: Final = ("missing", "duplicates", "dropped", "rejected", "stale")
#: Version of the ``info --json`` document.
INFO_FORMAT_VERSION: Final = 1


def package_version() -> str:
    """Version of the installed ``recorderd`` distribution (analysis included)."""
    try:
        return importlib_metadata.version("recorderd")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class StreamInfo:
    """One recorded stream: its shape, what it holds, and its loss counters."""

    key: str
    """``<node_id>/<kind>/<name>``, as in ``recording_statistics.json``."""
    kind: str
    node_id: str
    name: str
    shape: list[int]
    """Layer size ``[n]``; weights: ``[rows, cols]``."""
    recorded_neurons: int | None
    """Neurons recorded after subsampling (None for weights)."""
    subsample_rate: float
    dt_ms: float
    messages: int
    spikes: int | None
    """Spike streams: spikes written (complete rows); None for other kinds."""
    rate_hz: float | None
    """Spikes / (recorded neurons x recorded time); None when undefined."""
    t_start_ms: float | None
    t_stop_ms: float | None
    duration_s: float
    incarnations: int
    missing_in_file: int
    """Gaps in ``frame_seq`` within each incarnation (from the file alone)."""
    counters: dict[str, int] = field(default_factory=dict)
    """``LOSS_COUNTERS`` and ``received``/``written`` summed over runs ({} if no statistics)."""
    sorting: str | None = None


@dataclass(frozen=True)
class NodeInfo:
    """One brain node: module type, step length, incarnations, streams and control states."""

    node_id: str
    module_type: str | None
    dt_ms: float | None
    incarnations: int
    streams: int
    control_states: int | None
    """Control states written (statistics, all runs); None without statistics."""


@dataclass(frozen=True)
class SessionInfo:
    """The one-screen summary of a session (``sim-analyzer info``)."""

    session: str
    path: str
    format_version: int
    state: str
    """``recording``, ``finished``, ``crashed, recovered``, ``crashed, recoverable`` or
    ``crashed, read-only``."""
    state_detail: str
    start_time_utc: str
    stop_time_utc: str
    last_write_utc: str
    """When the statistics were last written (the last flush); "" without statistics."""
    wall_s: float | None
    """Stop (or last write) minus start, in seconds; None if unknown."""
    sim_t_start_ms: float | None
    sim_t_stop_ms: float | None
    sim_duration_s: float
    """Simulated time recorded: the longest stream's summed incarnation spans."""
    recorder_runs: int
    recorder_version: str | None
    """Version of the recorder that wrote the session, if it stored one."""
    analysis_version: str
    compression: str
    settings: dict[str, Any]
    file_bytes: int
    spike_bytes: int
    bytes_per_spike: float | None
    totals: dict[str, int]
    rejected: dict[str, int]
    integrity: str
    """``complete`` or what was lost, e.g. ``12 messages missing, 3 rejected``."""
    nodes: list[NodeInfo]
    streams: list[StreamInfo]
    shards: list[dict[str, Any]] = field(default_factory=list)
    """A sharded session's data files: ``{"shard", "nodes", "file", "bytes"}`` each
    (``docs/deployment.md``); empty for a session recorded by one recorder."""

    @property
    def complete(self) -> bool:
        """True when nothing was missing, dropped or rejected."""
        return self.integrity == "complete"

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``sim-analyzer info --json`` (nan as None)."""
        doc: dict[str, Any] = {"info_format_version": INFO_FORMAT_VERSION, **asdict(self)}
        result: dict[str, Any] = jsonable(doc)
        return result

    def _repr_html_(self) -> str | None:
        """An HTML table for Jupyter (None, so the text repr is used, without jinja2)."""
        try:
            from analysis.report.html import render_info
        except ImportError:
            return None
        return render_info(self)


def _iso(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def compression_text(config: Mapping[str, Any]) -> str:
    """The compression of the latest recorder run as words (``gzip level 4 + shuffle``)."""
    name = config.get("compression")
    if name is None:
        return "unknown"
    if name == "gzip":
        return f"gzip level {config.get('compression_level', '?')} + shuffle"
    if name == "lzf":
        return "lzf + shuffle"
    return str(name)


def _state(reader: SessionReader, stop: str) -> tuple[str, str]:
    state = reader.state
    if state == "live":
        return "recording", "a recorder is writing it; shown as of its last flush"
    if state == "read-only":
        if os.access(reader.path, os.W_OK):
            return (
                "crashed, recoverable",
                "left by a crashed recorder; sim-analyzer or recorderd recovers it "
                "when it next opens it (data up to the last flush)",
            )
        return (
            "crashed, read-only",
            "left by a crashed recorder and not writable here: read through its journal",
        )
    if state == "recovered":
        return "crashed, recovered", "left by a crashed recorder; recovered on opening"
    if stop:
        return "finished", f"closed cleanly at {stop}"
    return (
        "crashed, recovered",
        "its last recorder run stopped without closing it; recovered (up to its last flush)",
    )


def _stream(
    reader: SessionReader, kind: str, node: str, name: str, counters: Mapping[str, Any]
) -> StreamInfo:
    f = reader.facts(node, name, kind)
    duration_ms = f.duration_ms
    recorded = None if kind == L.WEIGHTS else f.recorded
    spikes = rate = None
    if kind == L.SPIKES:
        spikes = f.spike_rows
        if recorded and duration_ms > 0:
            rate = spikes / (recorded * duration_ms / 1000.0)
    t0, t1 = span_of(f.runs) if f.runs else (None, None)
    key = f"{node}/{kind}/{name}"
    return StreamInfo(
        key=key,
        kind=kind,
        node_id=node,
        name=name,
        shape=list(f.shape),
        recorded_neurons=recorded,
        subsample_rate=f.subsample_rate,
        dt_ms=f.dt_ms,
        messages=f.frames,
        spikes=spikes,
        rate_hz=rate,
        t_start_ms=t0,
        t_stop_ms=t1,
        duration_s=duration_ms / 1000.0,
        incarnations=len(f.runs),
        missing_in_file=f.missing,
        counters={c: int(counters[c]) for c in (*LOSS_COUNTERS, "received", "written")}
        if counters
        else {},
        sorting=f.sorting,
    )


def integrity_text(totals: Mapping[str, int]) -> str:
    """``complete``, or the losses with counts (missing, dropped, rejected)."""
    parts = []
    if totals.get("missing"):
        parts.append(f"{totals['missing']:,} messages missing")
    if totals.get("dropped"):
        parts.append(f"{totals['dropped']:,} dropped")
    if totals.get("rejected"):
        parts.append(f"{totals['rejected']:,} rejected")
    return ", ".join(parts) or "complete"


def session_info(source: str | Path | SessionReader) -> SessionInfo:
    """The summary of a session folder (or of an open reader): no spike row is read."""
    if isinstance(source, SessionReader):
        return _info(source)
    with SessionReader(source, recover=False) as reader:
        return _info(reader)


def _info(r: SessionReader) -> SessionInfo:
    meta = r.metadata()
    stats = r.statistics()
    per_stream, rejected, n_stat_runs = integrity(stats)
    runs_docs = [*stats.get("previous_runs", []), stats] if stats else []
    config = meta.get(L.ATTR_RECORDER_CONFIG) or {}
    node_ids = r.nodes()
    streams = [
        _stream(r, kind, node, name, per_stream.get(f"{node}/{kind}/{name}", {}))
        for node in node_ids
        for kind in (L.SPIKES, L.MEMBRANE, L.WEIGHTS)
        for name in r.layers(node, kind)
    ]
    by_node: dict[str, list[StreamInfo]] = {}
    for s in streams:
        by_node.setdefault(s.node_id, []).append(s)
    nodes = []
    for node in node_ids:
        attrs = r.node_info(node)
        mine = by_node.get(node, [])
        control = per_stream.get(f"{node}/control")
        listed = len(np.atleast_1d(attrs.get(L.ATTR_INCARNATIONS, [])))
        incarnations = int(attrs.get(L.ATTR_INCARNATIONS_TOTAL, listed))
        nodes.append(
            NodeInfo(
                node_id=node,
                module_type=attrs.get(L.ATTR_MODULE_TYPE),
                dt_ms=float(attrs[L.ATTR_DT_MS]) if L.ATTR_DT_MS in attrs else None,
                incarnations=max(incarnations, max((s.incarnations for s in mine), default=0)),
                streams=len(mine),
                control_states=int(control["written"]) if control else None,
            )
        )
    totals = {c: sum(int(s.get(c, 0)) for s in per_stream.values()) for c in LOSS_COUNTERS}
    totals["intake_dropped"] = sum(
        int(d.get("totals", {}).get("intake_dropped", 0)) for d in runs_docs
    )
    totals["dropped"] = max(totals["dropped"], totals["intake_dropped"])
    if not per_stream:  # no statistics: the gaps the file itself shows
        totals["missing"] = sum(s.missing_in_file for s in streams)
    totals["rejected"] = max(totals["rejected"], sum(rejected.values()))
    spike_streams = [s for s in streams if s.kind == L.SPIKES]
    totals["spikes"] = sum(s.spikes or 0 for s in spike_streams)
    totals["messages"] = sum(s.messages for s in streams)
    spike_bytes = r.storage_bytes(L.SPIKES)
    start = str(meta.get(L.ATTR_START_TIME, ""))
    stop = str(meta.get(L.ATTR_STOP_TIME, ""))
    last = str(stats.get("updated_at", "")) if stats else ""
    t_start, t_end = _iso(start), _iso(stop) or _iso(last)
    wall = (t_end - t_start).total_seconds() if t_start and t_end else None
    state, detail = _state(r, stop)
    spans = [
        (s.t_start_ms, s.t_stop_ms)
        for s in streams
        if s.t_start_ms is not None and s.t_stop_ms is not None
    ]
    version = meta.get(L.ATTR_RECORDER_VERSION)
    settings = {
        "compression": config.get("compression"),
        "compression_level": config.get("compression_level"),
        "spike_subsample_rate": config.get("spike_subsample_rate"),
        "membrane_subsample_rate": config.get("membrane_subsample_rate"),
        "subsample_seed": meta.get(L.ATTR_SUBSAMPLE_SEED, config.get("subsample_seed")),
        "flush_interval_s": config.get("flush_interval"),
        "buffer_size": config.get("buffer_size"),
        "record": [
            k
            for k in ("spikes", "membrane", "weights", "control")
            if config.get(f"record_{k}", k in ("spikes", "control"))
        ]
        if config
        else [],
        "dt_ms": sorted({n.dt_ms for n in nodes if n.dt_ms is not None}),
    }
    files = r.shard_files()
    shards = files if r.shards != [None] else []
    return SessionInfo(
        session=str(meta.get(L.ATTR_SESSION) or r.path.name),
        path=str(r.path.resolve()),
        format_version=r.format_version(),
        state=state,
        state_detail=detail,
        start_time_utc=start,
        stop_time_utc=stop,
        last_write_utc=last,
        wall_s=wall,
        sim_t_start_ms=min((a for a, _ in spans), default=None),
        sim_t_stop_ms=max((b for _, b in spans), default=None),
        sim_duration_s=max((s.duration_s for s in streams), default=0.0),
        recorder_runs=int(meta.get(L.ATTR_RECORDER_RUNS, n_stat_runs)),
        recorder_version=str(version) if version else None,
        analysis_version=package_version(),
        compression=compression_text(config),
        settings=settings,
        file_bytes=sum(int(f["bytes"]) for f in files),
        spike_bytes=spike_bytes,
        bytes_per_spike=spike_bytes / totals["spikes"] if totals["spikes"] else None,
        totals=totals,
        rejected=rejected,
        integrity=integrity_text(totals),
        nodes=nodes,
        streams=streams,
        shards=shards,
    )
