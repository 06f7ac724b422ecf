"""The writer thread: bounded intake from the bus, decoding, and the recorder core.

Zenoh calls :meth:`Pipeline.submit` on its own threads; it only appends to a
bounded deque (never blocks). One thread runs :meth:`Pipeline.run`: it decodes,
validates, hands messages to the :class:`~recorderd.recorder.Recorder` and flushes
every ``flush_interval`` seconds. Nothing else touches the session files.
"""

from __future__ import annotations

import collections
import errno
import logging
import shutil
import threading
import time

from recorderd.protocol import ProtocolError, StreamKey, decode, decode_control, parse_key
from recorderd.recorder import Recorder

log = logging.getLogger(__name__)

#: Parsed key expressions kept; beyond this, keys are parsed every time.
KEY_CACHE_SIZE = 4096
#: Intake key of node join/leave events; no key expression can equal it.
PRESENCE_KEY = "\0presence"
#: How long the writer thread sleeps when the intake is empty.
IDLE_SLEEP_S = 0.002


class Pipeline:
    """Moves samples from the bus to the recorder on one dedicated thread."""

    def __init__(
        self,
        recorder: Recorder,
        *,
        prefix: str,
        capacity: int,
        flush_interval: float,
        min_free_disk_mb: float = 0.0,
    ) -> None:
        self.recorder = recorder
        self._prefix = prefix
        self._capacity = capacity
        self._flush_interval = flush_interval
        self._min_free_bytes = int(min_free_disk_mb * 1e6)
        self._last_free: int | None = None
        #: Why the pipeline stopped by itself ("disk_low"), None if asked to stop.
        self.stop_reason: str | None = None
        self._intake: collections.deque[tuple[str, bytes, float]] = collections.deque()
        self._keys: dict[str, StreamKey] = {}
        self._stopping = threading.Event()
        self.error: BaseException | None = None
        self.intake_dropped = 0
        self._dropped_keys: collections.Counter[str] = collections.Counter()
        self._logged_dropped = 0
        self._logged_rejected = 0
        self.intake_high_water = 0
        #: time.monotonic() of the last completed flush: the writer's heartbeat.
        self.last_flush = time.monotonic()

    # -- called from other threads ---------------------------------------------------

    def submit(self, key: str, payload: bytes) -> None:
        """Queue one raw sample; drop it (counted) if the intake is full. Never blocks."""
        if len(self._intake) >= self._capacity:
            self.intake_dropped += 1
            if key in self._dropped_keys or len(self._dropped_keys) < KEY_CACHE_SIZE:
                self._dropped_keys[key] += 1
            return
        self._intake.append((key, payload, time.time()))

    def stop(self) -> None:
        """Ask :meth:`run` to write what is queued, finish the session and return."""
        self._stopping.set()

    @property
    def queued(self) -> int:
        """Samples waiting in the intake."""
        return len(self._intake)

    def submit_presence(self, node_id: str, alive: bool) -> None:
        """Queue a node's join (``alive``) or leave for the control log. Never blocks."""
        if len(self._intake) >= self._capacity:
            self.intake_dropped += 1
            return
        event = "join" if alive else "leave"
        self._intake.append((PRESENCE_KEY, f"{event}/{node_id}".encode(), time.time()))

    def abandon(self) -> int:
        """Drop everything still queued (counted as intake drops); return how many."""
        n = 0
        while self._intake:
            try:
                self._intake.popleft()
            except IndexError:
                break
            n += 1
        self.intake_dropped += n
        return n

    # -- the writer thread -----------------------------------------------------------

    def run(self) -> None:
        """Thread body: drain, decode, record, flush periodically; finish on stop."""
        recorder = self.recorder
        last_flush = time.monotonic()
        try:
            while True:
                stopping = self._stopping.is_set()
                handled = self._drain()
                now = time.monotonic()
                if now - last_flush >= self._flush_interval:
                    self._flush()
                    last_flush = now
                    if self._disk_low():
                        dropped = self.abandon()  # counted as intake drops
                        if dropped:
                            log.warning("%d queued message(s) not recorded", dropped)
                        break
                if stopping and not self._intake:
                    break
                if not handled:
                    time.sleep(IDLE_SLEEP_S)
            self._sync_counters()
            recorder.finish()
        except BaseException as exc:  # the daemon reports it and exits non-zero
            self.error = exc
            self._intake.clear()
            where = self.recorder.settings.session_dir
            if isinstance(exc, OSError):
                # After a failed write HDF5's in-memory state no longer matches the file:
                # writing more (even to close) could damage what the last flush made
                # durable. Leave the session as a crash would: the next writer or reader
                # recovers it from the journal.
                what = "disk full" if exc.errno == errno.ENOSPC else f"I/O error ({exc})"
                log.error(
                    "%s while writing %s: recording stopped; the session is readable "
                    "up to the last flush",
                    what,
                    where,
                )
                recorder.writer.abandon()
                return
            log.error("writer thread failed: %r", exc)
            try:
                recorder.finish()
            except BaseException as close_exc:
                log.error("could not close the session cleanly: %s", close_exc)

    def _disk_low(self) -> bool:
        if not self._min_free_bytes:
            return False
        free = shutil.disk_usage(self.recorder.settings.session_dir).free
        # Keep room for closing (it writes the rows held back from unfinished chunks)
        # and for one more flush interval at the rate of the last one.
        growth = max(0, self._last_free - free) if self._last_free is not None else 0
        self._last_free = free
        if free >= self._min_free_bytes + self.recorder.writer.tail_bytes + growth:
            return False
        self.stop_reason = "disk_low"
        log.error(
            "only %.1f MB free on the disk of %s, below min_free_disk_mb=%.1f: stopping the "
            "recording; the session is complete up to here and will be closed",
            free / 1e6,
            self.recorder.settings.session_dir,
            self._min_free_bytes / 1e6,
        )
        return True

    def _flush(self) -> None:
        self._sync_counters()
        self._log_losses()
        self.recorder.flush()
        self.last_flush = time.monotonic()

    def _log_losses(self) -> None:
        # Every change of a loss counter reaches the log, at most once per flush.
        stats = self.recorder.statistics
        dropped = stats.intake_dropped
        if dropped != self._logged_dropped:
            log.warning(
                "intake full: %d message(s) dropped since the last flush (%d in all)",
                dropped - self._logged_dropped,
                dropped,
            )
            self._logged_dropped = dropped
        rejected = sum(stats.rejected.values())
        if rejected != self._logged_rejected:
            summary = ", ".join(f"{k}={v}" for k, v in sorted(stats.rejected.items()))
            log.warning("rejected messages so far: %s", summary)
            self._logged_rejected = rejected

    def _sync_counters(self) -> None:
        stats = self.recorder.statistics
        stats.intake_dropped = self.intake_dropped
        for key, n in list(self._dropped_keys.items()):
            try:
                sk = parse_key(key, self._prefix)
            except ProtocolError:
                continue  # counted in intake_dropped only
            stats.stream(sk.stream_id).dropped = n

    def _drain(self, limit: int = 10_000) -> int:
        intake = self._intake
        n = 0
        self.intake_high_water = max(self.intake_high_water, len(intake))
        while intake and n < limit:
            key, payload, received_at = intake.popleft()
            n += 1
            self.handle(key, payload, received_at)
        return n

    def handle(self, key: str, payload: bytes, received_at: float) -> None:
        """Decode one sample and give it to the recorder; count and log it if invalid."""
        recorder = self.recorder
        try:
            if key == PRESENCE_KEY:
                event, _, node_id = payload.decode().partition("/")
                recorder.add_presence(node_id, event, received_at)
                return
            sk = self._keys.get(key)
            if sk is None:
                sk = parse_key(key, self._prefix)
                if len(self._keys) < KEY_CACHE_SIZE:
                    self._keys[key] = sk
            if sk.kind is None:
                recorder.add_control(decode_control(payload, sk.node_id), received_at)
            else:
                recorder.add(sk.node_id, sk.name, decode(payload, sk.kind))
        except ProtocolError as exc:
            recorder.reject(exc.reason, exc.detail, key[:200])
