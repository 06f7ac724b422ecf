"""Recording sinks side by side on the same published stream, as ratios to a bare subscriber.

One command, one set of markdown tables (``--json OUT`` stores every figure).

What runs. Every sink is its own process listening on its own free ``tcp/127.0.0.1``
port, so CPU time and memory are per process:

- ``count``: a bare Zenoh subscriber that only counts samples (the bus ceiling);
- ``mcap``: a generic recorder: every raw message into an MCAP file (zstd chunks),
  written by a writer thread;
- ``seed``: the recording guide's layout, one HDF5 dataset per message (about 50x
  slower: it gets a tenth of the messages in workloads a, b, d and e; the tables say so);
- ``recorderd``: the real daemon, ``python -m recorderd --session S --recording-dir D
  --listen tcp/127.0.0.1:PORT`` with default settings (plus ``--record-membrane
  --membrane-subsample-rate 0.1`` in workload e), ``RECORDERD_*`` variables removed
  from its environment. A monitor process queries its live status
  (``recorderd.wire.status_key``) every 50 ms (with over 100 streams less often when
  answering takes over 5 ms: at most a 10% duty cycle); once ``totals.written`` equals
  what was published and the intake is empty, it gets SIGINT; closing time is reported
  apart.

Publishers are separate processes. They pre-encode their messages with
``recorderd.wire.encode``, connect, wait until every publisher is matched, start
together on a "go" line, put with RELIABLE + BLOCK congestion control, then pass the
flush barrier (``session.get(flush_key, timeout=10)``; every sink answers it) before
closing. This harness process never opens a Zenoh session (it only starts processes).

Workloads: (a) 4 publishers x one 1,000-neuron layer at ~5% firing; (b) 16 publishers,
same layer, same total messages; (c) 1,000 streams at a low rate (one publisher
process per 250 keys, 10 messages per key): bytes per stream, close time and
``sim-analyzer SESSION --json`` wall time (recorderd); (d) a 100,000-neuron layer at
~2% (~2,000 spikes per message); (e) spikes plus a membrane message per step (4 KB;
recorderd keeps 10% of the neurons, the other sinks every byte). Every message draws its
own spikes and the membrane potentials are a random walk, so no compressor is flattered
by repeated payloads.

Figures per sink and workload:

- msg/s and spikes/s: published messages (spikes) / seconds from "go" until the sink's
  output is complete (count: last sample counted; mcap/seed: file finished and closed;
  recorderd: all messages ``written`` per its status, timed by the age of the writer's
  last batch that the status reports, the close is reported apart);
- messages lost: recorderd's own statistics (missing + intake_dropped + rejected; a
  published message not written is shown next to it); other sinks: published - received;
- CPU s per million messages: the sink process's utime + stime from "go" (``/proc/PID/stat``)
  to its exit (``wait4``'s rusage), for every sink: a recorder's close is work too
  (recorderd's last flush and close, mcap's last chunk and summary);
- CPU by thread: the same from "go" to done (recorderd: to all written), summed per
  thread role by the name the OS shows for each thread (``/proc/PID/task/*/comm``):
  Zenoh's runtime (``rx-N``, ``tx-N``, ``acc-N``, ...), recorderd's subscription
  callbacks (``rd-sub-N``), writer (``rd-writer``) and compression pool (``rd-gzip-N``),
  and the rest (the main thread; a baseline's callback thread, which is not named);
- bytes on disk per spike: total output size / spikes published;
- peak RSS: VmHWM (and ``ru_maxrss`` of the reaped process), whole process lifetime;
- the whole machine from "go" to done: busy % of all cores (``/proc/stat``) and the
  publishers' CPU per message beside the sink's. On 2 cores a burst fills them, so the
  sink's msg/s follows the CPU per message of sink and publishers together.

Sustained rate (recorderd only, ``sustained`` sub-command or part of the default run):
one recorderd; 4 paced publishers (``time.perf_counter``) with congestion control DROP
offer fixed total rates (20k, 40k, 60k, ... msg/s, 20 s each) until recorderd loses
messages (its statistics, or published != written), the publishers cannot hold the pace
(on 2 cores they share the CPU with recorderd), or recorderd falls behind (not all
written within the flush interval + 1 s after the flush barrier). After each clean
step the same paced publishers feed a fresh bare counting subscriber (10 s at most):
its CPU % at that offered rate is the baseline of recorderd's ("CPU vs count"), since
at a fixed rate Zenoh's own cost per message is not what it is in a burst. Then, at half the
highest clean rate, publish -> readable latency on a fresh recorderd: publishers put
``time.time()`` (ms) into ``time_ms``; a reader process re-opens the live session with
``analysis.reader.SessionReader`` every 100 ms and records (now - time_ms) for each new
frame the first time it is readable (rows made durable by the last flush).

Rounds: workloads a and b are then run again (``--rounds``, 3 in all by default), every
sink but ``seed`` one after the other on fresh publishers each round. The main tables are
round 1; a last table gives, per round, recorderd's and mcap's msg/s and CPU per message
as ratios to ``count`` of the same round (recorderd's msg/s also to mcap's), and their
median: on this shared 2-core machine one round's ratios move by up to a third.

Every wait is bounded; children are killed by pid only, and only our own. The machine
facts (cores, Python, zenoh) and the CPU other processes used meanwhile are reported.

Usage:
  python bench/perf.py [--quick] [--workloads a,b,c,d,e,sustained]
                       [--sinks count,mcap,seed,recorderd] [--rounds 3] [--json OUT]
                       [--workdir DIR] [--keep]
  python bench/perf.py sustained [--quick] [--rates 20000,40000] [--step-seconds 20] [--json OUT]
``--quick`` shrinks everything (4 x 2,000 messages, 200 streams, 2 rounds, 2 sustained
steps of 5 s) to about two minutes.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import queue
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any, ClassVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # last resort: an installed package or PYTHONPATH wins

from recorderd.session import threads  # noqa: E402  (thread names; imports no zenoh or h5py)

PREFIX = "brain"
SINKS = ("count", "mcap", "seed", "recorderd")
#: Opt-in sinks (``--sinks handoff-callback,handoff-fifo``): how samples leave Zenoh's
#: threads. Both hand every sample to recorderd's own ``Intake``; a consumer thread takes
#: batches of 512 and only counts them. ``callback``: recorderd's way, a Python callback on
#: Zenoh's thread; ``fifo``: a ``zenoh.handlers.FifoChannel`` drained by a thread of ours.
HANDOFF_SINKS = ("handoff-callback", "handoff-fifo")
HANDOFF_FIFO = 4096  # samples the FifoChannel holds (Zenoh's own default is 256)
WORKLOADS = ("a", "b", "c", "d", "e")
#: Workloads run ``--rounds`` times (every sink but ``seed``, one after the other in each
#: round): their ratios move by up to a third between runs on a shared 2-core machine.
ROUND_WORKLOADS = ("a", "b")
STATS_FILE = "recording_statistics.json"
DATA_FILE = "simulation_data.h5"
KEYS_PER_PROCESS = 250  # workload c: one publisher process per 250 keys
TEMPLATES = 64  # paced publishers: encoded messages per key, re-stamped at each put
STATUS_INTERVAL_S = 0.05
LATENCY_POLL_S = 0.1
#: Streams past which the status monitor backs off (the document costs recorderd CPU).
BIG_STATUS_STREAMS = 100
FLUSH_INTERVAL_S = 1.0  # recorderd's default --flush-interval
#: Seconds of the bare subscriber's run at each clean sustained rate (its CPU baseline).
COUNT_STEP_S = 10.0
PAYLOAD_HEADER = struct.Struct("<Qqd")  # seq, step, time_ms at offset 16 of a data message
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def now() -> float:
    """CLOCK_MONOTONIC: comparable between processes of this machine."""
    return time.monotonic()


def log(msg: str) -> None:
    print(f"[perf {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def emit(event: str, **fields: Any) -> None:
    """A child's report to the harness: one JSON object per stdout line."""
    print(json.dumps({"event": event, **fields}), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- workloads ------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """``processes`` publishers, each with ``keys`` spike keys, ``messages`` steps per key."""

    name: str
    title: str
    processes: int
    keys: int
    messages: int
    layer: int
    rate: float
    membrane: bool = False
    seed_divisor: int = 10  # the seed sink gets messages // seed_divisor

    @property
    def streams(self) -> int:
        return self.processes * self.keys

    @property
    def total(self) -> int:
        """Messages published (spikes, plus membrane messages in workload e)."""
        return self.streams * self.messages * (2 if self.membrane else 1)

    def for_sink(self, sink: str) -> Workload:
        if sink == "seed" and self.seed_divisor > 1:
            return replace(self, messages=max(1, self.messages // self.seed_divisor))
        return self


def make_workloads(args: argparse.Namespace) -> dict[str, Workload]:
    m = args.messages
    n = args.streams
    procs = max(1, math.ceil(n / KEYS_PER_PROCESS))
    keys = math.ceil(n / procs)
    return {
        "a": Workload("a", "4 publishers x 1,000-neuron layer, ~5% firing", 4, 1, m, 1000, 0.05),
        "b": Workload("b", "16 publishers, same layer, same total", 16, 1, m // 4, 1000, 0.05),
        "c": Workload(
            "c",
            f"{procs * keys:,} streams x 10 messages ({procs} process(es) x {keys} keys)",
            procs,
            keys,
            10,
            1000,
            0.05,
            seed_divisor=1,
        ),
        "d": Workload(
            "d", "4 publishers x 100,000-neuron layer, ~2% firing", 4, 1, args.big_messages,
            100_000, 0.02,
        ),
        "e": Workload(
            "e", "4 publishers, spikes + membrane per step (1,000 neurons)", 4, 1,
            args.membrane_steps, 1000, 0.05, membrane=True,
        ),
    }  # fmt: skip


# -- children: command channel ----------------------------------------------------------


class Commands:
    """Lines the harness writes to a child's stdin, read on a thread (EOF reads as "eof")."""

    def __init__(self) -> None:
        self._q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            self._q.put(line.strip())
        self._q.put("eof")

    def get(self, timeout: float) -> str | None:
        try:
            return self._q.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def wait(self, words: Iterable[str], timeout: float) -> str | None:
        """The first of ``words`` (or "eof") within ``timeout`` s; None on timeout."""
        wanted = {*words, "eof"}
        deadline = now() + timeout
        while (left := deadline - now()) > 0:
            word = self.get(left)
            if word in wanted:
                return word
        return None


# -- child: publisher -------------------------------------------------------------------


def child_publish(spec: dict[str, Any]) -> None:
    """Encode first, connect on "connect", wait for matching, put on "go", pass the barrier."""
    import numpy as np
    import zenoh

    from recorderd import wire as P
    from recorderd.daemon.bus import make_config

    cmds = Commands()
    node: str = spec["node"]
    n_keys: int = spec["keys"]
    messages: int = spec["messages"]
    layer: int = spec["layer"]
    membrane: bool = spec["membrane"]
    pace: float = spec["pace"]  # messages per second of this process; 0: as fast as possible
    rng = np.random.default_rng(spec["seed"])
    inc = int.from_bytes(os.urandom(8), "little")

    def fired() -> Any:
        """A fresh sorted set of neurons that fired (~``rate`` of the layer). Every message
        gets its own, so no compressor finds repeats that a real stream would not have."""
        n = int(rng.binomial(layer, spec["rate"]))
        return np.unique(rng.integers(0, layer, size=n, dtype=np.int64))

    def spikes_msg(j: int, seq: int, idx: Any) -> bytes:
        return P.encode(
            P.Kind.SPIKES,
            incarnation=inc,
            seq=seq,
            step=seq,
            time_ms=float(seq),
            dt_ms=1.0,
            layer_size=layer,
            data=idx,
        )

    # Unpaced: every message encoded in advance, step-major like a node's output.
    # Paced: a pool of templates per key whose seq, step and time_ms are patched per put.
    encoded: list[tuple[int, bytes]] = []
    templates: list[list[bytearray]] = []
    template_spikes: list[int] = []
    spikes = 0
    if pace <= 0:
        volts = [np.full(layer, -65.0, dtype=np.float32) for _ in range(n_keys if membrane else 0)]
        for step in range(messages):
            for j in range(n_keys):
                idx = fired()
                encoded.append((2 * j, spikes_msg(j, step, idx)))
                spikes += int(idx.size)
                if membrane:  # a random walk: each step differs from the last, smoothly
                    v = volts[j]
                    v += rng.normal(0.0, 0.5, layer).astype(np.float32)
                    np.clip(v, -80.0, -50.0, out=v)
                    payload = P.encode(
                        P.Kind.MEMBRANE,
                        incarnation=inc,
                        seq=step,
                        step=step,
                        time_ms=float(step),
                        dt_ms=1.0,
                        layer_size=layer,
                        data=v,
                    )
                    encoded.append((2 * j + 1, payload))
    else:
        patterns = [fired() for _ in range(TEMPLATES)]
        templates = [[bytearray(spikes_msg(j, 0, idx)) for idx in patterns] for j in range(n_keys)]
        template_spikes = [int(idx.size) for idx in patterns]
    emit("encoded", messages=len(encoded) or messages * n_keys)
    if cmds.wait(["connect"], spec["max_wait"]) != "connect":
        return
    cc = zenoh.CongestionControl.BLOCK
    if spec["congestion"] == "drop":
        cc = zenoh.CongestionControl.DROP
    # Zenoh's default shared memory, as a brain node has it (recorderd turns it off).
    with zenoh.open(make_config(connect=[spec["endpoint"]], shared_memory=None)) as session:
        pubs: list[Any] = []
        for j in range(n_keys):
            kinds = [P.Kind.SPIKES, P.Kind.MEMBRANE] if membrane else [P.Kind.SPIKES]
            for kind in kinds:
                pubs.append(
                    session.declare_publisher(
                        P.data_key(PREFIX, node, kind, f"l{j}"),
                        congestion_control=cc,
                        reliability=zenoh.Reliability.RELIABLE,
                    )
                )
            if not membrane:
                pubs.append(None)  # keep index 2 * j for spikes
        active = [p for p in pubs if p is not None]
        deadline = now() + spec["max_wait"]
        while not all(p.matching_status.matching for p in active) and now() < deadline:
            time.sleep(0.005)
        matched = all(p.matching_status.matching for p in active)
        items = [(pubs[i], b) for i, b in encoded]
        emit("ready", matched=matched)
        if cmds.wait(["go"], spec["max_wait"]) != "go":
            return
        t_go = now()
        t0_pc = time.perf_counter()  # pacing clock
        behind_max = 0
        if pace <= 0:
            for pub, payload in items:
                pub.put(payload)
            sent = len(items)
        else:
            total = messages * n_keys
            stamp = bool(spec["stamp_wall"])
            stop_at = t_go + spec["duration"] * 1.25 + 2.0  # a publisher that falls behind stops
            nt = len(template_spikes)
            pack = PAYLOAD_HEADER.pack_into
            sent = 0
            while sent < total and now() < stop_at:
                due = min(total, int((time.perf_counter() - t0_pc) * pace) + 1)
                behind_max = max(behind_max, due - sent)
                while sent < due:
                    j, seq = sent % n_keys, sent // n_keys
                    buf = templates[j][seq % nt]
                    t_ms = time.time() * 1000.0 if stamp else float(seq)
                    pack(buf, 16, seq, seq, t_ms)
                    pubs[2 * j].put(bytes(buf))
                    spikes += template_spikes[seq % nt]
                    sent += 1
                slack = sent / pace - (time.perf_counter() - t0_pc)
                if slack > 0:
                    time.sleep(min(slack, 0.002))
        t_put = now()
        replies = 0
        for reply in session.get(P.flush_key(PREFIX, node), timeout=10):
            if reply.ok is not None:
                replies += 1
        t_end = now()
        emit(
            "done",
            published=sent,
            spikes=spikes,
            t_go=t_go,
            t_put=t_put,
            t_end=t_end,
            put_s=t_put - t_go,
            flush_s=t_end - t_put,
            flush_replies=replies,
            behind_max=behind_max,
        )


# -- child: sinks (count, mcap, seed) ----------------------------------------------------


class McapOut:
    """Every raw message into one MCAP file, zstd-compressed chunks."""

    def __init__(self, path: Path) -> None:
        from mcap.writer import CompressionType, Writer

        self.path = path
        self.fh = open(path, "wb")  # noqa: SIM115
        self.writer = Writer(self.fh, compression=CompressionType.ZSTD)
        self.writer.start()
        self.schema = self.writer.register_schema("brain/raw", "raw", b"")
        self.channels: dict[str, int] = {}

    def write(self, key: str, payload: bytes) -> None:
        ch = self.channels.get(key)
        if ch is None:
            ch = self.channels[key] = self.writer.register_channel(key, "raw", self.schema)
        t = time.time_ns()
        self.writer.add_message(ch, log_time=t, data=payload, publish_time=t)

    def finish(self) -> None:
        self.writer.finish()
        self.fh.close()


class SeedOut:
    """The recording guide's layout: ``/<kind>/<node>/<layer>/t_<ns>_<seq>``, one dataset
    per message (as ``bench/throughput.py``)."""

    def __init__(self, path: Path) -> None:
        import h5py

        from recorderd import wire

        self.path = path
        self.decode = wire.decode
        self.h5 = h5py.File(path, "w")

    def write(self, key: str, payload: bytes) -> None:
        msg = self.decode(payload)
        _, node, kind, layer = key.split("/")
        group = self.h5.require_group(f"{kind}/{node}/{layer}")
        group.create_dataset(f"t_{time.time_ns()}_{msg.header.seq}", data=msg.data)

    def finish(self) -> None:
        self.h5.close()


def child_sink(spec: dict[str, Any]) -> None:
    """A count / mcap / seed sink: subscribe, answer the flush barrier, report "done"."""
    import zenoh

    from recorderd.daemon.bus import hand_over, make_config
    from recorderd.daemon.intake import Intake

    cmds = Commands()
    kind: str = spec["kind"]
    expect: int = spec["expect"]
    workdir = Path(spec["workdir"])
    out: McapOut | SeedOut | None = None
    if kind == "mcap":
        out = McapOut(workdir / "generic.mcap")
    elif kind == "seed":
        out = SeedOut(workdir / "seed.h5")
    lock = threading.Lock()
    counts = {"received": 0, "written": 0}
    times: dict[str, float] = {}
    backlog: collections.deque[tuple[str, bytes]] = collections.deque()
    complete = threading.Event()
    stop = threading.Event()

    def on_sample(sample: Any) -> None:
        t = now()
        if out is not None:  # a recorder copies the payload out; the bare counter does not
            backlog.append((str(sample.key_expr), sample.payload.to_bytes()))
        with lock:
            counts["received"] += 1
            n = counts["received"]
            times.setdefault("first", t)
            times["last"] = t
        if out is None and n == expect:
            times["done"] = t
            complete.set()

    handoff = kind.startswith("handoff-")
    intake = Intake(200_000, 512 << 20, PREFIX) if handoff else None

    # recorderd's own subscriber callback, feeding the intake as the daemon's does
    on_handoff = hand_over(intake.put, f"{threads.SUB}0") if intake is not None else None

    def drain(handler: Any) -> None:  # the pulled alternative: one of our threads
        recv, try_recv = handler.recv, handler.try_recv
        while not stop.is_set():
            try:
                sample = recv()
            except Exception:  # the subscriber was undeclared
                return
            while sample is not None:
                on_handoff(sample)
                sample = try_recv()

    def consume() -> None:
        assert intake is not None
        while counts["written"] < expect and not stop.is_set():
            got = intake.take(512, 16 << 20)
            if not got:
                time.sleep(0.001)
                continue
            counts["written"] += len(got)
            with lock:
                counts["received"] = counts["written"]
                times.setdefault("first", now())
                times["last"] = now()
        times["done"] = now()
        complete.set()

    def writer() -> None:
        assert out is not None
        while True:
            if backlog:
                while backlog:
                    out.write(*backlog.popleft())
                    counts["written"] += 1
                continue
            if counts["written"] >= expect or stop.is_set():
                break
            time.sleep(0.001)
        t0 = now()
        out.finish()
        times["close_s"] = now() - t0
        times["done"] = now()
        complete.set()

    # The baselines keep Zenoh's default shared memory; the hand-off sinks, which stand
    # for recorderd's own intake, turn it off as recorderd does.
    shm = False if kind.startswith("handoff") else None
    with zenoh.open(make_config(listen=[spec["listen"]], shared_memory=shm)) as session:
        if kind == "handoff-callback":
            subs = [session.declare_subscriber(k, on_handoff) for k in spec["keys"]]
        elif kind == "handoff-fifo":
            chan: Any = zenoh.handlers.FifoChannel(HANDOFF_FIFO)
            subs = [session.declare_subscriber(k, chan) for k in spec["keys"]]  # type: ignore[misc]
            for sub in subs:
                threading.Thread(target=drain, args=(sub.handler,), daemon=True).start()
        else:
            subs = [session.declare_subscriber(k, on_sample) for k in spec["keys"]]
        flush = session.declare_queryable(f"{PREFIX}/*/flush")

        def answer() -> None:
            for query in flush.handler:  # ends when the queryable is undeclared
                with query:
                    query.reply(str(query.key_expr), json.dumps({"session": kind}).encode())

        threading.Thread(target=answer, daemon=True).start()
        if out is not None:
            threading.Thread(target=writer, daemon=True).start()
        if handoff:
            threading.Thread(target=consume, daemon=True).start()
        emit("ready")
        deadline = now() + spec["max_seconds"]
        while not complete.wait(0.5):
            emit("progress", received=counts["received"], written=counts["written"])
            word = cmds.get(0)
            if word in ("stop", "eof") or now() > deadline:
                stop.set()
                if out is None and not handoff:
                    times["done"] = now()
                    complete.set()
                else:
                    complete.wait(spec["max_seconds"])
                break
        size = out.path.stat().st_size if out is not None else 0
        emit(
            "done",
            completed=counts["received"] >= expect and (out is None or counts["written"] >= expect),
            received=counts["received"],
            written=counts["written"] if out is not None else counts["received"],
            bytes=size,
            t_first=times.get("first"),
            t_last=times.get("last"),
            t_done=times.get("done"),
            close_s=times.get("close_s", 0.0),
        )
        cmds.wait(["exit"], 60)
        for sub in subs:
            sub.undeclare()
        flush.undeclare()


# -- child: recorderd status monitor ------------------------------------------------------


def child_monitor(spec: dict[str, Any]) -> None:
    """Query recorderd's live status every ``interval`` s; one "status" line per answer."""
    import zenoh

    from recorderd import wire as P
    from recorderd.daemon.bus import make_config

    cmds = Commands()
    key = P.status_key(PREFIX, spec["session"])
    deadline = now() + spec["max_seconds"]
    session = None
    while session is None and now() < deadline:  # recorderd may not listen yet
        try:
            session = zenoh.open(make_config(mode="client", connect=[spec["endpoint"]]))
        except zenoh.ZError:
            if cmds.get(0.1) in ("stop", "eof"):
                return
    if session is None:
        emit("error", message="could not connect")
        return
    with session:
        while now() < deadline:
            if cmds.get(0) in ("stop", "eof"):
                break
            t0 = now()
            doc = None
            for reply in session.get(key, timeout=2.0):
                if reply.ok is not None:
                    doc = json.loads(reply.ok.payload.to_bytes())
            t1 = now()
            if doc is not None:
                emit(
                    "status",
                    t=t1,
                    query_s=round(t1 - t0, 4),
                    totals=doc["totals"],
                    queued=doc["intake_queued"],
                    file_bytes=doc["file_bytes"],
                    streams=len(doc["streams"]),
                    batch_age=doc.get("last_batch_age_s"),
                )
            # A big status document (many streams) costs recorderd CPU to build: then poll
            # at most at a 10% duty cycle of the query time. A small one is cheap, however
            # long its answer waits under load: the poll keeps its pace, so that the end
            # of a burst is seen within it.
            big = doc is not None and len(doc["streams"]) > BIG_STATUS_STREAMS
            left = max(spec["interval"], 10 * (t1 - t0) if big else 0.0) - (now() - t0)
            if left > 0 and cmds.get(left) in ("stop", "eof"):
                break


# -- child: publish -> readable latency reader -------------------------------------------


def child_latency(spec: dict[str, Any]) -> None:
    """Re-open the live session every ``interval`` s; latency of each newly readable frame."""
    import numpy as np

    from analysis.reader import SessionReader
    from recorderd.session import layout as L

    cmds = Commands()
    path = Path(spec["session_dir"])
    seen: dict[tuple[str, str], int] = {}
    lat: list[Any] = []
    polls = errors = 0
    last_error = ""
    read_s: list[float] = []
    deadline = now() + spec["max_seconds"]
    while now() < deadline:
        t0 = now()
        if (path / DATA_FILE).is_file():
            try:
                with SessionReader(path, recover=False) as r:
                    for node in r.nodes():
                        if not node.startswith(spec["node_prefix"]):
                            continue
                        for layer in r.layers(node):
                            n = min(
                                r.row_count(L.SPIKES, node, layer, name)
                                for name in (L.FRAME_TIME, L.FRAME_COUNT)
                            )
                            lo = seen.get((node, layer), 0)
                            if n > lo:
                                t_ms = r.read_rows(L.SPIKES, node, layer, L.FRAME_TIME, lo, n)
                                lat.append(time.time() * 1000.0 - np.asarray(t_ms, dtype=float))
                                seen[(node, layer)] = n
                polls += 1
            except Exception as exc:  # a live file: report, keep polling
                errors += 1
                last_error = f"{type(exc).__name__}: {exc}"[:300]
        read_s.append(now() - t0)
        left = spec["interval"] - (now() - t0)
        if cmds.get(max(left, 0.0)) in ("stop", "eof"):
            break
    values = np.concatenate(lat) if lat else np.zeros(0)
    pct = {
        f"p{q}_ms": (round(float(np.percentile(values, q)), 1) if values.size else None)
        for q in (50, 90, 99)
    }
    emit(
        "done",
        frames=int(values.size),
        **pct,
        max_ms=round(float(values.max()), 1) if values.size else None,
        min_ms=round(float(values.min()), 1) if values.size else None,
        polls=polls,
        errors=errors,
        last_error=last_error,
        read_s_mean=round(sum(read_s) / len(read_s), 4) if read_s else None,
        read_s_max=round(max(read_s), 4) if read_s else None,
    )


# -- harness: processes -------------------------------------------------------------------


def _stat_cpu(stat: Path) -> float | None:
    """utime + stime in seconds from a ``/proc`` stat file (None once it is gone)."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds (None once it is gone)."""
    return _stat_cpu(Path(f"/proc/{pid}/stat"))


#: What a thread does, by the name the OS shows for it: Zenoh names its runtime's threads
#: (rx-N, tx-N, acc-N, net-N, app-N); recorderd names its own (recorderd.session.threads).
THREAD_ROLES = (
    ("zenoh", ("rx-", "tx-", "acc-", "net-", "app-")),
    ("callback", (threads.SUB,)),
    ("writer", (threads.WRITER,)),
    ("compression", (threads.GZIP,)),
)


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """utime + stime of each thread of ``pid`` (by thread id): its OS name and seconds."""
    out: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            comm = (task / "comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        cpu = _stat_cpu(task / "stat")
        if cpu is not None:
            out[int(task.name)] = (comm, cpu)
    return out


def cpu_by_role(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds spent between two :func:`thread_cpu` readings, summed per role
    (:data:`THREAD_ROLES`; ``other``: the main thread, query threads, unnamed ones)."""
    roles = {name: 0.0 for name, _ in THREAD_ROLES} | {"other": 0.0}
    for tid, (comm, cpu) in after.items():
        spent = cpu - before.get(tid, (comm, 0.0))[1]
        role = next((n for n, prefixes in THREAD_ROLES if comm.startswith(prefixes)), "other")
        roles[role] += spent
    return {k: round(v, 3) for k, v in roles.items()}


def proc_hwm_kb(pid: int) -> int:
    return _proc_status_kb(pid, "VmHWM")


def proc_rss_kb(pid: int) -> int:
    return _proc_status_kb(pid, "VmRSS")


def _proc_status_kb(pid: int, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    m = re.search(rf"^{field}:\s+(\d+)", text, re.MULTILINE)
    return int(m.group(1)) if m else 0


def host_cpu() -> tuple[float, float]:
    """(busy CPU seconds of the machine, CPU seconds of this process and reaped children)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        own += ru.ru_utime + ru.ru_stime
    return busy, own


def child_env() -> dict[str, str]:
    """Our environment without ``RECORDERD_*``: recorderd runs with its defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RECORDERD_")}


class Child:
    """A child process; JSON events from its stdout are collected on a thread.

    Reaped only by :meth:`reap` (``os.wait4``: exit code, CPU time and ``ru_maxrss``), so
    its pid stays ours until then: a kill by pid can never hit another process.
    """

    all: ClassVar[list[Child]] = []

    def __init__(self, cmd: Sequence[str], name: str, work: Path, *, events: bool = True) -> None:
        self.name = name
        self.err_path = work / f"{name}.err"
        self._err: IO[bytes] = open(self.err_path, "wb")  # noqa: SIM115
        self.proc: subprocess.Popen[str] = subprocess.Popen(
            list(cmd),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if events else subprocess.DEVNULL,
            stderr=self._err,
            text=True,
            env=child_env(),
        )
        self.pid = self.proc.pid
        self.events: list[dict[str, Any]] = []
        self.latest: dict[str, dict[str, Any]] = {}
        self.rusage: resource.struct_rusage | None = None
        self._cv = threading.Condition()
        Child.all.append(self)
        if events:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                with self._cv:
                    self.events.append(event)
                    self.latest[event.get("event", "")] = event
                    self._cv.notify_all()

    def wait_event(self, name: str, timeout: float) -> dict[str, Any] | None:
        deadline = now() + timeout
        with self._cv:
            while name not in self.latest:
                left = deadline - now()
                if left <= 0 or not self.alive():
                    break
                self._cv.wait(min(left, 0.2))
            return self.latest.get(name)

    def snapshot(self) -> list[dict[str, Any]]:
        """The events so far."""
        with self._cv:
            return list(self.events)

    def say(self, line: str) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()

    def alive(self) -> bool:
        """Running (a zombie not yet reaped counts as exited); never reaps."""
        if self.proc.returncode is not None:
            return False
        try:
            res = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return res is None

    def reap(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` s for exit, else SIGKILL it (by pid); the exit code."""
        deadline = now() + timeout
        while self.proc.returncode is None:
            try:
                pid, status, ru = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == self.pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.rusage = ru
                break
            if now() >= deadline:
                log(f"{self.name} (pid {self.pid}) still running after {timeout:.0f} s: killing it")
                os.kill(self.pid, signal.SIGKILL)
                deadline = now() + 30
                timeout = 30
            time.sleep(0.01)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self._err.close()
        return self.proc.returncode

    def stderr_tail(self, n: int = 5) -> list[str]:
        try:
            lines = self.err_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        return [t[:300] for t in lines[-n:]]

    @classmethod
    def cleanup(cls) -> None:
        for child in cls.all:
            if child.proc.returncode is None:
                child.reap(0)


def spawn(role: str, spec: dict[str, Any], name: str, work: Path) -> Child:
    cmd = [sys.executable, str(Path(__file__).resolve()), role, json.dumps(spec)]
    return Child(cmd, name, work)


def start_publishers(
    w: Workload,
    endpoint: str,
    work: Path,
    tag: str,
    *,
    pace: float = 0.0,
    duration: float = 0.0,
    congestion: str = "block",
    stamp_wall: bool = False,
    max_wait: float = 60.0,
) -> list[Child]:
    pubs = []
    for i in range(w.processes):
        spec = {
            "endpoint": endpoint,
            "node": f"{tag}-{i}",
            "keys": w.keys,
            "messages": w.messages,
            "layer": w.layer,
            "rate": w.rate,
            "membrane": w.membrane,
            "pace": pace,
            "duration": duration,
            "congestion": congestion,
            "stamp_wall": stamp_wall,
            "seed": i,
            "max_wait": max_wait,
        }
        pubs.append(spawn("_publish", spec, f"{tag}-pub{i}", work))
    return pubs


def connect_publishers(pubs: Sequence[Child], timeout: float) -> str | None:
    """Encoded, then "connect", then all matched; None when ready, else what went wrong."""
    for p in pubs:
        if p.wait_event("encoded", timeout) is None:
            return f"{p.name} did not encode: {p.stderr_tail()}"
    for p in pubs:
        p.say("connect")
    for p in pubs:
        ev = p.wait_event("ready", timeout)
        if ev is None:
            return f"{p.name} not ready: {p.stderr_tail()}"
        if not ev.get("matched"):
            return f"{p.name}: no subscriber matched"
    return None


def go(pubs: Sequence[Child]) -> float:
    t_go = now()
    for p in pubs:
        p.say("go")
    return t_go


def publisher_figures(pubs: Sequence[Child]) -> dict[str, Any]:
    done = [p.latest.get("done") for p in pubs]
    ok = [d for d in done if d is not None]
    return {
        "processes": len(pubs),
        "all_done": len(ok) == len(pubs),
        "published": sum(d["published"] for d in ok),
        "spikes": sum(d["spikes"] for d in ok),
        "put_s_max": round(max((d["put_s"] for d in ok), default=0.0), 3),
        "flush_s_max": round(max((d["flush_s"] for d in ok), default=0.0), 3),
        "flush_replies_min": min((d["flush_replies"] for d in ok), default=0),
        "t_end": max((d["t_end"] for d in ok), default=None),
        "behind_max": max((d["behind_max"] for d in ok), default=0),
    }


def finish_publishers(pubs: Sequence[Child], timeout: float) -> list[int | None]:
    deadline = now() + timeout
    return [p.reap(max(1.0, deadline - now())) for p in pubs]


def wait_all_done(children: Sequence[Child], timeout: float) -> bool:
    deadline = now() + timeout
    return all(c.wait_event("done", max(0.0, deadline - now())) is not None for c in children)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def log_summary(path: Path) -> dict[str, Any]:
    """Levels, tracebacks and notable lines of a recorderd stderr log."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return {}
    lines = text.splitlines()
    levels = collections.Counter(
        line.split(" ", 1)[0] for line in lines if line.split(" ", 1)[0] in LEVELS
    )
    notable = [
        line[:300]
        for line in lines
        if line.startswith(("WARNING", "ERROR", "CRITICAL")) or "Traceback" in line
        or "HDF5-DIAG" in line
    ]  # fmt: skip
    return {
        "lines": len(lines),
        "levels": dict(levels),
        "tracebacks": text.count("Traceback (most recent call last)"),
        "notable": notable[:10],
    }


# -- harness: one recorderd daemon ---------------------------------------------------------


class Daemon:
    """``python -m recorderd`` with default settings, plus its status monitor."""

    def __init__(
        self, work: Path, name: str, session: str, extra: Sequence[str] = (), max_s: float = 900
    ) -> None:
        self.rec_dir = work / name
        self.rec_dir.mkdir(parents=True, exist_ok=True)
        self.session = session
        self.session_dir = self.rec_dir / session
        self.endpoint = f"tcp/127.0.0.1:{free_port()}"
        self.log_path = work / f"{name}.err"
        cmd = [
            *(sys.executable, "-m", "recorderd", "--session", session),
            *("--recording-dir", str(self.rec_dir), "--listen", self.endpoint),
            *extra,
        ]
        self.args = cmd[2:]
        self.t_start = now()
        self.child = Child(cmd, name, work, events=False)
        mon_spec = {
            "endpoint": self.endpoint,
            "session": session,
            "interval": STATUS_INTERVAL_S,
            "max_seconds": max_s,
        }
        self.monitor = spawn("_monitor", mon_spec, f"{name}-monitor", work)
        self.ready_s: float | None = None

    @property
    def pid(self) -> int:
        return self.child.pid

    def wait_ready(self, timeout: float = 60) -> bool:
        ok = self.monitor.wait_event("status", timeout) is not None
        if ok:
            self.ready_s = round(now() - self.t_start, 3)
        return ok

    def status(self) -> dict[str, Any] | None:
        return self.monitor.latest.get("status")

    def statuses(self, t0: float, t1: float = math.inf) -> list[dict[str, Any]]:
        events = self.monitor.snapshot()
        return [e for e in events if e.get("event") == "status" and t0 <= e["t"] <= t1]

    def stop(self, timeout: float = 120) -> dict[str, Any]:
        """Stop the monitor, SIGINT recorderd, wait for its exit (bounded; SIGKILL after)."""
        self.monitor.say("stop")
        self.monitor.reap(15)
        polls = [e for e in self.monitor.snapshot() if e.get("event") == "status"]
        t_sig = now()
        cpu_sig = proc_cpu(self.pid)
        if self.child.alive():
            os.kill(self.pid, signal.SIGINT)
        code = self.child.reap(timeout)
        close_s = now() - t_sig
        ru = self.child.rusage
        try:
            stats = json.loads((self.session_dir / STATS_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            stats = {}
        return {
            "exit_code": code,
            "close_s": round(close_s, 3),
            "cpu_total_s": (ru.ru_utime + ru.ru_stime) if ru else None,
            "cpu_at_signal_s": cpu_sig,
            "maxrss_kb": ru.ru_maxrss if ru else 0,
            "final_totals": stats.get("totals", {}),
            "rejected": stats.get("rejected", {}),
            "status_polls": len(polls),
            "status_query_ms_mean": round(
                1000 * sum(e["query_s"] for e in polls) / len(polls), 2
            ) if polls else None,
            "log": log_summary(self.log_path),
        }  # fmt: skip


# -- harness: one sink run ------------------------------------------------------------------


def run_one(
    sink: str,
    base: Workload,
    work: Path,
    timeout: float,
    *,
    analyzer: bool = False,
    round_no: int = 1,
) -> dict[str, Any]:
    """Run ``sink`` against fresh publishers of workload ``base`` (round ``round_no``, in
    a folder of its own: a fresh session, a fresh file); its figures."""
    w = base.for_sink(sink)
    tag = f"{w.name}-{sink}" if round_no == 1 else f"{w.name}-{sink}-round{round_no}"
    wdir = work / tag
    wdir.mkdir(parents=True, exist_ok=True)
    busy0, own0 = host_cpu()
    keys = [f"{PREFIX}/*/spikes/*"] + ([f"{PREFIX}/*/membrane/*"] if w.membrane else [])
    row: dict[str, Any] = {
        "workload": w.name,
        "sink": sink,
        "title": base.title,
        "processes": w.processes,
        "streams": w.streams,
        "messages_per_key": w.messages,
        "expected": w.total,
        "reduced": w.messages != base.messages,
    }
    daemon: Daemon | None = None
    sink_child: Child | None = None
    if sink == "recorderd":
        extra = ["--record-membrane", "--membrane-subsample-rate", "0.1"] if w.membrane else []
        daemon = Daemon(wdir, "recorderd", "perf", extra, max_s=timeout + 120)
        row["recorderd_args"] = daemon.args
        endpoint = daemon.endpoint
    else:
        sink_child, endpoint = start_sink(sink, wdir, w.total, keys, timeout, f"sink-{sink}")
    pubs = start_publishers(w, endpoint, wdir, f"{w.name}{sink[:2]}")
    try:
        if daemon is not None:
            ok = daemon.wait_ready(60)
            problem = None if ok else f"recorderd not ready: {daemon.child.stderr_tail()}"
            sink_pid = daemon.pid
        else:
            assert sink_child is not None
            ok = sink_child.wait_event("ready", 60) is not None
            problem = None if ok else f"sink not ready: {sink_child.stderr_tail()}"
            sink_pid = sink_child.pid
        problem = problem or connect_publishers(pubs, 60)
        if problem:
            row["error"] = problem
            log(f"{tag}: {problem}")
            return row
        cpu0 = proc_cpu(sink_pid) or 0.0
        threads0 = thread_cpu(sink_pid)
        pubs0 = [proc_cpu(p.pid) or 0.0 for p in pubs]
        host0 = host_cpu()[0]
        t_go = go(pubs)
        if daemon is not None:
            row.update(wait_recorderd(daemon, pubs, w.total, t_go, timeout))
        else:
            assert sink_child is not None
            row.update(wait_sink(sink_child, pubs, t_go, timeout))
        cpu1 = proc_cpu(sink_pid)
        host1, t_host = host_cpu()[0], now()
        row["cpu_run_s"] = round((cpu1 or cpu0) - cpu0, 3)
        row["cpu_by_thread_s"] = cpu_by_role(threads0, thread_cpu(sink_pid))
        row["machine_run"] = {  # the whole machine from "go" to done (a burst is CPU-bound)
            "seconds": round(t_host - t_go, 3),
            "busy_pct": round(100 * (host1 - host0) / (os.cpu_count() or 1) / (t_host - t_go), 1),
            "publishers_cpu_s": round(
                sum((proc_cpu(p.pid) or c0) - c0 for p, c0 in zip(pubs, pubs0, strict=True)), 3
            ),
        }
        hwm = proc_hwm_kb(sink_pid)
        wait_all_done(pubs, 30)
        row["publishers"] = publisher_figures(pubs)
        row["publisher_exit_codes"] = finish_publishers(pubs, 30)
        if daemon is not None:
            stop = daemon.stop()
            row["recorderd"] = stop | {"ready_s": daemon.ready_s}
            row["cpu_s"] = (
                round(stop["cpu_total_s"] - cpu0, 3) if stop["cpu_total_s"] else row["cpu_run_s"]
            )
            row["peak_rss_kb"] = max(hwm, stop["maxrss_kb"])
            row["close_s"] = stop["close_s"]
            t = stop["final_totals"]
            row["received"] = t.get("received", 0)
            row["written"] = t.get("written", 0)
            row["lost_stats"] = (
                t.get("missing", 0) + t.get("intake_dropped", 0) + t.get("rejected", 0)
            )
            row["bytes"] = dir_bytes(daemon.session_dir)
            if analyzer:
                row["sim_analyzer"] = run_analyzer(daemon.session_dir, wdir)
        else:
            assert sink_child is not None
            sink_child.say("exit")
            sink_child.reap(60)
            ru = sink_child.rusage  # to its exit, as recorderd's: its close is work too
            row["cpu_s"] = round(ru.ru_utime + ru.ru_stime - cpu0, 3) if ru else row["cpu_run_s"]
            row["peak_rss_kb"] = max(hwm, ru.ru_maxrss if ru else 0)
        row["published"] = row["publishers"]["published"]
        row["spikes"] = row["publishers"]["spikes"]
        if daemon is None:  # published - received
            row["lost"] = row["published"] - row.get("received", 0)
        else:  # recorderd's own statistics: missing + intake_dropped + rejected
            row["lost"] = row["lost_stats"]
        row["unwritten"] = row["published"] - row.get("written", 0)
        secs = row.get("seconds")
        if secs:
            row["msg_per_s"] = row["published"] / secs
            row["spikes_per_s"] = row["spikes"] / secs
        if row["published"]:
            row["cpu_s_per_M"] = row["cpu_s"] / row["published"] * 1e6
        if row["spikes"]:
            row["bytes_per_spike"] = row["bytes"] / row["spikes"]
        row["bytes_per_stream"] = row["bytes"] / w.streams
        row["peak_rss_mb"] = round(row["peak_rss_kb"] / 1024, 1)
        return row
    finally:
        for c in [*pubs, *([sink_child] if sink_child else [])]:
            if c.proc.returncode is None:
                c.reap(5)
        if daemon is not None and daemon.child.proc.returncode is None:
            daemon.monitor.reap(0)
            daemon.child.reap(0)
        busy1, own1 = host_cpu()
        row["foreign_cpu_s"] = round(max(0.0, (busy1 - busy0) - (own1 - own0)), 2)


def wait_sink(sink: Child, pubs: Sequence[Child], t_go: float, timeout: float) -> dict[str, Any]:
    """Until the sink reports "done"; "stop" once the publishers are through and the sink
    has made no progress for 5 s (it then writes what it has and closes)."""
    deadline = t_go + timeout
    last: tuple[int, int] | None = None
    since = now()
    stopped = False
    while now() < deadline and sink.alive():
        if sink.wait_event("done", 0.1) is not None:
            break
        prog = sink.latest.get("progress")
        sig = (prog["received"], prog["written"]) if prog else (0, 0)
        if sig != last:
            last, since = sig, now()
        pubs_done = all(p.latest.get("done") or not p.alive() for p in pubs)
        if pubs_done and now() - since > 5 and not stopped:
            sink.say("stop")
            stopped = True
    else:
        sink.say("stop")
    done = sink.wait_event("done", 60) or {}
    t_done = done.get("t_done")
    return {
        "completed": bool(done.get("completed")),
        "stopped_early": stopped,
        "received": done.get("received", 0),
        "written": done.get("written", 0),
        "bytes": done.get("bytes", 0),
        "close_s": round(done.get("close_s", 0.0), 3),
        "seconds": round(t_done - t_go, 4) if t_done else None,
        "last_received_s": round(done["t_last"] - t_go, 4) if done.get("t_last") else None,
    }


def wait_recorderd(
    d: Daemon, pubs: Sequence[Child], expected: int, t_go: float, timeout: float
) -> dict[str, Any]:
    """Poll the monitor's status lines until recorderd has written ``expected`` messages
    with an empty intake, or accounted for the rest as lost, or stalled."""
    deadline = t_go + timeout
    t_received: float | None = None
    t_written: float | None = None
    last: tuple[int, ...] | None = None
    since = now()
    completed = False
    while now() < deadline and d.child.alive():
        st = d.status()
        if st is not None and st["t"] >= t_go:
            tot = st["totals"]
            if t_received is None and tot["received"] >= expected:
                t_received = st["t"]
            if tot["written"] >= expected and st["queued"] == 0:
                t_written, completed = written_at(st), True
                break
            sig = (tot["received"], tot["written"], tot["missing"], tot["intake_dropped"])
            if sig != last:
                last, since = sig, now()
            lost = tot["missing"] + tot["intake_dropped"] + tot["rejected"]
            pubs_done = all(p.latest.get("done") or not p.alive() for p in pubs)
            settled = st["queued"] == 0 and tot["written"] >= tot["received"]
            if pubs_done and settled and (tot["received"] + lost >= expected or now() - since > 5):
                t_written = written_at(st)
                break
        time.sleep(0.02)
    return {
        "completed": completed,
        "seconds": round(t_written - t_go, 4) if t_written else None,
        # the first status that showed every message received: as late as the poll was
        # (it backs off under load), unlike "seconds"
        "received_polled_s": round(t_received - t_go, 4) if t_received else None,
    }


def written_at(status: dict[str, Any]) -> float:
    """When recorderd's writer took its last batch, per a status answered at ``t``: its
    ``last_batch_age_s`` back from the answer, so that the time does not depend on how
    often the monitor polls (it backs off under load). The answer was built before ``t``,
    so this errs late, by less than the query's time."""
    age = status.get("batch_age")
    return float(status["t"]) - (float(age) if age is not None else 0.0)


def run_analyzer(session_dir: Path, work: Path) -> dict[str, Any]:
    """``python -m analysis SESSION --json`` (the ``sim-analyzer`` CLI): wall time, exit."""
    t0 = now()
    cmd = [sys.executable, "-m", "analysis", str(session_dir), "--json"]
    child = Child(cmd, "sim-analyzer", work, events=False)
    code = child.reap(600)
    return {"exit_code": code, "wall_s": round(now() - t0, 3), "stderr": child.stderr_tail(3)}


# -- harness: sustained rate and latency ------------------------------------------------------


def sustained(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Step the offered rate up on one recorderd until it loses messages or falls behind;
    then publish -> readable latency at half the highest clean rate."""
    rates = [int(r) for r in args.rates.split(",")] if args.rates else [
        args.start_rate + k * args.rate_step for k in range(args.max_steps)
    ]  # fmt: skip
    secs = args.step_seconds
    wdir = work / "sustained"
    wdir.mkdir(parents=True, exist_ok=True)
    busy0, own0 = host_cpu()
    total_s = len(rates) * (secs * 1.5 + 30) + 120
    d = Daemon(wdir, "recorderd", "sustained", max_s=total_s)
    steps: list[dict[str, Any]] = []
    out: dict[str, Any] = {"step_seconds": secs, "publishers": 4, "congestion": "drop"}
    try:
        if not d.wait_ready(60):
            out["error"] = f"recorderd not ready: {d.child.stderr_tail()}"
            return out
        for k, rate in enumerate(rates):
            log(f"sustained: {rate:,} msg/s offered for {secs:g} s")
            step = sustained_step(d, wdir, k, rate, secs)
            steps.append(step)
            if step["ok"] and step.get("cpu_pct"):
                # The bare subscriber at the same offered rate: the CPU baseline.
                step.update(sustained_count(wdir, k, rate, min(secs, COUNT_STEP_S)))
                if step.get("count_cpu_pct"):
                    step["cpu_ratio"] = round(step["cpu_pct"] / step["count_cpu_pct"], 2)
            log(f"  -> {step['verdict']}")
            if not step["ok"]:
                break
        out["recorderd"] = d.stop()
    finally:
        if d.child.proc.returncode is None:
            d.monitor.reap(0)
            d.child.reap(0)
    out["steps"] = steps
    clean = [s["offered"] for s in steps if s["ok"]]
    out["max_clean_rate"] = max(clean) if clean else None
    out["limit_reached"] = bool(steps) and not steps[-1]["ok"]
    lat_rate = (max(clean) if clean else rates[0]) // 2
    log(f"latency: {lat_rate:,} msg/s for {args.latency_seconds:g} s")
    out["latency"] = latency(wdir, lat_rate, args.latency_seconds)
    busy1, own1 = host_cpu()
    out["foreign_cpu_s"] = round(max(0.0, (busy1 - busy0) - (own1 - own0)), 2)
    return out


def sustained_step(d: Daemon, work: Path, k: int, rate: int, secs: float) -> dict[str, Any]:
    per = rate / 4
    w = Workload("s", "sustained", 4, 1, int(per * secs), 1000, 0.05)
    pubs = start_publishers(
        w, d.endpoint, work, f"s{k}", pace=per, duration=secs, congestion="drop",
        max_wait=secs * 1.5 + 60,
    )  # fmt: skip
    row: dict[str, Any] = {"offered": rate, "seconds": secs}
    try:
        problem = connect_publishers(pubs, 60)
        if problem:
            row.update(ok=False, verdict=f"error: {problem}")
            return row
        base = d.status() or {"totals": {}}
        cpu0 = proc_cpu(d.pid) or 0.0
        t_go = go(pubs)
        wait_all_done(pubs, secs * 1.25 + 30)
        pf = publisher_figures(pubs)
        t_end = pf["t_end"] or now()
        cpu_pub = proc_cpu(d.pid) or cpu0
        published = pf["published"]
        # Caught up: everything published is accounted for, written, and the intake is empty.
        caught: dict[str, Any] | None = None
        deadline = now() + FLUSH_INTERVAL_S + 15
        while now() < deadline and d.child.alive():
            st = d.status()
            if st is not None and st["t"] > t_end:
                dt = delta(st["totals"], base["totals"])
                accounted = dt["received"] + dt["missing"] + dt["intake_dropped"]
                if st["queued"] == 0 and dt["written"] >= dt["received"] and accounted >= published:
                    caught = st
                    break
            time.sleep(0.02)
        last = caught or d.status() or base
        dt = delta(last["totals"], base["totals"])
        during = d.statuses(t_go, t_end)
        lost_stats = dt["missing"] + dt["intake_dropped"] + dt["rejected"]
        lost = max(lost_stats, published - dt["written"])
        achieved = published / pf["put_s_max"] if pf["put_s_max"] else 0.0
        drain = (caught["t"] - t_end) if caught else None
        kept_pace = published >= 0.99 * w.total and achieved >= 0.97 * rate
        kept_up = drain is not None and drain <= FLUSH_INTERVAL_S + 1.0
        reasons = []
        if lost:
            reasons.append(f"lost {lost:,}")
        if not kept_pace:
            reasons.append(f"publishers behind ({achieved:,.0f} msg/s achieved)")
        if not kept_up:
            reasons.append("recorderd behind" + (f" (drain {drain:.1f} s)" if drain else ""))
        row.update(
            published=published,
            achieved=round(achieved),
            received=dt["received"],
            written=dt["written"],
            missing=dt["missing"],
            intake_dropped=dt["intake_dropped"],
            rejected=dt["rejected"],
            lost=lost,
            max_queued=max((e["queued"] for e in during), default=0),
            drain_s=round(drain, 3) if drain is not None else None,
            cpu_pct=round(100 * (cpu_pub - cpu0) / max(t_end - t_go, 1e-9), 1),
            # Resident memory at the end of the step and the peak so far: flat after warm-up?
            rss_mb=round(proc_rss_kb(d.pid) / 1024, 1),
            peak_rss_mb=round(proc_hwm_kb(d.pid) / 1024, 1),
            publisher_behind_max=pf["behind_max"],
            flush_replies_min=pf["flush_replies_min"],
            ok=not reasons,
            verdict="clean" if not reasons else "; ".join(reasons),
        )
        return row
    finally:
        finish_publishers(pubs, 30)


def start_sink(
    kind: str, work: Path, expect: int, keys: Sequence[str], max_seconds: float, name: str
) -> tuple[Child, str]:
    """A sink process of ``kind`` listening on a free loopback port; it and its endpoint."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    spec = {
        "kind": kind,
        "listen": endpoint,
        "workdir": str(work),
        "expect": expect,
        "keys": list(keys),
        "max_seconds": max_seconds,
    }
    return spawn("_sink", spec, name, work), endpoint


def sustained_count(work: Path, k: int, rate: int, secs: float) -> dict[str, Any]:
    """The bare counting subscriber's CPU % with the same paced publishers as a sustained
    step (the baseline of recorderd's CPU at a fixed offered rate)."""
    per = rate / 4
    w = Workload("s", "sustained", 4, 1, int(per * secs), 1000, 0.05)
    keys = [f"{PREFIX}/*/spikes/*"]
    sink, endpoint = start_sink("count", work, w.total, keys, secs * 1.5 + 90, f"count-s{k}")
    pubs: list[Child] = []
    try:
        if sink.wait_event("ready", 60) is None:
            return {"count_error": f"sink not ready: {sink.stderr_tail()}"}
        pubs = start_publishers(
            w, endpoint, work, f"c{k}", pace=per, duration=secs, congestion="drop",
            max_wait=secs * 1.5 + 60,
        )  # fmt: skip
        problem = connect_publishers(pubs, 60)
        if problem:
            return {"count_error": problem}
        cpu0 = proc_cpu(sink.pid) or 0.0
        t_go = go(pubs)
        wait_all_done(pubs, secs * 1.25 + 30)
        t_end = publisher_figures(pubs)["t_end"] or now()
        cpu1 = proc_cpu(sink.pid) or cpu0
        return {"count_cpu_pct": round(100 * (cpu1 - cpu0) / max(t_end - t_go, 1e-9), 1)}
    finally:
        finish_publishers(pubs, 30)
        sink.say("exit")
        sink.reap(30)


def delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, int]:
    names = ("received", "written", "missing", "intake_dropped", "rejected", "spikes_written")
    return {n: int(a.get(n, 0)) - int(b.get(n, 0)) for n in names}


def latency(work: Path, rate: int, secs: float) -> dict[str, Any]:
    """Fresh recorderd; 4 paced publishers stamping wall-clock ms; a reader process."""
    ldir = work / "latency"
    ldir.mkdir(parents=True, exist_ok=True)
    d = Daemon(ldir, "recorderd", "latency", max_s=secs * 2 + 180)
    per = rate / 4
    w = Workload("l", "latency", 4, 1, max(1, int(per * secs)), 1000, 0.05)
    pubs = start_publishers(
        w, d.endpoint, ldir, "lat", pace=per, duration=secs, congestion="block",
        stamp_wall=True, max_wait=secs * 1.5 + 60,
    )  # fmt: skip
    out: dict[str, Any] = {"offered": rate, "seconds": secs, "flush_interval_ms": 1000}
    reader: Child | None = None
    try:
        if not d.wait_ready(60):
            out["error"] = "recorderd not ready"
            return out
        problem = connect_publishers(pubs, 60)
        if problem:
            out["error"] = problem
            return out
        reader = spawn(
            "_latency",
            {
                "session_dir": str(d.session_dir),
                "node_prefix": "lat-",
                "interval": LATENCY_POLL_S,
                "max_seconds": secs * 2 + 60,
            },
            "latency-reader",
            ldir,
        )
        go(pubs)
        wait_all_done(pubs, secs * 1.25 + 30)
        pf = publisher_figures(pubs)
        deadline = now() + 15
        while now() < deadline:
            st = d.status()
            if st and st["totals"]["written"] >= pf["published"] and st["queued"] == 0:
                break
            time.sleep(0.05)
        time.sleep(FLUSH_INTERVAL_S * 1.5 + 0.3)  # the last rows become durable at a flush
        reader.say("stop")
        res = reader.wait_event("done", 60) or {}
        out.update(published=pf["published"], achieved=round(pf["published"] / pf["put_s_max"]))
        out.update({k: v for k, v in res.items() if k != "event"})
        out["recorderd"] = d.stop()
        return out
    finally:
        finish_publishers(pubs, 30)
        if reader is not None:
            reader.reap(30)
        if d.child.proc.returncode is None:
            d.monitor.reap(0)
            d.child.reap(0)


# -- harness: tables -------------------------------------------------------------------------


def fnum(x: float | None, digits: int | None = None) -> str:
    if x is None:
        return "-"
    if digits is not None:
        return f"{x:,.{digits}f}"
    ax = abs(x)
    if ax >= 100:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def ratio(x: float | None, base: float | None) -> str:
    if x is None or not base:
        return ""
    return f" ({x / base:.2f}x)"


def cpu_by_thread_table(
    by: dict[tuple[str, str], dict[str, Any]], sinks: Sequence[str], wl: Sequence[str]
) -> list[str]:
    """Where each sink's CPU went, by thread role, from "go" to all written (s per million)."""
    roles = [name for name, _ in THREAD_ROLES] + ["other"]
    rows = []
    for s in sinks:
        for w in wl:
            r = by.get((w, s))
            if r is None or r.get("error") or not r.get("cpu_by_thread_s") or not r["published"]:
                continue
            per_m = 1e6 / r["published"]
            by_role = r["cpu_by_thread_s"]
            # A thread that ended before the second reading is gone from /proc: its CPU
            # is the rest of the process's (a baseline's writer thread ends at "done").
            ended = max(0.0, r["cpu_run_s"] - sum(by_role[k] for k in roles))
            rows.append([
                s, w,
                *(fnum(by_role[k] * per_m) for k in roles), fnum(ended * per_m),
                fnum(r["cpu_run_s"] * per_m), fnum(r.get("cpu_s_per_M")),
            ])  # fmt: skip
    if not rows:
        return []
    return [
        "### CPU by thread, s per million messages (from go to all written; then to exit)",
        "",
        "zenoh: Zenoh's runtime threads; callback: zenoh-python's callback threads (named "
        "by recorderd only; a baseline's count as other); writer and compression: "
        "recorderd's writer thread and pool; other: the main thread and the rest; ended: "
        "the rest of the process's CPU (threads that ended before the second reading, such "
        "as a baseline's writer, and each thread's rounding to 10 ms).",
        "",
        *table(["sink", "workload", *roles, "ended", "all, to written", "all, to exit"], rows),
        "",
    ]


def machine_table(
    by: dict[tuple[str, str], dict[str, Any]], sinks: Sequence[str], wl: Sequence[str]
) -> list[str]:
    """The whole machine from "go" to done: how busy its cores were, and the CPU per
    message of the sink and of the publishers together."""
    rows = []
    for w in wl:
        for s in sinks:
            r = by.get((w, s))
            if r is None or r.get("error") or not r["published"] or "machine_run" not in r:
                continue
            m = r["machine_run"]
            per_m = 1e6 / r["published"]
            pubs, sink = m["publishers_cpu_s"] * per_m, r["cpu_run_s"] * per_m
            rows.append([
                w, s, fnum(m["seconds"], 2), fnum(m["busy_pct"]), fnum(sink), fnum(pubs),
                fnum(sink + pubs),
            ])  # fmt: skip
    if not rows:
        return []
    return [
        "### The whole machine during each run (from go to done)",
        "",
        "busy %: all cores, every process (the sink, the publishers, the harness and "
        "anything else). CPU s per million messages of the sink and of its publishers, "
        "over the same span; when the cores are full, msg/s follows the sum.",
        "",
        *table(
            ["workload", "sink", "seconds", "busy %", "sink", "publishers", "sink + publishers"],
            rows,
        ),
        "",
    ]


#: The rounds table's ratios: (sink, baseline sink, figure, label). A row is shown when
#: both sinks ran; the hand-off sinks (recorderd's intake alone) are the floor under
#: recorderd's ratios.
ROUND_RATIOS = (
    ("recorderd", "count", "msg_per_s", "msg/s vs count"),
    ("recorderd", "mcap", "msg_per_s", "msg/s vs mcap"),
    ("recorderd", "count", "cpu_s_per_M", "CPU per message vs count"),
    ("mcap", "count", "msg_per_s", "msg/s vs count"),
    ("mcap", "count", "cpu_s_per_M", "CPU per message vs count"),
    ("handoff-callback", "count", "msg_per_s", "msg/s vs count"),
    ("handoff-callback", "count", "cpu_s_per_M", "CPU per message vs count"),
    ("handoff-fifo", "count", "msg_per_s", "msg/s vs count"),
    ("handoff-fifo", "count", "cpu_s_per_M", "CPU per message vs count"),
)


def rounds_table(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Workloads a and b round by round: each sink's msg/s and CPU per message as ratios
    to ``count`` of the same round (recorderd's msg/s also to ``mcap``'s), and the median.
    The hand-off sinks, when in the run, get rows too: what recorderd's intake costs with
    nothing recorded."""
    by = {(r["workload"], r["sink"], r.get("round", 1)): r for r in runs if not r.get("error")}
    rounds = sorted({k[2] for k in by})
    if len(rounds) < 2:
        return []
    rows = []
    for w in ROUND_WORKLOADS:
        for s, base, metric, label in ROUND_RATIOS:
            ratios: list[float | None] = []
            for k in rounds:
                r, b = by.get((w, s, k)), by.get((w, base, k))
                v, bv = (r or {}).get(metric), (b or {}).get(metric)
                ratios.append(v / bv if v and bv else None)
            got = [x for x in ratios if x is not None]
            if got:
                cells = [f"{x:.2f}x" if x is not None else "-" for x in ratios]
                rows.append([w, s, label, *cells, f"**{statistics.median(got):.2f}x**"])
    if not rows:
        return []
    return [
        "### Rounds of workloads a and b: ratios within each round, and their median",
        "",
        "Each round runs every sink but `seed` on fresh publishers, one after the other; a "
        "ratio compares two sinks of the same round. The tables above are round 1.",
        "",
        *table(["workload", "sink", "ratio", *(f"round {k}" for k in rounds), "median"], rows),
        "",
    ]


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def markdown(result: dict[str, Any]) -> str:
    every: list[dict[str, Any]] = result["runs"]
    runs = [r for r in every if r.get("round", 1) == 1]
    wl = [w for w in WORKLOADS if any(r["workload"] == w for r in runs)]
    sinks = [s for s in SINKS + HANDOFF_SINKS if any(r["sink"] == s for r in runs)]
    by = {(r["workload"], r["sink"]): r for r in runs}
    lines: list[str] = []
    if runs:
        lines += ["## Workloads", ""]
        for w in wl:
            r0 = next(r for r in runs if r["workload"] == w)
            lines.append(f"- **{w}**: {r0['title']}")
        lines.append("")
        seeds = [r for r in runs if r["sink"] == "seed" and r.get("reduced")]
        if seeds:
            lines += [
                "The `seed` sink is about 50x slower: it gets a tenth of the messages per "
                f"key in workload(s) {', '.join(r['workload'] for r in seeds)} (see the "
                "first table). Rates and ratios are per message, so they stay comparable.",
                "",
            ]

        def metric(title: str, get: Callable[[dict[str, Any]], float | None], rel: bool) -> None:
            lines.extend([f"### {title}", ""])
            rows = []
            for s in sinks:
                cells = [s]
                for w in wl:
                    r = by.get((w, s))
                    if r is None:
                        cells.append("-")
                        continue
                    if r.get("error"):
                        cells.append("error")
                        continue
                    v = get(r)
                    base_run = by.get((w, "count"))
                    base = get(base_run) if rel and base_run and s != "count" else None
                    cells.append(fnum(v) + ratio(v, base))
                rows.append(cells)
            lines.extend(table(["sink", *wl], rows))
            lines.append("")

        lines.append("## Per sink (rows) and workload (columns); (x) = ratio to `count`")
        lines.append("")
        lines.extend(["### messages published (spikes)", ""])
        rows = []
        for s in sinks:
            cells = [s]
            for w in wl:
                r = by.get((w, s))
                if r is None or r.get("error"):
                    cells.append("-" if r is None else "error")
                else:
                    red = " reduced" if r.get("reduced") else ""
                    cells.append(f"{r['published']:,} ({r['spikes']:,}){red}")
            rows.append(cells)
        lines += [*table(["sink", *wl], rows), ""]
        metric("messages/s (publish start to output complete)", lambda r: r.get("msg_per_s"), True)
        metric("spikes/s", lambda r: r.get("spikes_per_s"), True)
        lines += [
            "### messages lost (recorderd: its statistics, missing + intake_dropped + rejected;"
            " others: published - received)",
            "",
        ]
        rows = []
        for s in sinks:
            cells = [s]
            for w in wl:
                r = by.get((w, s))
                if r is None or r.get("error"):
                    cells.append("-" if r is None else "error")
                    continue
                gap = r.get("unwritten", 0)
                cells.append(f"{r['lost']:,}" + (f" ({gap:,} not written)" if gap else ""))
            rows.append(cells)
        lines += [*table(["sink", *wl], rows), ""]
        metric("CPU s per million messages (sink process)", lambda r: r.get("cpu_s_per_M"), True)
        metric("bytes on disk per spike (whole output)", lambda r: r.get("bytes_per_spike"), False)
        metric("peak RSS MB (VmHWM)", lambda r: r.get("peak_rss_mb"), True)

        rec = [by[(w, "recorderd")] for w in wl if (w, "recorderd") in by]
        if rec:
            lines += ["## recorderd (default settings, daemon process)", ""]
            rows = []
            for r in rec:
                rd = r.get("recorderd", {})
                lg = rd.get("log", {})
                sa = r.get("sim_analyzer")
                rows.append([
                    r["workload"],
                    fnum(rd.get("ready_s")),
                    fnum(r.get("seconds"), 2),
                    fnum(r.get("close_s"), 2),
                    str(rd.get("exit_code")),
                    f"{r.get('received', 0):,} / {r.get('written', 0):,}",
                    f"{r.get('bytes', 0) / 1e6:.2f}",
                    fnum(r.get("bytes_per_stream")),
                    fnum(sa["wall_s"], 2) + ("" if sa["exit_code"] == 0 else " (failed)")
                    if sa else "-",
                    f"{rd.get('status_polls', 0)} / {fnum(rd.get('status_query_ms_mean'))}",
                    f"{lg.get('levels', {}).get('WARNING', 0)} / "
                    f"{lg.get('levels', {}).get('ERROR', 0)} / {lg.get('tracebacks', 0)}",
                ])  # fmt: skip
            lines += table(
                [
                    "workload", "ready s", "all written s", "close s", "exit",
                    "received / written", "file MB", "bytes/stream", "sim-analyzer --json s",
                    "status polls / ms", "log warn / error / tb",
                ],
                rows,
            )  # fmt: skip
            lines.append("")
        lines += cpu_by_thread_table(by, sinks, wl)
        lines += machine_table(by, sinks, wl)
        lines += rounds_table(every)
        if "c" in wl:
            lines += [f"### workload c: {by[next(k for k in by if k[0] == 'c')]['title']}", ""]
            rows = []
            for s in sinks:
                r = by.get(("c", s))
                if r is None or r.get("error"):
                    continue
                sa = r.get("sim_analyzer")
                rows.append([
                    s, f"{r['streams']:,}", f"{r['bytes']:,}", fnum(r["bytes_per_stream"]),
                    fnum(r.get("close_s"), 3), fnum(sa["wall_s"], 2) if sa else "-",
                ])  # fmt: skip
            lines += table(
                ["sink", "streams", "bytes", "bytes/stream", "close s", "sim-analyzer s"], rows
            )
            lines.append("")

    sus = result.get("sustained")
    if sus:
        lines += [
            "## Sustained rate (recorderd only; 4 paced publishers, congestion control DROP)",
            "",
        ]
        if sus.get("error"):
            lines += [f"error: {sus['error']}", ""]
        rows = [
            [
                f"{s['offered']:,}", fnum(s["seconds"]), f"{s.get('published', 0):,}",
                f"{s.get('achieved', 0):,}", f"{s.get('written', 0):,}",
                str(s.get("missing", "-")), str(s.get("intake_dropped", "-")),
                str(s.get("lost", "-")), f"{s.get('max_queued', 0):,}", fnum(s.get("drain_s")),
                fnum(s.get("cpu_pct")), fnum(s.get("count_cpu_pct")),
                f"{s['cpu_ratio']:.2f}x" if s.get("cpu_ratio") else "-",
                fnum(s.get("rss_mb")), fnum(s.get("peak_rss_mb")), s["verdict"],
            ]
            for s in sus.get("steps", [])
        ]  # fmt: skip
        lines += table(
            [
                "offered msg/s", "s", "published", "achieved msg/s", "written", "missing",
                "intake dropped", "lost", "max queued", "drain s", "recorderd CPU %",
                "count CPU %", "CPU vs count", "RSS MB at end", "peak RSS MB", "verdict",
            ],
            rows,
        )  # fmt: skip
        best = sus.get("max_clean_rate")
        if best is None:
            lines.append("\nNo offered rate was recorded without loss.")
        else:
            qual = "" if sus.get("limit_reached") else " (at least: the limit was not reached)"
            lines.append(f"\nHighest offered rate with zero loss: **{best:,} msg/s**{qual}.")
        lat = sus.get("latency") or {}
        lines += ["", "### publish -> readable latency (fresh recorderd, flush interval 1 s)", ""]
        lines += table(
            ["offered msg/s", "frames seen / published", "p50 ms", "p90 ms", "p99 ms", "max ms",
             "reader polls", "reader errors"],
            [[
                f"{lat.get('offered', 0):,}",
                f"{lat.get('frames', 0):,} / {lat.get('published', 0):,}",
                fnum(lat.get("p50_ms")), fnum(lat.get("p90_ms")), fnum(lat.get("p99_ms")),
                fnum(lat.get("max_ms")), str(lat.get("polls", "-")), str(lat.get("errors", "-")),
            ]],
        )  # fmt: skip
        if lat.get("error"):
            lines.append(f"\nlatency error: {lat['error']}")
        lines.append("")

    m = result["machine"]
    lines += ["## Machine", ""]
    lines += table(
        ["cores", "cpu", "memory GB", "python", "eclipse-zenoh", "h5py", "load avg at start",
         "CPU s used by other processes", "wall s"],
        [[
            str(m["cores"]), m["cpu"], fnum(m["mem_gb"]), m["python"], m["zenoh"], m["h5py"],
            m["loadavg_start"], fnum(result.get("foreign_cpu_s")), fnum(result.get("wall_s")),
        ]],
    )  # fmt: skip
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0.0
    with contextlib.suppress(OSError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024**2

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "mem_gb": round(mem, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "zenoh": version("eclipse-zenoh"),
        "h5py": version("h5py"),
        "numpy": version("numpy"),
        "mcap": version("mcap"),
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# -- main ------------------------------------------------------------------------------------


CHILDREN: dict[str, Callable[[dict[str, Any]], None]] = {
    "_publish": child_publish,
    "_sink": child_sink,
    "_monitor": child_monitor,
    "_latency": child_latency,
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Recording sinks side by side on the same stream (see the module docstring)."
    )
    p.add_argument("command", nargs="?", choices=["run", "sustained"], default="run")
    p.add_argument("--quick", action="store_true", help="a short smoke run (~90 s)")
    p.add_argument("--workloads", default=None, help="a,b,c,d,e,sustained [all]")
    p.add_argument(
        "--sinks",
        default=",".join(SINKS),
        help=f"comma-separated, of {', '.join(SINKS + HANDOFF_SINKS)}",
    )
    p.add_argument("--messages", type=int, help="messages per publisher in a [25000; quick 2000]")
    p.add_argument("--streams", type=int, help="streams in c [1000; quick 200]")
    p.add_argument("--big-messages", type=int, help="messages per publisher in d [2500; quick 250]")
    p.add_argument("--membrane-steps", type=int, help="steps per publisher, e [10000; quick 1000]")
    p.add_argument("--rates", help="sustained: offered total rates, e.g. 20000,40000")
    p.add_argument("--start-rate", type=int, help="sustained [20000; quick 10000]")
    p.add_argument("--rate-step", type=int, help="sustained [20000; quick 10000]")
    p.add_argument("--max-steps", type=int, help="sustained [10; quick 2]")
    p.add_argument("--step-seconds", type=float, help="sustained [20; quick 5]")
    p.add_argument("--latency-seconds", type=float, help="[20; quick 5]")
    p.add_argument(
        "--rounds",
        type=int,
        help="rounds of workloads a and b (sinks but seed, alternating) [3; quick 2]",
    )
    p.add_argument("--timeout", type=float, help="per sink run, seconds [600; quick 120]")
    p.add_argument("--json", type=Path, help="write every figure here")
    p.add_argument("--workdir", type=Path, help="keep data here (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args(argv)
    defaults = {
        "messages": (25_000, 2_000),
        "streams": (1000, 200),
        "big_messages": (2_500, 250),
        "membrane_steps": (10_000, 1_000),
        "start_rate": (20_000, 10_000),
        "rate_step": (20_000, 10_000),
        "max_steps": (10, 2),
        "step_seconds": (20.0, 5.0),
        "latency_seconds": (20.0, 5.0),
        "timeout": (600.0, 120.0),
        "rounds": (3, 2),
    }
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.workloads is None:
        args.workloads = "sustained" if args.command == "sustained" else "a,b,c,d,e,sustained"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in CHILDREN:
        CHILDREN[argv[0]](json.loads(argv[1]))
        return 0
    args = parse_args(argv)
    chosen = [w.strip() for w in args.workloads.split(",") if w.strip()]
    sinks = [s.strip() for s in args.sinks.split(",") if s.strip()]
    bad = [w for w in chosen if w not in (*WORKLOADS, "sustained")] + [
        s for s in sinks if s not in SINKS + HANDOFF_SINKS
    ]
    if bad:
        print(f"unknown workload or sink: {', '.join(bad)}", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="perf-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = now()
    busy0, own0 = host_cpu()
    result: dict[str, Any] = {
        "machine": machine(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": [],
    }
    workloads = make_workloads(args)
    result["workloads"] = {k: asdict(v) for k, v in workloads.items() if k in chosen}
    try:
        for wname in [w for w in WORKLOADS if w in chosen]:
            for sink in sinks:
                w = workloads[wname]
                log(f"workload {wname} ({w.for_sink(sink).total:,} messages) -> {sink}")
                r = run_one(sink, w, work, args.timeout, analyzer=(wname == "c"))
                result["runs"].append(r)
                if r.get("error"):
                    log(f"  -> ERROR {r['error']}")
                else:
                    log(
                        f"  -> {fnum(r.get('msg_per_s'))} msg/s, lost {r.get('lost')}, "
                        f"cpu {fnum(r.get('cpu_s'))} s, rss {r.get('peak_rss_mb')} MB"
                    )
        for k in range(2, args.rounds + 1):
            for wname in [w for w in ROUND_WORKLOADS if w in chosen]:
                for sink in [s for s in sinks if s != "seed"]:
                    log(f"round {k}: workload {wname} -> {sink}")
                    r = run_one(sink, workloads[wname], work, args.timeout, round_no=k)
                    r["round"] = k
                    result["runs"].append(r)
                    if r.get("error"):
                        log(f"  -> ERROR {r['error']}")
        if "sustained" in chosen and "recorderd" in sinks:
            result["sustained"] = sustained(args, work)
    finally:
        Child.cleanup()
        busy1, own1 = host_cpu()
        result["foreign_cpu_s"] = round(max(0.0, (busy1 - busy0) - (own1 - own0)), 2)
        result["wall_s"] = round(now() - t0, 1)
        if args.workdir is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"data kept in {work}")
    text = markdown(result)
    print(text)
    result["markdown"] = text
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    failed = [r for r in result["runs"] if r.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
