"""brain_nodes: simulated spiking brain modules that publish on a Zenoh bus.

Importing this package is cheap and zenoh-free; the simulation API for re-running a
module in-process is re-exported here.
"""

from __future__ import annotations

from brain_nodes.modules import SPECS, BrainModule, ControlSnapshot, ModuleType, simulate

__all__ = ["SPECS", "BrainModule", "ControlSnapshot", "ModuleType", "simulate"]
