"""The intake: a bounded, fair queue from Zenoh's threads to the writer thread.

Samples are queued per publisher, bounded both in messages and in bytes, and handed
to the writer round-robin, so that one node flooding the bus cannot starve the others:

- Each sample goes to one of :data:`BUCKETS` queues chosen by a hash of its node id
  (the key segment after the prefix). Python's string hash is salted per process, so
  which nodes share a queue is not predictable from outside (stochastic fair queueing).
- When the intake is full, a sample is admitted only if its queue is not the longest
  (in bytes when the byte bound is hit, else in messages); the oldest samples of the
  longest queue are dropped to make room ("longest queue drop"). A flooding node thus
  loses its own samples, not the others'.
- The writer takes up to :data:`BATCH` samples from each non-empty queue in turn; when
  all that is queued fits in what it takes at once, it takes every queue whole.

Every drop is counted, in all and per key. :meth:`Intake.put` never blocks for longer
than a short lock; it is what Zenoh's callback threads call.

With ``block=True`` (``--on-overflow block``) a full intake does not drop: ``put`` waits
until the writer has taken enough to make room (or the intake is closed at shutdown,
which drops and counts what still waits). Zenoh's thread then stops reading that link,
and a publisher with BLOCK congestion control is slowed down by the bus instead of
losing messages.

Where a C compiler was there at install, ``put`` is in C (``_fastintake.c``): the common
case (a known key, room in the intake, the lock free) queues the sample exactly as the
Python code does, under the same lock; every other case calls the Python code. Tested
against each other in ``tests/test_intake.py``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Final, TypeAlias

from recorderd.wire.batch import native_off

#: Queues the publishers are hashed into.
BUCKETS: Final = 64
#: Samples taken from one queue per round-robin visit.
BATCH: Final = 64
#: Bytes counted per queued sample besides its payload (the tuple, the key, bookkeeping).
ITEM_OVERHEAD: Final = 160
#: Distinct keys whose drops are counted one by one; others count in the total only.
MAX_DROP_KEYS: Final = 4096


#: One queued sample: its key, its payload (None for a Zenoh DELETE), when it arrived,
#: and the bytes it counts for in the intake's bound. A plain tuple: it is made once per
#: message on Zenoh's thread.
Sample: TypeAlias = tuple[str, bytes | None, float, int]

try:  # built at install when a C compiler is there (pyproject.toml: optional)
    from recorderd.daemon import _fastintake
except ImportError:
    _fastintake = None  # type: ignore[assignment]
#: Why the C put is not used (None: it is); the daemon says it in its log at start.
NATIVE_OFF: Final = native_off(_fastintake)


class _PyBase:
    """Where the C module is not used: the intake's counters as plain attributes."""

    max_messages: int
    max_bytes: int
    messages: int
    bytes: int
    high_water: int


if TYPE_CHECKING:
    _Base = _PyBase
elif NATIVE_OFF is None:
    _Base = _fastintake.IntakeBase
else:
    _Base = _PyBase


