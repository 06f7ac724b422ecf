"""Export a recorded session to SONATA spikes, NWB and neo (see ``docs/exports.md``).

SONATA export (:mod:`~analysis.export.sonata`) streams the spikes in slices and needs
no optional package. NWB (:mod:`~analysis.export.nwb`, ``pynwb``) and neo
(:mod:`~analysis.export.neo`) are optional: they are imported inside the functions that
use them, and a missing package raises :class:`MissingDependencyError`. Everything is
imported from here: ``from analysis.export import export_sonata``.
"""

from __future__ import annotations

from analysis.export._common import (
    MetadataError,
    MissingDependencyError,
    UnknownPopulationError,
    recording_span,
)
from analysis.export.neo import to_neo
from analysis.export.nwb import NwbMetadata, export_nwb
from analysis.export.sonata import COPY_ROWS, SONATA_MAGIC, SONATA_VERSION, export_sonata

# The SONATA copy step, looked up here by export_sonata: replacing it simulates a failing write.

__all__ = [
    "COPY_ROWS",
    "SONATA_MAGIC",
    "SONATA_VERSION",
    "MetadataError",
    "MissingDependencyError",
    "NwbMetadata",
    "UnknownPopulationError",
    "export_nwb",
    "export_sonata",
    "recording_span",
    "to_neo",
]
