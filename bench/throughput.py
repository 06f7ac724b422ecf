"""Throughput and size of recorderd against baselines measured in the same run.

Publishers (separate processes) send the same stream to each sink in turn: N
publishers x M spike messages of a 1,000-neuron layer at ~5% firing (uint32
indices, ~260 bytes), BLOCK congestion control, all on 127.0.0.1. Sinks:

- ``count``: a bare Zenoh subscriber that only counts (the bus ceiling);
- ``mcap``: a generic recorder, every message into an MCAP file with zstd chunks;
- ``seed``: the recording guide's layout, one HDF5 dataset per message;
- ``recorderd``: recorderd's own bus, pipeline and recorder (the daemon's data path).

Each sink's rate is messages / (time from the publishers' start to the last message
written and the file closed). Reported as ratios to ``count``.
Usage: python bench/throughput.py [--publishers 4] [--messages 25000] [--json OUT]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zenoh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recorderd import wire as P
from recorderd.daemon.bus import make_config

LAYER = 1000
RATE = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def publish(endpoint: str, index: int, messages: int) -> None:
    """Publisher process body: wait for a subscriber, then put ``messages`` spike messages."""
    rng = np.random.default_rng(index)
    inc = int.from_bytes(os.urandom(8), "little")
    with zenoh.open(make_config(connect=[endpoint])) as session:
        key = P.data_key("brain", f"bench-{index}", P.Kind.SPIKES, "layer")
        pub = session.declare_publisher(
            key,
            congestion_control=zenoh.CongestionControl.BLOCK,
            reliability=zenoh.Reliability.RELIABLE,
        )
        deadline = time.monotonic() + 30
        while not pub.matching_status.matching and time.monotonic() < deadline:
            time.sleep(0.005)
        payloads = [
            P.encode(
                P.Kind.SPIKES,
                incarnation=inc,
                seq=i,
                step=i,
                time_ms=float(i),
                dt_ms=1.0,
                layer_size=LAYER,
                data=np.flatnonzero(rng.random(LAYER) < RATE),
            )
            for i in range(messages)
        ]
        print("ready", flush=True)
        sys.stdin.readline()  # all publishers start together, when the clock starts
        for payload in payloads:
            pub.put(payload)
        # Flush barrier (docs/wire-protocol.md): closing drops what a slow sink has not taken.
        list(session.get(P.flush_key("brain", f"bench-{index}"), timeout=60))


class Sink:
    """A subscriber-side consumer: ``on_sample`` on Zenoh's thread, ``close`` at the end."""

    name = "?"

    def __init__(self, workdir: Path, total: int) -> None:
        self.workdir = workdir
        self.total = total
        self.done = threading.Event()

    def on_sample(self, key: str, payload: bytes) -> None:
        raise NotImplementedError

    def close(self) -> dict[str, Any]:
        return {}


class CountSink(Sink):
    name = "count"

    def __init__(self, workdir: Path, total: int) -> None:
        super().__init__(workdir, total)
        self.n = 0

    def on_sample(self, key: str, payload: bytes) -> None:
        self.n += 1
        if self.n == self.total:
            self.done.set()


class ThreadedSink(Sink):
    """Queue on Zenoh's thread, write on one writer thread (as any sane recorder does)."""

    def __init__(self, workdir: Path, total: int) -> None:
        super().__init__(workdir, total)
        self.queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self.written = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def on_sample(self, key: str, payload: bytes) -> None:
        self.queue.append((key, payload))

    def _run(self) -> None:
        while self.written < self.total:
            if not self.queue:
                time.sleep(0.001)
                continue
            while self.queue:
                self.write(*self.queue.popleft())
                self.written += 1
        self.finish()
        self.done.set()

    def write(self, key: str, payload: bytes) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass


class McapSink(ThreadedSink):
    name = "mcap"

    def __init__(self, workdir: Path, total: int) -> None:
        from mcap.writer import CompressionType, Writer

        self.path = workdir / "generic.mcap"
        self.fh = open(self.path, "wb")  # noqa: SIM115
        self.writer = Writer(self.fh, compression=CompressionType.ZSTD)
        self.writer.start()
        self.schema = self.writer.register_schema("brain/spikes", "raw", b"")
        self.channels: dict[str, int] = {}
        super().__init__(workdir, total)

    def write(self, key: str, payload: bytes) -> None:
        ch = self.channels.get(key)
        if ch is None:
            ch = self.channels[key] = self.writer.register_channel(key, "raw", self.schema)
        t = time.time_ns()
        self.writer.add_message(ch, log_time=t, data=payload, publish_time=t)

    def finish(self) -> None:
        self.writer.finish()
        self.fh.close()

    def close(self) -> dict[str, Any]:
        return {"bytes": self.path.stat().st_size}


