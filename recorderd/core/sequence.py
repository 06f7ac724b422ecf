"""Per-stream sequence accounting: what a message's (incarnation, seq) says about loss.

One tracker per stream (data or control), used by the recorder core for both. The rules
are those of ``docs/wire-protocol.md`` ("Sequence numbers and incarnations"):

- ``seq`` is an unsigned 64-bit counter compared as a plain integer: it never wraps
  around. A publisher that would pass ``2**64 - 1`` starts a new incarnation instead
  (its ``seq`` then restarts at 0); after ``2**64 - 1`` no message of that incarnation
  is expected any more.
- The first message heard on a stream is accepted whatever its ``seq`` (the recorder may
  have joined late).
- Same incarnation: the expected ``seq`` is accepted; a forward gap counts as missing; a
  repeat up to :data:`DUPLICATE_WINDOW` behind is a duplicate (not written).
- A new incarnation is a restart: ``missing += seq`` (the new run started at 0).
- A message of an incarnation seen earlier on the stream is stale (not written).
- Implausible: a forward jump larger than could have been missed since the last accepted
  message (:data:`PLAUSIBLE_SLACK` plus :data:`PLAUSIBLE_RATE` messages per second of
  silence), a backward jump beyond :data:`DUPLICATE_WINDOW`, or a new incarnation whose
  first ``seq`` is implausible in the same way. Such a message is rejected and does not
  move the expected ``seq``: one forged message can no longer make every later real
  message a "duplicate". If :data:`RESYNC_AFTER` implausible messages in a row continue
  one another (same incarnation, consecutive ``seq``), the stream follows them (a resync),
  so a poisoned expectation heals after a few real messages.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Final

#: seq values are below this (uint64); the expectation after the largest one equals it.
SEQ_LIMIT: Final = 1 << 64
#: A message at most this far behind the expected ``seq`` is a duplicate; further is implausible.
DUPLICATE_WINDOW: Final = 1024
#: A forward gap this large is plausible however short the silence before it.
PLAUSIBLE_SLACK: Final = 100_000
#: Messages per second that one stream could plausibly have lost while silent.
PLAUSIBLE_RATE: Final = 1_000_000
#: Implausible messages that continue one another before the stream follows them.
RESYNC_AFTER: Final = 3
#: Earlier incarnations remembered per stream to recognise stale messages.
KNOWN_INCARNATIONS: Final = 16


class Verdict(enum.Enum):
    """What one observed message is."""

    FIRST = "first"  # first message heard on the stream: accepted
    IN_ORDER = "in_order"  # accepted
    GAP = "gap"  # accepted after `missing` lost messages
    RESTART = "restart"  # a new incarnation: accepted, `missing` = its seq
    RESYNC = "resync"  # implausible messages that agree with each other: accepted
    DUPLICATE = "duplicate"  # not written
    STALE = "stale"  # an earlier incarnation's late message: not written
    IMPLAUSIBLE = "implausible"  # rejected; the expectation does not move

    @property
    def accepted(self) -> bool:
        """Whether the message is recorded."""
        return self in _ACCEPTED


_ACCEPTED: Final = frozenset(
    {Verdict.FIRST, Verdict.IN_ORDER, Verdict.GAP, Verdict.RESTART, Verdict.RESYNC}
)


@dataclass(slots=True)
class SequenceTracker:
    """The sequence state of one stream. Not thread-safe: the writer thread owns it."""

    incarnation: int | None = None
    expected: int = 0
    #: Monotonic time of the last accepted message; None if unknown (resumed from a file).
    last_at: float | None = None
    _earlier: deque[int] = field(default_factory=lambda: deque(maxlen=KNOWN_INCARNATIONS))
    _suspect: tuple[int, int, int] | None = None  # (incarnation, next seq, run length)

    @classmethod
    def resumed(cls, incarnation: int, last_seq: int) -> SequenceTracker:
        """A tracker continuing a stream recorded by an earlier run (gaps count as missing)."""
        return cls(incarnation, last_seq + 1)

    def observe(self, incarnation: int, seq: int, now: float) -> tuple[Verdict, int]:
        """Classify one message; return the verdict and how many messages it shows missing."""
        verdict, missing = self._classify(incarnation, seq, now)
        if verdict is Verdict.IMPLAUSIBLE and self._continues_suspects(incarnation, seq):
            verdict, missing = Verdict.RESYNC, 0
        if verdict.accepted:
            if self.incarnation is not None and incarnation != self.incarnation:
                self._earlier.append(self.incarnation)
            self.incarnation = incarnation
            self.expected = seq + 1
            self.last_at = now
            self._suspect = None
        return verdict, missing

    def accept_run(self, incarnation: int, first: int, count: int, now: float) -> bool:
        """Accept ``count`` messages ``first, first + 1, ...`` at once if they are exactly next.

        The fast path of a batch: True (and the expectation moves on) only if the run
        continues the current incarnation in order; otherwise nothing changes and the
        caller observes the messages one by one.
        """
        if self.incarnation != incarnation or first != self.expected or count < 1:
            return False
        if first + count > SEQ_LIMIT:  # the run wraps past 2^64 - 1 (seq never wraps)
            return False
        self.expected = first + count
        self.last_at = now
        self._suspect = None
        return True

    def skip(self, incarnation: int, seq: int, now: float) -> None:
        """Account for a message rejected for its content: it is not missing afterwards.

        Only the exact next message of the current incarnation moves the expectation: a
        rejected message is not trusted to start a stream, restart it or jump ahead.
        """
        if incarnation == self.incarnation and seq == self.expected:
            self.expected = seq + 1
            self.last_at = now

    def _classify(self, incarnation: int, seq: int, now: float) -> tuple[Verdict, int]:
        if self.incarnation is None:
            return Verdict.FIRST, 0
        if incarnation != self.incarnation:
            if incarnation in self._earlier:
                return Verdict.STALE, 0
            # The new run started at 0 after our last message of the old one.
            if not self._plausible_gap(seq, now):
                return Verdict.IMPLAUSIBLE, 0
            return Verdict.RESTART, seq
        ahead = seq - self.expected
        if ahead == 0:
            return Verdict.IN_ORDER, 0
        if ahead > 0:
            if not self._plausible_gap(ahead, now):
                return Verdict.IMPLAUSIBLE, 0
            return Verdict.GAP, ahead
        if -ahead <= DUPLICATE_WINDOW:
            return Verdict.DUPLICATE, 0
        return Verdict.IMPLAUSIBLE, 0

    def _plausible_gap(self, gap: int, now: float) -> bool:
        if self.last_at is None:
            return True  # resumed from the file: the silence is unknown
        return gap <= PLAUSIBLE_SLACK + PLAUSIBLE_RATE * max(0.0, now - self.last_at)

    def _continues_suspects(self, incarnation: int, seq: int) -> bool:
        s = self._suspect
        run = s[2] + 1 if s is not None and s[0] == incarnation and s[1] == seq else 1
        self._suspect = (incarnation, seq + 1, run)
        return run >= RESYNC_AFTER
