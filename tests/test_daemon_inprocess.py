"""The daemon's lifecycle in-process (pytest-asyncio, as uvicorn's server tests do):
``Daemon.serve()`` on the test's event loop, a real Zenoh session on loopback beside it,
a real HDF5 file after it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zenoh

from analysis.reader import SessionReader
from recorderd.daemon.bus import make_config
from recorderd.daemon.lifecycle import Daemon, ExitCode
from recorderd.daemon.settings import RecorderSettings
from tests.helpers import free_port, spike_message

pytestmark = pytest.mark.asyncio

KEY = "brain/pfc-0/spikes/l23"


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait on the event loop (the daemon runs on it) until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


def open_files_under(folder: Path) -> list[str]:
    """This process's open file descriptors that point into ``folder``."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


async def started(settings: RecorderSettings) -> tuple[Daemon, asyncio.Task[ExitCode]]:
    """A daemon serving on this loop, once its session file exists."""
    daemon = Daemon(settings)
    serving = asyncio.create_task(daemon.serve())
    await until(daemon.status.files.data.exists, 30, "the session file")
    return daemon, serving


async def stopped(daemon: Daemon, serving: asyncio.Task[ExitCode]) -> ExitCode:
    """Ask ``daemon`` to stop, as a signal would; its exit code."""
    daemon.request_stop("test")
    return await asyncio.wait_for(serving, 60)


def received(daemon: Daemon) -> int:
    return daemon.recorder.statistics.totals()["received"]


@pytest.fixture
def settings(make_settings: Callable[..., RecorderSettings]) -> RecorderSettings:
    return make_settings(
        session="inproc",
        listen=[f"tcp/127.0.0.1:{free_port()}"],
        flush_interval=0.2,
        log_level="INFO",
    )


class Publisher:
    """A Zenoh peer connected to the daemon's endpoint, with one spikes publisher."""

    def __init__(self, endpoint: str) -> None:
        self.session = zenoh.open(make_config(connect=[endpoint]))
        self.pub = self.session.declare_publisher(
            KEY,
            congestion_control=zenoh.CongestionControl.BLOCK,
            reliability=zenoh.Reliability.RELIABLE,
        )

    def matched(self) -> bool:
        status: Any = self.pub.matching_status
        return bool(getattr(status, "matching", status))

    def close(self) -> None:
        self.session.close()  # type: ignore[no-untyped-call]


async def test_serve_records_every_message_then_closes_everything_on_stop(
    settings: RecorderSettings,
) -> None:
    """Published == on disk; when ``serve`` returns, no file of the session is left open
    (the CLI then ends the process without the interpreter's teardown)."""
    daemon, serving = await started(settings)
    pub = Publisher(settings.listen[0])
    try:
        await until(pub.matched, 30, "the daemon's subscriber to match")
        sent = [sorted({(seq * 7 + k * 13) % 100 for k in range(seq % 5)}) for seq in range(300)]
        for seq, ids in enumerate(sent):
            pub.pub.put(spike_message(seq, ids))
        await until(lambda: received(daemon) == 300, 30, "300 messages received")
        assert not serving.done()
        code = await stopped(daemon, serving)
    finally:
        pub.close()
    assert code is ExitCode.OK
    assert open_files_under(settings.session_dir) == []
    with SessionReader(settings.session_dir) as r:
        train = r.spikes("pfc-0", "l23")
        assert train.neuron_ids.tolist() == [i for ids in sent for i in ids]
        assert train.steps.tolist() == [seq for seq, ids in enumerate(sent) for _ in ids]
        assert r.frames("pfc-0", "l23").seq.tolist() == list(range(300))
    totals = daemon.recorder.statistics.totals()
    assert (totals["written"], totals["missing"], totals["rejected"]) == (300, 0, 0)


async def test_stop_before_any_data_leaves_a_readable_empty_session(
    settings: RecorderSettings,
) -> None:
    daemon, serving = await started(settings)
    assert await stopped(daemon, serving) is ExitCode.OK
    assert open_files_under(settings.session_dir) == []
    with SessionReader(settings.session_dir) as r:
        assert r.nodes() == []


async def test_a_second_daemon_on_the_same_session_returns_busy_and_adds_no_file(
    settings: RecorderSettings, make_settings: Callable[..., RecorderSettings]
) -> None:
    first, serving = await started(settings)
    files = sorted(p.name for p in settings.session_dir.iterdir())
    other = make_settings(session="inproc", listen=[f"tcp/127.0.0.1:{free_port()}"])
    assert await asyncio.wait_for(Daemon(other).serve(), 60) is ExitCode.BUSY
    assert not serving.done()  # the first one records on
    assert sorted(p.name for p in settings.session_dir.iterdir()) == files
    assert await stopped(first, serving) is ExitCode.OK


async def test_a_taken_endpoint_returns_bus_and_creates_no_session(
    settings: RecorderSettings, make_settings: Callable[..., RecorderSettings]
) -> None:
    first, serving = await started(settings)
    other = make_settings(session="elsewhere", listen=settings.listen)
    assert await asyncio.wait_for(Daemon(other).serve(), 60) is ExitCode.BUS
    assert not other.session_dir.exists()
    assert await stopped(first, serving) is ExitCode.OK
