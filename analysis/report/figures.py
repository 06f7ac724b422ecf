"""A figure of the report: where its PNG is, what it shows (caption), where it belongs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: Figure kinds, in the order a layer's figures appear in the report.
KINDS: Final = ("node_raster", "timeline", "population", "isi", "raster", "membrane", "weights")
#: Headings of the figures of each kind (``{node}``, ``{layer}``).
HEADINGS: Final = {
    "node_raster": "{node}: spike rasters of its layers",
    "raster": "{layer}: spike raster",
    "timeline": "{layer}: firing rate over time",
    "population": "{layer}: population statistics",
    "isi": "{layer}: inter-spike intervals",
    "membrane": "{layer}: membrane potential",
    "weights": "{layer}: weight matrix",
}

#: Captions of figures given as bare paths (``format_html(summary, {node: [paths]})``).
_GENERIC: Final = {
    "raster": "Spike raster, population rate per neuron underneath.",
    "timeline": "Population rate per recorded neuron over time; control states above.",
    "isi": "Histogram of the inter-spike intervals of the recorded neurons.",
    "population": "Rate and ISI CV distributions, correlations and synchrony.",
    "membrane": "Membrane potential of a few recorded neurons.",
    "weights": "A weight snapshot and the norm of every snapshot.",
}


@dataclass(frozen=True)
class ReportFigure:
    """One PNG of the report and its caption."""

    path: Path
    node_id: str
    kind: str
    """One of :data:`KINDS`."""
    caption: str
    layer: str | None = None
    """The layer, membrane stream or weight matrix it shows (None: the whole node)."""
    title: str = ""
    """The file's stem (``<node>_<layer>_<kind>``)."""

    @property
    def heading(self) -> str:
        """What the figure is, in words (``output: firing rate over time``)."""
        fmt = HEADINGS.get(self.kind, "{node} {layer}")
        return fmt.format(node=self.node_id, layer=self.layer or self.node_id)

    @classmethod
    def from_path(cls, path: Path, node_id: str) -> ReportFigure:
        """A figure known only by its file name (``<node>_<layer>_<kind>.png``)."""
        stem = path.stem
        kind = stem.rsplit("_", 1)[-1]
        if stem == f"{node_id}_raster":
            return cls(path, node_id, "node_raster", "Spike rasters of every layer.", None, stem)
        layer = stem[len(node_id) + 1 : -len(kind) - 1] if stem.startswith(node_id) else None
        return cls(path, node_id, kind, _GENERIC.get(kind, ""), layer or None, stem)
