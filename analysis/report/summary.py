"""The session summary: a JSON-ready document of the figures of every stream and node.

Its schema is that of ``sim-analyzer --json`` (``docs/analysis.md``). Integrity
counters come from ``recording_statistics.json``, summed over the recorder runs of the
session.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from analysis.formats import integrity as integrity
from analysis.formats import jsonable as jsonable
from recorderd.session import layout as L

if TYPE_CHECKING:
    from analysis.analyzer import SimulationAnalyzer
    from analysis.info import SessionInfo
    from analysis.scan import PopulationScan


def build_summary(
    an: SimulationAnalyzer, scans: Mapping[tuple[str, str], PopulationScan] | None = None
) -> dict[str, Any]:
    """The session summary; ``scans`` reuses population scans already made (else scans now)."""
    from analysis.info import session_info  # imports this module

    r = an.reader
    meta = r.metadata()
    nodes: dict[str, Any] = {}
    for node in an.get_recorded_nodes():
        behavior = an.analyze_node_behavior(node)
        layers = {}
        for layer in an.get_recorded_layers(node):
            scan = (scans or {}).get((node, layer)) or an.scan(node, layer)
            layers[layer] = layer_entry(scan)
        membrane = {}
        for layer in r.layers(node, L.MEMBRANE):
            f = r.facts(node, layer, L.MEMBRANE)
            membrane[layer] = {
                "frames": f.frames,
                "neurons_recorded": f.recorded,
                "layer_size": f.layer_size,
            }
        weights = {
            name: {
                "snapshots": r.facts(node, name, L.WEIGHTS).frames,
                "shape": list(r.facts(node, name, L.WEIGHTS).shape),
            }
            for name in r.layers(node, L.WEIGHTS)
        }
        nodes[node] = {
            "module_type": behavior["module_type"],
            "behavior": {k: v for k, v in behavior.items() if k not in ("node_id", "module_type")},
            "layers": layers,
            "membrane": membrane,
            "weights": weights,
        }
    streams, rejected, runs = integrity(r.statistics())
    stop = str(meta.get(L.ATTR_STOP_TIME, ""))
    info = session_info(r)
    summary: dict[str, Any] = jsonable(
        {
            "format_version": r.format_version(),
            "session": meta.get(L.ATTR_SESSION) or an.session_dir.name,
            "session_dir": str(an.session_dir.resolve()),
            "start_time_utc": meta.get(L.ATTR_START_TIME, ""),
            "stop_time_utc": stop,
            "complete": bool(stop),
            "recorder_runs": int(meta.get(L.ATTR_RECORDER_RUNS, runs)),
            "nodes": nodes,
            "streams": streams,
            "rejected": rejected,
            "overview": overview(info),
        }
    )
    return summary


def overview(info: SessionInfo) -> dict[str, Any]:
    """The top of the report: state, spans, totals, integrity, recording settings, versions."""
    return {
        "state": info.state,
        "state_detail": info.state_detail,
        "sim_t_start_ms": info.sim_t_start_ms,
        "sim_t_stop_ms": info.sim_t_stop_ms,
        "sim_duration_s": info.sim_duration_s,
        "wall_s": info.wall_s,
        "last_write_utc": info.last_write_utc,
        "n_nodes": len(info.nodes),
        "n_streams": len(info.streams),
        "total_spikes": info.totals["spikes"],
        "total_messages": info.totals["messages"],
        "integrity": info.integrity,
        "losses": {k: info.totals[k] for k in ("missing", "dropped", "rejected")},
        "duplicates": info.totals["duplicates"],
        "stale": info.totals["stale"],
        "compression": info.compression,
        "bytes_per_spike": info.bytes_per_spike,
        "file_bytes": info.file_bytes,
        "settings": info.settings,
        "recorder_version": info.recorder_version,
        "analysis_version": info.analysis_version,
    }


def layer_entry(scan: PopulationScan) -> dict[str, Any]:
    """The summary of one spike population."""
    info = scan.info
    return {
        "neurons_recorded": int(info.n_neurons),
        "layer_size": info.layer_size,
        "subsample_rate": info.subsample_rate,
        "total_spikes": scan.total_spikes,
        "mean_rate_hz": scan.mean_rate_hz,
        "active_fraction": scan.active_fraction,
        "cv_isi_median": scan.cv_isi_median,
        "first_step": info.first_step,
        "last_step": info.last_step,
        "n_steps": info.n_frames,
        "t_start_ms": info.t_start_ms,
        "t_stop_ms": info.t_stop_ms,
        "duration_s": info.duration_ms / 1000.0,
        "incarnations": len(info.runs),
        "missing_messages": info.missing_messages,
        "sorting": info.sorting,
    }


def to_json(summary: Mapping[str, Any]) -> str:
    """The summary as JSON text (nan as null)."""
    return json.dumps(summary, indent=2, allow_nan=False)
