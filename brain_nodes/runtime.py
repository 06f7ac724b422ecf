"""Process plumbing of a node: stop flag set by signals, wall-clock pacing, incarnation ids."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class StopFlag:
    """Set from a signal handler; only a plain attribute write happens there."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None

    def set(self, signal_name: str = "request") -> None:
        """Ask the loop to stop after the current step."""
        self.signal_name = signal_name
        self.requested = True


@contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[None]:
    """Make SIGINT and SIGTERM set ``flag`` (main thread only); restore the old handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        flag.set(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Pacer:
    """Sleeps so that one step takes ``dt / speed`` of wall time; speed 0 means no pacing."""

    #: Further behind than this, stop trying to catch up instead of bursting.
    MAX_LAG_S = 1.0

    def __init__(self, dt_ms: float, speed: float, stop: StopFlag) -> None:
        self._period = dt_ms / 1000.0 / speed if speed > 0 else 0.0
        self._stop = stop
        self._t0 = time.monotonic()
        self._n = 0

    def wait(self) -> None:
        """Block until the next step is due (or a stop is requested)."""
        if self._period == 0.0:
            return
        self._n += 1
        due = self._t0 + self._n * self._period
        now = time.monotonic()
        if now - due > self.MAX_LAG_S:
            self._t0, self._n = now, 0
            return
        # Short sleeps so a signal is acted on promptly even at slow speeds.
        while not self._stop.requested and (left := due - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))


def new_incarnation() -> int:
    """A random 64-bit id for this process's run."""
    return int.from_bytes(os.urandom(8), "little")
