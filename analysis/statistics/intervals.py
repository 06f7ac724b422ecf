"""Inter-spike intervals and their variability (CV, CV2, LV), and the Fano factor.

Fewer than two intervals
    :func:`cv`, :func:`cv2` and :func:`lv` return ``nan`` for fewer than two
    intervals. Elephant's ``cv2`` and ``lv`` raise ``ValueError`` there, or warn and
    return ``nan`` with ``with_nan=True``; its ``cv`` (``scipy.stats.variation``)
    gives ``nan`` with a warning for none and ``0.0`` for one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from analysis.statistics._common import FloatArray, as_times


def isi(times: npt.ArrayLike) -> FloatArray:
    """Inter-spike intervals of one sorted spike train.

    Parameters
    ----------
    times : array_like of float
        Sorted spike times of one neuron.

    Returns
    -------
    numpy.ndarray
        ``np.diff(times)``; empty for fewer than two spikes.

    Notes
    -----
    Elephant's ``isi`` returns negative intervals of an unsorted train with a warning;
    this raises ``ValueError`` instead.
    """
    t = as_times(times, "times")
    intervals = np.diff(t)
    if np.any(intervals < 0):
        raise ValueError("spike times are not sorted (negative inter-spike interval)")
    return intervals


def _intervals(isis: npt.ArrayLike) -> FloatArray | None:
    """The intervals as float64, or None when there are fewer than two."""
    arr = as_times(isis, "isis")
    return arr if arr.size >= 2 else None


def _local_measure(
    isis: npt.ArrayLike, scale: float, term: Callable[[FloatArray], FloatArray]
) -> float:
    """``scale * mean(term((I[i+1] - I[i]) / (I[i+1] + I[i])))``; nan for fewer than two."""
    arr = _intervals(isis)
    if arr is None:
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        cv_i = np.diff(arr) / (arr[:-1] + arr[1:])
        return float(scale * np.mean(term(cv_i)))


def cv(isis: npt.ArrayLike) -> float:
    """Coefficient of variation of inter-spike intervals, ``std / mean`` with ddof=0.

    Parameters
    ----------
    isis : array_like of float
        Inter-spike intervals of one neuron (see :func:`isi`).

    Returns
    -------
    float
        ``np.std(isis) / np.mean(isis)`` as ``elephant.statistics.cv``
        (``scipy.stats.variation``, population std); ``nan`` for fewer than two
        intervals (see *Fewer than two intervals* in the module docstring).
    """
    arr = _intervals(isis)
    if arr is None:
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.std(arr) / np.mean(arr))


def cv2(isis: npt.ArrayLike) -> float:
    """Local coefficient of variation CV2 (Holt et al. 1996).

    Parameters
    ----------
    isis : array_like of float
        Consecutive inter-spike intervals of one neuron.

    Returns
    -------
    float
        ``2 * mean(|I[i+1] - I[i]| / (I[i+1] + I[i]))`` over the ``n - 1`` pairs, as
        ``elephant.statistics.cv2``; ``nan`` for fewer than two intervals (see *Fewer
        than two intervals* in the module docstring).
    """
    return _local_measure(isis, 2.0, np.abs)


def lv(isis: npt.ArrayLike) -> float:
    """Local variation LV (Shinomoto et al. 2003).

    Parameters
    ----------
    isis : array_like of float
        Consecutive inter-spike intervals of one neuron.

    Returns
    -------
    float
        ``3 * mean(((I[i+1] - I[i]) / (I[i+1] + I[i]))**2)`` over the ``n - 1`` pairs,
        as ``elephant.statistics.lv``; ``nan`` for fewer than two intervals (see
        *Fewer than two intervals* in the module docstring).
    """
    return _local_measure(isis, 3.0, lambda c: np.power(c, 2))


def fano_factor(trains_or_counts: Sequence[npt.ArrayLike] | npt.ArrayLike) -> float:
    """Fano factor of spike counts, ``var / mean`` with ddof=0.

    Parameters
    ----------
    trains_or_counts : sequence of arrays, or array_like of numbers
        Either spike trains (one array of spike times per train; its count is its
        length, every spike counted, as Elephant does) or the counts themselves
        (a one-dimensional array or a sequence of numbers).

    Returns
    -------
    float
        ``counts.var() / counts.mean()`` as ``elephant.statistics.fanofactor``;
        ``nan`` for no trains or when every count is zero (as Elephant).

    Notes
    -----
    Elephant warns when ``neo.SpikeTrain`` durations differ; plain arrays carry no
    duration, so make sure the trains cover equally long windows.
    """
    if isinstance(trains_or_counts, np.ndarray) and trains_or_counts.dtype != object:
        if trains_or_counts.ndim != 1:
            raise ValueError("counts must be one-dimensional")
        counts = trains_or_counts
    else:
        items = list(trains_or_counts)  # type: ignore[arg-type]
        dims = {np.ndim(item) for item in items}
        if dims <= {0}:
            counts = np.asarray(items)
        elif dims == {1}:
            sizes = (np.size(item) for item in items)
            counts = np.fromiter(sizes, dtype=np.int64, count=len(items))
        else:
            raise ValueError("give either spike trains (1-D arrays) or counts (numbers)")
    if counts.size == 0 or np.all(counts == 0):
        return math.nan
    return float(counts.var() / counts.mean())
