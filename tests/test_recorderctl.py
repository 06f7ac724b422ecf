"""recorderctl against a running recorderd and node: live status and nodes over Zenoh."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import free_port
from tests.processes import brain_node, recorderd, statistics, stop, wait_for


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorderd.daemon.ctl", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_and_nodes(tmp_path: Path) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    args = [
        "--session",
        "live",
        "--recording-dir",
        str(tmp_path),
        "--listen",
        endpoint,
        "--stop-when-idle",
        "60",
    ]
    with recorderd(tmp_path, *args) as rec:
        node = brain_node(
            "--node-id",
            "visual-0",
            "--module-type",
            "visual",
            "--steps",
            "0",
            "--speed",
            "1",
            "--connect",
            endpoint,
            "--wait-subscribers",
            "20",
        )
        try:
            wait_for(
                lambda: statistics(tmp_path / "live").get("totals", {}).get("written", 0) > 0,
                30,
                "data written",
            )
            wait_for(lambda: "visual-0" in ctl("nodes", "--connect", endpoint).stdout, 30, "node")
            wait_for(  # rates are measured over 2 s windows
                lambda: (
                    json.loads(ctl("status", "--json", "--connect", endpoint).stdout)[0]["streams"][
                        "visual-0/spikes/v1"
                    ]["messages_per_s"]
                    > 0
                ),
                30,
                "a rate",
            )
            out = ctl("status", "--json", "--session", "live", "--connect", endpoint)
            text = ctl("status", "--connect", endpoint)
            nodes = ctl("nodes", "--json", "--connect", endpoint)
            none = ctl("status", "--session", "other", "--connect", endpoint, "--timeout", "1")
        finally:
            assert stop(node) == 0
        assert stop(rec) == 0
    assert out.returncode == 0, out.stderr
    (status,) = json.loads(out.stdout)
    assert status["session"] == "live" and status["file_bytes"] > 0 and status["uptime_s"] > 0
    assert status["nodes_alive"] == ["visual-0"]
    v1 = status["streams"]["visual-0/spikes/v1"]
    assert v1["received"] > 0 and v1["missing"] == 0 and 0 < v1["messages_per_s"] < 5000
    assert "visual-0/spikes/v1" in text.stdout and "msg/s" in text.stdout
    assert [n["node_id"] for n in json.loads(nodes.stdout)] == ["visual-0"]
    assert none.returncode == 1 and "no recorder answered" in none.stdout
