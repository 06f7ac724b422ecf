"""The writer thread's looks at an intake that stays empty back off, and come back to
every 2 ms as soon as anything is queued (the sleeps it asks for are recorded; the data
path is real)."""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from recorderd.core.recorder import Recorder
from recorderd.daemon import pipeline as pipeline_module
from recorderd.daemon.pipeline import IDLE_LOOKS, IDLE_SLEEP_MAX_S, IDLE_SLEEP_S, Pipeline
from recorderd.daemon.settings import RecorderSettings
from tests.helpers import spike_message
from tests.processes import wait_for


@pytest.mark.parametrize(("flush_interval", "longest"), [(1.0, IDLE_SLEEP_MAX_S), (0.1, 0.01)])
def test_idle_looks_back_off_and_data_brings_them_back(
    make_settings: Callable[..., RecorderSettings],
    monkeypatch: pytest.MonkeyPatch,
    flush_interval: float,
    longest: float,
) -> None:
    """The longest sleep is IDLE_SLEEP_MAX_S, or the gathering time (a tenth of the flush
    interval) if shorter."""
    sleeps: list[float] = []
    fake = types.SimpleNamespace(
        monotonic=time.monotonic,
        time=time.time,
        sleep=lambda s: (sleeps.append(s), time.sleep(0.0005)),
    )
    monkeypatch.setattr(pipeline_module, "time", fake)
    recorder = Recorder(make_settings().core())
    recorder.start()
    pipe = Pipeline(recorder, prefix="brain", capacity=1000, flush_interval=flush_interval)
    writer = threading.Thread(target=pipe.run)
    writer.start()
    try:
        wait_for(lambda: sleeps.count(longest) >= 3, 30, "the back-off to reach its longest")
        # IDLE_LOOKS short looks at an empty intake (0.1 s), then long ones
        assert sleeps[: IDLE_LOOKS + 1] == [IDLE_SLEEP_S] * IDLE_LOOKS + [longest]
        assert max(sleeps) == longest
        before = len(sleeps)
        pipe.submit("brain/n/spikes/l", spike_message(0, [1, 2]), 0)
        wait_for(lambda: pipe.recorder.statistics.totals()["written"] == 1, 30, "the message")
        after = sleeps[before:]
        assert IDLE_SLEEP_S in after[:3]  # back to short looks once something was queued
    finally:
        pipe.stop()
        writer.join(30)
    assert not writer.is_alive() and pipe.error is None
    assert Path(recorder.settings.session_dir).is_dir()
