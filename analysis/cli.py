"""``sim-analyzer``: the recording guide's automatic analysis of a session folder.

``sim-analyzer SESSION_DIR`` writes ``report.txt``, ``report.html`` and ``plots/*.png``
into the session folder; ``--no-plots`` skips the figures, ``--json`` prints the summary
on stdout instead of writing anything. ``SESSION_DIR`` is short for
``sim-analyzer analyze SESSION_DIR``: a first argument that is not a command name goes
to ``analyze``, so further commands (``sim-analyzer info ...``, ``sim-analyzer export
...``) sit next to it. ``SESSION_DIR`` may also be the session's ``simulation_data.h5``.

Exit codes: 0 done; 1 an analysis or output error; 2 not a session, an unsupported
format version, or bad arguments.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

from analysis import report
from analysis.analyzer import SimulationAnalyzer
from analysis.export_cli import export_app
from analysis.info import package_version, session_info
from analysis.paths import did_you_mean
from analysis.reader import AnalysisError, NotASessionError, UnsupportedFormatError
from analysis.report.figures import ReportFigure
from analysis.sample import SAMPLE_NEURONS
from analysis.scan import DENSITY_THRESHOLD, ISI_EDGES_MS, PopulationScan
from recorderd.session import layout as L

PROG: Final = "sim-analyzer"
DEFAULT_COMMAND: Final = "analyze"
#: Without a terminal on stderr, progress is shown only above this many populations.
PROGRESS_MIN_POPULATIONS: Final = 20
REPORT_TXT: Final = "report.txt"
REPORT_HTML: Final = "report.html"

T = TypeVar("T")


class DefaultCommandGroup(TyperGroup):
    """A command group that sends a first argument that is no command to ``analyze``.

    Options of the group itself (``--help``, ``-h``, ``--version``, the completion
    options) stay with the group.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # ctx is click's Context (vendored by typer; not a public type).
        own = set(ctx.help_option_names)
        for param in self.get_params(ctx):
            own.update(param.opts)
            own.update(param.secondary_opts)
        if args and args[0] not in self.commands and args[0].split("=")[0] not in own:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


HELP_OPTIONS: Final = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name=PROG,
    cls=DefaultCommandGroup,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings=HELP_OPTIONS,
    help=(
        "Analyse sessions recorded by recorderd. `sim-analyzer SESSION_DIR` is short for "
        "`sim-analyzer analyze SESSION_DIR`."
    ),
)
app.add_typer(export_app, name="export")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG} (recorderd) {package_version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """Analyse sessions recorded by recorderd (`sim-analyzer SESSION_DIR` runs `analyze`)."""


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"{PROG}: error: {message}", err=True)
    raise typer.Exit(code)


def _open_error(path: Path, exc: AnalysisError) -> NoReturn:
    """Exit with the error of opening ``path``: 2 (with a hint for a typo), else 1."""
    if isinstance(exc, NotASessionError):
        _fail(2, f"{exc}{did_you_mean(path)}")
    if isinstance(exc, UnsupportedFormatError):
        _fail(2, str(exc))
    _fail(1, str(exc))


def _progress(items: Sequence[T], label: str, show: bool) -> Iterable[T]:
    """The items, with a progress bar on stderr if ``show``."""
    with typer.progressbar(items, label=label, file=sys.stderr, hidden=not show) as bar:
        yield from bar


SessionArg = Annotated[
    Path,
    typer.Argument(
        help="Session folder (or its simulation_data.h5)", metavar="SESSION_DIR", show_default=False
    ),
]


