"""The recording guide's in-process API: record from inside a simulation, no daemon.

``RecorderConfig``, ``SimulationRecorder``, ``set_global_recorder`` and
``get_global_recorder``, also importable from ``recorderd`` itself.
"""

from __future__ import annotations

from recorderd.embed.api import (
    RecorderConfig,
    SimulationRecorder,
    get_global_recorder,
    set_global_recorder,
)

__all__ = ["RecorderConfig", "SimulationRecorder", "get_global_recorder", "set_global_recorder"]
