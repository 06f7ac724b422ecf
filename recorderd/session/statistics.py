"""The statistics document of a session (``recording_statistics.json``): its counter names,
and how the documents of a sharded session's recorders make one.

The recorder core counts under these names (``recorderd.core.stats``) and the analysis
sums them over recorder runs; ``docs/recording-format.md`` says what each one means.
"""

from __future__ import annotations

from typing import Any, Final

#: The summable counters of a stream (``first_step``/``last_step`` are not sums).
COUNTERS: Final = (
    "received",
    "written",
    "dropped",
    "missing",
    "duplicates",
    "stale",
    "rejected",
    "restarts",
    "spikes_received",
    "spikes_written",
)
#: Per-stream fields that are not sums: the first and the latest accepted step.
STEP_FIELDS: Final = ("first_step", "last_step")


def merged(documents: dict[str | None, dict[str, Any]]) -> dict[str, Any]:
    """One statistics document for a sharded session: counters summed, streams joined.

    ``documents`` maps each shard (None: the unsharded file) to its document. The result
    has the first document's keys, ``totals``, ``rejected`` and ``bus_errors`` summed,
    ``streams`` joined (a stream in two documents keeps the first's counters) and
    ``shards``: each shard's own document.
    """
    if len(documents) == 1:
        return dict(next(iter(documents.values())))
    docs = list(documents.values())
    out = {k: v for k, v in docs[0].items() if k not in ("shard", "shard_nodes", "coverage")}
    totals: dict[str, Any] = {}
    rejected: dict[str, int] = {}
    bus_errors: dict[str, int] = {}
    streams: dict[str, Any] = {}
    for doc in docs:
        _add_counts(bus_errors, doc.get("bus_errors", {}))
        for key, value in doc.get("totals", {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
        _add_counts(rejected, doc.get("rejected", {}))
        for key, stream in doc.get("streams", {}).items():
            streams.setdefault(key, stream)
    out["totals"], out["rejected"], out["streams"] = totals, rejected, streams
    if any("bus_errors" in doc for doc in docs):
        out["bus_errors"] = dict(sorted(bus_errors.items()))
    out["shards"] = {str(shard): doc for shard, doc in documents.items()}
    return out


def _add_counts(into: dict[str, int], counts: dict[str, Any]) -> None:
    """Add ``counts`` (name -> count) into ``into``."""
    for name, count in counts.items():
        into[name] = into.get(name, 0) + int(count)
