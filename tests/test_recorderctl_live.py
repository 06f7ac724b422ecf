"""recorderctl against a live recorder and node: ``nodes`` details, ``status --watch``, and
answers as soon as every recorder that answers has answered."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import free_port
from tests.processes import brain_node, recorderd, statistics, stop, wait_for

#: A peer with a status queryable that never answers (a hung or slow recorder).
SILENT = """
import sys, time
import zenoh
from recorderd.daemon.bus import make_config
session = zenoh.open(make_config(mode="peer", connect=[sys.argv[1]], listen=[]))
held = []
queryable = session.declare_queryable("brain/_recorders/silent/status", held.append)
print("ready", flush=True)
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    time.sleep(0.1)
"""


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorderd.daemon.ctl", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A recorderd recording one running node, and a peer that never answers status."""
    tmp = tmp_path_factory.mktemp("live")
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    args = ("--session", "live", "--recording-dir", str(tmp), "--listen", endpoint)
    with recorderd(tmp, *args, "--flush-interval", "0.2") as rec:
        node = brain_node(
            *("--node-id", "visual-0", "--module-type", "visual", "--steps", "0"),
            *("--speed", "1", "--connect", endpoint, "--wait-subscribers", "20"),
        )
        silent = subprocess.Popen(
            [sys.executable, "-c", SILENT, endpoint], stdout=subprocess.PIPE, text=True
        )
        try:
            assert silent.stdout is not None and silent.stdout.readline().strip() == "ready"
            wait_for(
                lambda: statistics(tmp / "live").get("totals", {}).get("written", 0) > 0,
                30,
                "data written",
            )
            yield endpoint
        finally:
            silent.kill()
            silent.wait()
            if silent.stdout is not None:
                silent.stdout.close()
            assert stop(node) == 0
        assert stop(rec) == 0


def nodes_json(endpoint: str) -> list[dict[str, Any]]:
    res = ctl("nodes", "--json", "--connect", endpoint)
    assert res.returncode == 0, res.stderr
    rows: list[dict[str, Any]] = json.loads(res.stdout)
    return rows


def test_nodes_shows_module_incarnation_uptime_and_rates(live: str) -> None:
    wait_for(  # rates are measured over 2 s windows
        lambda: nodes_json(live)[0]["messages_per_s"] > 0, 30, "the node's rates"
    )
    (row,) = nodes_json(live)
    assert row["node_id"] == "visual-0" and row["module_type"] == "visual"
    assert len(row["incarnations"]) == 1 and row["recorded_by"] == ["live"]
    assert row["alive_s"] > 0 and row["step"] >= 0 and row["status"]
    # visual-0 publishes 3 spike layers and some control states per 1 ms step
    assert 300 < row["messages_per_s"] < 10_000 and row["spikes_per_s"] > 0
    text = ctl("nodes", "--connect", live)
    assert text.returncode == 0
    print("\n" + text.stdout)
    header, _rule, line = text.stdout.splitlines()[:3]
    assert header.split()[:4] == ["node", "module", "incarnation", "up"]
    assert line.split()[:3] == ["visual-0", "visual", f"{row['incarnations'][0]:016x}"]


def test_status_answers_without_waiting_for_a_recorder_that_never_answers(live: str) -> None:
    started = time.monotonic()
    res = ctl("status", "--json", "--connect", live, "--timeout", "20")
    took = time.monotonic() - started
    print(f"\nstatus with a silent queryable and --timeout 20: {took:.2f} s")
    assert res.returncode == 0, res.stderr
    assert [a["session"] for a in json.loads(res.stdout)] == ["live"]
    assert took < 10  # the answer, then 0.3 s of quiet; not the 20 s timeout


def test_status_watch_refreshes_count_times(live: str) -> None:
    res = ctl("status", "--watch", "--count", "3", "--interval", "0.2", "--connect", live)
    assert res.returncode == 0, res.stderr
    assert "visual-0/spikes/v1" in res.stdout and "recorderctl status --watch" in res.stdout
    docs = ctl(
        "status", "--watch", "--count", "3", "--interval", "0.2", "--json", "--connect", live
    )
    assert docs.returncode == 0, docs.stderr
    refreshes = [json.loads(line) for line in docs.stdout.splitlines() if line.strip()]
    assert len(refreshes) == 3 and all(r[0]["session"] == "live" for r in refreshes)
    assert refreshes[-1][0]["uptime_s"] > refreshes[0][0]["uptime_s"]
    # the node publishes every step: the writer takes a batch at least every 20 ms
    # (flush interval / 10), so its last one is never as old as a whole second
    assert all(0 <= r[0]["last_batch_age_s"] < 1 for r in refreshes)


def test_status_table_of_a_recorder(live: str) -> None:
    res = ctl("status", "--connect", live)
    assert res.returncode == 0
    first = res.stdout.splitlines()[0]
    assert first.startswith("session live  pid ") and "last flush" in first
    assert any(line.startswith("visual-0/spikes/v1 ") for line in res.stdout.splitlines())
