"""What each step of recorderd's subscriber callback costs, per sample, on a real Zenoh bus.

A publisher process puts spike messages (264 bytes, as in the perf bench's workloads a
and b) on 127.0.0.1 as fast as BLOCK congestion control lets it; this process subscribes
with one callback after another, each doing one step more than the one before, and
measures the CPU of the callback's thread (and of the whole process, which also has
Zenoh's threads, whose cost per sample moves with how Zenoh batches) from the first sample
to the last. The differences over ``empty`` on the callback's thread are what each step
adds:

- ``empty``: the callback does nothing (zenoh-python's per-sample floor);
- ``payload``: ``sample.payload.to_bytes()``;
- ``timestamp``: and ``sample.timestamp.get_time_as_ntp64().as_nanos()``;
- ``key``: and ``str(sample.key_expr)``: all that recorderd's callback reads;
- ``handover``: recorderd's own callback (``bus.hand_over``) into a real intake, whose
  ``put`` is the C one where it was built;
- ``handover-python``: the same with the Python put (``Intake._put_slow``).

Variants alternate over ``--rounds`` rounds; the table gives each one's median::

    python bench/callback_cost.py [--messages 100000] [--rounds 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = ("empty", "payload", "timestamp", "key", "handover", "handover-python")


def publish(endpoint: str, key: str, messages: int) -> int:
    """Child: connect to ``endpoint``; put ``messages`` spike messages on ``key`` once a
    subscriber matches."""
    import zenoh
    from decode_batch import messages as spike_messages  # the same 5% of 1,000 neurons

    from recorderd.daemon.bus import make_config

    payloads = spike_messages(min(messages, 1000))
    with zenoh.open(make_config(connect=[endpoint], shared_memory=None)) as session:
        pub = session.declare_publisher(key, congestion_control=zenoh.CongestionControl.BLOCK)
        deadline = time.monotonic() + 30
        while not pub.matching_status.matching:
            if time.monotonic() > deadline:
                return 1
            time.sleep(0.01)
        for i in range(messages):
            pub.put(payloads[i % len(payloads)])
        time.sleep(1.0)  # let the last batch leave before the session closes
    return 0


def callbacks(intake: Any) -> dict[str, Callable[[Any], object]]:
    from recorderd.daemon.bus import hand_over

    def payload(s: Any) -> None:
        s.payload.to_bytes()

    def timestamp(s: Any) -> None:
        s.payload.to_bytes()
        t = s.timestamp
        if t is not None:
            t.get_time_as_ntp64().as_nanos()

    def key(s: Any) -> None:
        s.payload.to_bytes()
        t = s.timestamp
        if t is not None:
            t.get_time_as_ntp64().as_nanos()
        str(s.key_expr)

    return {
        "empty": lambda s: None,
        "payload": payload,
        "timestamp": timestamp,
        "key": key,
        "handover": hand_over(intake.put, "rd-sub-b0"),
        "handover-python": hand_over(intake._put_slow, "rd-sub-b1"),
    }


def run_variant(
    session: Any, endpoint: str, name: str, messages: int, k: int
) -> tuple[float, float]:
    """CPU seconds per sample from the first sample to the last, for one variant: of the
    callback's thread, and of the whole process."""
    from recorderd.daemon.intake import Intake

    intake = Intake(messages + 10, 1 << 34, "brain")
    inner = callbacks(intake)[name]
    seen = [0]
    marks: dict[str, float] = {}
    done = threading.Event()

    def on_sample(s: Any) -> None:
        inner(s)
        seen[0] += 1
        if seen[0] == 1:
            marks["thread0"], marks["cpu0"] = time.thread_time(), time.process_time()
        elif seen[0] == messages:
            marks["thread1"], marks["cpu1"] = time.thread_time(), time.process_time()
            done.set()

    key = f"brain/cb{k}/spikes/l0"
    sub = session.declare_subscriber(key, on_sample)
    pub = subprocess.Popen(
        [sys.executable, __file__, "_publish", endpoint, key, str(messages)],
        stdout=subprocess.DEVNULL,
    )
    try:
        if not done.wait(120):
            raise RuntimeError(f"{name}: {seen[0]} of {messages} samples arrived")
    finally:
        sub.undeclare()
        pub.wait(timeout=60)
    n = messages - 1
    return (marks["thread1"] - marks["thread0"]) / n, (marks["cpu1"] - marks["cpu0"]) / n


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_publish":
        return publish(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import zenoh
    from perf import free_port

    from recorderd.daemon.bus import make_config
    from recorderd.daemon.intake import NATIVE_OFF

    results: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    with zenoh.open(make_config(listen=[endpoint])) as session:
        k = 0
        for _ in range(args.rounds):
            for name in VARIANTS:
                results[name].append(run_variant(session, endpoint, name, args.messages, k))
                k += 1
    table = {}
    floor = statistics.median(r[0] for r in results["empty"])
    print(f"intake put: {'C' if NATIVE_OFF is None else 'Python (' + NATIVE_OFF + ')'}")
    print("us of CPU per sample (medians):")
    print(f"{'callback':<16} {'callback thread':>15} {'over empty':>11} {'process':>8}")
    for name in VARIANTS:
        thread = statistics.median(r[0] for r in results[name])
        process = statistics.median(r[1] for r in results[name])
        table[name] = {
            "thread_us": round(thread * 1e6, 3),
            "process_us": round(process * 1e6, 3),
            "rounds_thread_us": [round(r[0] * 1e6, 3) for r in results[name]],
            "rounds_process_us": [round(r[1] * 1e6, 3) for r in results[name]],
        }
        over = (thread - floor) * 1e6
        print(f"{name:<16} {thread * 1e6:>15.2f} {over:>11.2f} {process * 1e6:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps({"messages": args.messages, "variants": table}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
