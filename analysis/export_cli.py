"""``sim-analyzer export``: SONATA and NWB exports of a session (see ``docs/exports.md``).

Exit codes: 0 done, 1 other analysis error, 2 not a (readable) session or unknown
population, 3 an optional package is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from analysis.export import (
    MissingDependencyError,
    UnknownPopulationError,
    export_nwb,
    export_sonata,
)
from analysis.reader import AnalysisError, NotASessionError, UnsupportedFormatError

export_app = typer.Typer(
    help="Export a recorded session to other formats.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _run(action: Callable[[], object]) -> None:
    """Run an export and map its errors to one-line messages and exit codes."""
    try:
        action()
    except (NotASessionError, UnsupportedFormatError, UnknownPopulationError) as exc:
        _fail(2, str(exc))
    except MissingDependencyError as exc:
        _fail(3, str(exc))
    except (AnalysisError, OSError) as exc:
        _fail(1, str(exc))


@export_app.command("sonata")
def sonata(
    session_dir: Annotated[Path, typer.Argument(help="Session folder")],
    out: Annotated[Path, typer.Argument(help="SONATA spike file to write (.h5)")],
    population: Annotated[
        list[str] | None,
        typer.Option("--population", "-p", help="Only this <node_id>.<layer> (repeatable)"),
    ] = None,
) -> None:
    """Write the spikes as a SONATA spike file (by_time, uncompressed, libsonata-readable)."""
    counts: dict[str, int] = {}
    _run(lambda: counts.update(export_sonata(session_dir, out, populations=population or None)))
    typer.echo(f"{out}: {sum(counts.values())} spikes in {len(counts)} populations")


@export_app.command("nwb")
def nwb(
    session_dir: Annotated[Path, typer.Argument(help="Session folder")],
    out: Annotated[Path, typer.Argument(help="NWB file to write (.nwb)")],
    weights: Annotated[
        bool, typer.Option("--weights/--no-weights", help="Also export weight snapshots")
    ] = False,
) -> None:
    """Write units, control-state intervals and membrane series as NWB (needs pynwb)."""
    _run(lambda: export_nwb(session_dir, out, include_weights=weights))
    typer.echo(f"{out}: written")
