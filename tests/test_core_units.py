"""Unit tests of the core's small rooms: neuron subsampling and bounded logging."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from recorderd.core.ratelog import DETAILED, RateLimitedLog
from recorderd.core.subsample import select_neurons, stream_seed


def test_subsampling_is_deterministic_sorted_and_sized_by_the_rule() -> None:
    a = select_neurons(0.1, 1000, 7, "spikes", "pfc-0", "out")
    assert np.array_equal(a, select_neurons(0.1, 1000, 7, "spikes", "pfc-0", "out"))
    assert a.size == 100 and a.dtype == np.uint32 and np.all(np.diff(a.astype(int)) > 0)
    assert not np.array_equal(a, select_neurons(0.1, 1000, 8, "spikes", "pfc-0", "out"))
    assert not np.array_equal(a, select_neurons(0.1, 1000, 7, "membrane", "pfc-0", "out"))
    assert select_neurons(0.5, 5, 0, "spikes", "n", "l").size == 2  # round() halves to even
    assert select_neurons(1.0, 7, 0, "spikes", "n", "l").tolist() == list(range(7))
    assert select_neurons(0.0, 7, 0, "spikes", "n", "l").size == 0
    assert stream_seed(0, "spikes", "n", "l") == stream_seed(0, "spikes", "n", "l")
    with pytest.raises(ValueError):
        select_neurons(1.5, 7, 0, "spikes", "n", "l")


def test_rate_limited_log_is_bounded_and_summarises(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger("recorderd.test"))
    with caplog.at_level(logging.INFO, logger="recorderd.test"):
        for i in range(1000):
            log.event("gap", logging.WARNING, "gap %d", i)
        log.event("other", logging.INFO, "other")
        log.summarise()
        log.summarise()  # nothing new: no line
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == DETAILED + 1 + 1 + 1  # detailed gaps, "further ...", other, summary
    assert lines[-1] == "990 more gap event(s) since the last flush (1000 in all)"
    assert log.count("gap") == 1000


def test_a_costly_answer_is_rebuilt_at_most_a_tenth_of_the_time() -> None:
    """A client polling the status in a loop gets cached answers: building them takes
    at most DUTY of the time, whatever the query rate."""
    import time

    from recorderd.daemon.dutycycle import DUTY, MIN_AGE_S, DutyCycled

    def make() -> bytes:
        time.sleep(0.02)  # a status of thousands of streams
        return str(time.monotonic()).encode()

    answer = DutyCycled(make)
    t0 = time.monotonic()
    answers = set()
    while time.monotonic() - t0 < 1.0:
        answers.add(answer())
    # 0.02 s per build at most 10% of 1 s: about 5 builds (not the ~50 a loop would make).
    assert 2 <= answer.builds <= 1.0 * DUTY / 0.02 + 2
    assert len(answers) == answer.builds
    cheap = DutyCycled(lambda: str(time.monotonic()).encode())
    first = cheap()
    assert cheap() == first  # cached below MIN_AGE_S
    time.sleep(MIN_AGE_S + 0.01)
    assert cheap() != first  # a cheap answer stays fresh
