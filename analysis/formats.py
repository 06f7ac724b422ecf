"""Plain helpers shared by the summaries: JSON-ready values, summed statistics, units."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from recorderd.session.statistics import (
    COUNTERS,  # summed over recorder runs; first/last_step: min/max
)


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


def jsonable(obj: Any) -> Any:
    """Plain JSON types: nan to None, tuples to lists, keys to strings.

    A tuple key (a transition) becomes ``"a -> b"``, a ``None`` key (no active task)
    ``"null"``.
    """
    if isinstance(obj, Mapping):
        return {_key(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _key(k: Any) -> str:
    if isinstance(k, tuple):
        return " -> ".join(_key(x) for x in k)
    return "null" if k is None else str(k)


def fmt_duration(seconds: float | None) -> str:
    """``4.46 s``, ``12 min 3.0 s``, ``2 h 05 min``; ``n/a`` for None or nan."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 60:
        return f"{seconds:.3g} s" if seconds < 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def fmt_bytes(n: int) -> str:
    """``4.27 MB`` (decimal units)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1000
    return f"{n} B"
