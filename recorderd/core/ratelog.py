"""Log lines caused by bus input, with a bound: the first few in detail, then counts.

Anything a publisher can trigger once per message (a rejection, a sequence gap, a dt
change, a restart, a new stream, a node joining) goes through :class:`RateLimitedLog`.
Each kind of event is logged in detail :data:`DETAILED` times per recorder run; after
that its occurrences are only counted, and :meth:`RateLimitedLog.summarise` (called at
every flush) logs one line per kind that had silent occurrences. The log then grows by
at most a fixed number of lines per flush, whatever the bus sends.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Final

#: Detailed log lines per kind of event and recorder run.
DETAILED: Final = 10


class RateLimitedLog:
    """Per-kind bounded logging on top of a :class:`logging.Logger`."""

    def __init__(
        self, logger: logging.Logger, detailed: int = DETAILED, period: str = "flush"
    ) -> None:
        self._log = logger
        self._detailed = detailed
        self._period = period  # what calls summarise(): "flush", "report", ...
        self._seen: Counter[str] = Counter()
        self._silent: Counter[str] = Counter()

    def event(
        self, kind: str, level: int, msg: str, *args: object, exc_info: BaseException | None = None
    ) -> None:
        """Log one event of ``kind`` in detail (with ``exc_info``'s traceback if given), or
        count it once past the detailed ones."""
        self._seen[kind] += 1
        n = self._seen[kind]
        if n <= self._detailed:
            self._log.log(level, msg, *args, exc_info=exc_info)
            if n == self._detailed:
                self._log.log(
                    level,
                    "further %s events are counted and summarised at each %s",
                    kind,
                    self._period,
                )
        else:
            self._silent[kind] += 1

    def summarise(self) -> None:
        """One line per kind with events not logged since the last call."""
        for kind, n in sorted(self._silent.items()):
            self._log.warning(
                "%d more %s event(s) since the last %s (%d in all)",
                n,
                kind,
                self._period,
                self._seen[kind],
            )
        self._silent.clear()

    def count(self, kind: str) -> int:
        """Events of ``kind`` so far."""
        return self._seen[kind]
