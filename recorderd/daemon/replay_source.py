"""A recorded session read for replay (``recorderctl play``): its messages in order.

:class:`SessionSource` reads every stream of a session (sharded or not, through
``recorderd.session.reader``) block by block and yields the messages to publish, with
what orders them; ``recorderd.daemon.replay`` merges and publishes them. What is
replayed of each kind: ``recorderd.daemon.replay``'s docstring.
"""

from __future__ import annotations

import fnmatch
import heapq
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from recorderd.session import layout as L
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
)

log = logging.getLogger(__name__)

#: Frames read from a stream at a time: every stream being merged holds one block, so
#: memory is bounded by the number of streams, not by the session's length.
BLOCK_FRAMES: Final = 1024
#: Bytes of membrane rows or weight snapshots read from a stream at a time, at most
#: (one row or snapshot at least).
BLOCK_BYTES: Final = 1 << 20
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
        for record in self.file.control_records():  # every shard's, merged in time
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
