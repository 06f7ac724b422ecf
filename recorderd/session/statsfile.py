"""``recording_statistics.json``: rewritten atomically, bounded in how often it costs.

Written at every flush, so that users watch the counters while recording; once the
document passes :data:`LARGE_BYTES` (a thousand streams or so) it is written compactly
and at most every :data:`LARGE_PERIOD_S`, and always at close, so that thousands of
streams do not cost megabytes at every flush.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import h5py

from recorderd.session import layout as L
from recorderd.session.safefs import write_atomic

LARGE_BYTES: Final = 256 * 1024
LARGE_PERIOD_S: Final = 10.0


class StatisticsFile:
    """The statistics document of a session folder."""

    def __init__(self, session_dir: Path, shard: str | None = None) -> None:
        self.path = L.SessionFiles(session_dir, shard).statistics
        self._bytes = 0
        self._at = -float("inf")

    def write(
        self,
        statistics: dict[str, Any] | Callable[[], dict[str, Any]],
        *,
        into: h5py.File | None = None,
    ) -> None:
        """Write the document (a function is called only when a large one is due).

        ``into``: also store it as ``/metadata@statistics`` (at close, outside SWMR).
        """
        now = time.monotonic()
        large = self._bytes > LARGE_BYTES
        if callable(statistics):
            if large and now - self._at < LARGE_PERIOD_S:
                return
            statistics = statistics()
        text = json.dumps(statistics, indent=None if large else 2, sort_keys=True)
        if into is not None:
            into[L.METADATA].attrs[L.ATTR_STATISTICS] = text
        write_atomic(self.path, (text + "\n").encode())
        self._bytes, self._at = len(text), now
