"""Replaying a recorded session onto the bus (``recorderctl play``), like ``ros2 bag play``.

Every recorded message is published again with the wire protocol (``recorderd.wire``),
on the key it was recorded from, with the same incarnation, ``seq``, step, time and dt:
a recorder recording the replay writes a session equal to the original (per stream: the
frames, the neuron ids, the membrane rows, the weight snapshots, the control states).

What is published, per stream of the session (``docs/recording-format.md``):

- spikes: one message per recorded frame; frame ``i``'s neurons are rows
  ``offsets[i]:offsets[i+1]`` of ``node_ids`` with ``offsets = cumsum(frame_count)``. A
  subsampled layer replays only its recorded neurons (the others stay silent); the layer
  size is the stream's ``layer_size`` attribute.
- membrane: one message per row. A subsampled layer's unrecorded neurons are NaN.
- weights: one message per snapshot.
- control states: the records of ``control_states.jsonl`` (not the node joins and
  leaves), without the recorder's ``received_at``.

Order: per stream, the recorded order; across streams, simulation time (``time_ms``),
data before control at equal times. A node's later incarnations (a restart during the
recording) come after its earlier ones. Pacing follows ``time_ms``: ``rate`` 1.0 is the
recorded speed, 2.0 twice as fast, None as fast as possible.

Each replayed node's liveliness token is held from before the first message until after
the flush barrier (``docs/wire-protocol.md``): at the end, ``<prefix>/<node>/flush`` is
queried per node and the recorders that confirmed are reported.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from recorderd.daemon.bus import Player, Publication
from recorderd.daemon.replay_source import (
    ReplayError,
    ReplayOptions,
    SessionSource,
)
from recorderd.wire import CONTROL_WORD, Kind, flush_key, liveliness_key

__all__ = ["ReplayError", "ReplayOptions", "ReplayResult", "StreamCount", "replay"]

log = logging.getLogger(__name__)

#: Shortest pause worth sleeping for when pacing (seconds).
MIN_SLEEP_S: Final = 0.001
#: Seconds between progress lines in the log.
PROGRESS_S: Final = 5.0


@dataclass
class StreamCount:
    """What was published on one stream."""

    kind: str
    messages: int = 0
    spikes: int = 0
    skipped: int = 0  # membrane or weights not published: no subscriber matched
    first_ms: float | None = None
    last_ms: float | None = None


@dataclass
class ReplayResult:
    """What a replay did."""

    session: str
    prefix: str
    streams: dict[str, StreamCount] = field(default_factory=dict)
    #: Per node: the sessions named by the recorders that confirmed the flush barrier.
    flush: dict[str, list[str]] = field(default_factory=dict)
    wall_s: float = 0.0
    interrupted: bool = False

    @property
    def messages(self) -> int:
        """Messages published in all."""
        return sum(s.messages for s in self.streams.values())

    @property
    def confirmed(self) -> int:
        """Recorders that confirmed every replayed node's flush barrier (the fewest)."""
        return min((len(s) for s in self.flush.values()), default=0)


class Pacer:
    """Sleeps so that simulation time passes ``rate`` times as fast as wall time."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ReplayError(f"rate must be a positive number, got {rate}")
        self.rate = rate
        self._epoch = -1
        self._t0_sim = 0.0
        self._t0_wall = 0.0

    def wait(self, epoch: int, time_ms: float) -> None:
        """Return when ``time_ms`` is due (a new epoch starts the clock again)."""
        if self.rate is None:
            return
        now = time.monotonic()
        if epoch != self._epoch:
            self._epoch, self._t0_sim, self._t0_wall = epoch, time_ms, now
            return
        delay = self._t0_wall + (time_ms - self._t0_sim) / 1000.0 / self.rate - now
        if delay >= MIN_SLEEP_S:
            time.sleep(delay)


def replay(
    session_dir: Path,
    open_player: Callable[[], Player],
    opts: ReplayOptions,
) -> ReplayResult:
    """Publish the session at ``session_dir`` on the bus that ``open_player`` opens.

    Raises :class:`ReplayError` (nothing to replay, not a session, a bad rate) before
    opening the bus, and the bus's own :class:`~recorderd.daemon.bus.BusError`.
    A KeyboardInterrupt stops the publishing; the flush barrier still runs.
    """
    pacer = Pacer(opts.rate)
    source = SessionSource(session_dir, opts)
    try:
        keys = source.keys()
        if not keys:
            raise ReplayError(f"nothing to replay in {session_dir} with these filters")
        result = ReplayResult(source.session, source.prefix)
        result.streams = {sid: StreamCount(kind) for sid, (_key, kind) in keys.items()}
        player = open_player()
        try:
            _publish(source, player, keys, opts, pacer, result)
        finally:
            player.close()
    finally:
        source.close()
    return result


def _publish(
    source: SessionSource,
    player: Player,
    keys: dict[str, tuple[str, str]],
    opts: ReplayOptions,
    pacer: Pacer,
    result: ReplayResult,
) -> None:
    pubs: dict[str, Publication] = {sid: player.publication(key) for sid, (key, _) in keys.items()}
    nodes = source.nodes
    for node in nodes:
        player.hold_token(liveliness_key(source.prefix, node))
    _wait_for_subscribers(pubs, keys, opts.wait_subscribers_s)
    log.info(
        "replaying %s (%d streams of %d nodes) under %s at %s",
        source.session,
        len(keys),
        len(nodes),
        source.prefix,
        "full speed" if opts.rate is None else f"{opts.rate:g}x the recorded speed",
    )
    started = last_report = time.monotonic()
    always = (Kind.SPIKES.key_word, CONTROL_WORD)
    try:
        for m in source.messages():
            pacer.wait(m.epoch, m.time_ms)
            count = result.streams[m.stream]
            pub = pubs[m.stream]
            if count.kind not in always and not pub.matched:
                count.skipped += 1  # membrane and weights: only while someone records them
                continue
            pub.put(m.payload)
            count.messages += 1
            count.spikes += m.spikes
            count.first_ms = m.time_ms if count.first_ms is None else count.first_ms
            count.last_ms = m.time_ms
            now = time.monotonic()
            if now - last_report >= PROGRESS_S:
                last_report = now
                log.info("%d messages published, at %.1f ms", result.messages, m.time_ms)
    except KeyboardInterrupt:
        result.interrupted = True
        log.warning(
            "interrupted: %d messages published; passing the flush barrier", result.messages
        )
    result.wall_s = time.monotonic() - started
    if opts.flush_timeout_s > 0:
        for node in nodes:
            result.flush[node] = player.flush_barrier(
                flush_key(source.prefix, node), opts.flush_timeout_s
            )
    for node in nodes:
        player.release_token(liveliness_key(source.prefix, node))


def _wait_for_subscribers(
    pubs: dict[str, Publication], keys: dict[str, tuple[str, str]], wait_s: float
) -> None:
    """Wait until every spikes and control key has a subscriber (bounded by ``wait_s``)."""
    needed = [pubs[sid] for sid, (_key, kind) in keys.items() if kind in ("spikes", "control")]
    deadline = time.monotonic() + wait_s
    while not all(p.matched for p in needed):
        if time.monotonic() >= deadline:
            missing = [p.key for p in needed if not p.matched]
            log.warning(
                "no subscriber after %.1f s for %d key(s) (%s%s): replaying anyway",
                wait_s,
                len(missing),
                ", ".join(missing[:3]),
                ", ..." if len(missing) > 3 else "",
            )
            return
        time.sleep(0.01)
