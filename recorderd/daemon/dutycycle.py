"""An answer rebuilt at most a bounded share of the time, served from cache in between.

Anyone on the bus may query a recorder's status as often as it likes, and the status of
thousands of streams takes tens of milliseconds to build, with the GIL held: without a
bound, a client polling in a loop would take that share of the writer's time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

#: Share of wall time spent building answers, at most (a build every cost / DUTY s).
DUTY: Final = 0.1
#: Age below which an answer is always served from cache.
MIN_AGE_S: Final = 0.05


class DutyCycled:
    """``make()`` called again only once the last answer is ``max(MIN_AGE_S, cost / DUTY)``
    old, where ``cost`` is how long the last ``make()`` took; else the last answer."""

    def __init__(self, make: Callable[[], bytes], duty: float = DUTY) -> None:
        self._make = make
        self._duty = duty
        self._lock = threading.Lock()
        self._answer: bytes | None = None
        self._made_at = 0.0
        self._max_age = MIN_AGE_S
        #: How many times ``make()`` ran.
        self.builds = 0

    def __call__(self) -> bytes:
        with self._lock:
            now = time.monotonic()
            if self._answer is not None and now - self._made_at < self._max_age:
                return self._answer
            self._answer = self._make()
            done = time.monotonic()
            self._made_at = done
            self._max_age = max(MIN_AGE_S, (done - now) / self._duty)
            self.builds += 1
            return self._answer
