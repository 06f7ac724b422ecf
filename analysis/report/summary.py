"""The session summary: a JSON-ready document of the figures of every stream and node.

Its schema is that of ``sim-analyzer --json`` (``docs/analysis.md``). Integrity
counters come from ``recording_statistics.json``, summed over the recorder runs of the
session.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from recorderd.session import layout as L
from recorderd.session.statistics import (
    COUNTERS,  # summed over recorder runs; first/last_step: min/max
)

if TYPE_CHECKING:
    from analysis.analyzer import SimulationAnalyzer
    from analysis.scan import PopulationScan


def build_summary(
    an: SimulationAnalyzer, scans: Mapping[tuple[str, str], PopulationScan] | None = None
) -> dict[str, Any]:
    """The session summary; ``scans`` reuses population scans already made (else scans now)."""
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
            fr = r.frames(node, layer, L.MEMBRANE)
            attrs = r.stream_attrs(node, layer, L.MEMBRANE)
            membrane[layer] = {
                "frames": int(fr.steps.size),
                "neurons_recorded": int(r.recorded_neurons(node, layer, L.MEMBRANE).size),
                "layer_size": int(np.atleast_1d(attrs.get(L.ATTR_LAYER_SIZE, 0))[0]),
            }
        weights = {
            name: {
                "snapshots": int(r.frames(node, name, L.WEIGHTS).steps.size),
                "shape": [int(x) for x in r.stream_attrs(node, name, L.WEIGHTS)[L.ATTR_LAYER_SIZE]],
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
    summary: dict[str, Any] = _jsonable(
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
        }
    )
    return summary


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


def integrity(stats: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int], int]:
    """Per-stream counters and rejections summed over the runs, and the number of runs."""
    runs = [*stats.get("previous_runs", []), stats] if stats else []
    streams: dict[str, dict[str, Any]] = {}
    rejected: dict[str, int] = {}
    for run in runs:
        for key, counters in run.get("streams", {}).items():
            acc = streams.setdefault(key, {c: 0 for c in COUNTERS})
            for c in COUNTERS:
                acc[c] += int(counters.get(c, 0))
            for c, pick in (("first_step", min), ("last_step", max)):
                values = [v for v in (acc.get(c), counters.get(c)) if v is not None]
                acc[c] = pick(values) if values else None
        for reason, n in run.get("rejected", {}).items():
            rejected[reason] = rejected.get(reason, 0) + int(n)
    return dict(sorted(streams.items())), rejected, len(runs)


def to_json(summary: Mapping[str, Any]) -> str:
    """The summary as JSON text (nan as null)."""
    return json.dumps(summary, indent=2, allow_nan=False)


def _jsonable(obj: Any) -> Any:
    """Plain JSON types: nan to None, tuples to lists, keys to strings.

    A tuple key (a transition) becomes ``"a -> b"``, a ``None`` key (no active task)
    ``"null"``.
    """
    if isinstance(obj, Mapping):
        return {_key(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _key(k: Any) -> str:
    if isinstance(k, tuple):
        return " -> ".join(_key(x) for x in k)
    return "null" if k is None else str(k)
