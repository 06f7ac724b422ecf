"""``sim-analyzer``: the recording guide's automatic analysis of a session folder.

``sim-analyzer SESSION_DIR`` writes ``report.txt``, ``report.html`` and ``plots/*.png``
into the session folder; ``--no-plots`` skips the figures, ``--json`` prints the summary
on stdout instead of writing anything. ``SESSION_DIR`` is short for
``sim-analyzer analyze SESSION_DIR``: a first argument that is not a command name goes
to ``analyze``, so further command groups (``sim-analyzer export ...``) sit next to it.

Exit codes: 0 done; 1 an analysis or output error; 2 not a session, an unsupported
format version, or bad arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

from analysis import report
from analysis.analyzer import SimulationAnalyzer
from analysis.export_cli import export_app
from analysis.reader import AnalysisError, NotASessionError, UnsupportedFormatError
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
    """A command group that sends a first argument that is no command to ``analyze``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # ctx is click's Context (vendored by typer; not a public type).
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    name=PROG,
    cls=DefaultCommandGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Analyse sessions recorded by recorderd. `sim-analyzer SESSION_DIR` = `analyze`.",
)
app.add_typer(export_app, name="export")


@app.callback()
def _main() -> None:
    """Analyse sessions recorded by recorderd (`sim-analyzer SESSION_DIR` runs `analyze`)."""


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"{PROG}: error: {message}", err=True)
    raise typer.Exit(code)


def _progress(items: Sequence[T], label: str, show: bool) -> Iterable[T]:
    """The items, with a progress bar on stderr if ``show``."""
    with typer.progressbar(items, label=label, file=sys.stderr, hidden=not show) as bar:
        yield from bar


@app.command(DEFAULT_COMMAND)
def analyze(
    session_dir: Annotated[Path, typer.Argument(help="Session folder")],
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the figures")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON; write no file")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write reports here [SESSION_DIR]")
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
) -> None:
    """Report and figures of a session: report.txt, report.html and plots/ in SESSION_DIR."""
    try:
        an = SimulationAnalyzer(session_dir)
    except (NotASessionError, UnsupportedFormatError) as exc:
        _fail(2, str(exc))
    except AnalysisError as exc:
        _fail(1, str(exc))
    with an:
        plots_on = not (no_plots or json_out)
        pops = an.populations()
        # A bar only where someone watches, or for long runs; keeps pipes and logs clean.
        show = sys.stderr.isatty() or len(pops) > PROGRESS_MIN_POPULATIONS
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
                )
            else:
                scans[(node, layer)] = an.scan(node, layer)
        summary = report.build_summary(an, scans)
        if json_out:
            typer.echo(report.to_json(summary))
            return
        target = out or an.session_dir
        try:
            target.mkdir(parents=True, exist_ok=True)
            (target / REPORT_TXT).write_text(report.format_text(summary), encoding="utf-8")
            images: dict[str, list[Path]] = {}
            if plots_on:
                from analysis import plots  # matplotlib only when drawing

                tasks = plots.session_plot_tasks(an, scans, target / L.PLOTS_DIR)
                for node, draw in _progress(tasks, "drawing plots", show):
                    images.setdefault(node, []).append(draw())
            html = report.format_html(summary, images)
            (target / REPORT_HTML).write_text(html, encoding="utf-8")
        except OSError as exc:
            _fail(1, f"cannot write the report: {exc}")
    typer.echo(f"Report: {target / REPORT_TXT}")
    typer.echo(f"HTML:   {target / REPORT_HTML}")
    if plots_on:
        n = sum(len(v) for v in images.values())
        typer.echo(f"Plots:  {n} in {target / L.PLOTS_DIR}")


def main() -> None:
    """Console-script entry point (``sim-analyzer``)."""
    app(prog_name=PROG)
