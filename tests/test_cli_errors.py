"""Errors a newcomer hits (issue #12, section 2): each CLI run for real, as a subprocess.

Each test asserts the exit code and the one line said, and that no traceback is shown.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import recorderd
from tests.helpers import free_port

RECORDERCTL = (sys.executable, "-m", "recorderd.daemon.ctl")
RECORDERD = (sys.executable, "-m", "recorderd")
BRAIN_NODE = (sys.executable, "-m", "brain_nodes")
#: A timestamp as logging's default ``asctime`` writes it.
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["nodes"],
        ["status", "--watch", "--count", "1"],
        ["play", "SESSION"],
    ],
)
def test_recorderctl_with_nothing_reachable_says_so_in_one_line(
    command: list[str], tmp_path: Path
) -> None:
    if command == ["play", "SESSION"]:  # a real session, so that only the bus is missing
        command = ["play", str(make_session(tmp_path))]
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    res = run(*RECORDERCTL, *command, "--connect", endpoint)
    print(res.stderr)
    assert res.returncode == 3
    (line,) = lines(res.stderr)
    assert line.startswith(f"recorderctl: cannot reach the bus at {endpoint}: nothing answers")
    assert "Is recorderd running?" in line and "--connect" in line
    # The traceback (and Zenoh's own words) only at --log-level DEBUG.
    debug = run(*RECORDERCTL, *command, "--connect", endpoint, "--log-level", "DEBUG")
    assert debug.returncode == 3
    assert "Traceback" in debug.stderr and "Unable to connect" in debug.stderr


def make_session(tmp_path: Path) -> Path:
    """A tiny recorded session, written through the recorder core."""
    from recorderd.daemon.settings import load_settings
    from tests.helpers import feed, spike_message

    settings = load_settings(None, session="tiny", recording_dir=tmp_path)
    feed(settings, [("brain/n0/spikes/l", spike_message(seq, [seq % 7])) for seq in range(5)])
    return tmp_path / "tiny"


def test_recorderd_on_a_taken_port_names_it_and_leaves_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = run(
            *RECORDERD,
            *("--session", "s", "--recording-dir", str(tmp_path / "rec")),
            *("--listen", f"tcp/127.0.0.1:{port}", "--max-duration", "5"),
        )
    print(res.stderr)
    assert res.returncode == 5
    (line,) = lines(res.stderr)
    assert f"cannot listen on tcp/127.0.0.1:{port}: the endpoint is already in use" in line
    assert "choose another with --listen tcp/127.0.0.1:PORT" in line
    assert not (tmp_path / "rec").exists()  # no session folder, lock, .h5 or statistics


@pytest.mark.parametrize("closed", ["stdout", "stdout and stderr"])
def test_recorderd_with_closed_standard_streams_stops_with_exit_0(
    tmp_path: Path, closed: str
) -> None:
    """Run as ``recorderd >&-`` (or ``>&- 2>&-``): the session is recorded and closed, and
    the exit code is still 0 (the quick exit flushes what streams there are)."""
    fds = (1,) if closed == "stdout" else (1, 2)
    proc = subprocess.run(
        [
            *RECORDERD,
            *("--session", "s", "--recording-dir", str(tmp_path / "rec")),
            *("--listen", f"tcp/127.0.0.1:{free_port()}", "--max-duration", "1"),
        ],
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: [os.close(fd) for fd in fds],
        timeout=60,
    )
    assert proc.returncode == 0
    stats = json.loads((tmp_path / "rec" / "s" / "recording_statistics.json").read_text())
    assert stats["totals"]["received"] == 0 and stats["bus_errors"] == {}
    assert not list((tmp_path / "rec" / "s").glob("*.journal*"))


def test_recorderd_help_shows_every_default() -> None:
    res = run(*RECORDERD, "--help", env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1"})
    assert res.returncode == 0
    options = [line for line in res.stdout.splitlines() if re.match(r"^│\s+--", line)]
    no_default = {"--help", "--version", "--install-completion", "--show-completion"}
    missing = [
        line.split()[1]
        for line in options
        if line.split()[1] not in no_default and "[default: " not in line
    ]
    assert len(options) > 25 and not missing, missing
    text = res.stdout
    for shown in (
        "Spikes [default: on]",
        "Membrane potentials [default: off]",
        "HDF5 compression [default: gzip]",
        "Key-expression prefix [default: brain]",
        "[default: tcp/127.0.0.1:7447]",
        "[default: sim_<time>]",
        "[default: ./sim_recordings]",
    ):
        assert shown in text, shown


def test_a_node_without_recorder_warns_and_can_be_made_to_fail() -> None:
    nowhere = ("--connect", f"tcp/127.0.0.1:{free_port()}")
    node = (*BRAIN_NODE, "--node-id", "n0", "--module-type", "pfc", "--steps", "20", "--speed", "0")
    plain = run(*node, *nowhere)
    strict = run(*node, *nowhere, "--require-recorder")
    assert plain.returncode == 0
    warnings = [line for line in plain.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "nothing this node published was recorded" in warnings[0]
    assert strict.returncode == 3
    assert "--require-recorder: no recorder confirmed receipt" in strict.stderr.splitlines()[-1]
    usage = run(*node, *nowhere, "--require-recorder", "--flush-timeout", "0")
    assert usage.returncode == 2 and "needs the flush barrier" in usage.stderr


def test_recorderd_stamps_its_log_lines_except_under_systemd(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "INVOCATION_ID")}
    args = ("--recording-dir", str(tmp_path), "--max-duration", "0.3")
    stamped = run(*RECORDERD, "--session", "a", *args, "--listen", endpoint(), env=base)
    journal = {**base, "INVOCATION_ID": "0123456789abcdef0123456789abcdef"}
    plain = run(*RECORDERD, "--session", "b", *args, "--listen", endpoint(), env=journal)
    assert stamped.returncode == plain.returncode == 0, stamped.stderr + plain.stderr
    assert lines(stamped.stderr) and all(STAMP.match(x) for x in lines(stamped.stderr))
    assert lines(plain.stderr) and all(x.startswith("INFO ") for x in lines(plain.stderr))


def endpoint() -> str:
    return f"tcp/127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    "command",
    [RECORDERD, RECORDERCTL, BRAIN_NODE],
    ids=["recorderd", "recorderctl", "brain-node"],
)
def test_version_and_shell_completion(command: tuple[str, ...]) -> None:
    version = run(*command, "--version")
    assert version.returncode == 0
    assert version.stdout.strip().endswith(recorderd.__version__)
    completion = run(*command, "--show-completion", "bash")
    assert completion.returncode == 0 and "complete" in completion.stdout
