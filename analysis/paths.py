"""Where a session is: a folder, or its ``simulation_data.h5``; close matches for typos.

:func:`session_dir` turns what a user typed into the session folder (the data file's
path is accepted too). `close_sessions` and :func:`did_you_mean` help the
command lines say "did you mean ..." when a folder does not exist.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from recorderd.session import layout as L

#: Where recorderd puts sessions by default (relative to the working directory).
DEFAULT_RECORDING_DIR: Final = Path("sim_recordings")
#: Suggestions at most in a "did you mean" hint.
MAX_SUGGESTIONS: Final = 3


def session_dir(path: str | Path) -> Path:
    """The session folder of ``path``: itself, or the folder of a ``simulation_data.h5``.

    Only the data file's own name is taken as a file inside a session; any other path
    is returned unchanged (whether it is a session is checked when it is opened).
    """
    p = Path(path)
    if L.SessionFiles.of_data_file(p) is not None and not p.is_dir():  # a shard's too
        return p.parent
    return p


def _sessions_in(folder: Path) -> list[Path]:
    try:
        return sorted(d for d in folder.iterdir() if d.is_dir() and L.session_file_sets(d))
    except OSError:
        return []


def close_sessions(path: str | Path, roots: Iterable[Path] | None = None) -> list[Path]:
    """Session folders whose names are close to ``path``'s (difflib), best first.

    Looked for in ``path``'s parent folder and in ``./sim_recordings`` (or ``roots``).
    """
    p = Path(path)
    folders = [p.parent, DEFAULT_RECORDING_DIR] if roots is None else list(roots)
    candidates: dict[str, Path] = {}
    for folder in folders:
        for d in _sessions_in(folder):
            candidates.setdefault(d.name, d)
    names = difflib.get_close_matches(p.name, list(candidates), n=MAX_SUGGESTIONS, cutoff=0.6)
    return [candidates[n] for n in names]


def did_you_mean(path: str | Path, roots: Iterable[Path] | None = None) -> str:
    """``"; did you mean A or B?"`` for a path that does not exist and has close matches."""
    p = Path(path)
    if p.exists():
        return ""
    matches = close_sessions(p, roots)
    if not matches:
        return ""
    return "; did you mean " + " or ".join(str(m) for m in matches) + "?"