@app.command(DEFAULT_COMMAND)
def analyze(
    session_dir: SessionArg,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the figures")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON; write no file")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write reports here \\[default: SESSION_DIR]")
    ] = None,
    max_neurons: Annotated[
        int, typer.Option(min=1, help="Neurons per raster (spread over the layer)")
    ] = 100,
    bin_size_ms: Annotated[
        float, typer.Option(min=1e-6, help="Bin of the rate timelines (ms)")
    ] = 50.0,
    density_threshold: Annotated[
        int, typer.Option(min=0, help="Spikes in view above which a raster is a density image")
    ] = DENSITY_THRESHOLD,
    t_start: Annotated[
        float | None,
        typer.Option(
            "--t-start",
            help="Start (ms) of the rasters and membrane traces \\[default: a readable window]",
        ),
    ] = None,
    t_stop: Annotated[
        float | None,
        typer.Option("--t-stop", help="End (ms) of the rasters and membrane traces"),
    ] = None,
) -> None:
    """Report and figures of a session: report.txt, report.html and plots/ in SESSION_DIR."""
    if t_start is not None and t_stop is not None and t_stop <= t_start:
        _fail(2, f"--t-stop ({t_stop:g}) must be after --t-start ({t_start:g})")
    try:
        an = SimulationAnalyzer(session_dir)
    except AnalysisError as exc:
        _open_error(session_dir, exc)
    with an:
        plots_on = not (no_plots or json_out)
        pops = an.populations()
        nodes = an.get_recorded_nodes()
        # A bar only where someone watches, or for long runs; keeps pipes and logs clean.
        show = sys.stderr.isatty() or len(pops) > PROGRESS_MIN_POPULATIONS
        try:
            windows = {n: an.raster_window(n, t_start, t_stop) for n in nodes} if plots_on else {}
        except ValueError as exc:
            _fail(2, str(exc))
        scans: dict[tuple[str, str], PopulationScan] = {}
        for node, layer in _progress(pops, "scanning populations", show):
            if plots_on:
                scans[(node, layer)] = an.scan(
                    node,
                    layer,
                    bin_ms=bin_size_ms,
                    raster_neurons=max_neurons,
                    density_threshold=density_threshold,
                    isi_edges_ms=ISI_EDGES_MS,
                    raster_window=windows.get(node),
                    sample_neurons=SAMPLE_NEURONS,
                )
            else:
                scans[(node, layer)] = an.scan(node, layer)
        summary = report.build_summary(an, scans)
        if json_out:
            typer.echo(report.to_json(summary))
            return
        target = out or an.session_dir
        figures: dict[str, list[ReportFigure]] = {}
        try:
            target.mkdir(parents=True, exist_ok=True)
            (target / REPORT_TXT).write_text(report.format_text(summary), encoding="utf-8")
            if plots_on and nodes:
                from analysis import plot_tasks  # matplotlib only when drawing

                tasks = plot_tasks.session_plot_tasks(an, scans, target / L.PLOTS_DIR, windows)
                for node, draw in _progress(tasks, "drawing plots", show):
                    figures.setdefault(node, []).append(draw())
            html = report.format_html(summary, figures)
            (target / REPORT_HTML).write_text(html, encoding="utf-8")
        except OSError as exc:
            _fail(1, f"cannot write the report: {exc}")
    typer.echo(f"Report: {target / REPORT_TXT}")
    typer.echo(f"HTML:   {target / REPORT_HTML}")
    if not nodes:
        typer.echo("No nodes recorded in this session: nothing to plot.")
    elif plots_on:
        n = sum(len(v) for v in figures.values())
        typer.echo(f"Plots:  {n} in {target / L.PLOTS_DIR}")


@app.command("info")
def info(
    session_dir: SessionArg,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """One-screen summary of a session (state, spans, nodes, streams); reads no spike."""
    try:
        summary = session_info(session_dir)
    except AnalysisError as exc:
        _open_error(session_dir, exc)
    if json_out:
        typer.echo(json.dumps(summary.to_dict(), indent=2, allow_nan=False))
        return
    from analysis.console import info_renderables, print_renderables

    print_renderables(info_renderables(summary))


def main() -> None:
    """Console-script entry point (``sim-analyzer``)."""
    app(prog_name=PROG)
