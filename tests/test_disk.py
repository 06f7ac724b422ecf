"""A disk that fills up: a clean stop below the free-space guard, a clear failure when full.

Each test records onto a size-capped tmpfs it mounts itself (needs root, as in CI).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis.reader import SessionReader
from recorderd.session import layout as L
from recorderd.session.superblock import status_flags
from tests.helpers import free_port
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


KILLED_IN_A_WINDOW = """
import os, sys
from pathlib import Path
import numpy as np
from recorderd import wire as P
from recorderd.core.recorder import Recorder
from recorderd.daemon.settings import load_settings
rec = Recorder(load_settings(None, session="s", recording_dir=Path(sys.argv[1])).core())
rec.start()
for seq in range(300):
    msg = P.encode(P.Kind.SPIKES, incarnation=1, seq=seq, step=seq, time_ms=float(seq),
                   dt_ms=1.0, layer_size=100, data=np.array([seq % 100], dtype=np.uint32))
    rec.add("n0", "l", P.decode(msg, P.Kind.SPIKES))
rec.flush()
rec.writer._reopen(swmr=False)  # a window without SWMR, as when a new stream is created
os.kill(os.getpid(), 9)
"""


@pytest.mark.parametrize("small_disk", ["16m"], indirect=True)
def test_a_session_killed_in_a_window_on_a_full_disk_is_read_where_it_lies(
    tmp_path: Path, small_disk: Path
) -> None:
    """No room to recover and flags of a non-SWMR writer: read through the journal anyway."""
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_A_WINDOW, str(small_disk)])
    assert killed.returncode == -9
    session = small_disk / "s"
    assert (session / L.JOURNAL_FILE).exists() and status_flags(session / L.DATA_FILE) != 0
    filler = small_disk / "filler"
    with open(filler, "wb") as fh:  # leave less room than recovery asks for
        free = shutil.disk_usage(small_disk).free
        fh.write(b"\0" * max(0, free - (1 << 20)))
    before = (session / L.DATA_FILE).read_bytes()
    with SessionReader(session) as r:
        assert r.state == "read-only"
        assert r.frames("n0", "l").seq.tolist() == list(range(300))
        assert r.spikes("n0", "l").neuron_ids.tolist() == [s % 100 for s in range(300)]
    assert (session / L.DATA_FILE).read_bytes() == before  # read where it lies: unchanged
