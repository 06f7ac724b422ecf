"""A hostile or heavy bus against a real recorderd (subprocess, Zenoh on loopback, HDF5).

Many streams closed under a short drain timeout, a flood beside a real node, planted
symlinks, and the recovery of a crashed many-stream session within a memory bound. Each
case is bounded in count and time; the long variants are in ``bench/hostile.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import zenoh

from analysis.reader import SessionReader
from recorderd import wire as P
from recorderd.daemon.bus import make_config
from recorderd.session import layout as L
from tests.helpers import control_message, data_message, free_port
from tests.processes import recorderd, statistics, stop, wait_for

SPIKES = P.Kind.SPIKES


@contextmanager
def publisher(endpoint: str, wait_key: str) -> Iterator[zenoh.Session]:
    """A peer session connected to ``endpoint`` once a subscriber to ``wait_key`` is seen."""
    with zenoh.open(make_config(connect=[endpoint])) as ses:
        pub = ses.declare_publisher(wait_key)
        wait_for(lambda: pub.matching_status.matching, 20, "the recorder's subscription")
        pub.undeclare()
        yield ses


def put_all(ses: zenoh.Session, messages: list[tuple[str, bytes]]) -> None:
    for key, payload in messages:
        ses.put(key, payload, congestion_control=zenoh.CongestionControl.BLOCK)


def received(session_dir: Path) -> int:
    """Messages the session's statistics show received so far."""
    return int(statistics(session_dir).get("totals", {}).get("received", 0))


def many_streams(n: int, per_stream: int) -> list[tuple[str, bytes]]:
    return [
        (P.data_key("brain", f"n{i}", SPIKES, "l"), data_message(SPIKES, q, [q, 7]))
        for q in range(per_stream)
        for i in range(n)
    ]


def test_a_drain_timeout_leaves_the_session_as_a_crash_would(tmp_path: Path) -> None:
    """1,000 streams closed under a drain timeout far too short: exit 1, nothing lost."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    session_dir = tmp_path / "rec" / "s"
    n = 1000
    env_timeout = {"RECORDERD_DRAIN_TIMEOUT": "0.05"}
    args = ("--session", "s", "--recording-dir", str(tmp_path / "rec"), "--listen", endpoint)
    with recorderd(tmp_path, *args, env=env_timeout) as proc:
        with publisher(endpoint, P.data_key("brain", "n0", SPIKES, "l")) as ses:
            put_all(ses, many_streams(n, 2))
            wait_for(lambda: received(session_dir) == 2 * n, 60, "every message received")
            # ... and durable: every stream created in the file, then one more flush.
            status = lambda: json.loads(  # noqa: E731
                next(iter(ses.get(P.status_key("brain", "s"), timeout=10))).ok.payload.to_bytes()
            )
            wait_for(lambda: status()["streams_pending"] == 0, 60, "every stream created")
            flushes = status()["flushes"]
            wait_for(lambda: status()["flushes"] > flushes, 10, "one more flush")
        assert stop(proc) == 1
    log = (tmp_path / "recorderd.log").read_text()
    assert "left as after a crash" in log and "Traceback" not in log
    assert (session_dir / L.JOURNAL_FILE).exists()
    with SessionReader(session_dir) as r:
        assert r.state == "recovered"
        assert sorted(r.nodes()) == sorted(f"n{i}" for i in range(n))
        for i in (0, 1, n // 2, n - 1):
            assert r.frames(f"n{i}", "l").seq.tolist() == [0, 1]
            assert r.spikes(f"n{i}", "l").neuron_ids.tolist() == [0, 7, 1, 7]
    # A recorder restarted on it continues it.
    with recorderd(tmp_path, *args, name="again") as proc:
        assert stop(proc) == 0


def test_a_flood_does_not_starve_a_real_node(tmp_path: Path) -> None:
    """A node flooding large messages loses its own; a real node beside it loses none."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    session_dir = tmp_path / "rec" / "s"
    args = (
        "--session",
        "s",
        "--recording-dir",
        str(tmp_path / "rec"),
        "--listen",
        endpoint,
        "--intake-max-mb",
        "4",
    )
    flood_key = P.data_key("brain", "flood-0", SPIKES, "l")
    real_key = P.data_key("brain", "real-0", SPIKES, "l")
    big = data_message(SPIKES, 0, np.arange(0, 200_000, 2), layer_size=200_000)  # 400 kB
    stop_flood = threading.Event()
    flooded = 0

    def flood(ses: zenoh.Session) -> None:
        nonlocal flooded
        pub = ses.declare_publisher(flood_key, congestion_control=zenoh.CongestionControl.BLOCK)
        deadline = time.monotonic() + 30
        while not stop_flood.is_set() and time.monotonic() < deadline:
            payload = bytearray(big)
            payload[16:24] = flooded.to_bytes(8, "little")  # seq
            pub.put(bytes(payload))
            flooded += 1
        pub.undeclare()

    with recorderd(tmp_path, *args) as proc:
        with publisher(endpoint, real_key) as ses:
            thread = threading.Thread(target=flood, args=(ses,))
            thread.start()
            try:
                wait_for(lambda: flooded > 200, 30, "the flood to start")
                real = ses.declare_publisher(
                    real_key, congestion_control=zenoh.CongestionControl.BLOCK
                )
                for seq in range(300):
                    real.put(data_message(SPIKES, seq, [seq % 100], layer_size=100))
                    time.sleep(0.005)
            finally:
                stop_flood.set()
                thread.join()
            replies = list(ses.get(P.flush_key("brain", "real-0"), timeout=10))
            assert len(replies) == 1

        def real_received() -> int:
            streams = statistics(session_dir).get("streams", {})
            return int(streams.get("real-0/spikes/l", {}).get("received", 0))

        wait_for(lambda: real_received() == 300, 30, "the real node's messages")
        assert stop(proc) == 0
    stats = statistics(session_dir)
    real_st, flood_st = stats["streams"]["real-0/spikes/l"], stats["streams"]["flood-0/spikes/l"]
    print(f"flood: {flooded} sent, {flood_st['received']} recorded, {flood_st['dropped']} dropped")
    assert (real_st["written"], real_st["dropped"], real_st["missing"]) == (300, 0, 0)
    assert flood_st["dropped"] > 0 and stats["totals"]["intake_dropped"] == flood_st["dropped"]
    # The closing line counts each drop once.
    closing = re.search(r"closed: .* (\d+) dropped", (tmp_path / "recorderd.log").read_text())
    assert closing is not None and int(closing.group(1)) == stats["totals"]["intake_dropped"]


