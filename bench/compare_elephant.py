"""Our statistics against Elephant's on one population of a recorded session.

Usage: python bench/compare_elephant.py SESSION_DIR [--node pfc-0] [--layer output]
Prints a markdown table: statistic | ours | Elephant | abs diff. Needs elephant.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from analysis import statistics as S
from analysis.reader import SessionReader


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("session", type=Path)
    parser.add_argument("--node", default="pfc-0")
    parser.add_argument("--layer", default="output")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # Elephant 1.2 / quantities 0.16 deprecation chatter
    import elephant.spike_train_correlation as esc
    import elephant.statistics as es
    import neo
    import quantities as pq
    from elephant.conversion import BinnedSpikeTrain
    from elephant.kernels import GaussianKernel

    with SessionReader(args.session) as r:
        tr = r.spikes(args.node, args.layer)
        neurons = r.recorded_neurons(args.node, args.layer)
        frames = r.frames(args.node, args.layer)
        dt = float(r.stream_attrs(args.node, args.layer)["dt_ms"])
    t0, t1 = float(frames.times_ms[0]), float(frames.times_ms[-1]) + dt
    trains = S.spike_trains(tr.times_ms, tr.neuron_ids, neurons)
    neo_trains = [neo.SpikeTrain(t * pq.ms, t_start=t0 * pq.ms, t_stop=t1 * pq.ms) for t in trains]
    busy = max(range(len(trains)), key=lambda i: trains[i].size)
    isis = S.isi(trains[busy])
    rows: list[tuple[str, float, float]] = []

    rates = S.mean_firing_rate(tr.times_ms, tr.neuron_ids, neurons, t0, t1)
    ele_rates = [float(es.mean_firing_rate(t).rescale("Hz")) for t in neo_trains]
    rows.append(("population mean rate (Hz)", rates.mean_rate_hz, float(np.mean(ele_rates))))
    worst = int(np.argmax(np.abs(rates.rates_hz - ele_rates)))
    rows.append(
        (f"per-neuron rate, worst of {len(trains)} (Hz)", rates.rates_hz[worst], ele_rates[worst])
    )
    _, counts, _ = S.time_histogram(tr.times_ms, t0, t1, 10.0)
    ele_hist = es.time_histogram(neo_trains, 10 * pq.ms).magnitude.ravel()
    diff = int(np.argmax(np.abs(counts - ele_hist)))
    rows.append(
        (f"time_histogram 10 ms, worst of {counts.size} bins", counts[diff], ele_hist[diff])
    )
    _, inst = S.instantaneous_rate(
        tr.times_ms, t0, t1, sigma_ms=5.0, sampling_ms=1.0, n_neurons=len(trains)
    )
    ele_inst = es.instantaneous_rate(neo_trains, 1 * pq.ms, kernel=GaussianKernel(5 * pq.ms))
    ele_inst = ele_inst.rescale("Hz").magnitude.mean(axis=1)
    k = int(np.argmax(np.abs(inst - ele_inst)))
    rows.append(("kernel rate sigma 5 ms, worst sample (Hz)", inst[k], ele_inst[k]))
    rows.append(
        (
            f"ISI mean, neuron {neurons[busy]} (ms)",
            float(isis.mean()),
            float(es.isi(neo_trains[busy]).rescale("ms").magnitude.mean()),
        )
    )
    rows.append(("CV", S.cv(isis), float(es.cv(isis))))
    rows.append(("CV2", S.cv2(isis), float(es.cv2(isis * pq.ms))))
    rows.append(("LV", S.lv(isis), float(es.lv(isis * pq.ms))))
    rows.append(("Fano factor", S.fano_factor(trains), float(es.fanofactor(neo_trains))))
    corr = S.binned_correlation(trains, t0, t1, 5.0)
    ele_corr = esc.correlation_coefficient(BinnedSpikeTrain(neo_trains, bin_size=5 * pq.ms))
    assert corr.matrix is not None
    d = np.nan_to_num(np.abs(corr.matrix - ele_corr), nan=0.0)
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    rows.append((f"correlation 5 ms bins, worst of {d.size}", corr.matrix[i, j], ele_corr[i, j]))

    print(
        f"{args.node}/{args.layer}: {tr.neuron_ids.size} spikes, {len(trains)} neurons, "
        f"{t0:.0f}-{t1:.0f} ms\n"
    )
    print("| statistic | ours | Elephant | abs diff |\n|---|---|---|---|")
    for name, ours, theirs in rows:
        print(f"| {name} | {ours:.12g} | {theirs:.12g} | {abs(ours - theirs):.2g} |")


if __name__ == "__main__":
    main()
