"""File operations for the session folder that never follow a symbolic link.

Every file the recorder writes in a session folder is opened through this module:
``O_NOFOLLOW`` on every open, temporary files created exclusively (``O_EXCL``, which
also refuses a planted symlink) after removing whatever had their name, and renames
that replace a link rather than its target. A session folder that is itself a
symbolic link is refused. Imports the standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class UnsafePathError(OSError):
    """A path in the session folder is a symbolic link or not a regular file."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(errno.ELOOP, f"{path} is {what}; refusing to follow it")


def open_fd(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` without following a symlink at ``path`` (a clear error if there is one)."""
    try:
        return os.open(path, flags | _NOFOLLOW | _CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(path, "a symbolic link") from None
        raise


def create_exclusive(path: Path, mode: int = 0o644) -> int:
    """A new, empty file at ``path`` (whatever had that name is removed first), for writing."""
    remove_entry(path)
    return open_fd(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)


def remove_entry(path: Path) -> None:
    """Remove a file or a symlink at ``path`` (never its target); nothing if absent."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_atomic(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` by a file holding ``data``: temporary file, fsync, rename."""
    tmp = path.with_name(path.name + ".tmp")
    fd = create_exclusive(tmp)
    try:
        write_all(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)  # replaces a symlink at `path`, not what it points to


def read_bytes(path: Path) -> bytes:
    """The content of the regular file at ``path``, not following a symlink."""
    fd = open_fd(path, os.O_RDONLY)
    try:
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def check_regular(path: Path) -> bool:
    """Whether ``path`` exists as a regular file; raise if it is a symlink or anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError(path, "a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePathError(path, "not a regular file")
    return True


def same_file(fd: int, path: Path) -> bool:
    """Whether the open ``fd`` is the file now at ``path`` (no swap since it was checked)."""
    a, b = os.fstat(fd), os.lstat(path)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def ensure_session_dir(path: Path) -> None:
    """Create the session folder if needed; refuse one that is a symlink or not a folder."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        path.mkdir(parents=True, exist_ok=True)
        st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError(
            path, "a symbolic link (give the real folder's parent as --recording-dir)"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(path, "not a folder")


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (after a rename or unlink in it) by path."""
    fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
