"""``recorderctl play``: a session recorded from real brain nodes, replayed into a second
recorderd (another port, another session), gives the same session, stream by stream.

``pytest -s tests/test_replay.py`` prints the per-stream comparison tables.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis.reader import SessionReader
from recorderd.session import layout as L
from recorderd.session.frames import Frames
from tests.helpers import free_port
from tests.processes import brain_node, recorderd, stop

STEPS = 300
#: (node id, module, layer sizes, seed): small layers, a few hundred steps.
NODES = [("pfc-0", "pfc", "30,40,20", 1), ("visual-0", "visual", "50,60,10", 2)]
RECORD_ALL = ("--record-membrane", "--record-weights", "--flush-interval", "0.2")
KINDS = (L.SPIKES, L.MEMBRANE, L.WEIGHTS)


def ctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorderd.daemon.ctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def record_nodes(
    tmp: Path, session: str, recorder_args: tuple[str, ...], nodes: list[tuple[str, str, str, int]]
) -> Path:
    """Record ``nodes`` (``STEPS`` steps each, as fast as they go) under recorderd."""
    tmp.mkdir(parents=True, exist_ok=True)
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    args = ("--session", session, "--recording-dir", str(tmp), "--listen", endpoint)
    with recorderd(tmp, *args, *recorder_args, name=f"recorderd-{session}") as rec:
        procs = [
            brain_node(
                *("--node-id", node, "--module-type", module, "--layer-sizes", sizes),
                *("--seed", str(seed), "--steps", str(STEPS), "--speed", "0"),
                *("--weight-interval", "100", "--connect", endpoint, "--wait-subscribers", "20"),
            )
            for node, module, sizes, seed in nodes
        ]
        assert [p.wait(timeout=120) for p in procs] == [0] * len(procs)
        assert stop(rec) == 0
    return tmp / session


def play_into(
    tmp: Path, original: Path, session: str, *play_args: str, recorder_args: tuple[str, ...]
) -> tuple[Path, dict[str, Any]]:
    """Replay ``original`` with ``recorderctl play`` into a new recorderd session."""
    tmp.mkdir(parents=True, exist_ok=True)
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    args = ("--session", session, "--recording-dir", str(tmp), "--listen", endpoint)
    with recorderd(tmp, *args, *recorder_args, name=f"recorderd-{session}") as rec:
        res = ctl("play", str(original), "--connect", endpoint, "--json", *play_args)
        assert stop(rec) == 0
    assert res.returncode == 0, res.stderr
    return tmp / session, json.loads(res.stdout)


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_nodes(tmp_path_factory.mktemp("original"), "orig", RECORD_ALL, NODES)


def streams_of(r: SessionReader) -> list[tuple[str, str, str]]:
    return [(kind, n, layer) for kind in KINDS for n in r.nodes() for layer in r.layers(n, kind)]


def data_of(r: SessionReader, kind: str, node: str, layer: str) -> Any:
    if kind == L.SPIKES:
        return r.spikes(node, layer).neuron_ids
    if kind == L.MEMBRANE:
        return r.membrane_traces(node, layer).data_mv
    return r.weights(node, layer)[1]


def cut(kind: str, frames: Frames, data: Any, t0: float, t1: float) -> tuple[Frames, Any]:
    """The frames with ``t0 <= time < t1`` and their data."""
    keep = (frames.times_ms >= t0) & (frames.times_ms < t1)
    columns = (getattr(frames, f.name) for f in dataclasses.fields(Frames))
    kept = Frames(*(None if c is None else c[keep] for c in columns))
    if kind != L.SPIKES:
        return kept, data[keep]
    per_frame = np.split(data, np.cumsum(frames.count)[:-1])
    parts = [ids for ids, k in zip(per_frame, keep, strict=True) if k]
    return kept, np.concatenate(parts) if parts else data[:0]


def controls(r: SessionReader, t0: float = -math.inf, t1: float = math.inf) -> dict[str, list[Any]]:
    """Per node, its control states in order, without the recorder's arrival time, those
    with ``t0 <= time < t1``. (Across nodes the log's order is the order the recorder's
    fair intake served them in, not a property of the session.)"""
    out: dict[str, list[Any]] = {}
    for c in r.control_states():
        if t0 <= c["time_ms"] < t1:
            out.setdefault(c["node_id"], []).append(
                {k: v for k, v in c.items() if k != "received_at"}
            )
    return out


def compare(
    a: Path,
    b: Path,
    select: Callable[[str, str, str], bool] = lambda *_: True,
    t0: float = -math.inf,
    t1: float = math.inf,
) -> None:
    """Whether ``b`` holds ``a``'s selected streams (from ``t0`` to ``t1``), and nothing else.

    Prints the comparison table, then fails on any difference.
    """
    rows = []
    bad = []
    with SessionReader(a) as ra, SessionReader(b) as rb:
        expected = [s for s in streams_of(ra) if select(*s)]
        assert streams_of(rb) == expected
        for kind, node, layer in expected:
            fa, da = cut(kind, ra.frames(node, layer, kind), data_of(ra, kind, node, layer), t0, t1)
            fb, db = rb.frames(node, layer, kind), data_of(rb, kind, node, layer)
            same_frames = all(
                np.array_equal(getattr(fa, f), getattr(fb, f))
                for f in ("steps", "times_ms", "seq", "incarnation", "count")
            )
            same_data = np.array_equal(da, db, equal_nan=kind != L.SPIKES)
            unit = "spikes" if kind == L.SPIKES else "values"
            rows.append(
                (
                    f"{node}/{kind}/{layer}",
                    f"{fa.steps.size}/{fb.steps.size}",
                    f"{np.asarray(da).size}/{np.asarray(db).size} {unit}",
                    f"{len(set(fa.incarnation.tolist()))}/{len(set(fb.incarnation.tolist()))}",
                    "equal" if same_frames else "DIFFERENT",
                    "equal" if same_data else "DIFFERENT",
                )
            )
            if not (same_frames and same_data):
                bad.append(rows[-1][0])
        nodes = {n for _, n, _ in expected}
        ca = {n: states for n, states in controls(ra, t0, t1).items() if n in nodes}
        cb = controls(rb)
        rows.append(
            (
                "control states",
                f"{sum(map(len, ca.values()))}/{sum(map(len, cb.values()))}",
                "-",
                "-",
                "-",
                "equal" if ca == cb else "DIFFERENT",
            )
        )
        if ca != cb:
            bad.append("control states")
        totals = rb.statistics()["totals"]
    header = ("stream", "frames a/b", "data a/b", "incarnations", "frames", "data")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{a.name} (a) against its replay {b.name} (b):")
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    assert not bad, f"different: {bad}"
    assert totals["missing"] == totals["duplicates"] == totals["rejected"] == 0


def test_a_replayed_session_equals_the_original(original: Path, tmp_path: Path) -> None:
    copy, result = play_into(
        tmp_path, original, "copy", "--as-fast-as-possible", recorder_args=RECORD_ALL
    )
    assert result["confirmed"] == 1 and result["flush"] == {"pfc-0": ["copy"], "visual-0": ["copy"]}
    compare(original, copy)
    with SessionReader(original) as ra, SessionReader(copy) as rb:
        assert all(len(states) >= 2 for states in controls(rb).values())  # first and last
        for node, module, _sizes, _seed in NODES:
            assert rb.node_info(node)["module_type"] == module
            assert rb.node_info(node)["incarnations"] == ra.node_info(node)["incarnations"]
            for layer in ra.layers(node):
                assert rb.layer_size(node, layer) == ra.layer_size(node, layer)
    streams = result["streams"]
    assert streams["pfc-0/spikes/output"]["messages"] == STEPS
    assert streams["pfc-0/weights/w_input_hidden"]["messages"] == STEPS // 100


def test_filters_select_nodes_streams_and_a_time_window(original: Path, tmp_path: Path) -> None:
    t0, t1 = 100.0, 200.0
    copy, result = play_into(
        tmp_path,
        original,
        "part",
        *("--nodes", "pfc-*", "--streams", "*/spikes/*,*/control"),
        *("--t-start", str(t0), "--t-stop", str(t1), "--rate", "2"),
        recorder_args=RECORD_ALL,
    )

    compare(original, copy, lambda kind, node, _: kind == L.SPIKES and node == "pfc-0", t0, t1)
    with SessionReader(copy) as rb:
        assert list(controls(rb)) == ["pfc-0"]  # compared with the original's by compare()
    assert set(result["streams"]) == {
        "pfc-0/spikes/input",
        "pfc-0/spikes/hidden",
        "pfc-0/spikes/output",
        "pfc-0/control",
    }
    # 99 ms of simulation time at twice the recorded speed.
    assert result["wall_s"] >= 0.99 * (t1 - 1 - t0) / 1000 / 2


def test_pacing_follows_the_recorded_time(original: Path) -> None:
    """No recorder: the replay still paces, warns, and --require-recorder makes it exit 1."""
    nowhere = ("--mode", "peer", "--connect", f"tcp/127.0.0.1:{free_port()}")
    quick = ("--wait-subscribers", "0", "--flush-timeout", "1", "--json")
    one = ctl("play", str(original), *nowhere, *quick, "--nodes", "visual-0", "--rate", "1")
    four = ctl("play", str(original), *nowhere, *quick, "--rate", "4", "--require-recorder")
    assert one.returncode == 0, one.stderr
    assert "no recorder confirmed receipt of the replay" in one.stderr
    assert four.returncode == 1 and "Traceback" not in four.stderr
    span = (STEPS - 1) / 1000
    wall_one, wall_four = json.loads(one.stdout)["wall_s"], json.loads(four.stdout)["wall_s"]
    print(
        f"\n{span:.3f} s recorded: replayed in {wall_one:.3f} s (--rate 1), {wall_four:.3f} s (4)"
    )
    assert span * 0.99 <= wall_one and span / 4 * 0.99 <= wall_four < wall_one


def test_a_subsampled_session_replays_its_recorded_neurons(tmp_path: Path) -> None:
    sub = (
        *("--spike-subsample-rate", "0.5", "--membrane-subsample-rate", "0.5"),
        *("--subsample-seed", "7", "--record-membrane"),
    )
    original = record_nodes(tmp_path / "a", "sub", sub, NODES[:1])
    # The same subsampling chooses the same neurons: the same session again.
    same, _ = play_into(
        tmp_path / "b", original, "same", "--as-fast-as-possible", recorder_args=sub
    )
    compare(original, same)
    # Recorded whole: the unrecorded neurons stay silent (spikes) and NaN (membrane).
    whole, _ = play_into(
        tmp_path / "c", original, "whole", "--as-fast-as-possible", recorder_args=RECORD_ALL
    )
    with SessionReader(original) as ra, SessionReader(whole) as rb:
        for layer in ra.layers("pfc-0"):
            assert np.array_equal(
                ra.spikes("pfc-0", layer).neuron_ids, rb.spikes("pfc-0", layer).neuron_ids
            )
            chosen = ra.recorded_neurons("pfc-0", layer, L.MEMBRANE)
            full = rb.membrane_traces("pfc-0", layer).data_mv
            assert full.shape[1] == ra.layer_size("pfc-0", layer, L.MEMBRANE) > chosen.size > 0
            assert np.array_equal(full[:, chosen], ra.membrane_traces("pfc-0", layer).data_mv)
            others = np.setdiff1d(np.arange(full.shape[1]), chosen)
            assert np.isnan(full[:, others]).all()


def test_a_restarted_node_replays_its_incarnations_in_order(tmp_path: Path) -> None:
    """A node restarted during the recording: its second run follows its first."""
    (tmp_path / "a").mkdir()
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    args = ("--session", "restart", "--recording-dir", str(tmp_path / "a"), "--listen", endpoint)
    node = ("--node-id", "pfc-0", "--module-type", "pfc", "--layer-sizes", "30,40,20")
    run = (*node, "--speed", "0", "--connect", endpoint, "--wait-subscribers", "20")
    with recorderd(tmp_path / "a", *args, name="recorderd-restart") as rec:
        for seed, steps in ((1, 120), (2, 80)):  # the same node, run twice
            assert brain_node(*run, "--seed", str(seed), "--steps", str(steps)).wait(120) == 0
        assert stop(rec) == 0
    original = tmp_path / "a" / "restart"
    copy, _ = play_into(tmp_path / "b", original, "again", "--rate", "4", recorder_args=())
    compare(original, copy, lambda kind, _node, _layer: kind == L.SPIKES)
    with SessionReader(copy) as r:
        frames = r.frames("pfc-0", "output")
        assert len(set(frames.incarnation.tolist())) == 2 and frames.steps.size == 200
        assert frames.steps[119:121].tolist() == [119, 0]  # the restart, in its place
        assert r.statistics()["streams"]["pfc-0/spikes/output"]["restarts"] == 1
