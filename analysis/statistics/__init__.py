"""Spike-train statistics on plain numpy arrays, modeled on ``elephant.statistics``.

Pure functions: no I/O, no plotting, no neo/quantities objects. Times are floats in
milliseconds; rates come out in Hz. A recorded population is described the way
:class:`analysis.reader.SessionReader` returns it: flat ``times_ms`` and
``neuron_ids`` arrays, the sorted ``recorded_neurons`` of the layer (silent recorded
neurons count in every denominator) and a span ``[t_start, t_stop)`` in ms.

Every public name is importable from this package; the modules group them by topic:

* :mod:`~analysis.statistics.trains`: :func:`neuron_ranks`, :func:`spike_trains`.
* :mod:`~analysis.statistics.rates`: :class:`FiringRates`, :func:`mean_firing_rate`,
  :func:`time_histogram`, :func:`instantaneous_rate`.
* :mod:`~analysis.statistics.binning`: :data:`BINNING_TOLERANCE`, :func:`n_bins`, :func:`bin_index`,
  :func:`binned_spike_counts`, :func:`gaussian_kernel`.
* :mod:`~analysis.statistics.intervals`: :func:`isi`, :func:`cv`, :func:`cv2`,
  :func:`lv`, :func:`fano_factor`.
* :mod:`~analysis.statistics.correlation`: :class:`PairCorrelations`,
  :func:`binned_correlation`, :func:`count_correlation`, :func:`synchrony_chi`,
  :func:`synchrony_over_time`.
* :mod:`~analysis.statistics.behaviour`: :func:`control_dwell_times`,
  :func:`control_transitions`, :func:`task_active_ratio`.

Conventions shared with Elephant 1.2 (``elephant.statistics``,
``elephant.conversion.BinnedSpikeTrain``, ``elephant.spike_train_correlation``), which
the tests use as the reference implementation:

* Binning (:func:`time_histogram`, :func:`binned_spike_counts`,
  :func:`binned_correlation`, :func:`synchrony_chi`, :func:`instantaneous_rate`) follows
  ``BinnedSpikeTrain``: ``n_bins = floor((t_stop - t_start) / bin_ms)``, so a last
  partial bin is dropped together with its spikes (Elephant warns "Binning discarded
  ... spike(s)"; these functions do not); bin ``k`` is
  ``[t_start + k*bin_ms, t_start + (k+1)*bin_ms)``; a spike that lies less than
  ``BINNING_TOLERANCE`` bin widths below a bin edge is moved into the bin above (so
  spike times on a simulation time grid that land on a bin edge up to rounding, such as
  ``0.1 * 2530``, are binned as the exact value would be). The same tolerance rounds
  the number of bins up when the span is a whole number of bins up to rounding.
* ISI variability (:func:`cv`, :func:`cv2`, :func:`lv`) uses Elephant's formulas; CV
  is ``scipy.stats.variation``, i.e. the population standard deviation (``ddof=0``)
  over the mean. Where Elephant raises or warns for fewer than two intervals, these
  functions return ``nan`` (details in :mod:`~analysis.statistics.intervals`).
* :func:`fano_factor` is ``var(counts) / mean(counts)`` with ``ddof=0``; ``nan`` when
  all counts are zero or there are none.
* :func:`binned_correlation` is the Pearson correlation of binned spike *counts*
  (Elephant's ``correlation_coefficient`` default, ``binary=False``); ``nan`` for a
  neuron whose binned counts have zero variance (for example a silent neuron).

Deliberate differences are listed in each function's Notes. Nothing here warns:
degenerate inputs give ``nan`` (documented per function) or raise ``ValueError``.
"""

from __future__ import annotations

from analysis.statistics._common import FloatArray as FloatArray
from analysis.statistics._common import IntArray as IntArray
from analysis.statistics.behaviour import (
    control_dwell_times,
    control_transitions,
    task_active_ratio,
)
from analysis.statistics.binning import (
    BINNING_TOLERANCE,
    bin_index,
    binned_spike_counts,
    gaussian_kernel,
    n_bins,
)
from analysis.statistics.correlation import (
    PairCorrelations,
    binned_correlation,
    count_correlation,
    synchrony_chi,
    synchrony_over_time,
)
from analysis.statistics.correlation import _pair_from_index as _pair_from_index
from analysis.statistics.intervals import cv, cv2, fano_factor, isi, lv
from analysis.statistics.rates import (
    FiringRates,
    instantaneous_rate,
    mean_firing_rate,
    time_histogram,
)
from analysis.statistics.trains import neuron_ranks, spike_trains

__all__ = [
    "BINNING_TOLERANCE",
    "FiringRates",
    "PairCorrelations",
    "bin_index",
    "binned_correlation",
    "binned_spike_counts",
    "control_dwell_times",
    "control_transitions",
    "count_correlation",
    "cv",
    "cv2",
    "fano_factor",
    "gaussian_kernel",
    "instantaneous_rate",
    "isi",
    "lv",
    "mean_firing_rate",
    "n_bins",
    "neuron_ranks",
    "spike_trains",
    "synchrony_chi",
    "synchrony_over_time",
    "task_active_ratio",
    "time_histogram",
]
