"""The recording daemon's lifecycle: startup, main loop, shutdown (after uvicorn's server)."""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
import signal
import threading
import time
from collections import Counter

from recorderd.core.ratelog import RateLimitedLog
from recorderd.core.recorder import Recorder
from recorderd.daemon.bus import Bus, BusError, endpoints, make_config, subscription_keys
from recorderd.daemon.coverage import CoverageWatch
from recorderd.daemon.dutycycle import DutyCycled
from recorderd.daemon.intake import NATIVE_OFF as INTAKE_NATIVE_OFF
from recorderd.daemon.notify import Notifier
from recorderd.daemon.pipeline import Pipeline
from recorderd.daemon.settings import RecorderSettings
from recorderd.daemon.status import LiveStatus
from recorderd.session.errors import SessionBusyError, WriterError
from recorderd.session.lock import SessionLock
from recorderd.session.threads import WRITER, name_os_thread
from recorderd.wire import shard_key, status_key
from recorderd.wire.batch import NATIVE_OFF
from recorderd.wire.shards import ShardClaim

log = logging.getLogger(__name__)

#: Seconds between the one-line progress reports in the log.
REPORT_PERIOD_S = 30.0
#: Seconds between checks of the stop conditions (max duration, idle).
MAIN_LOOP_TICK_S = 0.1
#: Seconds between STATUS updates to systemd (more often if the watchdog needs it).
HEARTBEAT_S = 5.0
#: After the drain timeout, how long the writer may take to reach a safe point (the end
#: of a non-SWMR window) before the process exits anyway.
ABORT_WAIT_S = 60.0


class ExitCode(enum.IntEnum):
    """Process exit codes of ``recorderd``."""

    OK = 0
    FAILURE = 1  # recording failed (disk full, I/O error, drain timeout)
    USAGE = 2  # invalid settings or flags
    BUSY = 3  # another process already writes this session
    DISK_LOW = 4  # stopped cleanly because free disk space fell below min_free_disk_mb
    BUS = 5  # the Zenoh session could not be opened (endpoint in use, unreachable, ...)


def bus_problem(exc: BusError) -> str:
    """One line saying why the bus could not be opened and what to do about it."""
    if exc.problem == "in_use":
        return (
            f"cannot listen on {exc.endpoint}: the endpoint is already in use (another "
            f"recorderd, or another program); choose another with --listen "
            f"tcp/127.0.0.1:PORT (or RECORDERD_LISTEN), and connect the nodes there"
        )
    if exc.problem == "unreachable":
        return (
            f"cannot reach {exc.endpoint}: nothing answers there; start the Zenoh router or "
            f"peer it names first, or choose another with --connect ENDPOINT"
        )
    return f"cannot open the Zenoh session: {exc.detail}"


def session_busy(settings: RecorderSettings) -> bool:
    """Whether another process holds the session's lock now (creates nothing)."""
    try:
        lock = SessionLock.try_acquire(settings.session_dir, create=False, shard=settings.shard)
    except OSError:  # no session folder or lock file yet, or one the writer will refuse
        return False
    if lock is None:
        return True
    lock.release()
    return False


