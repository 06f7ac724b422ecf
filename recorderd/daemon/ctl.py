"""``recorderctl``: the live state of running recorders, the nodes on the bus, and replay.

- ``status`` asks every recorder (``<prefix>/_recorders/<session>/status``) for its live
  state; ``--watch`` refreshes it in place.
- ``nodes`` lists the nodes alive (their liveliness tokens) with what the recorders know
  of them: module type, incarnations, uptime, rates.
- ``play`` publishes a recorded session back on the bus (``recorderd.daemon.replay``).

Exit codes (``EXIT_*`` below, ``docs/operations.md``): 0 done; 1 no recorder answered
(``status``), no node is alive (``nodes``), or no recorder confirmed the replay (``play
--require-recorder``); 2 bad arguments; 3 the bus could not be reached (nothing answers at
the endpoint, or the Zenoh session could not be opened); 130 interrupted (``play``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from recorderd import __version__
from recorderd.daemon.bus import (
    BusConfigError,
    BusError,
    Client,
    Player,
    make_config,
)
from recorderd.daemon.coverage import add_coverage
from recorderd.daemon.replay import ReplayError, ReplayOptions, replay
from recorderd.daemon.settings import DEFAULT_ENDPOINT
from recorderd.daemon.views import (
    flush_line,
    node_rows,
    nodes_view,
    play_view,
    status_views,
)
from recorderd.wire import DEFAULT_PREFIX, status_query_key

log = logging.getLogger("recorderctl")

app = typer.Typer(
    add_completion=True,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Live state of running recorders, the nodes on the bus, and replay of a session.",
)

EXIT_OK: Final = 0
#: Nobody answered: no recorder (status), no node (nodes), no recorder confirmed (play).
EXIT_NO_ANSWER: Final = 1
EXIT_USAGE: Final = 2
#: The bus could not be reached: nothing answers at the endpoint, or Zenoh refused.
EXIT_UNREACHABLE: Final = 3
EXIT_INTERRUPTED: Final = 130
#: Kept for callers of the first version.
NO_ANSWER = EXIT_NO_ANSWER


class ZenohMode(StrEnum):
    """Zenoh session modes."""

    client = "client"
    peer = "peer"
    router = "router"


Connect = Annotated[
    list[str] | None,
    typer.Option(
        help=f"Zenoh endpoint to connect to, repeatable \\[default: {DEFAULT_ENDPOINT}, "
        "where recorderd listens by default]"
    ),
]
Mode = Annotated[
    ZenohMode | None,
    typer.Option(help="Zenoh mode \\[default: client, or the --zenoh-config file's]"),
]
ZenohConfig = Annotated[Path | None, typer.Option(help="Zenoh JSON5 config file")]
Prefix = Annotated[str, typer.Option(help="Key-expression prefix")]
Timeout = Annotated[
    float,
    typer.Option(
        min=0.1, help="Seconds to wait for answers at most (it returns once all have answered)"
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]
LogLevel = Annotated[
    str, typer.Option(help="DEBUG shows Zenoh's own error and the traceback on a failure")
]


def _setup(log_level: str) -> None:
    level = log_level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        _fail(EXIT_USAGE, f"--log-level must be DEBUG, INFO, WARNING or ERROR, not {log_level}")
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"recorderctl: {message}", err=True)
    raise typer.Exit(code)


def _config(
    connect: list[str] | None,
    zenoh_config: Path | None,
    mode: ZenohMode | None = None,
    listen: list[str] | None = None,
) -> Any:
    """The Zenoh config: a client of the recorder's endpoint unless told otherwise."""
    if zenoh_config is not None and not zenoh_config.is_file():
        _fail(EXIT_USAGE, f"Zenoh config file {zenoh_config} does not exist")
    try:
        return make_config(
            mode=mode.value if mode else (None if zenoh_config else "client"),
            connect=connect or ([] if zenoh_config else [DEFAULT_ENDPOINT]),
            listen=listen or [],
            config_file=zenoh_config,
        )
    except BusConfigError as exc:
        _fail(EXIT_USAGE, str(exc))


def unreachable(exc: BusError) -> str:
    """One line saying which endpoint could not be reached and what to try."""
    if exc.problem == "unreachable":
        return (
            f"cannot reach the bus at {exc.endpoint}: nothing answers there. Is recorderd "
            f"running? Start it, or pass --connect with its --listen endpoint "
            f"(recorderd listens on {DEFAULT_ENDPOINT} by default)"
        )
    if exc.problem == "in_use":
        return f"cannot listen on {exc.endpoint}: it is already in use; choose another --listen"
    return f"cannot open the Zenoh session ({exc.endpoint or 'no endpoint'}): {exc.detail}"


