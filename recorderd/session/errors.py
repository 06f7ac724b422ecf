"""Errors of the session writer (one base class; each builds its message from its arguments)."""

from __future__ import annotations

from pathlib import Path


class WriterError(Exception):
    """Base error of the session writer."""


class SessionBusyError(WriterError):
    """Another process already writes this session."""

    def __init__(self, session_dir: Path) -> None:
        super().__init__(f"session {session_dir} is being written by another process")


class ShapeChangedError(WriterError):
    """A stream's layer size or matrix shape differs from what the file holds."""

    def __init__(self, stream: str, old: tuple[int, ...], new: tuple[int, ...]) -> None:
        super().__init__(f"stream {stream}: shape {new} differs from recorded {old}")


class WriteAborted(WriterError):
    """Closing was cut short at a safe point: the session is left as a crash leaves it."""

    def __init__(self) -> None:
        super().__init__(
            "closing was cut short: the session is left as after a crash (journal intact); "
            "the next recorderd or reader recovers it up to the last flush"
        )
