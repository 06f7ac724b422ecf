"""The session's writer lock: an exclusive ``flock`` on ``.recorder.lock`` (a shard's:
``.recorder.<shard>.lock``).

One process writes a session at a time: the recorder for as long as it records, a
reader only while it recovers a crashed session. HDF5's own file locking is off, so
this is the only guard. The lock file is opened without following a symlink.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from recorderd.session import layout as L
from recorderd.session.safefs import open_fd


class SessionLock:
    """A held session lock; release it with :meth:`release` (idempotent)."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def try_acquire(
        cls, session_dir: Path, *, create: bool = True, shard: str | None = None
    ) -> SessionLock | None:
        """Take the lock (of ``shard``'s files) without waiting, or None if another process
        holds it."""
        fd = open_fd(
            L.SessionFiles(session_dir, shard).lock, os.O_RDWR | (os.O_CREAT if create else 0)
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(fd)

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
