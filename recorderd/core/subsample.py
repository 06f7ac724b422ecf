"""Deterministic neuron subsampling: which neurons of a layer are recorded."""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

#: Stored in the file so the analysis can tell how the neurons were chosen.
RULE = (
    "Per stream, k = round(rate * layer_size) neurons are chosen without replacement by "
    "numpy.random.Generator(PCG64(seed)).choice(layer_size, k, replace=False), sorted, where "
    "seed = int.from_bytes(blake2b(f'{subsample_seed}/{kind}/{node_id}/{name}', "
    "digest_size=8).digest(), 'little'). A rate of 1 records every neuron. Chosen neurons "
    "keep every spike (whole spike trains); the others are never recorded."
)


def stream_seed(subsample_seed: int, kind: str, node_id: str, name: str) -> int:
    """Seed of one stream's neuron selection, stable across runs and platforms.

    The selection drawn from it depends on numpy's ``Generator.choice``; the chosen
    neurons are therefore also stored in each stream (``recorded_neurons``).
    """
    text = f"{subsample_seed}/{kind}/{node_id}/{name}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def select_neurons(
    rate: float, layer_size: int, subsample_seed: int, kind: str, node_id: str, name: str
) -> npt.NDArray[np.uint32]:
    """Sorted indices of the recorded neurons of a layer (see :data:`RULE`)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"subsample rate {rate} outside [0, 1]")
    if rate >= 1.0:
        return np.arange(layer_size, dtype=np.uint32)
    k = round(rate * layer_size)
    rng = np.random.Generator(np.random.PCG64(stream_seed(subsample_seed, kind, node_id, name)))
    chosen = rng.choice(layer_size, size=k, replace=False)
    return np.sort(chosen).astype(np.uint32)
