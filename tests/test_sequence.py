"""The sequence tracker: every case of docs/wire-protocol.md "Sequence numbers and incarnations"."""

from __future__ import annotations

import pytest

from recorderd.core.sequence import (
    DUPLICATE_WINDOW,
    PLAUSIBLE_RATE,
    PLAUSIBLE_SLACK,
    RESYNC_AFTER,
    SEQ_LIMIT,
    SequenceTracker,
    Verdict,
)

V = Verdict


def run(
    tracker: SequenceTracker, msgs: list[tuple[int, int]], now: float = 0.0
) -> list[tuple[Verdict, int]]:
    return [tracker.observe(inc, seq, now) for inc, seq in msgs]


def test_first_in_order_and_gap() -> None:
    t = SequenceTracker()
    assert run(t, [(1, 5), (1, 6), (1, 9)]) == [(V.FIRST, 0), (V.IN_ORDER, 0), (V.GAP, 2)]
    assert t.expected == 10


def test_duplicate_within_the_window_is_not_accepted() -> None:
    t = SequenceTracker()
    run(t, [(1, 0), (1, 1), (1, 2)])
    assert t.observe(1, 1, 0.0) == (V.DUPLICATE, 0)
    assert t.observe(1, 3 - DUPLICATE_WINDOW % 3, 0.0)[0] is V.DUPLICATE
    assert t.expected == 3  # unchanged


def test_restart_counts_the_new_runs_first_seq_as_missing() -> None:
    t = SequenceTracker()
    run(t, [(1, 0), (1, 1)])
    assert t.observe(2, 3, 0.0) == (V.RESTART, 3)
    assert t.incarnation == 2 and t.expected == 4


def test_late_message_of_an_earlier_incarnation_is_stale() -> None:
    t = SequenceTracker()
    run(t, [(1, 0), (1, 1), (1, 2), (2, 0)])
    # The old run's messages 3 and 4 arrive late: stale, not a restart, nothing missing.
    assert run(t, [(1, 3), (1, 4)]) == [(V.STALE, 0), (V.STALE, 0)]
    assert (t.incarnation, t.expected) == (2, 1)
    assert t.observe(2, 1, 0.0) == (V.IN_ORDER, 0)


def test_no_wrap_around_after_the_largest_seq() -> None:
    t = SequenceTracker()
    top = SEQ_LIMIT - 1
    assert run(t, [(1, top - 1), (1, top)]) == [(V.FIRST, 0), (V.IN_ORDER, 0)]
    # Nothing follows 2**64 - 1 in the same incarnation: seq 0 is far behind, not next.
    assert t.observe(1, 0, 0.0) == (V.IMPLAUSIBLE, 0)
    assert t.observe(2, 0, 0.0) == (V.RESTART, 0)  # a publisher starts a new incarnation


def test_an_implausible_jump_is_rejected_and_does_not_move_the_expectation() -> None:
    t = SequenceTracker()
    run(t, [(1, s) for s in range(10)], now=100.0)
    assert t.observe(1, SEQ_LIMIT - 2, 100.5) == (V.IMPLAUSIBLE, 0)
    assert t.observe(1, 10, 100.5) == (V.IN_ORDER, 0)  # the real stream goes on
    # A jump that a second of silence could explain is a gap, one beyond it is not.
    plausible = PLAUSIBLE_SLACK + PLAUSIBLE_RATE
    assert t.observe(1, 11 + plausible, 101.5) == (V.GAP, plausible)
    t2 = SequenceTracker()
    run(t2, [(1, 0)], now=0.0)
    assert t2.observe(1, 2 + plausible, 1.0)[0] is V.IMPLAUSIBLE


def test_a_restart_with_an_implausible_first_seq_is_rejected() -> None:
    t = SequenceTracker()
    run(t, [(1, 0), (1, 1)], now=5.0)
    assert t.observe(99, 2**63, 5.0) == (V.IMPLAUSIBLE, 0)
    assert t.incarnation == 1


def test_far_behind_is_implausible_not_duplicate() -> None:
    t = SequenceTracker()
    run(t, [(1, 5000)], now=0.0)
    assert t.observe(1, 5000 - DUPLICATE_WINDOW - 1, 0.0) == (V.IMPLAUSIBLE, 0)


def test_a_poisoned_first_message_heals_after_a_few_real_ones() -> None:
    t = SequenceTracker()
    t.observe(1, 2**63, 0.0)  # forged, heard first: accepted (nothing to compare with)
    verdicts = [t.observe(1, s, 0.1)[0] for s in range(6)]
    assert verdicts == [V.IMPLAUSIBLE] * (RESYNC_AFTER - 1) + [V.RESYNC] + [V.IN_ORDER] * (
        6 - RESYNC_AFTER
    )
    assert t.expected == 6


def test_implausible_messages_that_do_not_continue_each_other_never_resync() -> None:
    t = SequenceTracker()
    run(t, [(1, 0)], now=0.0)
    for k in range(10):
        assert t.observe(1, 2**62 + 7 * k, 0.0)[0] is V.IMPLAUSIBLE
    assert t.expected == 1


def test_resumed_tracker_allows_any_forward_gap_then_times_it() -> None:
    t = SequenceTracker.resumed(incarnation=1, last_seq=41)
    assert t.observe(1, 10**9, 0.0) == (V.GAP, 10**9 - 42)
    assert t.observe(1, 10**9 + 10**12, 0.0)[0] is V.IMPLAUSIBLE


@pytest.mark.parametrize(
    ("msg", "moves"),
    [((1, 3), True), ((1, 4), False), ((1, 2), False), ((2, 0), False), ((1, 2**63), False)],
)
def test_skip_moves_only_on_the_exact_next_message(msg: tuple[int, int], moves: bool) -> None:
    t = SequenceTracker()
    run(t, [(1, 0), (1, 1), (1, 2)])
    t.skip(*msg, 0.0)
    assert t.expected == (4 if moves else 3) and t.incarnation == 1


def test_skip_never_starts_a_stream() -> None:
    t = SequenceTracker()
    t.skip(1, 5, 0.0)
    assert t.incarnation is None and t.observe(1, 0, 0.0) == (V.FIRST, 0)


def test_the_counters_are_the_statistics_documents() -> None:
    from dataclasses import fields

    from recorderd.core.stats import StreamStats
    from recorderd.session.statistics import COUNTERS, STEP_FIELDS

    assert tuple(f.name for f in fields(StreamStats)) == (*COUNTERS, *STEP_FIELDS)
