"""The writer thread: fair bounded intake from the bus, decoding, and the recorder core.

Zenoh calls :meth:`Pipeline.submit` on its own threads; it only queues the sample in
the :class:`~recorderd.daemon.intake.Intake` (bounded in messages and bytes, fair between
nodes; never blocks for long). One thread runs :meth:`Pipeline.run`: it gathers
samples (:data:`GATHER_MESSAGES`, :data:`GATHER_S`), takes them in bounded batches,
decodes, validates, hands messages to the
:class:`~recorderd.core.recorder.Recorder`, and flushes every ``flush_interval`` seconds
(checked after every batch, so the time between flushes stays bounded whatever the
load). Nothing else touches the session files.
"""

from __future__ import annotations

import errno
import logging
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from recorderd.core.recorder import Recorder
from recorderd.daemon.intake import Intake
from recorderd.session.errors import WriteAborted
from recorderd.wire import (
    CONTROL_WORD,
    SEQUENCED_REASONS,
    ControlState,
    ProtocolError,
    Reason,
    StreamKey,
    decode,
    decode_control,
    parse_key,
)
from recorderd.wire.batch import decode_batch

log = logging.getLogger(__name__)

#: Parsed key expressions kept; beyond this, keys are parsed every time.
KEY_CACHE_SIZE: Final = 4096
_CONTROL_SUFFIX: Final = "/" + CONTROL_WORD
#: Intake key of node join/leave events; no key expression can equal it.
PRESENCE_KEY: Final = "\0presence"
#: How long the writer thread sleeps between two looks at the intake while it gathers.
IDLE_SLEEP_S: Final = 0.002
#: Once the intake has been empty at this many looks in a row (~0.1 s), the writer looks
#: only every :data:`IDLE_SLEEP_MAX_S` (at most the gathering time, :data:`GATHER_S` or
#: a tenth of the flush interval) until something is queued: an idle recorder then looks
#: ~40 times a second instead of 500 (its CPU when idle: 14 -> 7 ms per second,
#: ``bench/idle_cost.py``). A recorder that receives anything every 0.1 s looks every
#: 2 ms as before; after an idle spell the first look comes at most this much later, and
#: the intake holds what comes meanwhile.
IDLE_LOOKS: Final = 50
IDLE_SLEEP_MAX_S: Final = 0.025
#: Samples (and payload bytes) handled between two looks at the clock, at most. The
#: writer takes what is queued: batches grow only with a backlog, and then their fixed
#: costs (one decode and one write per stream) shrink per message (512 -> 4,096: 64
#: streams 27.6 -> 9.4 us/message, ``bench/profile_path.py --nodes 64``).
BATCH_MESSAGES: Final = 4096
BATCH_BYTES: Final = 16 << 20
#: The writer gathers before it takes a batch: until this many samples (or bytes) are
#: queued (a quarter of the intake's bounds if they are smaller), or :data:`GATHER_S`
#: has passed since its last batch, or a flush is due. At a
#: steady rate it would otherwise take what arrived during one idle sleep (~10 messages
#: per stream at 20,000 msg/s), and a batch's fixed costs per stream (decode, accounting,
#: buffering: ~100-200 us) would be paid per few messages (``bench/profile_path.py
#: --batch``: 256 -> 4,096 messages per batch, 15 -> 7.6 us/message).
GATHER_MESSAGES: Final = 2048
GATHER_BYTES: Final = 4 << 20
#: The longest a sample waits to be gathered (at most a tenth of the flush interval):
#: rows become readable at the next flush anyway, so this adds little to the latency.
GATHER_S: Final = 0.05
#: An intake bounded below the gathering thresholds is taken once it is this full
#: (a quarter), so that gathering never makes it drop (or block) what it can hold.
GATHER_FRACTION: Final = 4
#: Nodes whose last control state and incarnations the live status keeps, at most.
MAX_NODES_SEEN: Final = 4096
#: Incarnations listed per node in the live status (the most recent ones).
NODE_INCARNATIONS_SHOWN: Final = 8


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
        capacity_bytes: int = 512 << 20,
        block: bool = False,
    ) -> None:
        self.recorder = recorder
        self._prefix = prefix
        self._flush_interval = flush_interval
        self._min_free_bytes = int(min_free_disk_mb * 1e6)
        self._last_free: int | None = None
        #: Why the pipeline stopped by itself ("disk_low"), None if asked to stop.
        self.stop_reason: str | None = None
        self.intake = Intake(capacity, capacity_bytes, prefix, block=block)
        #: :meth:`submit` for a sample known to be on a data key (a subscription to data
        #: keys only): queued as it is, with its Zenoh timestamp. The intake's own
        #: ``put``, one Python call less per message on Zenoh's thread.
        self.submit_data: Callable[[str, bytes | None, float], bool] = self.intake.put
        self._keys: dict[str, StreamKey] = {}
        self._stopping = threading.Event()
        self._abort = threading.Event()
        recorder.writer.should_abort = self._abort.is_set
        self.error: BaseException | None = None
        self._logged_dropped = 0
        self._logged_rejected = 0
        #: time.monotonic() of the last completed flush: the writer's heartbeat.
        self.last_flush = time.monotonic()
        #: time.monotonic() when the writer last finished handling queued messages (None:
        #: not yet); the live status shows its age.
        self.batch_done_at: float | None = None
        #: The longest time between two flushes so far (seconds), and how many there were.
        self.longest_flush_gap = 0.0
        self.flushes = 0
        #: Batches the writer took so far (see :data:`GATHER_MESSAGES`).
        self.batches = 0
        #: Batches of one key the batch decoder failed on (a defect, logged): their
        #: messages were decoded one by one by ``decode``, the reference decoder.
        self.decoder_fallbacks = 0
        #: Per node: its last control state's fields and its latest incarnations (for the
        #: live status; written by the writer thread only, read as copies).
        self._nodes: dict[str, dict[str, Any]] = {}

    # -- called from other threads ---------------------------------------------------

    def submit(self, key: str, payload: bytes | None, zenoh_time: int = 0) -> None:
        """Queue one raw sample (None: a Zenoh DELETE); dropped and counted if full.

        ``zenoh_time``: the sample's Zenoh timestamp, ns since 1970 (0: none).
        """
        # Control states keep their arrival time (received_at in the control log); data
        # messages their Zenoh timestamp, in the same slot (frame_zenoh_time).
        control = key.endswith(_CONTROL_SUFFIX)
        self.intake.put(key, payload, time.time() if control else zenoh_time)

    def submit_presence(self, node_id: str, alive: bool) -> None:
        """Queue a node's join (``alive``) or leave for the control log. Never blocks."""
        event = "join" if alive else "leave"
        self.intake.put(PRESENCE_KEY, f"{event}/{node_id}".encode(), time.time(), node=node_id)

    def stop(self) -> None:
        """Ask :meth:`run` to write what is queued, finish the session and return."""
        self._stopping.set()
        self.intake.close()  # nothing waits for room any more (block mode)

    def abort(self) -> None:
        """Ask :meth:`run` to stop at its next safe point and leave the session as a crash would.

        Used when closing takes longer than the drain timeout: the writer is never
        interrupted inside a non-SWMR window, and the journal stays intact.
        """
        self._abort.set()

    @property
    def aborted(self) -> bool:
        """Whether the run ended by :meth:`abort` (the session was left for recovery)."""
        return isinstance(self.error, WriteAborted)

    @property
    def queued(self) -> int:
        """Samples waiting in the intake."""
        return len(self.intake)

    @property
    def intake_dropped(self) -> int:
        """Samples dropped at the intake so far."""
        return self.intake.dropped

    @property
    def intake_high_water(self) -> int:
        """The most samples the intake held at once."""
        return self.intake.high_water

    def abandon(self) -> int:
        """Drop everything still queued (counted as intake drops); return how many."""
        return self.intake.clear()

    def nodes_seen(self) -> dict[str, dict[str, Any]]:
        """Per node: module type, status, step and time of its last control state, and its
        latest incarnations (a copy, safe to read from another thread)."""
        return {node: dict(info) for node, info in list(self._nodes.items())}

    def _note_incarnation(self, node_id: str, incarnation: int) -> dict[str, Any] | None:
        info = self._nodes.get(node_id)
        if info is None:
            if len(self._nodes) >= MAX_NODES_SEEN:
                return None
            info = self._nodes[node_id] = {"incarnations": []}
        seen: list[int] = info["incarnations"]
        if not seen or seen[-1] != incarnation:
            info["incarnations"] = [*(i for i in seen if i != incarnation), incarnation][
                -NODE_INCARNATIONS_SHOWN:
            ]
        return info

    def _note_control(self, state: ControlState) -> None:
        info = self._note_incarnation(state.node_id, state.incarnation)
        if info is not None:
            info.update(
                module_type=state.module_type,
                status=state.status,
                active_task=state.active_task,
                step_count=state.step_count,
                step=state.step,
                time_ms=state.time_ms,
            )

    # -- the writer thread -----------------------------------------------------------

    def run(self) -> None:
        """Thread body: drain, decode, record, flush periodically; finish on stop."""
        recorder = self.recorder
        intake = self.intake
        last_flush = last_batch = time.monotonic()
        empty_looks = 0  # looks in a row at an empty intake
        gather_s = min(GATHER_S, self._flush_interval / 10)
        idle_max = max(IDLE_SLEEP_S, min(IDLE_SLEEP_MAX_S, gather_s))
        gather_messages = max(1, min(GATHER_MESSAGES, intake.max_messages // GATHER_FRACTION))
        gather_bytes = max(1, min(GATHER_BYTES, intake.max_bytes // GATHER_FRACTION))
        try:
            while True:
                stopping = self._stopping.is_set()
                now = time.monotonic()
                flush_due = now - last_flush >= self._flush_interval
                queued = len(intake)
                handled = 0
                if queued and (
                    queued >= gather_messages
                    or intake.bytes >= gather_bytes
                    or now - last_batch >= gather_s
                    or flush_due
                    or stopping
                ):
                    handled = self._drain()
                    last_batch = now
                    now = time.monotonic()
                    self.batch_done_at = now
                elif self._abort.is_set():
                    raise WriteAborted()
                if now - last_flush >= self._flush_interval:
                    self._flush()
                    self.longest_flush_gap = max(
                        self.longest_flush_gap, self.last_flush - last_flush
                    )
                    last_flush = self.last_flush
                    if self._disk_low():
                        dropped = self.abandon()  # counted as intake drops
                        if dropped:
                            log.warning("%d queued message(s) not recorded", dropped)
                        break
                if stopping and not len(self.intake):
                    break
                if not handled:  # long sleeps only once the intake has stayed empty
                    time.sleep(IDLE_SLEEP_S if empty_looks < IDLE_LOOKS else idle_max)
                empty_looks = 0 if queued else empty_looks + 1
            self._sync_counters()
            recorder.finish()
        except BaseException as exc:  # the daemon reports it and exits non-zero
            self.error = exc
            lost = self.intake.clear()
            where = self.recorder.settings.session_dir
            if isinstance(exc, WriteAborted):
                log.error("%s: %s", where, exc)
                if lost:
                    log.error("%d queued message(s) not recorded (counted as intake_dropped)", lost)
                self._sync_counters()
                try:  # the counters of this run, beside the session left for recovery
                    recorder.writer.write_statistics(recorder.statistics_document())
                except OSError as stats_exc:
                    log.error("could not write the statistics: %s", stats_exc)
                recorder.writer.abandon()
                return
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
                recorder.writer.abandon()

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
        self.flushes += 1

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
        stats.intake_dropped = self.intake.dropped
        for key, n in list(self.intake.dropped_by_key.items()):
            sk = self._keys.get(key)
            if sk is None:
                try:
                    sk = parse_key(key, self._prefix)
                except ProtocolError:
                    continue  # counted in intake_dropped only
            st = stats.streams.get(sk.stream_id)
            if st is not None:  # keys that never became a stream count in the total only
                st.dropped = n

    def _drain(self) -> int:
        """Handle one batch: data messages per key, at once; everything else one by one."""
        if self._abort.is_set():
            raise WriteAborted()
        samples = self.intake.take(BATCH_MESSAGES, BATCH_BYTES)
        self.batches += bool(samples)
        # A data sample's third field is its Zenoh timestamp (an int, see submit).
        groups: dict[str, tuple[list[bytes], list[float]]] = {}
        for key, payload, received_at, _ in samples:
            group = groups.get(key)
            if group is not None and payload is not None:  # a data key seen in this batch
                group[0].append(payload)
                group[1].append(received_at)
                continue
            sk = self._keys.get(key)
            if sk is not None and sk.kind is not None and payload is not None:
                groups[key] = ([payload], [received_at])
            else:  # control, presence, DELETE, or a key not parsed yet
                if group is not None:  # a DELETE after data of its key: that data first
                    del groups[key]
                    self.handle_data(self._keys[key], key, *group)
                self.handle(key, payload, received_at)
        for key, (payloads, stamps) in groups.items():
            self.handle_data(self._keys[key], key, payloads, stamps)
        self.recorder.write_buffered()
        return len(samples)

    def handle_data(
        self, sk: StreamKey, key: str, payloads: list[bytes], stamps: list[float] | None = None
    ) -> None:
        """Decode data messages of one key as a batch and record them in arrival order
        (``stamps``: their Zenoh timestamps, ns since 1970, 0 for none)."""
        recorder = self.recorder
        assert sk.kind is not None
        try:
            batch = decode_batch(payloads, sk.kind)
        except Exception as exc:  # a defect of the batch decoder must not stop the recording
            self.decoder_fallbacks += 1
            if self.decoder_fallbacks == 1:
                log.exception("decoding a batch on %s failed", key[:200])
            recorder.events.event(
                "batch decoder failure",
                logging.ERROR,
                "decoding a batch of %d message(s) on %s failed (%r): decoded one by one",
                len(payloads),
                key[:200],
                exc,
            )
            for i, payload in enumerate(payloads):  # the reference decoder, message by message
                self.handle(key, payload, 0 if stamps is None else stamps[i])
            return
        if stamps is not None:
            batch.with_stamps(stamps)
        if len(batch):
            self._note_incarnation(sk.node_id, int(batch.header["incarnation"][-1]))
        stream = sk.stream_id
        done = 0  # valid messages recorded so far
        for index, reason, detail, sequence in batch.rejected:
            before = int(np.searchsorted(batch.valid, index))
            if before > done:
                recorder.add_batch(sk.node_id, sk.name, sk.kind, batch.rows(done, before))
                done = before
            recorder.reject(reason, detail, key[:200], stream=stream)
            if sequence is not None and reason in SEQUENCED_REASONS:
                recorder.skip(stream, *sequence)
        if done < len(batch):
            recorder.add_batch(sk.node_id, sk.name, sk.kind, batch.rows(done, len(batch)))

    def handle(self, key: str, payload: bytes | None, received_at: float) -> None:
        """Decode one sample and give it to the recorder; count and log it if invalid."""
        recorder = self.recorder
        sk: StreamKey | None = None
        try:
            if key == PRESENCE_KEY and payload is not None:
                event, _, node_id = payload.decode("utf-8", "replace").partition("/")
                recorder.add_presence(node_id, event, received_at)
                return
            sk = self._keys.get(key)
            if sk is None:
                sk = parse_key(key, self._prefix)
                if len(self._keys) < KEY_CACHE_SIZE:
                    self._keys[key] = sk
            if payload is None:
                raise ProtocolError(Reason.DELETE_SAMPLE, "a Zenoh DELETE carries no message")
            if sk.kind is None:
                state = decode_control(payload, sk.node_id)
                recorder.add_control(state, received_at)
                self._note_control(state)
            else:
                msg = decode(payload, sk.kind)
                recorder.add(sk.node_id, sk.name, msg, int(received_at))  # Zenoh time
                self._note_incarnation(sk.node_id, msg.header.incarnation)
        except ProtocolError as exc:
            stream = None if sk is None else sk.stream_id
            recorder.reject(exc.reason, exc.detail, key[:200], stream=stream)
            if stream is not None and exc.sequence is not None and exc.reason in SEQUENCED_REASONS:
                recorder.skip(stream, *exc.sequence)
