"""The systemd unit and recorderd's notify protocol, against real tools and sockets."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_port

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "recorderd@.service"
needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)


def installed_instance(tmp_path: Path) -> Path:
    """An instance of the unit whose ExecStart points at this environment's recorderd script."""
    script = Path(sys.executable).parent / "recorderd"
    assert script.exists(), "recorderd console script not installed in this environment"
    instance = tmp_path / "recorderd@test.service"
    instance.write_text(UNIT.read_text().replace("/usr/local/bin/recorderd", str(script)))
    return instance


@needs_systemd
def test_unit_verifies(tmp_path: Path) -> None:
    run = subprocess.run(
        ["systemd-analyze", "verify", str(installed_instance(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(run.stdout, run.stderr)
    assert run.returncode == 0, run.stderr


@needs_systemd
def test_security_exposure_at_most_2_5(tmp_path: Path) -> None:
    instance = installed_instance(tmp_path)
    run = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(instance)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for .*: (\d+\.\d+)", run.stdout + run.stderr)
    assert match, run.stdout + run.stderr
    print("exposure", match.group(1))
    assert float(match.group(1)) <= 2.5


def test_notify_ready_status_watchdog_stopping(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(1.0)
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recorderd",
            "--session",
            "svc",
            "--recording-dir",
            str(tmp_path),
            "--listen",
            f"tcp/127.0.0.1:{free_port()}",
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    messages: list[dict[str, str]] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                data = sock.recv(4096).decode()
            except TimeoutError:
                continue
            messages.append(dict(line.split("=", 1) for line in data.splitlines()))
            if sum("WATCHDOG" in m for m in messages) >= 2:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        while True:
            try:
                data = sock.recv(4096).decode()
            except TimeoutError:
                break
            messages.append(dict(line.split("=", 1) for line in data.splitlines()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
    assert messages[0]["READY"] == "1" and messages[0]["STATUS"].startswith("recording svc:")
    assert sum(m.get("WATCHDOG") == "1" for m in messages) >= 2
    assert messages[-1]["STOPPING"] == "1"
