"""The brain-node run loop: simulate a module and publish its streams on the bus."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brain_nodes.bus import DEFAULT_CONNECT, Bus, BusOptions, Publication
from brain_nodes.modules import BrainModule, ControlSnapshot
from brain_nodes.recording import (
    IDLE_STOP_S,
    RecorderProcess,
    RecordingOptions,
    recorder_command,
)
from brain_nodes.runtime import Pacer, StopFlag, new_incarnation, stop_on_signals
from recorderd.wire import (
    DEFAULT_PREFIX,
    ControlState,
    Kind,
    check_name,
    check_prefix,
    control_key,
    data_key,
    encode,
    encode_control,
    flush_key,
    liveliness_key,
)

log = logging.getLogger("brain_nodes")

STOPPED = "Stopped"


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """Everything a node run needs; ``steps == 0`` means run until stopped."""

    node_id: str
    module_type: str
    steps: int = 0
    seed: int = 0
    dt_ms: float = 1.0
    layer_sizes: tuple[int, ...] | None = None
    speed: float = 1.0
    prefix: str = DEFAULT_PREFIX
    control_interval: int = 100
    weight_interval: int = 1000
    wait_subscribers_s: float = 0.0
    summary_json: Path | None = None
    flush_timeout_s: float = 10.0
    recording: RecordingOptions | None = None
    bus: BusOptions = field(default_factory=BusOptions)


@dataclass(slots=True)
class Stream:
    """One published stream and what has gone out on it; ``seq`` of the next put is ``messages``."""

    key: str
    kind: str
    pub: Publication
    messages: int = 0
    spikes: int = 0

    def put(self, payload: bytes) -> None:
        """Publish and count one message."""
        self.pub.put(payload)
        self.messages += 1

    def summary(self) -> dict[str, Any]:
        """Counters for the summary JSON."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "messages": self.messages,
            "last_seq": self.messages - 1 if self.messages else None,
        }
        if self.kind == Kind.SPIKES.key_word:
            out["spikes"] = self.spikes
        return out


def control_due(step: int, interval: int, changed: bool) -> bool:
    """Whether the control state is published after ``step``."""
    return step == 0 or changed or step % interval == 0


