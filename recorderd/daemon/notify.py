"""systemd's notify protocol: READY, STATUS, WATCHDOG and STOPPING datagrams.

One datagram per message on the unix socket named by ``NOTIFY_SOCKET`` (a leading
``@`` means the abstract namespace), as sd_notify(3) does; no dependency needed.
Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends service-state notifications to the service manager, if there is one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + path[1:] if path.startswith("@") else path
        self.watchdog_s: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return bool(self._address)

    def send(self, **fields: str) -> None:
        """Send ``KEY=value`` lines in one datagram (errors are logged, never raised)."""
        if not self._address:
            return
        text = "".join(f"{key}={value}\n" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(text.encode())
        except OSError as exc:
            log.warning("cannot notify the service manager: %s", exc)

    def ready(self, status: str) -> None:
        """Startup finished."""
        self.send(READY="1", STATUS=status)

    def status(self, status: str, *, watchdog: bool = False) -> None:
        """A one-line status, and a watchdog ping when the service is healthy."""
        if watchdog:
            self.send(STATUS=status, WATCHDOG="1")
        else:
            self.send(STATUS=status)

    def stopping(self, status: str) -> None:
        """Shutdown began."""
        self.send(STOPPING="1", STATUS=status)
