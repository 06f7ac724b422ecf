"""Command line: ``brain-node --node-id pfc-0 --module-type pfc [...]``."""

from __future__ import annotations

import enum
import logging
import math
import time
from pathlib import Path
from typing import Annotated

import typer

from brain_nodes.bus import BusConfigError, BusError, BusOptions
from brain_nodes.modules import SPECS, ModuleType, resolve_layer_sizes
from brain_nodes.node import NodeOptions, run_node
from brain_nodes.recording import RecordingOptions
from recorderd import __version__
from recorderd.wire import DEFAULT_PREFIX, check_name, check_prefix

app = typer.Typer(add_completion=True, pretty_exceptions_enable=False)

#: Exit codes: 0 done; 1 the bus failed (unreachable, endpoint in use, ...); 2 bad
#: arguments; 3 with --require-recorder, no recorder confirmed receipt (nothing recorded).
EXIT_BUS = 1
EXIT_USAGE = 2
EXIT_NOT_RECORDED = 3


class Mode(enum.StrEnum):
    """Zenoh session modes."""

    PEER = "peer"
    CLIENT = "client"
    ROUTER = "router"


class Congestion(enum.StrEnum):
    """What a publisher does when the transmission queue is full."""

    BLOCK = "block"
    DROP = "drop"


def _node_id(value: str) -> str:
    try:
        return check_name(value, "node id")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _prefix(value: str) -> str:
    try:
        return check_prefix(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _session(value: str | None) -> str | None:
    try:
        return None if value is None else check_name(value, "session name")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _dt(value: float) -> float:
    if not (math.isfinite(value) and value > 0.0):
        raise typer.BadParameter(f"must be a positive number of ms, got {value}")
    return value


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"brain-node (recorderd) {__version__}")
        raise typer.Exit()


@app.command()
def run(
    node_id: Annotated[
        str, typer.Option(callback=_node_id, help="Node id: letters, digits, '_' and '-'.")
    ],
    module_type: Annotated[ModuleType, typer.Option(help="Module type to simulate.")],
    steps: Annotated[int, typer.Option(min=0, help="Steps to run; 0 = until SIGINT/SIGTERM.")] = 0,
    seed: Annotated[int, typer.Option(min=0, help="Simulation seed.")] = 0,
    dt: Annotated[float, typer.Option(callback=_dt, help="Step length (ms).")] = 1.0,
    layer_sizes: Annotated[
        str | None,
        typer.Option(help="Comma list of neurons per layer, input first."),
    ] = None,
    speed: Annotated[
        float, typer.Option(min=0.0, help="1.0 = real time, 2.0 = twice as fast, 0 = no pacing.")
    ] = 1.0,
    prefix: Annotated[str, typer.Option(callback=_prefix, help="Key prefix.")] = DEFAULT_PREFIX,
    control_interval: Annotated[
        int, typer.Option(min=1, help="Publish the control state at least every N steps.")
    ] = 100,
    weight_interval: Annotated[
        int, typer.Option(min=1, help="Weight snapshot every N steps (when subscribed).")
    ] = 1000,
    wait_subscribers: Annotated[
        float,
        typer.Option(min=0.0, help="Wait up to SECONDS for spike subscribers before step 0."),
    ] = 0.0,
    summary_json: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Write a run summary here at exit.")
    ] = None,
    flush_timeout: Annotated[
        float,
        typer.Option(min=0.0, help="At exit, wait up to SECONDS for recorders to confirm receipt."),
    ] = 10.0,
    congestion: Annotated[
        Congestion, typer.Option(help="Congestion control of the publishers.")
    ] = Congestion.BLOCK,
    mode: Annotated[Mode | None, typer.Option(help="Zenoh mode (default: peer).")] = None,
    connect: Annotated[
        list[str] | None,
        typer.Option(help="Endpoint to connect to (repeatable; default tcp/127.0.0.1:7447)."),
    ] = None,
    listen: Annotated[
        list[str] | None, typer.Option(help="Endpoint to listen on (repeatable; default none).")
    ] = None,
    zenoh_config: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Zenoh config file; flags override it."),
    ] = None,
    enable_recording: Annotated[
        bool, typer.Option(help="Record this node's session with a recorderd child process.")
    ] = False,
    record_spikes: Annotated[bool, typer.Option(help="With --enable-recording.")] = True,
    record_membrane: Annotated[bool, typer.Option(help="With --enable-recording.")] = False,
    record_weights: Annotated[bool, typer.Option(help="With --enable-recording.")] = False,
    record_control: Annotated[bool, typer.Option(help="With --enable-recording.")] = True,
    recording_dir: Annotated[
        Path, typer.Option(file_okay=False, help="With --enable-recording.")
    ] = Path("./sim_recordings"),
    session_name: Annotated[
        str | None,
        typer.Option(callback=_session, help="With --enable-recording \\[default: sim_<time>]."),
    ] = None,
    require_recorder: Annotated[
        bool,
        typer.Option(
            "--require-recorder",
            help="Exit 3 when no recorder confirmed receipt at the end (nothing was recorded).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Simulate one brain module and publish its spikes, membranes, weights and control state."""
    if require_recorder and flush_timeout <= 0:
        raise typer.BadParameter(
            "needs the flush barrier (--flush-timeout > 0)", param_hint="'--require-recorder'"
        )
    sizes: tuple[int, ...] | None = None
    if layer_sizes is not None:
        try:
            parsed = [int(part) for part in layer_sizes.split(",")]
            sizes = resolve_layer_sizes(SPECS[module_type], parsed)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--layer-sizes'") from None
    recording = None
    if enable_recording:
        recording = RecordingOptions(
            session_name=session_name or time.strftime("sim_%Y%m%d_%H%M%S"),
            recording_dir=recording_dir,
            record_spikes=record_spikes,
            record_membrane=record_membrane,
            record_weights=record_weights,
            record_control=record_control,
        )
        # Give the recorder (ours, or the one already recording the session) time to
        # subscribe, so that step 0 is recorded.
        wait_subscribers = wait_subscribers or 20.0
    opts = NodeOptions(
        node_id=node_id,
        module_type=module_type.value,
        steps=steps,
        seed=seed,
        dt_ms=dt,
        layer_sizes=sizes,
        speed=speed,
        prefix=prefix,
        control_interval=control_interval,
        weight_interval=weight_interval,
        wait_subscribers_s=wait_subscribers,
        summary_json=summary_json,
        flush_timeout_s=flush_timeout,
        recording=recording,
        bus=BusOptions(
            mode=None if mode is None else mode.value,
            connect=None if connect is None else tuple(connect),
            listen=None if listen is None else tuple(listen),
            config_file=zenoh_config,
            congestion=congestion.value,
        ),
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        summary = run_node(opts)
    except BusConfigError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except BusError as exc:
        logging.getLogger("brain_nodes").error("%s", exc)
        raise typer.Exit(EXIT_BUS) from None
    if require_recorder and not summary["flush_confirmations"]:
        logging.getLogger("brain_nodes").error(
            "--require-recorder: no recorder confirmed receipt; exiting %d", EXIT_NOT_RECORDED
        )
        raise typer.Exit(EXIT_NOT_RECORDED)


def main() -> None:
    """Entry point of the ``brain-node`` console script."""
    app(prog_name="brain-node")
