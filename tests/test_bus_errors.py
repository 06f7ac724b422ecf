"""An exception while handling one sample or query on recorderd's Zenoh threads is
counted and the thread goes on: the next sample is recorded, the next query answered
(real Zenoh sessions on loopback)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zenoh

from recorderd.daemon.bus import Bus, Client, make_config
from recorderd.daemon.lifecycle import Daemon
from recorderd.daemon.settings import RecorderSettings
from recorderd.session.statistics import merged
from tests.helpers import free_port
from tests.processes import wait_for


class Errors:
    """An ``on_error`` that keeps what it is given."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, BaseException]] = []
        self._lock = threading.Lock()

    def __call__(self, where: str, exc: BaseException) -> None:
        with self._lock:
            self.seen.append((where, exc))


@pytest.fixture
def bus_and_peer() -> Iterator[tuple[Bus, zenoh.Session, Errors]]:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    errors = Errors()
    bus = Bus(make_config(listen=[endpoint]), on_error=errors)
    bus.open()
    peer = zenoh.open(make_config(connect=[endpoint]))
    try:
        yield bus, peer, errors
    finally:
        peer.close()  # type: ignore[no-untyped-call]
        bus.close()


def test_a_failing_sample_is_counted_and_the_next_ones_are_handed_over(
    bus_and_peer: tuple[Bus, zenoh.Session, Errors],
) -> None:
    bus, peer, errors = bus_and_peer
    got: list[tuple[str, bytes | None]] = []

    def submit(key: str, payload: bytes | None, _stamp: int) -> None:
        if payload == b"boom":
            raise ValueError("a defect on one sample")
        got.append((key, payload))

    bus.subscribe(["brain/*/spikes/*"], submit)
    pub = peer.declare_publisher("brain/n/spikes/l", reliability=zenoh.Reliability.RELIABLE)
    wait_for(lambda: bool(pub.matching_status.matching), 30, "the subscriber to match")
    for payload in (b"one", b"boom", b"two", b"boom", b"three"):
        pub.put(payload)
    wait_for(lambda: len(got) == 3, 30, "three samples handed over")
    assert [p for _, p in got] == [b"one", b"two", b"three"]
    assert [(w, str(e)) for w, e in errors.seen] == [
        ("the subscriber callback (rd-sub-0)", "a defect on one sample")
    ] * 2


def test_a_failing_answer_is_counted_and_the_next_query_is_answered(
    bus_and_peer: tuple[Bus, zenoh.Session, Errors],
) -> None:
    bus, peer, errors = bus_and_peer
    calls = 0

    def answer() -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("could not build the status")
        return b"fine"

    key = "brain/_recorders/s/status"
    bus.serve_queries(key, answer)
    # The queryable's declaration may still be on its way to the peer: a query sent
    # before it arrives ends with no reply and never calls answer(). Ask until one does.
    deadline = time.monotonic() + 30
    replies: list[zenoh.Reply] = []
    while calls == 0 and time.monotonic() < deadline:
        replies = list(peer.get(key, timeout=2.0))
    assert calls == 1
    assert [r.err is not None for r in replies] == [True]  # the error reply
    with Client(peer) as client:
        assert client.query(key, 10) == [b"fine"]
    assert [(w, str(e)) for w, e in errors.seen] == [
        ("answering a query on brain/_recorders/s/status", "could not build the status")
    ]


def test_the_daemon_counts_bus_errors_in_its_statistics_and_status(
    make_settings: Callable[..., RecorderSettings], tmp_path: Path
) -> None:
    daemon = Daemon(make_settings(listen=[f"tcp/127.0.0.1:{free_port()}"]))
    assert daemon.recorder.statistics_document()["bus_errors"] == {}
    for _ in range(3):
        daemon.bus.on_error("the liveliness callback (brain)", KeyError("x"))
    daemon.bus.on_error("answering a query on k", ValueError("y"))
    expected = {"answering a query on k": 1, "the liveliness callback (brain)": 3}
    assert daemon.recorder.statistics_document()["bus_errors"] == expected
    assert json.loads(json.dumps(daemon.status.document()))["bus_errors"] == expected


def test_a_failing_error_sink_does_not_stop_the_callback(
    bus_and_peer: tuple[Bus, zenoh.Session, Errors],
) -> None:
    bus, peer, _ = bus_and_peer
    got: list[bytes | None] = []

    def broken_sink(where: str, exc: BaseException) -> None:
        raise RuntimeError("the error sink fails too")

    def submit(key: str, payload: bytes | None, _stamp: int) -> None:
        if payload == b"boom":
            raise ValueError("a defect on one sample")
        got.append(payload)

    bus.on_error = broken_sink
    bus.subscribe(["brain/*/spikes/*"], submit)
    pub = peer.declare_publisher("brain/n/spikes/l", reliability=zenoh.Reliability.RELIABLE)
    wait_for(lambda: bool(pub.matching_status.matching), 30, "the subscriber to match")
    for payload in (b"one", b"boom", b"two"):
        pub.put(payload)
    wait_for(lambda: len(got) == 2, 30, "two samples handed over")
    assert got == [b"one", b"two"]


def test_a_coverage_report_and_bus_errors_are_both_kept(
    make_settings: Callable[..., RecorderSettings],
) -> None:
    daemon = Daemon(make_settings(listen=[f"tcp/127.0.0.1:{free_port()}"]))
    daemon.bus.on_error("answering a query on k", ValueError("y"))
    daemon._covered({"uncovered": []})
    daemon.bus.on_error("answering a query on k", ValueError("y"))
    doc = daemon.recorder.statistics_document()
    assert doc["coverage"] == {"uncovered": []}
    assert doc["bus_errors"] == {"answering a query on k": 2}


def test_merged_shard_statistics_sum_their_bus_errors() -> None:
    docs = {
        "a": {"totals": {}, "rejected": {}, "streams": {}, "bus_errors": {"x": 1, "y": 2}},
        "b": {"totals": {}, "rejected": {}, "streams": {}, "bus_errors": {"y": 3}},
    }
    assert merged(docs)["bus_errors"] == {"x": 1, "y": 5}  # type: ignore[arg-type]
