"""A disk that fills up: a clean stop below the free-space guard, a clear failure when full.

Each test records onto a size-capped tmpfs it mounts itself (needs root, as in CI).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis.reader import SessionReader
from tests.conftest import free_port
from tests.processes import brain_node, recorderd, stop


@pytest.fixture
def small_disk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    size = getattr(request, "param", "24m")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(endpoint: str) -> subprocess.Popen[bytes]:
    """A node whose membrane stream (recorded in full) fills a few MB per second."""
    return brain_node(
        "--node-id",
        "pfc-0",
        "--module-type",
        "pfc",
        "--steps",
        "0",
        "--speed",
        "0",
        "--connect",
        endpoint,
        "--wait-subscribers",
        "20",
    )


def test_free_space_guard_stops_cleanly(tmp_path: Path, small_disk: Path) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    args = [
        "--session",
        "s",
        "--recording-dir",
        str(small_disk),
        "--listen",
        endpoint,
        "--record-membrane",
        "--compression",
        "none",
        "--flush-interval",
        "0.2",
        "--min-free-disk-mb",
        "8",
    ]
    with recorderd(tmp_path, *args) as rec:
        node = fill(endpoint)
        try:
            assert rec.wait(timeout=60) == 4  # DISK_LOW
        finally:
            stop(node)
    log = (tmp_path / "recorderd.log").read_text()
    assert "below min_free_disk_mb=8.0: stopping the recording" in log
    with SessionReader(small_disk / "s") as r:
        assert r.metadata()["stop_time_utc"] != ""
        assert r.spikes("pfc-0", "output").neuron_ids.size > 0
        assert r.membrane("pfc-0", "hidden")[1].shape[0] > 0


def test_disk_full_fails_clearly_and_keeps_what_was_flushed(
    tmp_path: Path, small_disk: Path
) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    args = [
        "--session",
        "s",
        "--recording-dir",
        str(small_disk),
        "--listen",
        endpoint,
        "--record-membrane",
        "--compression",
        "none",
        "--flush-interval",
        "0.2",
        "--buffer-size",
        "50",
        "--min-free-disk-mb",
        "0",
    ]
    with recorderd(tmp_path, *args) as rec:
        node = fill(endpoint)
        try:
            assert rec.wait(timeout=60) == 1
        finally:
            stop(node)
    log = (tmp_path / "recorderd.log").read_text()
    assert "disk full while writing" in log
    with SessionReader(small_disk / "s") as r:
        assert r.spikes("pfc-0", "output").neuron_ids.size > 0
        steps, data = r.membrane("pfc-0", "hidden")
        assert data.shape[0] == steps.shape[0] > 0
