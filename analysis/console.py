"""Tables for the terminal and for text files, drawn with rich.

Columns are measured by rich, so long stream names never push a row out of line (the
fixed-width f-strings they replace did). On a terminal the tables fit its width
(cells wrap); written to a pipe or a file they take the width their content needs,
so nothing wraps in scripts and logs. Markup is off: names from the session are
printed as they are.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Sequence
from typing import IO, TYPE_CHECKING, Any, Final

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from analysis.formats import fmt_bytes, fmt_duration
from analysis.info import LOSS_COUNTERS
from recorderd.session import layout as L

if TYPE_CHECKING:
    from analysis.info import SessionInfo

#: Tables of more rows than this are laid out as plain text (:class:`PlainTable`).
PLAIN_ROWS: Final = 200
#: Width bounds of text written to pipes and files.
MIN_WIDTH: Final = 80
MAX_WIDTH: Final = 400
STATE_STYLE: Final = {
    "finished": "green",
    "recording": "yellow",
    "crashed, recovered": "yellow",
    "crashed, recoverable": "red",
    "crashed, read-only": "red",
}


def natural_width(renderables: Sequence[RenderableType]) -> int:
    """The width the renderables need so that no cell wraps (bounded)."""
    probe = Console(width=MAX_WIDTH, file=io.StringIO(), markup=False, highlight=False)
    widest = max((probe.measure(r).maximum for r in renderables), default=MIN_WIDTH)
    return max(MIN_WIDTH, min(MAX_WIDTH, widest))


def print_renderables(renderables: Sequence[RenderableType], file: IO[str] | None = None) -> None:
    """Print to a terminal at its width (with colour), elsewhere at the natural width."""
    out = file if file is not None else sys.stdout
    if not out.isatty():
        out.write(to_text(renderables))
        return
    console = Console(file=out, markup=False, highlight=False, soft_wrap=False)
    for r in renderables:
        console.print(r, crop=not isinstance(r, PlainTable))  # long plain rows: not cut


def to_text(renderables: Sequence[RenderableType]) -> str:
    """Plain text (no colour codes) at the natural width, for ``report.txt``."""
    buf = io.StringIO()
    console = Console(
        file=buf,
        width=natural_width(renderables),
        markup=False,
        highlight=False,
        color_system=None,
        soft_wrap=False,
    )
    for r in renderables:
        console.print(r, crop=not isinstance(r, PlainTable))
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


def table(
    columns: Sequence[str | tuple[str, str]],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    min_widths: dict[str, int] | None = None,
    no_wrap: set[str] | None = None,
) -> Table | PlainTable:
    """A table; ``columns`` are names (left aligned) or ``(name, "right")``.

    Cells fold when the table is wider than the console, except in ``no_wrap`` columns.
    Above :data:`PLAIN_ROWS` rows it is a :class:`PlainTable` (the same text, no folding).
    """
    rows = list(rows)
    if len(rows) > PLAIN_ROWS:
        return PlainTable(columns, rows, title=title, min_widths=min_widths)
    t = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )
    for col in columns:
        name, justify = (col, "left") if isinstance(col, str) else col
        t.add_column(
            name,
            justify=justify,  # type: ignore[arg-type]
            overflow="fold",
            no_wrap=name in (no_wrap or set()),
            min_width=(min_widths or {}).get(name),
        )
    for row in rows:
        t.add_row(*(c if isinstance(c, Text) else Text(str(c)) for c in row))
    return t


class PlainTable:
    """A table laid out as rich lays out :func:`table`'s (columns 3 spaces apart, a rule
    under the header), in one pass over the rows: rich's layout costs about 1 ms per row
    (5 s for 5,000 streams), this a few microseconds. Its cells never fold: on a narrow
    terminal its lines wrap. No colours."""

    def __init__(
        self,
        columns: Sequence[str | tuple[str, str]],
        rows: Sequence[Sequence[Any]],
        *,
        title: str | None = None,
        min_widths: dict[str, int] | None = None,
    ) -> None:
        names = [c if isinstance(c, str) else c[0] for c in columns]
        right = [not isinstance(c, str) and c[1] == "right" for c in columns]
        cells = [[str(c) for c in row] for row in rows]  # Text: its plain string
        widths = [max(cell_len(h), (min_widths or {}).get(h) or 0) for h in names]
        for row in cells:
            widths = [max(w, cell_len(c)) for w, c in zip(widths, row, strict=True)]

        def line(row: Sequence[str]) -> str:
            padded = (
                " " * (w - cell_len(c)) + c if r else c + " " * (w - cell_len(c))
                for c, w, r in zip(row, widths, right, strict=True)
            )
            return "   ".join(padded)

        self.width = sum(widths) + 3 * (len(widths) - 1)
        head = [title] if title else []
        self.lines = [*head, line(names), "─" * self.width, *(line(r) for r in cells)]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for text in self.lines:
            yield Segment(text)
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)


def key_values(pairs: Iterable[tuple[str, str | Text]]) -> Table:
    """Two columns: a bold label and its value."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for k, v in pairs:
        grid.add_row(Text(k), v if isinstance(v, Text) else Text(v))
    return grid


