"""Array types, unit constants and argument checks shared by the statistics modules."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MS_PER_S = 1000.0


def as_times(values: npt.ArrayLike, name: str) -> FloatArray:
    """``values`` as a one-dimensional float64 array (spike times or intervals in ms)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def as_ids(values: npt.ArrayLike, name: str) -> IntArray:
    """``values`` as a one-dimensional int64 array (neuron ids)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def as_spikes(
    times_ms: npt.ArrayLike, neuron_ids: npt.ArrayLike, neurons: npt.ArrayLike
) -> tuple[FloatArray, IntArray, IntArray]:
    """Checked flat spikes (times, ids of the same length) and recorded neurons (no duplicates)."""
    t = as_times(times_ms, "times_ms")
    ids = as_ids(neuron_ids, "neuron_ids")
    nrn = as_ids(neurons, "neurons")
    if np.unique(nrn).size != nrn.size:
        raise ValueError("neurons must not contain duplicates")
    if t.shape != ids.shape:
        raise ValueError(f"times_ms {t.shape} and neuron_ids {ids.shape} differ in length")
    return t, ids, nrn


def check_span(t_start: float, t_stop: float) -> None:
    """Raise ``ValueError`` unless ``t_start < t_stop``, both finite."""
    if not (math.isfinite(t_start) and math.isfinite(t_stop)) or t_stop <= t_start:
        raise ValueError(f"need finite t_start < t_stop, got [{t_start}, {t_stop})")


def check_positive(value: float, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive finite number."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")
