"""The statistics document of a session (``recording_statistics.json``): its counter names.

The recorder core counts under these names (``recorderd.core.stats``) and the analysis
sums them over recorder runs; ``docs/recording-format.md`` says what each one means.
"""

from __future__ import annotations

from typing import Final

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
