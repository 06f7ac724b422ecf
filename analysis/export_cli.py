"""``sim-analyzer export``: SONATA and NWB exports of a session (see ``docs/exports.md``).

Exit codes: 0 done, 1 other analysis error, 2 not a (readable) session, an unknown
population or bad metadata, 3 an optional package is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from analysis.export import (
    MetadataError,
    MissingDependencyError,
    NwbMetadata,
    UnknownPopulationError,
    export_nwb,
    export_sonata,
)
from analysis.paths import did_you_mean
from analysis.reader import AnalysisError, NotASessionError, UnsupportedFormatError

export_app = typer.Typer(
    help="Export a recorded session to other formats.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _run(action: Callable[[], object], session_dir: Path | None = None) -> None:
    """Run an export and map its errors to one-line messages and exit codes."""
    try:
        action()
    except NotASessionError as exc:
        _fail(2, f"{exc}{did_you_mean(session_dir) if session_dir is not None else ''}")
    except (UnsupportedFormatError, UnknownPopulationError, MetadataError) as exc:
        _fail(2, str(exc))
    except MissingDependencyError as exc:
        _fail(3, str(exc))
    except (AnalysisError, OSError) as exc:
        _fail(1, str(exc))


SessionArg = Annotated[
    Path,
    typer.Argument(help="Session folder (or its simulation_data.h5)", metavar="SESSION_DIR"),
]


def _pairs(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            _fail(2, f"--rename takes SESSION_NAME=NEW_NAME, got {item!r}")
        out[old] = new
    return out


@export_app.command("sonata")
def sonata(
    session_dir: SessionArg,
    out: Annotated[Path, typer.Argument(help="SONATA spike file to write (.h5)", metavar="OUT")],
    population: Annotated[
        list[str] | None,
        typer.Option("--population", "-p", help="Only this <node_id>.<layer> (repeatable)"),
    ] = None,
    compress: Annotated[
        bool,
        typer.Option(
            "--compress/--no-compress",
            help="gzip the datasets (h5py, bmtk; the libsonata wheel cannot read them)",
        ),
    ] = False,
    rename: Annotated[
        list[str] | None,
        typer.Option(
            "--rename",
            help="Write population OLD as NEW, e.g. pfc-0.output=PFC_L5 (repeatable)",
            metavar="OLD=NEW",
        ),
    ] = None,
    nodes: Annotated[
        Path | None,
        typer.Option("--nodes", help="Also write a SONATA node file with the same populations"),
    ] = None,
) -> None:
    """Write the spikes as a SONATA spike file (by_time; uncompressed unless --compress)."""
    counts: dict[str, int] = {}
    mapping = _pairs(rename)
    _run(
        lambda: counts.update(
            export_sonata(
                session_dir,
                out,
                populations=population or None,
                compress=compress,
                rename=mapping,
                nodes_path=nodes,
            )
        ),
        session_dir,
    )
    typer.echo(f"{out}: {sum(counts.values())} spikes in {len(counts)} populations")
    if nodes is not None:
        typer.echo(f"{nodes}: node file of the same {len(counts)} populations")


@export_app.command("nwb")
def nwb(
    session_dir: SessionArg,
    out: Annotated[Path, typer.Argument(help="NWB file to write (.nwb)", metavar="OUT")],
    weights: Annotated[
        bool, typer.Option("--weights/--no-weights", help="Also export weight snapshots")
    ] = False,
    metadata: Annotated[
        Path | None,
        typer.Option("--metadata", help="TOML file of NWB metadata (options below override it)"),
    ] = None,
    subject_id: Annotated[str | None, typer.Option(help="Subject id")] = None,
    species: Annotated[
        str | None, typer.Option(help="Subject species, Latin binomial (Mus musculus)")
    ] = None,
    sex: Annotated[str | None, typer.Option(help="Subject sex: M, F, U or O")] = None,
    age: Annotated[str | None, typer.Option(help="Subject age, ISO 8601 duration (P90D)")] = None,
    subject_description: Annotated[str | None, typer.Option(help="Subject description")] = None,
    experimenter: Annotated[
        list[str] | None, typer.Option(help="Experimenter, 'Last, First' (repeatable)")
    ] = None,
    institution: Annotated[str | None, typer.Option(help="Institution")] = None,
    lab: Annotated[str | None, typer.Option(help="Lab")] = None,
    session_description: Annotated[str | None, typer.Option(help="Session description")] = None,
    experiment_description: Annotated[
        str | None, typer.Option(help="Experiment description")
    ] = None,
    keyword: Annotated[list[str] | None, typer.Option(help="Keyword (repeatable)")] = None,
) -> None:
    """Write units, control-state intervals and membrane series as NWB (needs pynwb)."""
    try:
        base = NwbMetadata.from_toml(metadata) if metadata is not None else NwbMetadata()
        meta = base.merged(
            subject_id=subject_id,
            species=species,
            sex=sex,
            age=age,
            subject_description=subject_description,
            experimenter=experimenter,
            institution=institution,
            lab=lab,
            session_description=session_description,
            experiment_description=experiment_description,
            keywords=keyword,
        )
    except MetadataError as exc:
        _fail(2, str(exc))
    _run(lambda: export_nwb(session_dir, out, include_weights=weights, metadata=meta), session_dir)
    typer.echo(f"{out}: written")
    if not meta.has_subject:
        typer.echo(
            "warning: no subject (--subject-id, --species, --sex, --age or --metadata): "
            "nwbinspector and DANDI require one",
            err=True,
        )
