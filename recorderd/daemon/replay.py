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

import fnmatch
import heapq
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from recorderd.daemon.bus import Player, Publication
from recorderd.session import layout as L
from recorderd.session.controllog import session_records
from recorderd.session.reader import SessionFile, SessionFileError, StreamView
from recorderd.wire import (
    CONTROL_WORD,
    DEFAULT_PREFIX,
    ControlState,
    Kind,
    check_prefix,
    control_key,
    data_key,
    encode,
    encode_control,
    flush_key,
    liveliness_key,
)

log = logging.getLogger(__name__)

#: Frames read from a stream at a time: every stream being merged holds one block, so
#: memory is bounded by the number of streams, not by the session's length.
BLOCK_FRAMES: Final = 1024
#: Bytes of membrane rows or weight snapshots read from a stream at a time, at most
#: (one row or snapshot at least).
BLOCK_BYTES: Final = 1 << 20
#: Shortest pause worth sleeping for when pacing (seconds).
MIN_SLEEP_S: Final = 0.001
#: Seconds between progress lines in the log.
PROGRESS_S: Final = 5.0
_FRAME_NAMES: Final = (
    L.FRAME_STEP,
    L.FRAME_TIME,
    L.FRAME_SEQ,
    L.FRAME_INCARNATION,
    L.FRAME_COUNT,
)
_KINDS: Final = {L.SPIKES: Kind.SPIKES, L.MEMBRANE: Kind.MEMBRANE, L.WEIGHTS: Kind.WEIGHTS}


