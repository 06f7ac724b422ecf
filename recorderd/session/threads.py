"""The names our threads carry in the operating system (``top -H``, ``ps -L``, ``/proc``).

Python's thread names are Python's own: Linux shows every thread of the recorder under the
program's name, beside Zenoh's named ``rx-0``, ``tx-0``, ``acc-0``. :func:`name_os_thread`
gives the calling thread its role there too: ``rd-writer`` (the writer thread), ``rd-gzip-N``
(the compression pool), ``rd-sub-N`` (zenoh-python's callback thread of a subscription),
``rd-query`` (answers to queries). Where the OS has no ``prctl`` it does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any, Final

#: Bytes of a thread's name Linux keeps (then a NUL).
MAX_NAME: Final = 15
#: The names (prefixes for numbered ones) of recorderd's threads.
WRITER: Final = "rd-writer"
GZIP: Final = "rd-gzip-"
SUB: Final = "rd-sub-"
QUERY: Final = "rd-query"
_PR_SET_NAME: Final = 15


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None


_prctl = _load_prctl()


def name_os_thread(name: str) -> None:
    """Name the calling thread ``name`` (its first :data:`MAX_NAME` bytes) in the OS."""
    if _prctl is not None:
        _prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:MAX_NAME]), 0, 0, 0)
