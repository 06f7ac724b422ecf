# The C module recorderd/daemon/_fastintake.c (see its comment and recorderd.daemon.intake).
import builtins
import threading
from collections import deque

class IntakeBase:
    max_messages: int
    max_bytes: int
    messages: int
    bytes: int
    high_water: int
    _item_overhead: int
    _lock: threading.Lock
    _queues: list[deque[tuple[str, builtins.bytes | None, float, int]]]
    _bytes: list[int]
    _ring: deque[int]
    _in_ring: list[bool]
    _queue_of_key: dict[str, int]
    def put(
        self,
        key: str,
        payload: builtins.bytes | None,
        received_at: float,
        node: str | None = None,
        /,
    ) -> bool: ...
