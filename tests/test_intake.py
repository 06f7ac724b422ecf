"""The intake: bounded in messages and bytes, fair between nodes, every drop counted."""

from __future__ import annotations

import threading
import time

from recorderd.daemon.intake import BATCH, BUCKETS, ITEM_OVERHEAD, Intake


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
