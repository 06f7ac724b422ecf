"""End-to-end tests of the brain-node command with a real Zenoh subscriber on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zenoh

from brain_nodes.bus import BusConfigError, BusOptions, build_config
from brain_nodes.modules import BrainModule
from brain_nodes.node import control_due
from recorderd.wire import DataMessage, Kind, decode, decode_control

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 90.0
DELIVERY_TIMEOUT_S = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Collector:
    """A peer that listens on loopback and records every sample under ``brain/**``."""

    def __init__(self, port: int) -> None:
        config = zenoh.Config()
        config.insert_json5("mode", '"peer"')
        config.insert_json5("scouting/multicast/enabled", "false")
        config.insert_json5("listen/endpoints", json.dumps([f"tcp/127.0.0.1:{port}"]))
        config.insert_json5("connect/endpoints", "[]")
        self.endpoint = f"tcp/127.0.0.1:{port}"
        self._lock = threading.Lock()
        self._samples: list[tuple[str, bytes]] = []
        self._alive: list[tuple[str, str]] = []
        self.session = zenoh.open(config)
        self._sub = self.session.declare_subscriber("brain/**", self._on_sample)
        self._alive_sub = self.session.liveliness().declare_subscriber(
            "brain/*/alive", self._on_alive
        )

    def _on_sample(self, sample: zenoh.Sample) -> None:
        with self._lock:
            self._samples.append((str(sample.key_expr), sample.payload.to_bytes()))

    def _on_alive(self, sample: zenoh.Sample) -> None:
        with self._lock:
            self._alive.append((str(sample.key_expr), str(sample.kind)))

    def samples(self) -> list[tuple[str, bytes]]:
        """Everything received so far, in arrival order."""
        with self._lock:
            return list(self._samples)

    def alive_events(self) -> list[tuple[str, str]]:
        """Liveliness (key, kind) events so far."""
        with self._lock:
            return list(self._alive)

    def by_key(self, key: str) -> list[bytes]:
        """Payloads received on ``key``, in arrival order."""
        return [payload for k, payload in self.samples() if k == key]

    def close(self) -> None:
        """Close the session."""
        self.session.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def collector() -> Iterator[Collector]:
    col = Collector(free_port())
    try:
        yield col
    finally:
        col.close()


def node_cmd(*args: str) -> list[str]:
    """The command line running ``brain-node`` with ``args``."""
    return [sys.executable, "-m", "brain_nodes", *args]


