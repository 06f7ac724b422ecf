"""The recording guide's node commands with ``brain-node`` in place of the example script."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from analysis.reader import SessionReader
from brain_nodes.modules import simulate
from recorderd.session import layout as L
from tests.helpers import free_port
from tests.processes import brain_node, process_ended, recorderd, stop, wait_for


def run_nodes(tmp_path: Path, nodes: list[tuple[str, str, int]], *extra: str) -> dict[str, dict]:  # type: ignore[type-arg]
    """Start the nodes together, wait for them, return their summaries."""
    procs = [
        brain_node(
            "--node-id",
            node,
            "--module-type",
            module,
            "--seed",
            str(seed),
            *extra,
            "--summary-json",
            str(tmp_path / f"{node}.json"),
        )
        for node, module, seed in nodes
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * len(procs)
    return {node: json.loads((tmp_path / f"{node}.json").read_text()) for node, _, _ in nodes}


def wait_recorders_gone(summaries: dict[str, dict]) -> None:  # type: ignore[type-arg]
    for summary in summaries.values():
        pid = summary["recorder_pid"]
        wait_for(lambda pid=pid: process_ended(pid), 30, f"recorder child {pid} to end")


def assert_recorded(session: Path, summaries: dict[str, dict], steps: int) -> None:  # type: ignore[type-arg]
    with SessionReader(session) as r:
        assert r.nodes() == sorted(summaries)
        for node, summary in summaries.items():
            expected = simulate(summary["module_type"], steps, seed=summary["seed"])
            for layer, per_step in expected.items():
                train = r.spikes(node, layer)
                assert np.array_equal(train.neuron_ids, np.concatenate(per_step))
                assert r.frames(node, layer).seq.tolist() == list(range(steps))
        stats = r.statistics()
        meta = r.metadata()
    assert stats["totals"]["missing"] == stats["totals"]["duplicates"] == 0
    assert meta["stop_time_utc"] != ""


def test_quick_start_records_without_a_daemon(tmp_path: Path) -> None:
    # "Record all data (including membrane potential + weight)"
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    rec_dir = tmp_path / "sim_recordings"
    summaries = run_nodes(
        tmp_path,
        [("visual-0", "visual", 3)],
        "--connect",
        endpoint,
        "--steps",
        "300",
        "--speed",
        "0",
        "--enable-recording",
        "--record-membrane",
        "--record-weights",
        "--session-name",
        "my_experiment_001",
        "--recording-dir",
        str(rec_dir),
    )
    wait_recorders_gone(summaries)
    session = rec_dir / "my_experiment_001"
    assert_recorded(session, summaries, 300)
    with SessionReader(session) as r:
        assert r.layers("visual-0", L.MEMBRANE) == ["retina", "v1", "output"]  # as declared
        assert r.layers("visual-0", L.WEIGHTS) == ["w_retina_v1", "w_v1_output"]
        assert r.membrane("visual-0", "v1")[1].shape == (300, 500)
        assert r.control_states()[-1]["status"] == "Stopped"


def test_use_case_3_three_nodes_one_session(tmp_path: Path) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    rec_dir = tmp_path / "sim_recordings"
    nodes = [("pfc-0", "pfc", 1), ("visual-0", "visual", 2), ("lang-main-0", "lang-main", 3)]
    summaries = run_nodes(
        tmp_path,
        nodes,
        "--connect",
        endpoint,
        "--steps",
        "1500",
        "--speed",
        "1",
        "--enable-recording",
        "--session-name",
        "multi_node_test",
        "--recording-dir",
        str(rec_dir),
    )
    wait_recorders_gone(summaries)
    session = rec_dir / "multi_node_test"
    assert_recorded(session, summaries, 1500)
    with SessionReader(session) as r:
        assert r.metadata()["recorder_runs"] == 1  # one writer recorded all three nodes
        counts = {n: sum(r.spikes(n, ly).neuron_ids.size for ly in r.layers(n)) for n in r.nodes()}
        modules = {n: r.node_info(n)["module_type"] for n in r.nodes()}
    published = {
        n: sum(s.get("spikes", 0) for s in summ["streams"].values())
        for n, summ in summaries.items()
    }
    print("per-node spikes recorded:", counts, "published:", published)
    assert counts == published
    assert modules == {"pfc-0": "pfc", "visual-0": "visual", "lang-main-0": "lang-main"}


def test_nodes_only_publish_when_recorderd_records_the_session(tmp_path: Path) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    rec_dir = tmp_path / "sim_recordings"
    args = ["--session", "shared", "--recording-dir", str(rec_dir), "--listen", endpoint]
    with recorderd(tmp_path, *args) as daemon:
        summaries = run_nodes(
            tmp_path,
            [("pfc-0", "pfc", 5)],
            "--connect",
            endpoint,
            "--steps",
            "400",
            "--speed",
            "0",
            "--enable-recording",
            "--session-name",
            "shared",
            "--recording-dir",
            str(rec_dir),
        )
        wait_recorders_gone(summaries)  # the standby child left with its node
        assert stop(daemon) == 0
    assert_recorded(rec_dir / "shared", summaries, 400)
    with SessionReader(rec_dir / "shared") as r:
        assert r.metadata()["recorder_runs"] == 1