class Daemon:
    """Records one session from the bus until stopped by a signal or ``max_duration``."""

    def __init__(self, settings: RecorderSettings) -> None:
        self.settings = settings
        self.recorder = Recorder(settings.core())
        self.pipeline = Pipeline(
            self.recorder,
            prefix=settings.prefix,
            capacity=settings.intake_capacity,
            capacity_bytes=int(settings.intake_max_mb * 1e6),
            block=settings.on_overflow == "block",
            flush_interval=settings.flush_interval,
            min_free_disk_mb=settings.min_free_disk_mb,
        )
        # A --zenoh-config file keeps its own mode and endpoints unless they are given.
        given = settings.model_fields_set
        keep_file = settings.zenoh_config is not None
        config = make_config(
            mode=None if keep_file and "mode" not in given else settings.mode,
            connect=settings.connect,
            listen=[] if keep_file and "listen" not in given else settings.listen,
            config_file=settings.zenoh_config,
        )
        #: Mode and endpoints in force (the file's where it set them), for the log.
        self.bus_endpoints = endpoints(config)
        # Samples and queries the bus's threads failed to handle, by where: in the
        # statistics and the live status as ``bus_errors``, logged with a bound.
        self._bus_errors: Counter[str] = Counter()
        # Taken to replace recorder.annotations (from the bus's threads and the loop).
        self._annotations_lock = threading.Lock()
        self._bus_errors_log = RateLimitedLog(log, period="progress report")
        self.recorder.annotations = {"bus_errors": {}}
        self.bus = Bus(config, on_error=self._bus_error)
        self._stop = asyncio.Event()
        self.notifier = Notifier()
        self._signals = 0
        self._announced_standby = False
        self._lock_attempts = 0
        #: The writer thread was still running when the process had to exit.
        self.drain_timed_out = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.claim = ShardClaim(settings.session, settings.shard, tuple(settings.nodes))
        self.status = LiveStatus(settings, self.recorder, self.pipeline)

    def request_stop(self, reason: str = "requested") -> None:
        """Begin a clean shutdown; a second request skips the drain."""
        self._signals += 1
        if self._signals == 1:
            log.info("stopping (%s): writing everything received", reason)
        else:
            dropped = self.pipeline.abandon()
            log.warning("second stop request: dropped %d queued message(s)", dropped)
        self._stop.set()

    async def serve(self) -> ExitCode:
        """Startup, main loop, shutdown; returns the process exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        s = self.settings
        keep_waiting = None
        if s.wait_for_lock:

            def keep_waiting() -> bool:
                self._lock_attempts += 1
                if self._lock_attempts > 1 and not self._announced_standby:
                    self._announced_standby = True
                    log.info("session %s is recorded by another process: standing by", s.session)
                if s.parent_pid is not None and os.getppid() != s.parent_pid:
                    log.info("parent process %d has exited: no longer standing by", s.parent_pid)
                    self._stop.set()
                return not self._stop.is_set()

        # The bus is opened before anything is created in the session folder, so that a
        # taken endpoint leaves nothing behind. A standby (--wait-for-lock) takes the lock
        # first: the recorder holding it listens where the standby will listen.
        if not s.wait_for_lock:
            if session_busy(s):
                log.error("%s", SessionBusyError(s.session_dir))
                return ExitCode.BUSY
            if not await self._open_bus():
                return ExitCode.BUS
        try:
            await asyncio.to_thread(self.recorder.start, keep_waiting)
        except SessionBusyError as exc:
            await asyncio.to_thread(self.bus.close)
            if self._stop.is_set():
                log.info("stopped while standing by")
                return ExitCode.OK
            log.error("%s", exc)
            return ExitCode.BUSY
        except (OSError, WriterError) as exc:
            await asyncio.to_thread(self.bus.close)
            log.error("cannot open session %s: %s", s.session_dir, exc)
            return ExitCode.FAILURE
        worker_done: asyncio.Future[None] = loop.create_future()

        def work() -> None:
            name_os_thread(WRITER)
            try:
                self.pipeline.run()
            finally:
                loop.call_soon_threadsafe(worker_done.set_result, None)

        thread = threading.Thread(target=work, name="recorderd-writer", daemon=True)
        thread.start()
        if s.wait_for_lock and not await self._open_bus():
            self.pipeline.stop()
            await worker_done
            return ExitCode.BUS
        try:
            data_keys = subscription_keys(
                s.prefix,
                spikes=s.record_spikes,
                membrane=s.record_membrane,
                weights=s.record_weights,
                control=False,
                nodes=s.nodes,
            )
            # Data keys only: their samples go straight to the intake (submit_data).
            self.bus.subscribe(data_keys, self.pipeline.submit_data)
            if s.record_control:
                no_data = {"spikes": False, "membrane": False, "weights": False}
                control_keys = subscription_keys(s.prefix, **no_data, control=True, nodes=s.nodes)
                self.bus.subscribe(control_keys, self.pipeline.submit)
            barrier = json.dumps({"session": s.session, "shard": s.shard}).encode()
            self.bus.serve_flush_barrier(s.prefix, barrier, s.nodes)
            self.bus.serve_queries(
                status_key(s.prefix, s.session, s.shard),
                DutyCycled(lambda: json.dumps(self.status.document(), allow_nan=False).encode()),
            )
            claim = self.claim.encode()
            self.bus.serve_queries(shard_key(s.prefix, s.session, s.shard), lambda: claim)

            def presence(node_id: str, alive: bool) -> None:
                if s.record_control:  # joins and leaves go to the control log
                    self.pipeline.submit_presence(node_id, alive)
                loop.call_soon_threadsafe(self.status.presence, node_id, alive)

            self.bus.watch_nodes(s.prefix, presence, s.nodes)
        except Exception as exc:
            log.error("cannot subscribe on the Zenoh session: %s", exc)
            await asyncio.to_thread(self.bus.close)
            self.pipeline.stop()
            await worker_done
            return ExitCode.BUS
        # Slower, the same result (docs/performance.md).
        if NATIVE_OFF is not None:
            log.info("batch decoder: numpy only (%s)", NATIVE_OFF)
        if INTAKE_NATIVE_OFF is not None:
            log.info("intake: put in Python only (%s)", INTAKE_NATIVE_OFF)
        log.info(
            "recording session %s%s into %s (%s, listen %s, connect %s): ready",
            s.session,
            "" if s.shard is None else f", shard {s.shard} (nodes {','.join(s.nodes)})",
            self.status.files.data,
            self.bus_endpoints.get("mode"),
            self.bus_endpoints.get("listen"),
            self.bus_endpoints.get("connect"),
        )
        self.notifier.ready(self.status.line())
        jobs = [self._report(), self._heartbeat(), self.status.measure_rates()]
        if s.shard is not None:
            jobs.append(CoverageWatch(self.bus.client(), s.prefix, self.claim, self._covered).run())
        for job in jobs:
            self._tasks.add(asyncio.create_task(job))
        await self._main_loop(worker_done)
        return await self._shutdown(worker_done)

    async def _open_bus(self) -> bool:
        """Open the Zenoh session; on failure log why in one line and return False."""
        try:
            await asyncio.to_thread(self.bus.open)
        except BusError as exc:
            log.error("%s", bus_problem(exc))
            log.debug("Zenoh said: %s", exc.detail)
            return False
        return True

    async def _main_loop(self, worker_done: asyncio.Future[None]) -> None:
        s = self.settings
        started = self.status.idle_since = time.monotonic()
        stop = asyncio.ensure_future(self._stop.wait())
        waiters: set[asyncio.Future[object]] = {stop, worker_done}  # type: ignore[arg-type]
        while not (stop.done() or worker_done.done()):
            now = time.monotonic()
            if s.max_duration is not None and now - started >= s.max_duration:
                log.info("max duration of %.1f s reached", s.max_duration)
                break
            idle = now - self.status.idle_since if not self.status.alive else 0.0
            if s.stop_when_idle is not None and idle >= s.stop_when_idle:
                log.info("no node alive for %.1f s: stopping", s.stop_when_idle)
                break
            await asyncio.wait(
                waiters, timeout=MAIN_LOOP_TICK_S, return_when=asyncio.FIRST_COMPLETED
            )
        stop.cancel()

    async def _shutdown(self, worker_done: asyncio.Future[None]) -> ExitCode:
        self.notifier.stopping(f"stopping: writing what was received; {self.status.line()}")
        for task in self._tasks:
            task.cancel()
        await asyncio.to_thread(self.bus.close)  # no new samples after this
        self._summarise_bus_errors()
        self.pipeline.stop()
        try:
            await asyncio.wait_for(asyncio.shield(worker_done), self.settings.drain_timeout)
        except TimeoutError:
            log.error(
                "the writer did not finish within the drain timeout of %.1f s: stopping it at "
                "its next safe point",
                self.settings.drain_timeout,
            )
            self.pipeline.abort()
            try:
                await asyncio.wait_for(asyncio.shield(worker_done), ABORT_WAIT_S)
            except TimeoutError:
                log.error("the writer did not reach a safe point within %.0f s", ABORT_WAIT_S)
                self.drain_timed_out = True
                return ExitCode.FAILURE
        if self.pipeline.aborted:
            log.error(
                "session %s left as after a crash: everything up to the last flush is in "
                "the file and its journal; the next recorderd or sim-analyzer recovers it",
                self.settings.session_dir,
            )
            return ExitCode.FAILURE
        late = self.pipeline.abandon()
        if late:
            log.warning("%d message(s) arrived after the recording had stopped", late)
        if self.pipeline.error is not None:
            log.error("recording failed: %s", self.pipeline.error)
            return ExitCode.FAILURE
        if self.pipeline.stop_reason == "disk_low":
            return ExitCode.DISK_LOW
        totals = self.recorder.statistics.totals()
        log.info(
            "session %s closed: %d spikes in %d messages written, %d rejected, %d missing, "
            "%d dropped",
            self.settings.session,
            totals["spikes_written"],
            totals["written"],
            totals["rejected"],
            totals["missing"],
            totals["intake_dropped"],  # per-stream "dropped" counts are part of this
        )
        return ExitCode.OK

    def _covered(self, report: dict[str, object]) -> None:
        """A coverage check's report: into the live status and the statistics."""
        self.status.coverage = report
        with self._annotations_lock:  # a new dict: the writer thread may read the last
            self.recorder.annotations = {**self.recorder.annotations, "coverage": report}

    def _bus_error(self, where: str, exc: BaseException) -> None:
        """A sample or query a thread of the bus could not handle (called on that thread):
        counted, and logged in detail the first few times per place."""
        with self._annotations_lock:
            self._bus_errors[where] += 1
            errors = dict(sorted(self._bus_errors.items()))
            self.recorder.annotations = {**self.recorder.annotations, "bus_errors": errors}
            self._bus_errors_log.event(
                where, logging.ERROR, "%s failed: %r (counted in bus_errors)", where, exc,
                exc_info=exc,
            )  # fmt: skip

    def _summarise_bus_errors(self) -> None:
        with self._annotations_lock:  # the log of bus errors is kept under it too
            self._bus_errors_log.summarise()

    def healthy(self) -> bool:
        """Whether the writer thread is alive and flushing on time (gates watchdog pings)."""
        late = time.monotonic() - self.pipeline.last_flush
        return self.pipeline.error is None and late < max(5.0, 3 * self.settings.flush_interval)

    async def _heartbeat(self) -> None:
        if not self.notifier.enabled:
            return
        period = HEARTBEAT_S
        if self.notifier.watchdog_s is not None:
            period = min(period, self.notifier.watchdog_s / 2)
        while True:
            await asyncio.sleep(period)
            healthy = self.healthy()
            if not healthy:
                log.error(
                    "writer has not flushed for %.0f s: withholding the watchdog ping",
                    time.monotonic() - self.pipeline.last_flush,
                )
            self.notifier.status(self.status.line(), watchdog=healthy)

    async def _report(self) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(REPORT_PERIOD_S)
            self._summarise_bus_errors()
            t = self.recorder.statistics.totals()
            log.info(
                "up %.0f s: %d spikes in %d messages, %d rejected, %d missing, %d dropped",
                time.monotonic() - started,
                t["spikes_received"],
                t["received"],
                t["rejected"],
                t["missing"],
                t["intake_dropped"],
            )