def node_env() -> dict[str, str]:
    """Environment in which the checkout's packages import."""
    path = [str(REPO), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def stopped_seen(col: Collector, node_id: str) -> Callable[[], bool]:
    """Predicate: the node's final "Stopped" control state has arrived."""
    key = f"brain/{node_id}/control"
    return lambda: any(decode_control(p).status == "Stopped" for p in col.by_key(key))


def decoded(col: Collector, key: str, kind: Kind) -> list[DataMessage]:
    """Decode every data message received on ``key``."""
    return [decode(p, kind) for p in col.by_key(key)]


def test_node_publishes_exact_streams(collector: Collector, tmp_path: Path) -> None:
    node_id, seed, steps, sizes = "pfc-e2e", 5, 200, [120, 160, 80]
    summary_path = tmp_path / "summary.json"
    args = [
        "--node-id",
        node_id,
        "--module-type",
        "pfc",
        "--steps",
        str(steps),
        "--speed",
        "0",
        "--seed",
        str(seed),
        "--layer-sizes",
        ",".join(map(str, sizes)),
        "--connect",
        collector.endpoint,
        "--wait-subscribers",
        "20",
        "--weight-interval",
        "50",
        "--control-interval",
        "100",
        "--summary-json",
        str(summary_path),
    ]
    proc = subprocess.run(
        node_cmd(*args), env=node_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stderr
    assert "no subscriber" not in proc.stderr
    wait_for(stopped_seen(collector, node_id), DELIVERY_TIMEOUT_S, "the Stopped control state")

    module = BrainModule("pfc", seed=seed, layer_sizes=sizes)
    expected_spikes: list[list[np.ndarray[Any, Any]]] = []
    expected_control: list[tuple[int, str, str | None, dict[str, Any]]] = []
    last = None
    for step in range(steps):
        expected_spikes.append(module.step())
        snap = module.control()
        changed = last is not None and last[:2] != snap[:2]
        if control_due(step, 100, changed):
            expected_control.append((step, snap.status, snap.active_task, snap.metadata))
        last = snap

    summary = json.loads(summary_path.read_text())
    incarnation = summary["incarnation"]
    assert summary["steps"] == steps and summary["seed"] == seed
    assert summary["layer_sizes"] == dict(zip(module.layer_names, sizes, strict=True))

    for i, (name, size) in enumerate(zip(module.layer_names, sizes, strict=True)):
        key = f"brain/{node_id}/spikes/{name}"
        msgs = decoded(collector, key, Kind.SPIKES)
        assert [m.header.seq for m in msgs] == list(range(steps))
        assert [m.header.step for m in msgs] == list(range(steps))
        total = 0
        for step, msg in enumerate(msgs):
            assert msg.header.incarnation == incarnation
            assert msg.header.layer_size == size
            assert msg.header.time_ms == step * 1.0 and msg.header.dt_ms == 1.0
            assert np.array_equal(msg.data, expected_spikes[step][i]), (name, step)
            total += msg.data.size
        assert total > 0
        stats = summary["streams"][key]
        assert stats == {
            "kind": "spikes",
            "messages": steps,
            "last_seq": steps - 1,
            "spikes": total,
        }

        # Membranes go out while matched, which the subscriber makes true from (nearly) step 0.
        mkey = f"brain/{node_id}/membrane/{name}"
        membranes = decoded(collector, mkey, Kind.MEMBRANE)
        assert [m.header.seq for m in membranes] == list(range(len(membranes)))
        assert len(membranes) >= steps - 10 and membranes[-1].header.step == steps - 1
        assert all(m.data.shape == (size,) for m in membranes)
        assert summary["streams"][mkey]["messages"] == len(membranes)

    for name, matrix in module.weights.items():
        wmsgs = decoded(collector, f"brain/{node_id}/weights/{name}", Kind.WEIGHTS)
        assert len(wmsgs) >= 3
        assert {m.header.step for m in wmsgs} <= {0, 50, 100, 150}
        assert all(np.array_equal(m.data, matrix) for m in wmsgs)

    states = [decode_control(p, node_id) for p in collector.by_key(f"brain/{node_id}/control")]
    assert [s.seq for s in states] == list(range(len(states)))
    assert all(s.incarnation == incarnation and s.module_type == "pfc" for s in states)
    got = [(s.step, s.status, s.active_task, s.metadata) for s in states[:-1]]
    assert got == expected_control
    assert [s.step_count for s in states[:-1]] == [step + 1 for step, *_ in expected_control]
    final = states[-1]
    assert (final.status, final.active_task, final.step, final.step_count) == (
        "Stopped",
        None,
        steps - 1,
        steps,
    )
    # The first 200 pfc steps include the switch from Idle to the task.
    assert {"Idle", "Processing"} <= {s.status for s in states}


def test_unsubscribed_streams_cost_nothing(tmp_path: Path) -> None:
    summary_path = tmp_path / "s.json"
    dead = f"tcp/127.0.0.1:{free_port()}"
    args = [
        "--node-id",
        "lonely",
        "--module-type",
        "lang-main",
        "--steps",
        "30",
        "--speed",
        "0",
        "--connect",
        dead,
        "--wait-subscribers",
        "0.3",
        "--summary-json",
        str(summary_path),
    ]
    proc = subprocess.run(
        node_cmd(*args), env=node_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stderr
    assert "no subscriber" in proc.stderr
    streams = json.loads(summary_path.read_text())["streams"]
    for key, stats in streams.items():
        if "/spikes/" in key:
            assert (stats["messages"], stats["last_seq"]) == (30, 29)
        elif "/membrane/" in key or "/weights/" in key:
            assert (stats["messages"], stats["last_seq"]) == (0, None)
    assert streams["brain/lonely/control"]["messages"] >= 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_unbounded_node(
    collector: Collector, tmp_path: Path, sig: signal.Signals
) -> None:
    node_id = f"sig-{sig.name.lower()}"
    summary_path = tmp_path / "summary.json"
    args = [
        "--node-id",
        node_id,
        "--module-type",
        "visual",
        "--connect",
        collector.endpoint,
        "--wait-subscribers",
        "20",
        "--summary-json",
        str(summary_path),
    ]
    spikes_key = f"brain/{node_id}/spikes/output"
    with subprocess.Popen(
        node_cmd(*args), env=node_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            wait_for(lambda: len(collector.by_key(spikes_key)) >= 50, 30.0, "50 spike messages")
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    wait_for(stopped_seen(collector, node_id), DELIVERY_TIMEOUT_S, "the Stopped control state")

    summary = json.loads(summary_path.read_text())
    assert summary["stop_reason"] == sig.name
    steps = summary["steps"]
    msgs = decoded(collector, spikes_key, Kind.SPIKES)
    assert [m.header.seq for m in msgs] == list(range(steps))
    final = decode_control(collector.by_key(f"brain/{node_id}/control")[-1])
    assert (final.status, final.step_count) == ("Stopped", steps)
    alive_key = f"brain/{node_id}/alive"
    wait_for(
        lambda: [k for k, kind in collector.alive_events() if k == alive_key] == [alive_key] * 2,
        DELIVERY_TIMEOUT_S,
        "the liveliness token to come and go",
    )
    kinds = [kind for k, kind in collector.alive_events() if k == alive_key]
    assert kinds == [str(zenoh.SampleKind.PUT), str(zenoh.SampleKind.DELETE)]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--node-id", "../x", "--module-type", "pfc"], "node id"),
        (["--node-id", "a.b", "--module-type", "pfc"], "node id"),
        (["--node-id", "ok", "--module-type", "motor"], "module-type"),
        (["--node-id", "ok", "--module-type", "pfc", "--layer-sizes", "10,x,3"], "layer-sizes"),
        (["--node-id", "ok", "--module-type", "pfc", "--layer-sizes", "10,3"], "layer-sizes"),
        (["--node-id", "ok", "--module-type", "pfc", "--dt", "0"], "dt"),
        (["--node-id", "ok", "--module-type", "pfc", "--connect", "nonsense"], "endpoint"),
    ],
)
def test_bad_input_exits_2(args: list[str], complaint: str) -> None:
    env = {**node_env(), "COLUMNS": "200"}
    dead = ["--connect", f"tcp/127.0.0.1:{free_port()}"] if "--connect" not in args else []
    proc = subprocess.run(
        node_cmd(*args, *dead, "--steps", "1", "--speed", "0"),
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert proc.returncode == 2, proc.stderr
    assert complaint in proc.stderr.lower()


def _get(config: zenoh.Config, path: str) -> Any:
    return json.loads(config.get_json(path))


def test_build_config_defaults() -> None:
    config = build_config(BusOptions())
    assert _get(config, "mode") == "peer"
    assert _get(config, "connect/endpoints") == ["tcp/127.0.0.1:7447"]
    assert _get(config, "listen/endpoints") == []
    assert _get(config, "scouting/multicast/enabled") is False


def test_build_config_file_then_flags(tmp_path: Path) -> None:
    plain = tmp_path / "plain.json5"
    plain.write_text('{ mode: "client", connect: { endpoints: ["tcp/127.0.0.1:9"] } }')
    config = build_config(BusOptions(config_file=plain))
    assert _get(config, "mode") == "client"
    assert _get(config, "connect/endpoints") == ["tcp/127.0.0.1:9"]
    assert _get(config, "scouting/multicast/enabled") is False
    config = build_config(
        BusOptions(config_file=plain, mode="peer", connect=("tcp/127.0.0.1:1",), listen=())
    )
    assert _get(config, "mode") == "peer"
    assert _get(config, "connect/endpoints") == ["tcp/127.0.0.1:1"]
    assert _get(config, "listen/endpoints") == []
    scouting = tmp_path / "scouting.json5"
    scouting.write_text("{ scouting: { multicast: { enabled: true } } }")
    # multicast scouting stays off even when a config file asks for it
    assert (
        _get(build_config(BusOptions(config_file=scouting)), "scouting/multicast/enabled") is False
    )


def test_the_recorder_turns_shared_memory_off_and_the_nodes_keep_zenohs_default(
    tmp_path: Path,
) -> None:
    """Zenoh drops a sample whose shared-memory buffer it cannot map, with a debug log
    only: recorderd's programs never take samples through shared memory, even when their
    config file asks for it (docs/deployment.md, "Shared memory"); brain nodes are left
    as Zenoh configures them."""
    from recorderd.daemon.bus import make_config

    shm = "transport/shared_memory/enabled"
    assert _get(zenoh.Config(), shm) is True  # Zenoh's default
    assert _get(build_config(BusOptions()), shm) is True
    assert _get(make_config(listen=["tcp/127.0.0.1:9"]), shm) is False
    on = tmp_path / "shm.json5"
    on.write_text("{ transport: { shared_memory: { enabled: true } } }")
    assert _get(make_config(config_file=on), shm) is False
    assert _get(make_config(listen=["tcp/127.0.0.1:9"], shared_memory=None), shm) is True


def test_build_config_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BusConfigError):
        build_config(BusOptions(connect=("nonsense",)))
    with pytest.raises(BusConfigError):
        build_config(BusOptions(congestion="maybe"))
    broken = tmp_path / "broken.json5"
    broken.write_text("{ mode: ")
    with pytest.raises(BusConfigError):
        build_config(BusOptions(config_file=broken))
