"""recorderd: record distributed spiking-brain simulations from a Zenoh bus into HDF5.

Importing this package is cheap: it imports neither zenoh nor h5py. The recording
guide's in-process API (``RecorderConfig``, ``SimulationRecorder``,
``set_global_recorder``, ``get_global_recorder``) is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "RecorderConfig",
    "SimulationRecorder",
    "__version__",
    "get_global_recorder",
    "set_global_recorder",
]
_API = frozenset(__all__) - {"__version__"}

if TYPE_CHECKING:
    from recorderd.embed import (
        RecorderConfig,
        SimulationRecorder,
        get_global_recorder,
        set_global_recorder,
    )


def __getattr__(name: str) -> Any:
    if name in _API:
        from recorderd import embed

        return getattr(embed, name)
    raise AttributeError(f"module 'recorderd' has no attribute {name!r}")
