"""``brain-node --enable-recording``: a recorderd child process records the node's session.

The node stays a pure publisher: recording is done by the real ``recorderd`` program,
started as a child with ``--wait-for-lock --stop-when-idle``. The first process to take
the session's lock records it, listening where the nodes connect, and keeps recording
until no node of the bus has been alive for a few seconds, whichever node exits first.
Every other node's child (all of them, when a recorderd daemon already records the
session) stands by without touching the files, takes over if the recording process
goes away, and leaves when its own node exits. So three nodes started with the same
``--session-name`` give one session with one writer.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("brain_nodes")

#: The recording child stops once no node has been alive for this long.
IDLE_STOP_S = 3.0


@dataclass(frozen=True, slots=True)
class RecordingOptions:
    """The recording guide's node flags."""

    session_name: str
    recording_dir: Path = Path("./sim_recordings")
    record_spikes: bool = True
    record_membrane: bool = False
    record_weights: bool = False
    record_control: bool = True


def recorder_command(opts: RecordingOptions, *, listen: str, prefix: str) -> list[str]:
    """The recorderd command line that records ``opts`` for a node connecting to ``listen``."""

    def flag(name: str, on: bool) -> str:
        return f"--{name}" if on else f"--no-{name}"

    return [
        sys.executable,
        "-m",
        "recorderd",
        "--session",
        opts.session_name,
        "--recording-dir",
        str(opts.recording_dir),
        "--listen",
        listen,
        "--prefix",
        prefix,
        flag("record-spikes", opts.record_spikes),
        flag("record-membrane", opts.record_membrane),
        flag("record-weights", opts.record_weights),
        flag("record-control", opts.record_control),
        "--wait-for-lock",
        "--parent-pid",
        str(os.getpid()),
        "--stop-when-idle",
        str(IDLE_STOP_S),
    ]


class RecorderProcess:
    """A recorderd child, started with the node; it ends by itself (see the module doc)."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.pid: int | None = None

    def start(self) -> None:
        """Start the child in its own session; its log goes to the node's stderr."""
        # Own session: a Ctrl-C in the node's terminal must not stop the recording of
        # the other nodes' data; the child stops when the bus has gone idle.
        proc = subprocess.Popen(self.command, start_new_session=True)
        self.pid = proc.pid
        log.info("recorder child %d started: %s", proc.pid, " ".join(self.command[2:]))
