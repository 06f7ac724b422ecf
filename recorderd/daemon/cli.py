"""``recorderd`` command line: flags mirroring the recording guide, over env and a file."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from recorderd import __version__
from recorderd.daemon.bus import BusConfigError
from recorderd.daemon.lifecycle import Daemon, ExitCode
from recorderd.daemon.loops import run
from recorderd.daemon.settings import RecorderSettings, SettingsError, load_settings
from recorderd.session.schema import COMPRESSIONS

app = typer.Typer(add_completion=True, pretty_exceptions_enable=False)


#: The compression choices as the CLI lists them (defined once, in the session schema).
CompressionChoice = StrEnum("CompressionChoice", {c: c for c in COMPRESSIONS})  # type: ignore[misc]


class OverflowChoice(StrEnum):
    """What a full intake does."""

    drop = "drop"
    block = "block"


def under_systemd() -> bool:
    """Whether this process runs as a systemd service (journald stamps each line itself)."""
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def _configure_logging(level: str) -> None:
    # One line per event; a timestamp on each, except where journald adds its own.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_systemd():
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "none"
    return "none" if value is None else str(value)


def _help(text: str, field: str | None = None, *, shown: str | None = None) -> str:
    """``text`` with its default as ``[default: X]``: ``shown``, or the settings field's.

    Flags default to None (so that the environment and the --config file can apply);
    the default shown is the one that applies when none of them sets the value. The
    bracket is escaped: typer's help is rich markup, where ``[x]`` would vanish.
    """
    if shown is None and field is not None:
        default = RecorderSettings.model_fields[field].get_default(call_default_factory=True)
        shown = _shown(default)
    return text if shown is None else f"{text} \\[default: {shown}]"


def print_version(value: bool) -> None:
    """``--version``: print the version and exit."""
    if value:
        typer.echo(f"recorderd {__version__}")
        raise typer.Exit()


@app.command()
def record(
    session: Annotated[
        str | None,
        typer.Option("--session", "--session-name", help=_help("Session name", shown="sim_<time>")),
    ] = None,
    recording_dir: Annotated[
        Path | None, typer.Option(help=_help("Recording directory", shown="./sim_recordings"))
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help=_help(
                "Record one shard of the session into simulation_data.<SHARD>.h5 "
                "(docs/deployment.md)",
                shown="none: the whole session",
            )
        ),
    ] = None,
    nodes: Annotated[
        list[str] | None,
        typer.Option(
            help=_help(
                "With --shard: node ids this shard records, '*' for any characters, "
                "comma-separated or repeated (pfc-*,visual-*)",
                shown="*",
            )
        ),
    ] = None,
    record_spikes: Annotated[
        bool | None,
        typer.Option("--record-spikes/--no-record-spikes", help=_help("Spikes", "record_spikes")),
    ] = None,
    record_membrane: Annotated[
        bool | None,
        typer.Option(
            "--record-membrane/--no-record-membrane",
            help=_help("Membrane potentials", "record_membrane"),
        ),
    ] = None,
    record_weights: Annotated[
        bool | None,
        typer.Option(
            "--record-weights/--no-record-weights", help=_help("Weight snapshots", "record_weights")
        ),
    ] = None,
    record_control: Annotated[
        bool | None,
        typer.Option(
            "--record-control/--no-record-control",
            help=_help("Control states and node joins/leaves", "record_control"),
        ),
    ] = None,
    spike_subsample_rate: Annotated[
        float | None,
        typer.Option(help=_help("Fraction of neurons recorded", "spike_subsample_rate")),
    ] = None,
    membrane_subsample_rate: Annotated[
        float | None,
        typer.Option(help=_help("Fraction of neurons recorded", "membrane_subsample_rate")),
    ] = None,
    subsample_seed: Annotated[
        int | None, typer.Option(help=_help("Seed of the neuron selection", "subsample_seed"))
    ] = None,
    max_duration: Annotated[
        float | None, typer.Option(help=_help("Stop after this many seconds", "max_duration"))
    ] = None,
    buffer_size: Annotated[
        int | None, typer.Option(help=_help("Messages per stream per write", "buffer_size"))
    ] = None,
    compression: Annotated[
        CompressionChoice | None, typer.Option(help=_help("HDF5 compression", "compression"))
    ] = None,
    compression_level: Annotated[
        int | None, typer.Option(help=_help("gzip level 0-9", "compression_level"))
    ] = None,
    flush_interval: Annotated[
        float | None, typer.Option(help=_help("Seconds between flushes", "flush_interval"))
    ] = None,
    prefix: Annotated[
        str | None, typer.Option(help=_help("Key-expression prefix", "prefix"))
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help=_help("Zenoh mode: peer, client or router", "mode"))
    ] = None,
    connect: Annotated[
        list[str] | None,
        typer.Option(help=_help("Zenoh endpoint to connect to (repeatable)", "connect")),
    ] = None,
    listen: Annotated[
        list[str] | None,
        typer.Option(help=_help("Zenoh endpoint to listen on (repeatable)", "listen")),
    ] = None,
    zenoh_config: Annotated[
        Path | None, typer.Option(help=_help("Zenoh JSON5 config file", "zenoh_config"))
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help=_help("Recorder settings file (TOML)", shown="none")),
    ] = None,
    max_streams: Annotated[
        int | None,
        typer.Option(help=_help("Most streams recorded (data and control)", "max_streams")),
    ] = None,
    max_streams_per_node: Annotated[
        int | None,
        typer.Option(help=_help("Most streams recorded per node", "max_streams_per_node")),
    ] = None,
    on_overflow: Annotated[
        OverflowChoice | None,
        typer.Option(
            help=_help("When the intake is full: drop (counted) or block the bus", "on_overflow")
        ),
    ] = None,
    intake_max_mb: Annotated[
        float | None,
        typer.Option(
            help=_help("MB of received payloads queued at most", shown="1/16 of RAM, <= 512")
        ),
    ] = None,
    min_free_disk_mb: Annotated[
        float | None,
        typer.Option(
            help=_help("Stop cleanly when less is free on the disk, MB", "min_free_disk_mb")
        ),
    ] = None,
    wait_for_lock: Annotated[
        bool | None,
        typer.Option(
            "--wait-for-lock",
            help=_help("If another process records the session, stand by", "wait_for_lock"),
        ),
    ] = None,
    parent_pid: Annotated[
        int | None,
        typer.Option(
            help=_help(
                "With --wait-for-lock: stop standing by once this parent process exits",
                "parent_pid",
            )
        ),
    ] = None,
    stop_when_idle: Annotated[
        float | None,
        typer.Option(
            help=_help(
                "Stop once no brain node has been alive for this many seconds", "stop_when_idle"
            )
        ),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help=_help("DEBUG, INFO, WARNING or ERROR", "log_level"))
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=print_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """Record every brain node on the Zenoh bus into <recording-dir>/<session>/."""
    try:
        settings = load_settings(
            config,
            session=session,
            recording_dir=recording_dir,
            shard=shard,
            nodes=nodes or None,
            record_spikes=record_spikes,
            record_membrane=record_membrane,
            record_weights=record_weights,
            record_control=record_control,
            spike_subsample_rate=spike_subsample_rate,
            membrane_subsample_rate=membrane_subsample_rate,
            subsample_seed=subsample_seed,
            max_duration=max_duration,
            buffer_size=buffer_size,
            compression=compression.value if compression else None,
            compression_level=compression_level,
            flush_interval=flush_interval,
            prefix=prefix,
            mode=mode,
            connect=connect or None,
            listen=listen or None,
            zenoh_config=zenoh_config,
            log_level=log_level.upper() if log_level else None,
            wait_for_lock=wait_for_lock,
            min_free_disk_mb=min_free_disk_mb,
            max_streams=max_streams,
            max_streams_per_node=max_streams_per_node,
            intake_max_mb=intake_max_mb,
            on_overflow=on_overflow.value if on_overflow else None,
            stop_when_idle=stop_when_idle,
            parent_pid=parent_pid,
        )
    except SettingsError as exc:
        typer.echo(f"recorderd: {exc}", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    _configure_logging(settings.log_level)
    try:
        daemon = Daemon(settings)
    except BusConfigError as exc:
        typer.echo(f"recorderd: {exc}", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    code = run(daemon.serve())
    if daemon.pipeline.error is not None or daemon.drain_timed_out:
        # The HDF5 file was abandoned after an I/O error, or the writer thread is still
        # inside h5py: exiting normally would run h5py's destructors, which write to the
        # file (and can crash or hang the interpreter).
        _exit_now(int(code))
    global _closed  # read by main(), once the command has returned
    _closed = True
    raise typer.Exit(int(code))


#: Whether :func:`record` has returned from a session it ran to its end, whatever its exit
#: code: nothing of it is pending (the file, its journal, the control log, the statistics
#: and the Zenoh session are closed, or were never opened).
_closed = False


def _exit_now(code: int) -> NoReturn:
    """End the process at once, without the interpreter's teardown: logs and the standard
    streams are flushed first (a closed or broken stream cannot change the exit code)."""
    with contextlib.suppress(Exception):
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()
    os._exit(code)


def _only_daemon_threads_left() -> bool:
    """Whether an ordinary exit would wait for no thread (it waits for non-daemon ones)."""
    main = threading.main_thread()
    return all(t is main or t.daemon for t in threading.enumerate())


def _open_std_fds() -> None:
    """Open /dev/null on each of descriptors 0-2 that is closed (``recorderd >&-``): a
    socket or pipe would otherwise get that number, and libuv (under uvloop) aborts the
    process when it closes a descriptor below 3 at the stop."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: ``fd``
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def main() -> None:
    """Console-script entry point.

    Once a session has been run to its end and no thread is left that an ordinary exit
    would wait for, the process ends without the interpreter's teardown: with numpy,
    h5py and zenoh-python loaded that teardown costs about 60 ms of CPU at every stop and
    writes nothing (``bench/perf.py`` counts recorderd's CPU to its exit). Other exits,
    such as usage errors, are ordinary ones.
    """
    global _closed  # set by record()
    _closed = False
    _open_std_fds()
    try:
        app(prog_name="recorderd")
    except SystemExit as exc:
        if _closed and isinstance(exc.code, int) and _only_daemon_threads_left():
            _exit_now(exc.code)
        raise
