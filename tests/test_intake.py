"""The intake: bounded in messages and bytes, fair between nodes, every drop counted."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from recorderd.daemon.intake import BATCH, BUCKETS, ITEM_OVERHEAD, NATIVE_OFF, Intake
from recorderd.wire.batch import NATIVE_ENV

ROOT = Path(__file__).resolve().parents[1]


def key(node: str, layer: str = "l") -> str:
    return f"brain/{node}/spikes/{layer}"


def test_bounded_in_messages() -> None:
    intake = Intake(max_messages=100, max_bytes=1 << 30, prefix="brain")
    accepted = sum(intake.put(key("a"), b"x" * 10, 0.0) for _ in range(150))
    assert accepted == 100 and len(intake) == 100
    assert intake.dropped == 50 and intake.dropped_by_key[key("a")] == 50


def test_bounded_in_bytes_whatever_the_sizes_publishers_declare() -> None:
    big = b"\0" * (64 << 20)  # one 64 MB message, sent 20 times (the same object)
    intake = Intake(max_messages=200_000, max_bytes=256 << 20, prefix="brain")
    for _ in range(20):
        intake.put(key("a"), big, 0.0)
    assert len(intake) == 3 and intake.bytes <= 256 << 20
    assert intake.dropped == 17
    # A message larger than the whole bound is dropped, never queued.
    small = Intake(max_messages=10, max_bytes=1 << 20, prefix="brain")
    assert not small.put(key("a"), b"\0" * (2 << 20), 0.0) and small.dropped == 1


def test_a_flooding_node_loses_its_own_messages_not_the_others() -> None:
    intake = Intake(max_messages=1000, max_bytes=1 << 30, prefix="brain")
    real_sent = 0
    for i in range(20_000):
        intake.put(key("flood-0", f"l{i % 7}"), b"f" * 100, 0.0)
        if i % 50 == 0:  # the real node sends 1 message for every 50 of the flood
            assert intake.put(key("real-0"), b"r" * 100, 0.0)
            real_sent += 1
        if i % 400 == 0:
            intake.take(100, 1 << 30)  # a writer that keeps up with a fraction only
    assert intake.dropped_by_key.get(key("real-0"), 0) == 0
    assert intake.dropped > 10_000
    assert len(intake) <= 1000


def test_the_writer_takes_round_robin_between_nodes() -> None:
    # A real node in another queue than the flood (queues are chosen by a salted hash).
    real = next(
        n
        for n in (f"real-{i}" for i in range(1000))
        if hash(n) % BUCKETS != hash("flood-0") % BUCKETS
    )
    intake = Intake(max_messages=10_000, max_bytes=1 << 30, prefix="brain")
    for _ in range(1000):
        intake.put(key("flood-0"), b"f", 0.0)
    for i in range(3):
        intake.put(key(real), str(i).encode(), 0.0)
    first = intake.take(2 * BATCH, 1 << 30)
    # The real node queued after 1000 flood messages is served within the first round.
    assert [payload for _, payload, _, _ in first[BATCH : BATCH + 3]] == [b"0", b"1", b"2"]
    assert len(first) == 2 * BATCH and {k for k, *_ in first[BATCH + 3 :]} == {key("flood-0")}


def test_what_fits_is_taken_whole_in_each_keys_order() -> None:
    intake = Intake(max_messages=10_000, max_bytes=1 << 30, prefix="brain")
    sent = [(key(f"n{i % 3}", f"l{i % 2}"), str(i).encode()) for i in range(60)]
    for k, payload in sent:
        intake.put(k, payload, 0.0)
    got = intake.take(4096, 16 << 20)
    assert len(got) == 60 and len(intake) == 0 and intake.bytes == 0
    for k in {k for k, _ in sent}:  # every key's samples in the order they came
        assert [p for kk, p, _, _ in got if kk == k] == [p for kk, p in sent if kk == k]
    assert intake.take(4096, 16 << 20) == []


def test_take_is_bounded_in_bytes() -> None:
    intake = Intake(max_messages=1000, max_bytes=1 << 30, prefix="brain")
    for _ in range(10):
        intake.put(key("a"), b"\0" * (1 << 20), 0.0)
    got = intake.take(1000, 3 << 20)
    assert len(got) == 3 and intake.bytes == 7 * ((1 << 20) + ITEM_OVERHEAD)


def test_clear_counts_every_queued_sample_as_dropped() -> None:
    intake = Intake(max_messages=1000, max_bytes=1 << 30, prefix="brain")
    for n in ("a", "b", "c"):
        for _ in range(5):
            intake.put(key(n), b"x", 0.0)
    assert intake.clear() == 15 and intake.dropped == 15 and len(intake) == 0
    assert intake.take(10, 1 << 20) == []


def test_block_mode_waits_for_room_instead_of_dropping() -> None:
    intake = Intake(max_messages=10, max_bytes=1 << 30, prefix="brain", block=True)
    results: list[bool] = []
    producer = threading.Thread(
        target=lambda: results.extend(intake.put(key("a"), b"x", 0.0) for _ in range(100))
    )
    producer.start()
    got = 0
    while got < 100:
        got += len(intake.take(7, 1 << 30))
        time.sleep(0.001)
    producer.join(timeout=10)
    assert results == [True] * 100 and intake.dropped == 0 and intake.high_water <= 10
    assert intake.blocked_s > 0


def test_closing_releases_a_blocked_put_and_counts_the_drop() -> None:
    intake = Intake(max_messages=2, max_bytes=1 << 30, prefix="brain", block=True)
    assert intake.put(key("a"), b"x", 0.0) and intake.put(key("a"), b"x", 0.0)
    results: list[bool] = []
    t = threading.Thread(target=lambda: results.append(intake.put(key("a"), b"x", 0.0)))
    t.start()
    time.sleep(0.2)
    assert t.is_alive()  # waiting for room
    intake.close()
    t.join(timeout=5)
    assert results == [False] and intake.dropped == 1


# -- the C put (recorderd/daemon/_fastintake.c) against the Python put -----------------


def trace(seed: int, ops: int = 6000, python_put: bool = False) -> list[object]:
    """What an intake answers to a random script of puts, takes and clears: every return
    value, every sample taken (by its payload) and the counters after each step.
    ``python_put``: call the Python code (``_put_slow``) instead of ``put``."""
    rng = random.Random(seed)
    intake = Intake(max_messages=100, max_bytes=20_000, prefix="brain", block=False)
    put = intake._put_slow if python_put else intake.put
    keys = [key(f"n{i % 9}", f"l{i % 4}") for i in range(30)] + ["brain", "other/x/y"]
    out: list[object] = []
    for i in range(ops):
        op = rng.random()
        if op < 0.8:
            k = rng.choice(keys)
            size = rng.choice([0, 1, 10, 100, 1000, 5000])
            payload: bytes | bytearray | None = f"{i}:".encode() + bytes(size)
            if rng.random() < 0.05:
                payload = None
            elif rng.random() < 0.02:
                payload = bytearray(payload)  # not bytes: the Python code's case
            if rng.random() < 0.05:  # a node given, by keyword as the presence events do
                out.append(put(k, payload, float(i), node=rng.choice(["n1", "x"])))  # type: ignore[arg-type]
            else:
                out.append(put(k, payload, float(i)))  # type: ignore[arg-type]
        elif op < 0.99:
            got = intake.take(rng.choice([1, 5, 64, 500]), rng.choice([100, 5000, 1 << 20]))
            out.append([(k, bytes(p[:8]).hex() if p else p, t, s) for k, p, t, s in got])
        else:
            out.append(intake.clear())
        out.append((len(intake), intake.bytes, intake.high_water, intake.dropped))
    out.append(sorted(intake.dropped_by_key.items()))
    return out


def traced(native: str, seed: int) -> list[object]:
    """``trace`` in a fresh process with a fixed string hash (the queue of each node)."""
    code = f"import json; from tests.test_intake import trace; print(json.dumps(trace({seed})))"
    env = {**os.environ, "PYTHONHASHSEED": "0", NATIVE_ENV: native, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)  # type: ignore[no-any-return]


@pytest.mark.skipif(NATIVE_OFF is not None, reason="the C put is off")
@pytest.mark.parametrize("seed", [1, 2])
def test_the_c_put_answers_as_the_python_put_does(seed: int) -> None:
    """Drops, bounds, fairness, the order of what is taken: the same with either put."""
    c, python = traced("1", seed), traced("0", seed)
    assert len(c) == len(python) and c == python
    answers = [x for x in c if isinstance(x, bool)]
    assert answers.count(False) > 100 and answers.count(True) > 1000  # both cases were met


def test_puts_from_many_threads_while_the_writer_takes_lose_nothing_uncounted() -> None:
    """Four threads put while one takes (the lock is often held by the other side): every
    sample is taken once or counted as dropped, and the bounds hold throughout."""
    intake = Intake(max_messages=500, max_bytes=1 << 30, prefix="brain")
    per_thread = 20_000
    taken: list[bytes | None] = []
    done = threading.Event()

    def produce(t: int) -> None:
        for i in range(per_thread):
            intake.put(key(f"n{t}", f"l{i % 3}"), f"{t}:{i}".encode(), 0.0)

    def consume() -> None:
        while not done.is_set() or len(intake):
            got = intake.take(64, 1 << 20)
            assert len(intake) <= 500
            taken.extend(p for _, p, _, _ in got)

    producers = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    consumer = threading.Thread(target=consume)
    consumer.start()
    for p in producers:
        p.start()
    for p in producers:
        p.join(timeout=60)
    done.set()
    consumer.join(timeout=60)
    assert len(taken) == len(set(taken))  # none twice
    assert len(taken) + intake.dropped == 4 * per_thread
    assert intake.high_water <= 500 and len(intake) == 0 and intake.bytes == 0
    assert sum(intake.dropped_by_key.values()) == intake.dropped
