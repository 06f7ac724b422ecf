"""From flat spikes to neurons: rank lookup in the recorded neurons, per-neuron trains."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analysis.statistics._common import BoolArray, FloatArray, IntArray, as_spikes


def neuron_ranks(neurons: npt.ArrayLike, neuron_ids: npt.ArrayLike) -> tuple[IntArray, BoolArray]:
    """Position of each spike's neuron in the recorded neurons, and which spikes have one.

    Parameters
    ----------
    neurons : array_like of int
        The recorded neurons, one-dimensional, without duplicates (typically the
        layer's sorted ``recorded_neurons``). Any order; sorted ascending saves a sort.
    neuron_ids : array_like of int
        Neuron of each spike, one-dimensional, any order and integer dtype.

    Returns
    -------
    rank : numpy.ndarray of int64
        Same length as ``neuron_ids``: where ``hit`` is true, the index ``i`` with
        ``neurons[i] == neuron_ids[k]``; elsewhere an arbitrary value (0 when
        ``neurons`` is empty), not to be used.
    hit : numpy.ndarray of bool
        Whether the spike's neuron is in ``neurons``. All false for an empty
        ``neurons``.

    Notes
    -----
    One ``searchsorted`` of the ids in ``neurons`` (through a stable ``argsort`` when
    ``neurons`` is not sorted); nothing is cast, so mixed integer dtypes compare as
    numpy does. ``rank[hit]`` is ready for ``np.bincount(..., minlength=len(neurons))``.
    """
    nrn = np.asarray(neurons)
    ids = np.asarray(neuron_ids)
    if nrn.size == 0:
        return np.zeros(ids.shape, dtype=np.int64), np.zeros(ids.shape, dtype=np.bool_)
    last = nrn.size - 1
    if np.all(nrn[:-1] <= nrn[1:]):
        rank = np.minimum(np.searchsorted(nrn, ids), last)
    else:
        sorter = np.argsort(nrn, kind="stable")
        rank = sorter[np.minimum(np.searchsorted(nrn, ids, sorter=sorter), last)]
    hit: BoolArray = nrn[rank] == ids
    return rank.astype(np.int64, copy=False), hit


def spike_trains(
    times_ms: npt.ArrayLike, neuron_ids: npt.ArrayLike, neurons: npt.ArrayLike
) -> list[FloatArray]:
    """Split flat spikes into one sorted spike-time array per neuron.

    Parameters
    ----------
    times_ms : array_like of float
        Spike times in ms, any order.
    neuron_ids : array_like of int
        Neuron of each spike (index within the layer), same length as ``times_ms``.
    neurons : array_like of int
        The neurons to return trains for, without duplicates (typically the layer's
        ``recorded_neurons``). Spikes of neurons not listed are ignored.

    Returns
    -------
    list of numpy.ndarray
        ``trains[i]`` holds the sorted spike times (ms, float64) of ``neurons[i]``;
        empty for a silent neuron. The arrays are views into one sorted copy of
        ``times_ms``.

    Notes
    -----
    One ``lexsort`` of all spikes by (neuron, time) and a ``searchsorted`` per neuron
    boundary; the only Python loop is over neurons.
    """
    t, ids, nrn = as_spikes(times_ms, neuron_ids, neurons)
    order = np.lexsort((t, ids))
    t_sorted = t[order]
    ids_sorted = ids[order]
    lo = np.searchsorted(ids_sorted, nrn, side="left")
    hi = np.searchsorted(ids_sorted, nrn, side="right")
    return [t_sorted[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
