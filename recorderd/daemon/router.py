"""``recorderd-router``: Zenoh's own router, started from the Python package.

For tests and for hosts without Eclipse's ``zenohd`` (``docs/deployment.md``). It opens
one Zenoh session in ``router`` mode with the given endpoints (multicast scouting off,
as everywhere in this project) and keeps it open until SIGINT or SIGTERM. All routing
is Zenoh's: this module only starts it. Production deployments run ``zenohd`` with
the configs in ``config/`` instead; both speak the same protocol.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from recorderd import __version__
from recorderd.daemon.bus import BusConfigError, BusError, make_config, open_session

log = logging.getLogger("recorderd.router")
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

EXIT_USAGE = 2
EXIT_BUS = 5


def _version(value: bool) -> None:
    if value:
        typer.echo(f"recorderd-router {__version__}")
        raise typer.Exit()


@app.command()
def route(
    listen: Annotated[
        list[str], typer.Option(help="Endpoint to listen on (repeatable), e.g. tcp/127.0.0.1:7447")
    ],
    connect: Annotated[
        list[str] | None,
        typer.Option(help="Another router to connect to (repeatable) \\[default: none]"),
    ] = None,
    zenoh_config: Annotated[
        Path | None,
        typer.Option(help="Zenoh JSON5 config (e.g. config/zenoh-router.json5) \\[default: none]"),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version")
    ] = False,
) -> None:
    """Run a Zenoh router until SIGINT or SIGTERM (exit 0; 5 if it cannot listen)."""
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = make_config(
            mode="router", connect=connect or [], listen=listen, config_file=zenoh_config
        )
    except BusConfigError as exc:
        typer.echo(f"recorderd-router: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        session = open_session(config)
    except BusError as exc:
        typer.echo(f"recorderd-router: cannot start: {exc.detail}", err=True)
        raise typer.Exit(EXIT_BUS) from None
    log.info("router %s listening on %s, connected to %s: ready", session.zid(), listen, connect)
    sys.stderr.flush()
    stop.wait()
    session.close()  # type: ignore[no-untyped-call]
    log.info("router stopped")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="recorderd-router")
