"""recorderd: record distributed spiking-brain simulations from a Zenoh bus into HDF5.

Importing this package is cheap: it imports neither zenoh nor h5py.
"""

from __future__ import annotations

__version__ = "0.1.0"
