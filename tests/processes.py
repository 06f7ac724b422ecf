"""Helpers to run the CLIs as real subprocesses on loopback, with bounded waits."""

from __future__ import annotations

import contextlib
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
def _ready(
    cmd: Sequence[str],
    log: Path,
    what: str,
    *,
    env: dict[str, str] | None = None,
    append: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cmd`` with stderr into ``log``, wait until it logs "ready", kill it if the
    test fails. ``append``: keep the log's earlier runs (a restart) and look past them."""
    start = log.stat().st_size if append and log.exists() else 0
    with open(log, "ab" if append else "wb") as fh:
        proc = subprocess.Popen(cmd, stderr=fh, env=None if env is None else {**os.environ, **env})
    try:
        wait_for(lambda: b"ready" in log.read_bytes()[start:] or proc.poll() is not None, 30, what)
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited {proc.returncode}:\n{log.read_text()}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def recorderd(
    tmp_path: Path,
    *args: str,
    name: str = "recorderd",
    env: dict[str, str] | None = None,
    wrap: Sequence[str] = (),
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """Start ``python -m recorderd ARGS``, wait until it is ready, kill it if the test fails.

    ``env``: variables added to this process's environment for it. ``wrap``: a command
    that execs the rest (``ip netns exec NS``), so that the pid stays the recorder's.
    """
    cmd = [*wrap, sys.executable, "-m", "recorderd", *args]
    return _ready(cmd, tmp_path / f"{name}.log", "recorderd", env=env)


def router(
    tmp_path: Path,
    listen: str,
    *connect: str,
    name: str = "router",
    wrap: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """Start ``recorderd-router`` (Zenoh's router) on ``listen`` (several: comma-separated),
    connected to ``connect``; a restart under the same ``name`` appends to its log."""
    listens = [a for e in listen.split(",") for a in ("--listen", e)]
    args = [*listens, *(a for c in connect for a in ("--connect", c)), *extra]
    main = "from recorderd.daemon.router import main; main()"
    cmd = [*wrap, sys.executable, "-c", main, *args]
    return _ready(cmd, tmp_path / f"{name}.log", "router", append=True)


#: The repository's root: the working directory of the CLIs run by the tests.
ROOT = Path(__file__).resolve().parents[1]


def sim_analyzer(
    *args: str | Path, cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m analysis ARGS`` (``sim-analyzer``) to its end; text output."""
    return subprocess.run(
        [sys.executable, "-m", "analysis", *map(str, args)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def bench(script: str, *args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``python bench/SCRIPT ARGS`` to its end; text output."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


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