class Node:
    """One running node: module, bus streams and the step loop."""

    def __init__(self, opts: NodeOptions, stop: StopFlag) -> None:
        check_name(opts.node_id, "node id")
        check_prefix(opts.prefix)
        self.opts = opts
        self.stop = stop
        self.incarnation = new_incarnation()
        self.module = BrainModule(
            opts.module_type, seed=opts.seed, layer_sizes=opts.layer_sizes, dt_ms=opts.dt_ms
        )
        self.steps_run = 0
        self.stop_reason = "steps"
        self._last: ControlSnapshot | None = None
        self.flush_confirmations = 0
        #: The session each confirming recorder named (any process may answer: see
        #: docs/security.md for the ACL that keeps the flush key to real recorders).
        self.flush_sessions: list[str] = []

    def _stream(self, bus: Bus, kind: Kind, name: str) -> Stream:
        key = data_key(self.opts.prefix, self.opts.node_id, kind, name)
        return Stream(key, kind.key_word, bus.publication(key))

    def _encode(self, kind: Kind, stream: Stream, step: int, size: int, data: Any) -> bytes:
        return encode(
            kind,
            incarnation=self.incarnation,
            seq=stream.messages,
            step=step,
            time_ms=step * self.opts.dt_ms,
            dt_ms=self.opts.dt_ms,
            layer_size=size,
            data=data,
        )

    def _put_control(self, stream: Stream, step: int, snap: ControlSnapshot) -> None:
        state = ControlState(
            node_id=self.opts.node_id,
            module_type=self.module.module_type.value,
            status=snap.status,
            active_task=snap.active_task,
            step_count=self.steps_run,
            step=step,
            time_ms=step * self.opts.dt_ms,
            incarnation=self.incarnation,
            seq=stream.messages,
            metadata=snap.metadata,
        )
        stream.put(encode_control(state))

    def _wait_for_subscribers(self, spikes: list[Stream]) -> None:
        deadline = time.monotonic() + self.opts.wait_subscribers_s
        while not all(s.pub.matched for s in spikes):
            if self.stop.requested:
                return
            if time.monotonic() >= deadline:
                missing = [s.key for s in spikes if not s.pub.matched]
                log.warning(
                    "no subscriber after %.1f s for %s; starting anyway",
                    self.opts.wait_subscribers_s,
                    ", ".join(missing),
                )
                return
            time.sleep(0.01)

    def run(self, bus: Bus) -> list[Stream]:
        """Declare the streams, run the step loop, publish the final state; return the streams."""
        opts, module = self.opts, self.module
        names, sizes = module.layer_names, module.layer_sizes
        spikes = [self._stream(bus, Kind.SPIKES, n) for n in names]
        membrane = [self._stream(bus, Kind.MEMBRANE, n) for n in names]
        weight_sizes = {name: w.shape[1] for name, w in module.weights.items()}
        weights = {n: self._stream(bus, Kind.WEIGHTS, n) for n in weight_sizes}
        key = control_key(opts.prefix, opts.node_id)
        control = Stream(key, "control", bus.publication(key))
        bus.declare_token(liveliness_key(opts.prefix, opts.node_id))
        if opts.wait_subscribers_s > 0:
            self._wait_for_subscribers(spikes)

        pacer = Pacer(opts.dt_ms, opts.speed, self.stop)
        step = 0
        while not self.stop.requested and (opts.steps == 0 or step < opts.steps):
            fired = module.step()
            self.steps_run = step + 1
            for i, stream in enumerate(spikes):
                stream.put(self._encode(Kind.SPIKES, stream, step, sizes[i], fired[i]))
                stream.spikes += int(fired[i].size)
            for i, stream in enumerate(membrane):
                # Copying and encoding membranes is the costly part; skip it when nobody listens.
                if stream.pub.matched:
                    v = module.membrane(i)
                    stream.put(self._encode(Kind.MEMBRANE, stream, step, sizes[i], v))
            if step % opts.weight_interval == 0:
                for name, stream in weights.items():
                    if stream.pub.matched:
                        w = module.weights[name]
                        stream.put(self._encode(Kind.WEIGHTS, stream, step, weight_sizes[name], w))
            snap = module.control()
            last = self._last
            changed = last is not None and last[:2] != snap[:2]
            if control_due(step, opts.control_interval, changed):
                self._put_control(control, step, snap)
            self._last = snap
            step += 1
            if opts.steps == 0 or step < opts.steps:
                pacer.wait()

        if self.stop.requested:
            self.stop_reason = self.stop.signal_name or "request"
        final_step = max(self.steps_run - 1, 0)
        meta = dict(self._last.metadata) if self._last is not None else {}
        self._put_control(control, final_step, ControlSnapshot(STOPPED, None, meta))
        streams = [*spikes, *membrane, *weights.values(), control]
        if opts.flush_timeout_s > 0:
            if any(s.pub.matched for s in streams):
                key = flush_key(opts.prefix, opts.node_id)
                self.flush_sessions = bus.flush_barrier(key, opts.flush_timeout_s)
                self.flush_confirmations = len(self.flush_sessions)
                log.info(
                    "%d recorder(s) confirmed receipt of everything sent: session(s) %s",
                    self.flush_confirmations,
                    ", ".join(sorted(self.flush_sessions)) or "none",
                )
            if not self.flush_confirmations:
                log.warning(
                    "no recorder confirmed receipt (flush barrier): nothing this node published "
                    "was recorded; start recorderd where --connect points, or use "
                    "--enable-recording"
                )
        return streams

    def summary(self, streams: list[Stream]) -> dict[str, Any]:
        """The run summary written to ``--summary-json``."""
        return {
            "node_id": self.opts.node_id,
            "module_type": self.module.module_type.value,
            "incarnation": self.incarnation,
            "seed": self.opts.seed,
            "steps": self.steps_run,
            "stop_reason": self.stop_reason,
            "dt_ms": self.opts.dt_ms,
            "prefix": self.opts.prefix,
            "layer_sizes": dict(zip(self.module.layer_names, self.module.layer_sizes, strict=True)),
            "flush_confirmations": self.flush_confirmations,
            "flush_sessions": sorted(self.flush_sessions),
            "streams": {s.key: s.summary() for s in streams},
        }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (temp file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def run_node(opts: NodeOptions, stop: StopFlag | None = None) -> dict[str, Any]:
    """Run a node until ``opts.steps`` or a stop request / SIGINT / SIGTERM; return its summary."""
    stop = stop or StopFlag()
    node = Node(opts, stop)
    recorder = None
    if opts.recording is not None:
        listen = opts.bus.connect[0] if opts.bus.connect else DEFAULT_CONNECT[0]
        recorder = RecorderProcess(
            recorder_command(opts.recording, listen=listen, prefix=opts.prefix)
        )
        recorder.start()
    with stop_on_signals(stop):
        bus = Bus(opts.bus)
        names, sizes = node.module.layer_names, node.module.layer_sizes
        log.info(
            "node %s module %s incarnation %016x layers %s mode %s connect %s listen %s",
            opts.node_id,
            node.module.module_type.value,
            node.incarnation,
            ",".join(f"{n}:{s}" for n, s in zip(names, sizes, strict=True)),
            bus.endpoints["mode"],
            bus.endpoints["connect"],
            bus.endpoints["listen"],
        )
        try:
            streams = node.run(bus)
        finally:
            bus.close()
    if recorder is not None:
        log.info(
            "recorder child %s records or stands by until no node is alive for %.0f s",
            recorder.pid,
            IDLE_STOP_S,
        )
    summary = node.summary(streams)
    summary["recorder_pid"] = recorder.pid if recorder is not None else None
    if opts.summary_json is not None:
        write_json(opts.summary_json, summary)
    log.info(
        "node %s stopped (%s) after %d steps: %d messages, %d spikes",
        opts.node_id,
        node.stop_reason,
        node.steps_run,
        sum(s.messages for s in streams),
        sum(s.spikes for s in streams),
    )
    return summary