class Intake(_Base):
    """Fair bounded queue; :meth:`put` from any thread, :meth:`take` from the writer thread.

    Where the C module ``_fastintake`` was built, :meth:`put` is its ``IntakeBase.put``:
    it queues a sample itself, under this intake's lock, when the key's queue is known and
    there is room, and calls :meth:`_put_slow` (the Python code below) in every other
    case, so drops, blocking and their counts are decided here only.
    """

    def __init__(
        self, max_messages: int, max_bytes: int, prefix: str, *, block: bool = False
    ) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.block = block
        self._head = len(prefix) + 1
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # notified when take() frees room
        self._closed = False
        #: Seconds put() spent waiting for room (block mode), in all.
        self.blocked_s = 0.0
        self._queues: list[deque[Sample]] = [deque() for _ in range(BUCKETS)]
        self._bytes = [0] * BUCKETS
        self._ring: deque[int] = deque()  # queues with samples, in service order
        self._in_ring = [False] * BUCKETS
        self._queue_of_key: dict[str, int] = {}  # a cache, bounded like the drop counts
        self.messages = 0
        self.bytes = 0
        self.dropped = 0
        self.dropped_by_key: Counter[str] = Counter()
        self.high_water = 0
        self._item_overhead = ITEM_OVERHEAD  # for the C put

    def _queue_of(self, key: str, node: str | None) -> int:
        if node is None:
            q = self._queue_of_key.get(key)
            if q is not None:
                return q
            end = key.find("/", self._head)
            node = key[self._head : end] if end > 0 else key
            q = hash(node) % BUCKETS
            if len(self._queue_of_key) < MAX_DROP_KEYS:
                self._queue_of_key[key] = q
            return q
        return hash(node) % BUCKETS

    def _put_slow(
        self, key: str, payload: bytes | None, received_at: float, node: str | None = None
    ) -> bool:
        """Queue one sample (``node``: its publisher, else taken from the key); False if dropped."""
        size = ITEM_OVERHEAD + (len(payload) if payload is not None else 0)
        q = self._queue_of_key.get(key) if node is None else None
        if q is None:
            q = self._queue_of(key, node)
        with self._lock:
            messages = self.messages + 1
            if messages > self.max_messages or self.bytes + size > self.max_bytes:
                full = not self.block or not self._wait_for_room(size)
                if full and not self._make_room(q, key, size):
                    return False
                messages = self.messages + 1
            self._queues[q].append((key, payload, received_at, size))
            self._bytes[q] += size
            self.bytes += size
            self.messages = messages
            if messages > self.high_water:
                self.high_water = messages
            if not self._in_ring[q]:
                self._in_ring[q] = True
                self._ring.append(q)
        return True

    def _wait_for_room(self, size: int) -> bool:
        """Wait (lock held, released while waiting) until ``size`` fits; False if closed.

        A message larger than the whole byte bound can never fit: it is dropped at once.
        """
        if size > self.max_bytes:
            return False
        start = time.monotonic()
        while not self._closed and (
            self.messages >= self.max_messages or self.bytes + size > self.max_bytes
        ):
            self._room.wait(0.1)
        self.blocked_s += time.monotonic() - start
        return not self._closed

    def close(self) -> None:
        """Stop waiting in :meth:`put` (shutdown): what cannot fit is dropped from now on."""
        with self._lock:
            self._closed = True
            self._room.notify_all()

    def _make_room(self, q: int, key: str, size: int) -> bool:
        """Drop from the longest queue until the sample fits, unless its own queue is the
        longest (then it is dropped). Called with the lock held."""
        while self.messages >= self.max_messages or self.bytes + size > self.max_bytes:
            if self.bytes + size > self.max_bytes:
                victim = max(range(BUCKETS), key=self._bytes.__getitem__)
                mine_longest = self._bytes[q] + size > self._bytes[victim]
            else:
                victim = max(range(BUCKETS), key=lambda i: len(self._queues[i]))
                mine_longest = len(self._queues[q]) + 1 > len(self._queues[victim])
            if mine_longest or not self._queues[victim]:
                self._count_drop(key)
                return False
            old_key, _, _, old_size = self._queues[victim].popleft()
            self._bytes[victim] -= old_size
            self.bytes -= old_size
            self.messages -= 1
            self._count_drop(old_key)
        return True

    def _count_drop(self, key: str) -> None:
        self.dropped += 1
        if key in self.dropped_by_key or len(self.dropped_by_key) < MAX_DROP_KEYS:
            self.dropped_by_key[key] += 1

    def take(self, max_messages: int, max_bytes: int) -> list[Sample]:
        """Up to ``max_messages`` samples (and about ``max_bytes``), round-robin over queues.

        When everything queued fits, every queue is taken whole (its samples in order, the
        queues one after the other): the lock is held for a few swaps, not per sample.
        """
        out: list[Sample] = []
        taken = 0
        whole: list[deque[Sample]] = []
        with self._lock:
            if self.messages <= max_messages and self.bytes < max_bytes:
                queues = self._queues
                for q in self._ring:
                    whole.append(queues[q])
                    queues[q] = deque()
                    self._bytes[q] = 0
                    self._in_ring[q] = False
                self._ring.clear()
                self.messages = self.bytes = 0
                if whole and self.block:
                    self._room.notify_all()
        if whole:
            for queue in whole:
                out += queue
            return out
        with self._lock:
            while self._ring and len(out) < max_messages and taken < max_bytes:
                q = self._ring.popleft()
                queue = self._queues[q]
                pop = queue.popleft
                items = [pop() for _ in range(min(BATCH, len(queue), max_messages - len(out)))]
                got = sum([item[3] for item in items])
                if taken + got >= max_bytes:  # stop at the sample that reaches the bound
                    got = 0
                    for i, item in enumerate(items):
                        got += item[3]
                        if taken + got >= max_bytes:
                            queue.extendleft(reversed(items[i + 1 :]))
                            del items[i + 1 :]
                            break
                out += items
                self._bytes[q] -= got
                self.bytes -= got
                taken += got
                if queue:
                    self._ring.append(q)
                else:
                    self._in_ring[q] = False
            self.messages -= len(out)
            if out and self.block:
                self._room.notify_all()
        return out

    def clear(self) -> int:
        """Drop everything queued (counted as drops); return how many."""
        with self._lock:
            n = 0
            for q, queue in enumerate(self._queues):
                for key, *_ in queue:
                    self._count_drop(key)
                    n += 1
                queue.clear()
                self._bytes[q] = 0
                self._in_ring[q] = False
            self._ring.clear()
            self.messages = self.bytes = 0
        return n

    def __len__(self) -> int:
        return self.messages

    if TYPE_CHECKING or NATIVE_OFF is not None:
        put = _put_slow
