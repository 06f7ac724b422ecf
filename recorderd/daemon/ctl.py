"""``recorderctl``: ask running recorders for their live status, and list the nodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from recorderd.daemon.bus import alive_nodes, make_config, query
from recorderd.daemon.settings import DEFAULT_ENDPOINT
from recorderd.wire import DEFAULT_PREFIX, status_key

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)

Connect = Annotated[
    list[str] | None, typer.Option(help=f"Zenoh endpoint to connect to [{DEFAULT_ENDPOINT}]")
]
ZenohConfig = Annotated[Path | None, typer.Option(help="Zenoh JSON5 config file")]
Prefix = Annotated[str, typer.Option(help="Key-expression prefix")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for answers")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]

#: Exit code when no recorder answered.
NO_ANSWER = 1


def _config(connect: list[str] | None, zenoh_config: Path | None) -> Any:
    return make_config(
        mode="client" if not zenoh_config else "peer",
        connect=connect or [DEFAULT_ENDPOINT],
        config_file=zenoh_config,
    )


def _format(status: dict[str, Any]) -> str:
    t = status["totals"]
    lines = [
        f"session {status['session']}  pid {status['pid']}  up {status['uptime_s']:.1f} s  "
        f"file {status['file_bytes'] / 1e6:.2f} MB  queued {status['intake_queued']}",
        f"  {status['session_dir']}",
        f"  {'stream':<34} {'msg/s':>8} {'spikes/s':>10} {'received':>9} {'written':>9} "
        f"{'missing':>8} {'dup':>5} {'dropped':>8} {'restarts':>8}",
    ]
    for key, s in status["streams"].items():
        lines.append(
            f"  {key:<34} {s['messages_per_s']:>8.1f} {s['spikes_per_s']:>10.1f} "
            f"{s['received']:>9} {s['written']:>9} {s['missing']:>8} {s['duplicates']:>5} "
            f"{s['dropped']:>8} {s['restarts']:>8}"
        )
    rejected = ", ".join(f"{k}={v}" for k, v in status["rejected"].items()) or "none"
    lines.append(
        f"  totals: {t['spikes_written']} spikes written, {t['intake_dropped']} dropped "
        f"at intake, rejected: {rejected}"
    )
    return "\n".join(lines)


@app.command()
def status(
    session: Annotated[str, typer.Option(help="Session name; all recorders by default")] = "*",
    as_json: AsJson = False,
    connect: Connect = None,
    zenoh_config: ZenohConfig = None,
    prefix: Prefix = DEFAULT_PREFIX,
    timeout: Timeout = 3.0,
) -> None:
    """Per-stream rates, counts, drops, file size and uptime of running recorders."""
    try:
        key = status_key(prefix, session)
    except ValueError as exc:
        typer.echo(f"recorderctl: {exc}", err=True)
        raise typer.Exit(2) from None
    answers = [json.loads(p) for p in query(_config(connect, zenoh_config), key, timeout)]
    answers.sort(key=lambda a: str(a["session"]))
    if as_json:
        typer.echo(json.dumps(answers, indent=2))
    else:
        typer.echo("\n\n".join(_format(a) for a in answers) or "no recorder answered")
    if not answers:
        raise typer.Exit(NO_ANSWER)


@app.command()
def nodes(
    as_json: AsJson = False,
    connect: Connect = None,
    zenoh_config: ZenohConfig = None,
    prefix: Prefix = DEFAULT_PREFIX,
    timeout: Timeout = 3.0,
) -> None:
    """Brain nodes alive on the bus now (their liveliness tokens)."""
    found = alive_nodes(_config(connect, zenoh_config), prefix, timeout)
    typer.echo(json.dumps(found) if as_json else "\n".join(found) or "no node alive")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="recorderctl")


if __name__ == "__main__":
    main()
