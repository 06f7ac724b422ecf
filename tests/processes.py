"""Helpers to run the CLIs as real subprocesses on loopback, with bounded waits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recorderd.session import layout as L


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 50 ms; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@contextmanager
def recorderd(
    tmp_path: Path,
    *args: str,
    name: str = "recorderd",
    env: dict[str, str] | None = None,
    wrap: Sequence[str] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``python -m recorderd ARGS``, wait until it is ready, kill it if the test fails.

    ``env``: variables added to this process's environment for it. ``wrap``: a command
    that execs the rest (``ip netns exec NS``), so that the pid stays the recorder's.
    """
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [*wrap, sys.executable, "-m", "recorderd", *args],
            stderr=fh,
            env=None if env is None else {**os.environ, **env},
        )
    try:
        wait_for(lambda: b"ready" in log.read_bytes() or proc.poll() is not None, 30, "ready")
        if proc.poll() is not None:
            raise AssertionError(f"recorderd exited {proc.returncode}:\n{log.read_text()}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextmanager
def router(
    tmp_path: Path,
    listen: str,
    *connect: str,
    name: str = "router",
    wrap: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``recorderd-router`` (Zenoh's router) on ``listen`` (several: comma-separated),
    connected to ``connect``."""
    log = tmp_path / f"{name}.log"
    listens = [a for e in listen.split(",") for a in ("--listen", e)]
    args = [*listens, *(a for c in connect for a in ("--connect", c)), *extra]
    start = log.stat().st_size if log.exists() else 0  # a restart appends to the same log
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [
                *wrap,
                sys.executable,
                "-c",
                "from recorderd.daemon.router import main; main()",
                *args,
            ],
            stderr=fh,
        )
    try:
        wait_for(
            lambda: b"ready" in log.read_bytes()[start:] or proc.poll() is not None, 30, "router"
        )
        if proc.poll() is not None:
            raise AssertionError(f"router exited {proc.returncode}:\n{log.read_text()}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = 60) -> int:
    """Send ``sig`` and return the exit code."""
    proc.send_signal(sig)
    return proc.wait(timeout=timeout)


def brain_node(*args: str, wrap: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start ``python -m brain_nodes ARGS`` (``wrap``: as for :func:`recorderd`)."""
    return subprocess.Popen([*wrap, sys.executable, "-m", "brain_nodes", *args])


def statistics(session_dir: Path) -> dict[str, Any]:
    """The session's ``recording_statistics.json`` (empty before the first flush)."""
    path = session_dir / L.STATISTICS_FILE
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def process_ended(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie left for another parent to reap counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