class SeedSink(ThreadedSink):
    """The recording guide's layout: /spikes/<node>/<layer>/t_<ns>, one dataset per message."""

    name = "seed"

    def __init__(self, workdir: Path, total: int) -> None:
        import h5py

        self.path = workdir / "seed.h5"
        self.h5 = h5py.File(self.path, "w")
        super().__init__(workdir, total)

    def write(self, key: str, payload: bytes) -> None:
        msg = P.decode(payload)
        _, node, _, layer = key.split("/")
        group = self.h5.require_group(f"spikes/{node}/{layer}")
        group.create_dataset(f"t_{time.time_ns()}_{msg.header.seq}", data=msg.data)

    def finish(self) -> None:
        self.h5.close()

    def close(self) -> dict[str, Any]:
        return {"bytes": self.path.stat().st_size}


class RecorderdSink(Sink):
    """recorderd's data path: its Bus callback, Pipeline thread and Recorder."""

    name = "recorderd"

    def __init__(self, workdir: Path, total: int) -> None:
        from recorderd.core.recorder import Recorder
        from recorderd.daemon.pipeline import Pipeline
        from recorderd.daemon.settings import load_settings

        super().__init__(workdir, total)
        self.settings = load_settings(None, session="bench", recording_dir=workdir)
        self.recorder = Recorder(self.settings.core())
        self.recorder.start()
        self.pipeline = Pipeline(self.recorder, prefix="brain", capacity=10**7, flush_interval=1.0)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def on_sample(self, key: str, payload: bytes) -> None:
        self.pipeline.submit(key, payload)

    def _run(self) -> None:
        def watch() -> None:
            while self.recorder.statistics.totals()["received"] < self.total:
                time.sleep(0.002)
            self.pipeline.stop()

        threading.Thread(target=watch, daemon=True).start()
        self.pipeline.run()
        self.done.set()

    def close(self) -> dict[str, Any]:
        t = self.recorder.statistics.totals()
        path = self.settings.session_dir / "simulation_data.h5"
        return {
            "bytes": path.stat().st_size,
            "spikes": t["spikes_written"],
            "written": t["written"],
        }


SINKS: dict[str, Callable[[Path, int], Sink]] = {
    "count": CountSink,
    "mcap": McapSink,
    "seed": SeedSink,
    "recorderd": RecorderdSink,
}


def run_sink(name: str, publishers: int, messages: int, timeout: float) -> dict[str, Any]:
    """Run one sink against fresh publisher processes; return its figures."""
    port = free_port()
    endpoint = f"tcp/127.0.0.1:{port}"
    total = publishers * messages
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        sink = SINKS[name](Path(tmp), total)
        with zenoh.open(make_config(listen=[endpoint])) as session:
            sub = session.declare_subscriber(
                "brain/*/spikes/*", lambda s: sink.on_sample(str(s.key_expr), s.payload.to_bytes())
            )
            flush = session.declare_queryable("brain/*/flush")

            def answer() -> None:
                for query in flush.handler:
                    with query:
                        query.reply(str(query.key_expr), b"ok")

            threading.Thread(target=answer, daemon=True).start()
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--role",
                        "publisher",
                        "--endpoint",
                        endpoint,
                        "--index",
                        str(i),
                        "--messages",
                        str(messages),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for i in range(publishers)
            ]
            for p in procs:  # wait until all publishers are matched and have encoded
                assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            t0 = time.perf_counter()
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            finished = sink.done.wait(timeout)
            elapsed = time.perf_counter() - t0
            for p in procs:
                p.wait(timeout=60)
            sub.undeclare()
            flush.undeclare()
        figures = {
            "sink": name,
            "messages": total,
            "completed": finished,
            "seconds": elapsed,
            "rate": total / elapsed,
        }
        figures.update(sink.close())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", default="bench")
    parser.add_argument("--endpoint")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--messages", type=int, default=25_000)
    parser.add_argument(
        "--seed-messages",
        type=int,
        default=None,
        help="messages per publisher for the slow seed layout [messages/10]",
    )
    parser.add_argument("--sinks", default="count,mcap,seed,recorderd")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.role == "publisher":
        publish(args.endpoint, args.index, args.messages)
        return
    results = []
    for name in args.sinks.split(","):
        if name == "mcap":
            try:
                import mcap  # noqa: F401
            except ImportError:
                print("mcap: skipped (pip install mcap zstandard)", file=sys.stderr)
                continue
        n = args.messages
        if name == "seed":
            n = args.seed_messages or max(1, args.messages // 10)
        r = run_sink(name, args.publishers, n, args.timeout)
        results.append(r)
        late = "" if r["completed"] else "  (TIMED OUT)"
        line = f"{r['messages']:>7} msgs in {r['seconds']:6.2f} s = {r['rate']:>9,.0f} msg/s"
        print(f"{name:>10}: {line}{late}", file=sys.stderr)
    base = next((r["rate"] for r in results if r["sink"] == "count"), None)
    spikes_per_msg = RATE * LAYER
    print("\n| sink | messages | msg/s | ratio to count | bytes/spike |")
    print("|---|---|---|---|---|")
    for r in results:
        ratio = f"{r['rate'] / base:.2f}" if base else "-"
        bps = f"{r['bytes'] / (r['messages'] * spikes_per_msg):.2f}" if "bytes" in r else "-"
        print(f"| {r['sink']} | {r['messages']} | {r['rate']:,.0f} | {ratio} | {bps} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if not all(r["completed"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