class ReplayError(Exception):
    """The session cannot be replayed as asked (the message says why)."""


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay and how fast."""

    #: 1.0 the recorded speed, 2.0 twice as fast; None as fast as possible.
    rate: float | None = 1.0
    #: Node id patterns (``fnmatch``: ``pfc-*``); empty: every node.
    nodes: tuple[str, ...] = ()
    #: Stream patterns on ``<node>/<kind>/<layer>`` or ``<node>/control``; empty: all.
    streams: tuple[str, ...] = ()
    #: Only messages with ``t_start_ms <= time_ms < t_stop_ms`` (simulation time).
    t_start_ms: float | None = None
    t_stop_ms: float | None = None
    #: Key-expression prefix; None: the one the session was recorded under.
    prefix: str | None = None
    #: Seconds to wait for subscribers to every spikes and control key before the start.
    wait_subscribers_s: float = 10.0
    #: Seconds the flush barrier waits for recorders' replies, per node (0: skip it).
    flush_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Message:
    """One message to publish, with what orders it."""

    epoch: int  # position of its incarnation among its node's (restarts come later)
    time_ms: float
    rank: int  # 0 data, 1 control: at equal times, a step's data goes first
    stream: str
    key: str
    payload: bytes
    spikes: int


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


@dataclass(frozen=True)
class _Stream:
    group: str  # spikes, membrane, weights
    node: str
    name: str

    @property
    def stream_id(self) -> str:
        return f"{self.node}/{self.group}/{self.name}"


def _selected(stream_id: str, node: str, opts: ReplayOptions) -> bool:
    if opts.nodes and not any(fnmatch.fnmatchcase(node, p) for p in opts.nodes):
        return False
    return not opts.streams or any(fnmatch.fnmatchcase(stream_id, p) for p in opts.streams)


def _in_window(t: float, opts: ReplayOptions) -> bool:
    return (opts.t_start_ms is None or t >= opts.t_start_ms) and (
        opts.t_stop_ms is None or t < opts.t_stop_ms
    )


def _last_int(value: Any) -> int:
    """``layer_size`` as the wire carries it: ``[n]`` for a layer, ``[rows, cols]`` -> cols."""
    return int(np.atleast_1d(np.asarray(value))[-1])


def _first_seen(values: npt.NDArray[Any]) -> list[int]:
    """Distinct values in order of first appearance."""
    if values.size == 0:
        return []
    _, first = np.unique(values, return_index=True)
    return [int(values[i]) for i in np.sort(first)]


class SessionSource:
    """A recorded session read for replay: its streams and control states, filtered."""

    def __init__(self, session_dir: Path, opts: ReplayOptions) -> None:
        if not L.session_file_sets(session_dir):
            raise ReplayError(f"{session_dir} is not a recorded session (no {L.DATA_FILE})")
        try:
            self.file = SessionFile(session_dir, recover=False)
        except SessionFileError as exc:
            raise ReplayError(str(exc)) from None
        self.dir = session_dir
        self.opts = opts
        meta = self.file.metadata_attrs()
        self.session = str(meta.get(L.ATTR_SESSION, session_dir.name))
        try:
            recorded_prefix = json.loads(meta.get(L.ATTR_RECORDER_CONFIG, "{}")).get("prefix")
        except (ValueError, AttributeError):
            recorded_prefix = None
        try:
            self.prefix = check_prefix(opts.prefix or recorded_prefix or DEFAULT_PREFIX)
        except ValueError as exc:
            raise ReplayError(str(exc)) from None
        self.streams = [
            s
            for group in _KINDS
            for s in self._streams(group)
            if _selected(s.stream_id, s.node, opts)
        ]
        self.control = self._control_states()
        # A node's incarnations in the order they ran: the control log's order (it is
        # chronological), then those seen only in data streams, in file order.
        self._epochs: dict[str, dict[int, int]] = {}
        for state in self.control:
            self._epoch_of(state.node_id, state.incarnation)
        for s in self.streams:
            g = self._view(s)
            for inc in _first_seen(g.dataset(L.FRAME_INCARNATION).read()):
                self._epoch_of(s.node, inc)

    def close(self) -> None:
        """Close the session file."""
        self.file.close()

    @property
    def nodes(self) -> list[str]:
        """Node ids with something to replay."""
        return sorted({s.node for s in self.streams} | {c.node_id for c in self.control})

    def keys(self) -> dict[str, tuple[str, str]]:
        """Stream id -> (key expression, kind word) of everything to replay."""
        out = {
            s.stream_id: (data_key(self.prefix, s.node, _KINDS[s.group], s.name), s.group)
            for s in self.streams
        }
        for node in sorted({c.node_id for c in self.control}):
            out[f"{node}/{CONTROL_WORD}"] = (control_key(self.prefix, node), CONTROL_WORD)
        return out

    def messages(self) -> Iterator[Message]:
        """Every selected message: per stream in recorded order, across streams by time."""
        sources = [self._data(s) for s in self.streams]
        sources.append(self._controls())
        return heapq.merge(*sources, key=lambda m: (m.epoch, m.time_ms, m.rank))

    # -- reading -----------------------------------------------------------------------

    def _streams(self, group: str) -> Iterator[_Stream]:
        for pop in self.file.populations(group):
            node, name = L.split_population(pop)
            yield _Stream(group, node, name)

    def _view(self, s: _Stream) -> StreamView:
        # Opened again for each block: the file keeps only the last few streams open.
        return self.file.stream(s.group, s.node, s.name)

    def _epoch_of(self, node: str, incarnation: int) -> int:
        order = self._epochs.setdefault(node, {})
        return order.setdefault(incarnation, len(order))

    def _control_states(self) -> list[ControlState]:
        states = []
        skipped = 0
        for record in session_records(self.dir):  # every shard's, merged in time
            if L.CONTROL_EVENT in record:  # a node's join or leave: the tokens replay those
                continue
            record.pop("received_at", None)
            try:
                state = ControlState.model_validate_json(json.dumps(record))
            except (ValidationError, ValueError):
                skipped += 1
                continue
            stream_id = f"{state.node_id}/{CONTROL_WORD}"
            if _selected(stream_id, state.node_id, self.opts) and _in_window(
                state.time_ms, self.opts
            ):
                states.append(state)
        if skipped:
            log.warning("%d control record(s) are not valid control states: not replayed", skipped)
        return states

    def _controls(self) -> Iterator[Message]:
        for state in self.control:
            yield Message(
                self._epoch_of(state.node_id, state.incarnation),
                state.time_ms,
                1,
                f"{state.node_id}/{CONTROL_WORD}",
                control_key(self.prefix, state.node_id),
                encode_control(state),
                0,
            )

    def _data(self, s: _Stream) -> Iterator[Message]:
        # No view of the stream is held across a yield: thousands of streams are merged,
        # and an open dataset holds HDF5's chunk cache. Each block is read, then sent.
        kind = _KINDS[s.group]
        g = self._view(s)
        layer_size = _last_int(g.attrs.get(L.ATTR_LAYER_SIZE, 0))
        dt_ms = float(g.attrs.get(L.ATTR_DT_MS, 1.0))
        key = data_key(self.prefix, s.node, kind, s.name)
        n = min(g.dataset(name).rows for name in _FRAME_NAMES)
        recorded: npt.NDArray[np.int64] | None = None
        if L.RECORDED_NEURONS in g:
            recorded = np.asarray(g.dataset(L.RECORDED_NEURONS).read_all(), dtype=np.int64)
        spike_rows = 0
        block_frames = BLOCK_FRAMES
        if kind is Kind.SPIKES:
            spike_rows = min(g.dataset(L.NODE_IDS).rows, g.dataset(L.TIMESTAMPS).rows)
        else:
            data = g.dataset(L.DATA)
            if not (kind is Kind.MEMBRANE and data.shape[1:] == (0,)):
                n = min(n, data.rows)  # rows complete in every dataset
            row_bytes = 4 * math.prod(data.shape[1:])
            block_frames = max(1, min(BLOCK_FRAMES, BLOCK_BYTES // max(1, row_bytes)))
        del g
        row0 = 0  # the block's first spike row
        for lo in range(0, n, block_frames):
            hi = min(n, lo + block_frames)
            g = self._view(s)
            steps, times, seqs, incs, counts = (g.dataset(f).read(lo, hi) for f in _FRAME_NAMES)
            values: list[Any]
            if kind is Kind.SPIKES:
                ends = row0 + np.cumsum(counts, dtype=np.int64)
                usable = int(np.searchsorted(ends, spike_rows, side="right"))
                stop = int(ends[usable - 1]) if usable else row0
                ids = g.dataset(L.NODE_IDS).read(row0, stop)
                bounds = np.concatenate(([row0], ends[:usable])) - row0
                values = [ids[bounds[i] : bounds[i + 1]] for i in range(usable)]
                row0 = stop
            elif kind is Kind.MEMBRANE:
                block = g.dataset(L.DATA).read(lo, hi)
                values = [_membrane_row(block, i, layer_size, recorded) for i in range(hi - lo)]
            else:
                values = list(g.dataset(L.DATA).read(lo, hi))
            del g
            for i, data_i in enumerate(values):
                t = float(times[i])
                if not _in_window(t, self.opts):
                    continue
                payload = encode(
                    kind,
                    incarnation=int(incs[i]),
                    seq=int(seqs[i]),
                    step=int(steps[i]),
                    time_ms=t,
                    dt_ms=dt_ms,
                    layer_size=layer_size,
                    data=data_i,
                )
                epoch = self._epoch_of(s.node, int(incs[i]))
                spikes = int(data_i.size) if kind is Kind.SPIKES else 0
                yield Message(epoch, t, 0, s.stream_id, key, payload, spikes)
            if len(values) < hi - lo:  # the rest of the spikes was never committed
                return


def _membrane_row(
    block: npt.NDArray[Any], i: int, layer_size: int, recorded: npt.NDArray[np.int64] | None
) -> npt.NDArray[np.float32]:
    """A whole layer's row: the recorded neurons' values, NaN for the others."""
    empty = block.shape[1:] == (0,)
    row = np.zeros(0, np.float32) if empty else np.asarray(block[i], dtype=np.float32)
    if recorded is None and row.size == layer_size:
        return row
    full = np.full(layer_size, np.nan, dtype=np.float32)
    if recorded is None:
        full[: row.size] = row[:layer_size]
    elif recorded.size:
        full[recorded] = row
    return full


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
