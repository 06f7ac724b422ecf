"""``control_states.jsonl``: one compact JSON object per line, appended, fsynced at flushes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from recorderd.session.safefs import open_fd


class ControlLog:
    """The session's control log, open for appending (never through a symlink)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = open_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self._fh: IO[str] | None = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (buffered until :meth:`sync`)."""
        if self._fh is None:
            raise ValueError(f"control log {self.path} is closed")
        self._fh.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")

    def sync(self) -> None:
        """Make every record written so far durable."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the file (idempotent); buffered records are written."""
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()


def read_records(path: Path, tail_bytes: int | None = None) -> list[dict[str, Any]]:
    """Records of a control log, oldest first; only its last ``tail_bytes`` if given.

    A torn last line (a crash while appending) and lines that are not JSON objects are
    skipped.
    """
    try:
        with open(path, "rb") as fh:
            start = 0 if tail_bytes is None else max(0, fh.seek(0, os.SEEK_END) - tail_bytes)
            fh.seek(start)
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return []
    if start > 0:
        lines = lines[1:]  # starts mid-line
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
