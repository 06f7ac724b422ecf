"""``recorderd`` command line: flags mirroring the recording guide, over env and a file."""

from __future__ import annotations

import logging
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from recorderd.daemon.lifecycle import Daemon, ExitCode
from recorderd.daemon.loops import run
from recorderd.daemon.settings import SettingsError, load_settings
from recorderd.session.schema import COMPRESSIONS

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


#: The compression choices as the CLI lists them (defined once, in the session schema).
CompressionChoice = StrEnum("CompressionChoice", {c: c for c in COMPRESSIONS})  # type: ignore[misc]


class OverflowChoice(StrEnum):
    """What a full intake does."""

    drop = "drop"
    block = "block"


def _configure_logging(level: str) -> None:
    # One line per event, no timestamps when journald adds its own.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if sys.stderr.isatty():
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)


@app.command()
def record(
    session: Annotated[
        str | None, typer.Option("--session", "--session-name", help="Session name [sim_<time>]")
    ] = None,
    recording_dir: Annotated[
        Path | None, typer.Option(help="Recording directory [./sim_recordings]")
    ] = None,
    record_spikes: Annotated[
        bool | None, typer.Option("--record-spikes/--no-record-spikes", help="[on]")
    ] = None,
    record_membrane: Annotated[
        bool | None, typer.Option("--record-membrane/--no-record-membrane", help="[off]")
    ] = None,
    record_weights: Annotated[
        bool | None, typer.Option("--record-weights/--no-record-weights", help="[off]")
    ] = None,
    record_control: Annotated[
        bool | None, typer.Option("--record-control/--no-record-control", help="[on]")
    ] = None,
    spike_subsample_rate: Annotated[
        float | None, typer.Option(help="Fraction of neurons recorded [1]")
    ] = None,
    membrane_subsample_rate: Annotated[
        float | None, typer.Option(help="Fraction of neurons recorded [1]")
    ] = None,
    subsample_seed: Annotated[
        int | None, typer.Option(help="Seed of the neuron selection [0]")
    ] = None,
    max_duration: Annotated[float | None, typer.Option(help="Stop after this many seconds")] = None,
    buffer_size: Annotated[
        int | None, typer.Option(help="Messages per stream per write [1000]")
    ] = None,
    compression: Annotated[CompressionChoice | None, typer.Option(help="[gzip]")] = None,
    compression_level: Annotated[int | None, typer.Option(help="gzip level 0-9 [4]")] = None,
    flush_interval: Annotated[
        float | None, typer.Option(help="Seconds between flushes [1]")
    ] = None,
    prefix: Annotated[str | None, typer.Option(help="Key-expression prefix [brain]")] = None,
    mode: Annotated[
        str | None, typer.Option(help="Zenoh mode: peer, client or router [peer]")
    ] = None,
    connect: Annotated[list[str] | None, typer.Option(help="Zenoh endpoint to connect to")] = None,
    listen: Annotated[
        list[str] | None, typer.Option(help="Zenoh endpoint to listen on [tcp/127.0.0.1:7447]")
    ] = None,
    zenoh_config: Annotated[Path | None, typer.Option(help="Zenoh JSON5 config file")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Recorder settings file (TOML)")
    ] = None,
    max_streams: Annotated[
        int | None, typer.Option(help="Most streams recorded (data and control) [4096]")
    ] = None,
    max_streams_per_node: Annotated[
        int | None, typer.Option(help="Most streams recorded per node [256]")
    ] = None,
    on_overflow: Annotated[
        OverflowChoice | None,
        typer.Option(help="When the intake is full: drop (counted) or block the bus [drop]"),
    ] = None,
    intake_max_mb: Annotated[
        float | None,
        typer.Option(help="MB of received payloads queued at most [1/16 of RAM, <= 512]"),
    ] = None,
    min_free_disk_mb: Annotated[
        float | None, typer.Option(help="Stop cleanly when less is free on the disk, MB [100]")
    ] = None,
    wait_for_lock: Annotated[
        bool | None,
        typer.Option("--wait-for-lock", help="If another process records the session, stand by"),
    ] = None,
    parent_pid: Annotated[
        int | None,
        typer.Option(help="With --wait-for-lock: stop standing by once this parent process exits"),
    ] = None,
    stop_when_idle: Annotated[
        float | None,
        typer.Option(help="Stop once no brain node has been alive for this many seconds"),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR [INFO]")
    ] = None,
) -> None:
    """Record every brain node on the Zenoh bus into <recording-dir>/<session>/."""
    try:
        settings = load_settings(
            config,
            session=session,
            recording_dir=recording_dir,
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
    daemon = Daemon(settings)
    code = run(daemon.serve())
    if daemon.pipeline.error is not None or daemon.drain_timed_out:
        # The HDF5 file was abandoned after an I/O error, or the writer thread is still
        # inside h5py: exiting normally would run h5py's destructors, which write to the
        # file (and can crash or hang the interpreter).
        logging.shutdown()
        sys.stderr.flush()
        os._exit(int(code))
    raise typer.Exit(int(code))


def main() -> None:
    """Console-script entry point."""
    app()