@pytest.mark.parametrize("planted", [L.LOCK_FILE, L.STATISTICS_FILE + ".tmp", L.CONTROL_FILE])
def test_symlinks_planted_in_the_session_folder_are_never_followed(
    tmp_path: Path, planted: str
) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    session_dir = tmp_path / "rec" / "s"
    session_dir.mkdir(parents=True)
    target = tmp_path / "precious.txt"
    target.write_text("do not touch\n")
    (session_dir / planted).symlink_to(target)
    args = ["--session", "s", "--recording-dir", str(tmp_path / "rec"), "--listen", endpoint]
    args += ["--flush-interval", "0.1"]
    proc = subprocess.run(
        [sys.executable, "-m", "recorderd", *args, "--max-duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert target.read_text() == "do not touch\n"
    if planted == L.STATISTICS_FILE + ".tmp":
        # A stale temporary name is replaced, never written through.
        assert proc.returncode == 0, proc.stderr
        assert json.loads((session_dir / L.STATISTICS_FILE).read_text())["session"] == "s"
    else:
        assert proc.returncode == 1
        assert "symbolic link" in proc.stderr and "Traceback" not in proc.stderr


def test_a_session_folder_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "s").symlink_to(elsewhere)
    args = ["--session", "s", "--recording-dir", str(tmp_path / "rec")]
    args += ["--listen", f"tcp/127.0.0.1:{free_port()}", "--max-duration", "1"]
    proc = subprocess.run(
        [sys.executable, "-m", "recorderd", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "is a symbolic link" in proc.stderr
    assert list(elsewhere.iterdir()) == []


CRASH_WRITER = """
import os, sys
from pathlib import Path
import numpy as np
from recorderd import wire as P
from recorderd.core.recorder import Recorder
from recorderd.daemon.settings import load_settings
rec = Recorder(load_settings(None, session="s", recording_dir=Path(sys.argv[1])).core())
rec.start()
for seq in range(14):
    for i in range(int(sys.argv[2])):
        msg = P.encode(P.Kind.SPIKES, incarnation=1, seq=seq, step=seq, time_ms=float(seq),
                       dt_ms=1.0, layer_size=1000, data=np.arange(seq, 40, 3, dtype=np.uint32))
        rec.add(f"n{i}", "l", P.decode(msg, P.Kind.SPIKES))
rec.flush()
os.kill(os.getpid(), 9)
"""

# Peak RSS from VmHWM: getrusage's ru_maxrss survives exec and would include the
# memory of the (large) test process this child was forked from.
READER_RSS = """
import sys
from pathlib import Path
from analysis.reader import SessionReader
with SessionReader(sys.argv[1]) as r:
    print(r.state, len(r.nodes()), r.frames("n7", "l").seq.tolist() == list(range(14)))
hwm = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM")]
print(int(hwm[0].split()[1]) // 1024)
"""


def test_recovering_a_crashed_many_stream_session_takes_bounded_memory(tmp_path: Path) -> None:
    n = 1000
    writer = [sys.executable, "-c", CRASH_WRITER, str(tmp_path), str(n)]
    killed = subprocess.run(writer, timeout=300)
    assert killed.returncode == -9
    assert (tmp_path / "s" / L.JOURNAL_FILE).exists()
    out = subprocess.run(
        [sys.executable, "-c", READER_RSS, str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split()
    state, nodes, complete, rss_mib = out[0], int(out[1]), out[2], int(out[3])
    print(f"recovered {nodes} streams, peak RSS {rss_mib} MiB")
    assert (state, nodes, complete) == ("recovered", n, "True")
    assert rss_mib < 400  # was 2.66 GB: every dataset held open at once


def test_a_long_running_recorder_log_stays_small_under_per_message_warnings(
    tmp_path: Path,
) -> None:
    """Gaps on every message used to log one warning each (40-50 MB in 10 s)."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    key = P.data_key("brain", "gappy", SPIKES, "l")
    args = ("--session", "s", "--recording-dir", str(tmp_path / "rec"), "--listen", endpoint)
    with recorderd(tmp_path, *args) as proc:
        with publisher(endpoint, key) as ses:
            msgs = [(key, data_message(SPIKES, 3 * q, [1], dt_ms=1 + q % 2)) for q in range(5000)]
            put_all(ses, msgs)
            wait_for(lambda: received(tmp_path / "rec" / "s") == 5000, 30, "every message")
        assert stop(proc) == 0
    assert statistics(tmp_path / "rec" / "s")["streams"]["gappy/spikes/l"]["missing"] == 9998
    log_bytes = os.path.getsize(tmp_path / "recorderd.log")
    assert log_bytes < 20_000, f"{log_bytes} bytes of log"


def test_block_mode_slows_the_publisher_instead_of_dropping(tmp_path: Path) -> None:
    """--on-overflow block: a small intake and a fast BLOCK publisher lose nothing, and
    control states, presence and the live status keep working meanwhile."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    session_dir = tmp_path / "rec" / "s"
    args = ["--session", "s", "--recording-dir", str(tmp_path / "rec"), "--listen", endpoint]
    args += ["--on-overflow", "block", "--intake-max-mb", "1", "--flush-interval", "0.2"]
    key = P.data_key("brain", "fast-0", SPIKES, "l")
    n = 3000
    big = [
        data_message(SPIKES, q, np.arange(q % 7, 20_000, 9), layer_size=20_000) for q in range(n)
    ]
    statuses: list[dict[str, object]] = []
    with recorderd(tmp_path, *args) as proc:
        with publisher(endpoint, key) as ses:
            token = ses.liveliness().declare_token(P.liveliness_key("brain", "fast-0"))
            pub = ses.declare_publisher(key, congestion_control=zenoh.CongestionControl.BLOCK)
            for q, payload in enumerate(big):
                pub.put(payload)
                if q % 500 == 0:
                    ses.put(P.control_key("brain", "fast-0"), control_message("fast-0", q // 500))
                    replies = list(ses.get(P.status_key("brain", "s"), timeout=10))
                    statuses += [json.loads(r.ok.payload.to_bytes()) for r in replies if r.ok]
            assert len(list(ses.get(P.flush_key("brain", "fast-0"), timeout=10))) == 1
            token.undeclare()
        wait_for(lambda: received(session_dir) == n + 6, 60, "every message")
        assert stop(proc) == 0
    stats = statistics(session_dir)
    st = stats["streams"]["fast-0/spikes/l"]
    assert (st["written"], st["dropped"], st["missing"]) == (n, 0, 0)
    assert stats["totals"]["intake_dropped"] == 0
    assert len(statuses) == 6  # the status queryable answered while the intake blocked
    with SessionReader(session_dir) as r:
        assert [c["seq"] for c in r.control_states()] == list(range(6))
        assert [e["event"] for e in r.presence_events()] == ["join", "leave"]