@contextmanager
def _bus_errors() -> Iterator[None]:
    """Zenoh's failures as one line and exit code 3 (the traceback only at DEBUG)."""
    try:
        yield
    except BusError as exc:
        log.debug("Zenoh said: %s", exc.detail, exc_info=True)
        _fail(EXIT_UNREACHABLE, unreachable(exc))


def print_version(value: bool) -> None:
    """``--version``: print the version and exit."""
    if value:
        typer.echo(f"recorderctl (recorderd) {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=print_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """Live state of running recorders, the nodes on the bus, and replay of a session."""


# -- formatting ------------------------------------------------------------------------


def _console() -> Console:
    console = Console()
    if not console.is_terminal:  # a pipe or a file: no wrapping of long stream names
        console = Console(width=max(console.width, 200))
    return console


def _ask_status(client: Client, key: str, timeout: float) -> list[dict[str, Any]]:
    answers = []
    for payload in client.query(key, timeout):
        try:
            doc = json.loads(payload)
        except ValueError:
            log.warning("an answer on %s is not JSON: ignored", key)
            continue
        if isinstance(doc, dict) and "session" in doc:
            answers.append(doc)
    answers.sort(key=lambda a: (str(a["session"]), str(a.get("shard") or "")))
    return answers


# -- commands --------------------------------------------------------------------------


@app.command()
def status(
    session: Annotated[
        str, typer.Option(help="Session name \\[default: every recorder under the prefix]")
    ] = "*",
    as_json: AsJson = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Refresh in place until Ctrl-C (or --count)")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.1, help="With --watch: seconds between refreshes")
    ] = 2.0,
    count: Annotated[
        int | None, typer.Option(min=1, help="With --watch: stop after this many refreshes")
    ] = None,
    connect: Connect = None,
    mode: Mode = None,
    zenoh_config: ZenohConfig = None,
    prefix: Prefix = DEFAULT_PREFIX,
    timeout: Timeout = 3.0,
    log_level: LogLevel = "WARNING",
) -> None:
    """Per-stream rates, counts, drops, file size and uptime of running recorders."""
    _setup(log_level)
    try:
        key = status_query_key(prefix, session)
    except ValueError as exc:
        _fail(EXIT_USAGE, str(exc))
    config = _config(connect, zenoh_config, mode)

    def ask(client: Client) -> list[dict[str, Any]]:
        answers = _ask_status(client, key, timeout)
        add_coverage(client, prefix, answers, timeout)
        return answers

    with _bus_errors(), Client(config) as client:
        if watch:
            _watch(lambda: ask(client), interval, count, as_json)
            return
        answers = ask(client)
    if as_json:
        typer.echo(json.dumps(answers, indent=2))
    else:
        _console().print(status_views(answers))
    if not answers:
        raise typer.Exit(EXIT_NO_ANSWER)


def _watch(
    ask: Callable[[], list[dict[str, Any]]], interval: float, count: int | None, as_json: bool
) -> None:
    """Refresh the status every ``interval`` s until Ctrl-C or ``count`` refreshes.

    A terminal gets one table refreshed in place; ``--json`` one document per line.
    """
    console = _console()
    live = None if as_json else Live(Text("asking the recorders..."), console=console)
    done = 0
    try:
        if live is not None:
            live.start()
        while True:
            started = time.monotonic()
            answers = ask()
            done += 1
            if live is None:
                typer.echo(json.dumps(answers))
            else:
                stamp = Text(
                    f"recorderctl status --watch: {time.strftime('%H:%M:%S')}, every "
                    f"{interval:g} s, Ctrl-C to stop",
                    style="dim",
                )
                live.update(Group(stamp, status_views(answers)), refresh=True)
            if count is not None and done >= count:
                break
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()


@app.command()
def nodes(
    as_json: AsJson = False,
    connect: Connect = None,
    mode: Mode = None,
    zenoh_config: ZenohConfig = None,
    prefix: Prefix = DEFAULT_PREFIX,
    timeout: Timeout = 3.0,
    log_level: LogLevel = "WARNING",
) -> None:
    """Brain nodes alive now (liveliness tokens): module, incarnation, uptime, rates."""
    _setup(log_level)
    config = _config(connect, zenoh_config, mode)
    with _bus_errors(), Client(config) as client:
        alive = client.alive(prefix, timeout)
        answers = _ask_status(client, status_query_key(prefix), timeout) if alive else []
    rows = node_rows(alive, answers)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif rows:
        _console().print(nodes_view(rows))
    else:
        typer.echo("no node alive")
    if not rows:
        raise typer.Exit(EXIT_NO_ANSWER)


def _patterns(values: list[str] | None) -> tuple[str, ...]:
    return tuple(p.strip() for v in values or [] for p in v.split(",") if p.strip())


@app.command()
def play(
    session_dir: Annotated[
        Path, typer.Argument(metavar="SESSION", help="The session folder to replay")
    ],
    rate: Annotated[
        float, typer.Option(help="Speed: 1 the recorded speed, 2 twice as fast, 0.5 half")
    ] = 1.0,
    as_fast_as_possible: Annotated[
        bool, typer.Option("--as-fast-as-possible", help="No pacing at all")
    ] = False,
    node: Annotated[
        list[str] | None,
        typer.Option(
            "--nodes", help="Node ids or patterns, comma-separated or repeated: 'pfc-*,visual-0'"
        ),
    ] = None,
    stream: Annotated[
        list[str] | None,
        typer.Option(
            "--streams",
            help="Stream patterns on NODE/KIND/LAYER or NODE/control: '*/spikes/*,pfc-0/control'",
        ),
    ] = None,
    t_start: Annotated[
        float | None, typer.Option(help="From this simulation time (ms), inclusive")
    ] = None,
    t_stop: Annotated[
        float | None, typer.Option(help="Up to this simulation time (ms), exclusive")
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            help="Key-expression prefix \\[default: the one the session was recorded under]"
        ),
    ] = None,
    wait_subscribers: Annotated[
        float,
        typer.Option(min=0.0, help="Seconds to wait for a subscriber to every spikes/control key"),
    ] = 10.0,
    flush_timeout: Annotated[
        float,
        typer.Option(min=0.0, help="Seconds to wait for recorders to confirm receipt (0: skip)"),
    ] = 10.0,
    require_recorder: Annotated[
        bool,
        typer.Option("--require-recorder", help="Exit 1 when no recorder confirmed receipt"),
    ] = False,
    as_json: AsJson = False,
    connect: Connect = None,
    listen: Annotated[
        list[str] | None, typer.Option(help="Zenoh endpoint to listen on \\[default: none]")
    ] = None,
    mode: Mode = None,
    zenoh_config: ZenohConfig = None,
    log_level: LogLevel = "INFO",
) -> None:
    """Publish a recorded session on the bus again, like ros2 bag play."""
    _setup(log_level)
    if not rate > 0:
        _fail(EXIT_USAGE, f"--rate must be a positive number, not {rate:g}")
    if t_start is not None and t_stop is not None and t_stop <= t_start:
        _fail(EXIT_USAGE, f"--t-stop ({t_stop:g}) must be after --t-start ({t_start:g})")
    if require_recorder and flush_timeout <= 0:
        _fail(EXIT_USAGE, "--require-recorder needs the flush barrier (--flush-timeout > 0)")
    opts = ReplayOptions(
        rate=None if as_fast_as_possible else rate,
        nodes=_patterns(node),
        streams=_patterns(stream),
        t_start_ms=t_start,
        t_stop_ms=t_stop,
        prefix=prefix,
        wait_subscribers_s=wait_subscribers,
        flush_timeout_s=flush_timeout,
    )
    config = _config(connect, zenoh_config, mode, listen)
    try:
        with _bus_errors():
            result = replay(session_dir, lambda: Player(config), opts)
    except ReplayError as exc:
        _fail(EXIT_USAGE, str(exc))
    except KeyboardInterrupt:
        _fail(EXIT_INTERRUPTED, "interrupted")
    if as_json:
        doc = {
            "session": result.session,
            "prefix": result.prefix,
            "messages": result.messages,
            "wall_s": round(result.wall_s, 3),
            "interrupted": result.interrupted,
            "flush": result.flush,
            "confirmed": result.confirmed,
            "streams": {k: vars(v) for k, v in result.streams.items()},
        }
        typer.echo(json.dumps(doc, indent=2))
    else:
        console = _console()
        console.print(play_view(result))
        console.print(flush_line(result, flush_timeout), highlight=False)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if flush_timeout > 0 and result.confirmed == 0:
        log.warning(
            "no recorder confirmed receipt of the replay: nothing of it was recorded "
            "(start recorderd where --connect points)"
        )
        if require_recorder:
            raise typer.Exit(EXIT_NO_ANSWER)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="recorderctl")


if __name__ == "__main__":
    main()