def n(x: int | None) -> str:
    return "-" if x is None else f"{x:,}"


def rate(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def info_renderables(info: SessionInfo) -> list[RenderableType]:
    """``sim-analyzer info``: a header, the nodes and one row per stream."""
    t = info.totals
    sim = (
        "no data"
        if info.sim_t_start_ms is None
        else f"{info.sim_t_start_ms:.1f} - {info.sim_t_stop_ms:.1f} ms "
        f"({fmt_duration(info.sim_duration_s)} recorded)"
    )
    wall_end = info.stop_time_utc or (
        f"{info.last_write_utc} (last flush)" if info.last_write_utc else "?"
    )
    state = Text(info.state, style=STATE_STYLE.get(info.state, ""))
    state.append(f": {info.state_detail}", style="")
    integrity = Text(info.integrity, style="green" if info.complete else "red")
    s = info.settings
    sub = (
        f"spikes {s['spike_subsample_rate']}, membrane {s['membrane_subsample_rate']}, "
        f"seed {s['subsample_seed']}"
        if s.get("spike_subsample_rate") is not None
        else f"seed {s.get('subsample_seed')}"
    )
    bps = "-" if info.bytes_per_spike is None else f"{info.bytes_per_spike:.2f} B/spike"
    header = key_values(
        [
            ("Session", f"{info.session}  ({info.path})"),
            ("State", state),
            ("Format", f"{L.FORMAT_NAME} v{info.format_version}"),
            (
                "Wall time",
                f"{info.start_time_utc or '?'} -> {wall_end} ({fmt_duration(info.wall_s)})",
            ),
            ("Simulated", sim),
            (
                "Recorder",
                f"{info.recorder_runs} run(s); recorderd "
                f"{info.recorder_version or 'version not stored'} "
                f"(read with {info.analysis_version})",
            ),
            (
                "Storage",
                f"{info.compression}; file {fmt_bytes(info.file_bytes)}; spike datasets "
                f"{fmt_bytes(info.spike_bytes)} = {bps}",
            ),
            ("Subsampling", sub),
            *(
                [
                    (
                        "Shards",
                        "; ".join(
                            f"{s['shard'] or '(unsharded)'} ({', '.join(s['nodes'])}): "
                            f"{s['file']} {fmt_bytes(s['bytes'])}"
                            for s in info.shards
                        ),
                    )
                ]
                if info.shards
                else []
            ),
            (
                "Totals",
                f"{t['spikes']:,} spikes in {t['messages']:,} data messages, "
                f"{len(info.nodes)} node(s), {len(info.streams)} stream(s)",
            ),
            ("Integrity", integrity),
        ]
    )
    nodes = table(
        [
            "node",
            "module",
            ("dt (ms)", "right"),
            ("incarnations", "right"),
            ("streams", "right"),
            ("control states", "right"),
        ],
        (
            [
                nd.node_id,
                nd.module_type or "?",
                "-" if nd.dt_ms is None else f"{nd.dt_ms:g}",
                nd.incarnations,
                nd.streams,
                n(nd.control_states),
            ]
            for nd in info.nodes
        ),
        title="Nodes",
    )
    # Loss columns only where a stream lost something: the table fits a terminal.
    losses = [c for c in LOSS_COUNTERS if any(st.counters.get(c) for st in info.streams)]
    no_stats = any(not st.counters for st in info.streams)
    shown = list(LOSS_COUNTERS) if no_stats and info.streams else losses
    cols: list[str | tuple[str, str]] = ["node", "kind", "name", ("size", "right")]
    cols += [("rec.", "right"), ("msgs", "right"), ("spikes", "right")]
    cols += [("Hz", "right"), *((c, "right") for c in shown)]
    rows: list[list[str | Text]] = []
    for i, st in enumerate(info.streams):
        first = i == 0 or info.streams[i - 1].node_id != st.node_id  # a node names its group
        rows.append(
            [
                Text(st.node_id if first else "", style="bold"),
                st.kind,
                st.name,
                "x".join(str(x) for x in st.shape),
                n(st.recorded_neurons),
                n(st.messages),
                n(st.spikes),
                rate(st.rate_hz),
                *(n(st.counters.get(c)) if st.counters else "?" for c in shown),
            ]
        )
    streams = table(
        cols,
        rows,
        title="Streams",
        no_wrap={c if isinstance(c, str) else c[0] for c in cols[3:]} | {"kind"},
    )
    legend = (
        "size: layer size (weights: rows x cols); rec.: neurons recorded; msgs: messages; "
        "Hz: spikes per recorded neuron per second of recorded time"
    )
    if no_stats:
        note = "?: no recording_statistics.json entry for the stream"
    elif losses:
        note = "loss counters: recording_statistics.json, summed over all recorder runs"
    else:
        note = "no message missing, duplicated, dropped, rejected or stale in any stream"
    if not info.nodes:
        return [header, Text(""), Text("No nodes recorded.")]
    out: list[RenderableType] = [header, Text(""), nodes, streams, Text(legend), Text(note)]
    if info.rejected:
        out.append(Text("rejected: " + ", ".join(f"{k} {v:,}" for k, v in info.rejected.items())))
    return out
