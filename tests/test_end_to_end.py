"""recorderd and three brain nodes as real processes on loopback: published == recorded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.reader import SessionReader
from brain_nodes.modules import simulate
from recorderd.daemon.intake import NATIVE_OFF as INTAKE_NATIVE_OFF
from recorderd.wire.batch import NATIVE_ENV, NATIVE_OFF
from tests.helpers import free_port
from tests.processes import brain_node, recorderd, statistics, stop, wait_for

NODES = [("pfc-0", "pfc", 11), ("visual-0", "visual", 12), ("lang-main-0", "lang-main", 13)]
STEPS = 400


@pytest.mark.parametrize("decoder", ["as installed", "numpy only"])
def test_every_published_spike_is_recorded_exactly_once(tmp_path: Path, decoder: str) -> None:
    """With the C modules where they were built, and with the Python code alone
    (RECORDERD_NATIVE=0)."""
    numpy_only = {NATIVE_ENV: "0"} if decoder == "numpy only" else None
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    session = tmp_path / "rec" / "multi_node_test"
    args = [
        "--session",
        "multi_node_test",
        "--recording-dir",
        str(tmp_path / "rec"),
        "--listen",
        endpoint,
        "--flush-interval",
        "0.2",
        "--buffer-size",
        "64",
    ]
    with recorderd(tmp_path, *args, env=numpy_only) as rec:
        nodes = [
            brain_node(
                "--node-id",
                node,
                "--module-type",
                module,
                "--seed",
                str(seed),
                "--steps",
                str(STEPS),
                "--speed",
                "0",
                "--connect",
                endpoint,
                "--wait-subscribers",
                "20",
                "--summary-json",
                str(tmp_path / f"{node}.json"),
            )
            for node, module, seed in NODES
        ]
        assert [n.wait(timeout=120) for n in nodes] == [0, 0, 0]
        summaries = {
            node: json.loads((tmp_path / f"{node}.json").read_text()) for node, _, _ in NODES
        }
        # Each node knows which recorder session confirmed its flush barrier.
        assert {n: s["flush_sessions"] for n, s in summaries.items()} == {
            node: [session.name] for node, _, _ in NODES
        }
        published = sum(
            s["messages"]
            for summ in summaries.values()
            for s in summ["streams"].values()
            if s["kind"] in ("spikes", "control")
        )
        wait_for(
            lambda: statistics(session).get("totals", {}).get("received") == published,
            30,
            f"{published} messages received",
        )
        # `top -H` shows each of recorderd's threads by its role, beside Zenoh's own.
        names = {p.read_text().strip() for p in Path(f"/proc/{rec.pid}/task").glob("*/comm")}
        assert {"rd-writer", "rd-sub-0", "rd-sub-1", "rd-query"} <= names, " ".join(sorted(names))
        assert stop(rec) == 0
    log = (tmp_path / "recorderd.log").read_text()
    assert ("batch decoder: numpy only" in log) is (
        numpy_only is not None or NATIVE_OFF is not None
    )
    assert ("intake: put in Python only" in log) is (
        numpy_only is not None or INTAKE_NATIVE_OFF is not None
    )

    stats = statistics(session)
    assert stats["rejected"] == {}
    assert stats["totals"]["missing"] == stats["totals"]["duplicates"] == 0
    with SessionReader(session) as r:
        assert r.nodes() == sorted(node for node, _, _ in NODES)
        controls = r.control_states()
        for node, module, seed in NODES:
            summary = summaries[node]
            expected = simulate(module, STEPS, seed=seed)
            assert r.layers(node) == list(expected)  # the order the node declared them
            assert r.node_info(node)["module_type"] == module
            for layer, per_step in expected.items():
                key = f"brain/{node}/spikes/{layer}"
                pub = summary["streams"][key]
                train = r.spikes(node, layer)
                frames = r.frames(node, layer)
                # exactly once, in order, with the right neuron ids and steps
                assert np.array_equal(train.neuron_ids, np.concatenate(per_step))
                assert np.array_equal(
                    train.steps, np.repeat(np.arange(STEPS), [len(s) for s in per_step])
                )
                assert frames.seq.tolist() == list(range(pub["messages"]))
                assert set(frames.incarnation.tolist()) == {summary["incarnation"]}
                st = stats["streams"][f"{node}/spikes/{layer}"]
                assert (
                    (st["received"], st["written"])
                    == (pub["messages"], pub["messages"])
                    == (STEPS, STEPS)
                )
                assert st["spikes_written"] == pub["spikes"] == train.neuron_ids.size
                print(
                    f"{node}/{layer}: published {pub['messages']} msgs {pub['spikes']} spikes; "
                    f"recorded {st['written']} msgs {st['spikes_written']} spikes"
                )
            mine = [c for c in controls if c["node_id"] == node]
            ctrl = summary["streams"][f"brain/{node}/control"]
            assert len(mine) == ctrl["messages"] == stats["streams"][f"{node}/control"]["written"]
            assert [c["seq"] for c in mine] == list(range(ctrl["messages"]))
            assert mine[-1]["status"] == "Stopped" and mine[0]["step"] == 0
    assert stats["totals"]["total_spikes_recorded"] == sum(
        s.get("spikes", 0) for summ in summaries.values() for s in summ["streams"].values()
    )


def test_sigterm_stops_cleanly_and_file_is_complete(tmp_path: Path) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    args = ["--session", "s", "--recording-dir", str(tmp_path), "--listen", endpoint]
    with recorderd(tmp_path, *args) as rec:
        node = brain_node(
            "--node-id",
            "pfc-0",
            "--module-type",
            "pfc",
            "--steps",
            "0",
            "--speed",
            "1",
            "--connect",
            endpoint,
            "--wait-subscribers",
            "20",
        )
        wait_for(
            lambda: statistics(tmp_path / "s").get("totals", {}).get("written", 0) > 0, 30, "data"
        )
        assert stop(rec, sig=15) == 0
        assert stop(node) == 0
    with SessionReader(tmp_path / "s") as r:
        assert r.metadata()["stop_time_utc"] != ""
        assert r.spikes("pfc-0", "output").neuron_ids.size > 0


def test_bad_settings_exit_2_with_the_field_named(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "recorderd",
            "--session",
            "../escape",
            "--recording-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "session" in out.stderr and "invalid session name" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_late_and_restarted_nodes_lose_nothing_after_they_appear(tmp_path: Path) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    session = tmp_path / "s"
    args = [
        "--session",
        "s",
        "--recording-dir",
        str(tmp_path),
        "--listen",
        endpoint,
        "--flush-interval",
        "0.2",
    ]
    node_args = [
        "--module-type",
        "visual",
        "--steps",
        "300",
        "--speed",
        "0",
        "--connect",
        endpoint,
        "--wait-subscribers",
        "20",
    ]
    with recorderd(tmp_path, *args) as rec:
        for run in (1, 2):  # the same node id twice: a restart, seen as a new incarnation
            node = brain_node("--node-id", "visual-0", "--seed", str(run), *node_args)
            assert node.wait(timeout=60) == 0
        late = brain_node("--node-id", "late-0", "--seed", "3", *node_args)
        assert late.wait(timeout=60) == 0
        wait_for(
            lambda: (
                statistics(session).get("totals", {}).get("written")
                == 3 * (3 * 300)
                + sum(
                    s["written"]
                    for k, s in statistics(session)["streams"].items()
                    if k.endswith("control")
                )
            ),
            30,
            "all messages written",
        )
        assert stop(rec) == 0
    stats = statistics(session)
    st = stats["streams"]["visual-0/spikes/v1"]
    assert (st["received"], st["restarts"], st["missing"], st["duplicates"]) == (600, 1, 0, 0)
    with SessionReader(session) as r:
        assert r.nodes() == ["late-0", "visual-0"]
        frames = r.frames("visual-0", "v1")
        assert len(set(frames.incarnation.tolist())) == 2
        assert frames.seq.tolist() == list(range(300)) * 2
        first, second = simulate("visual", 300, seed=1), simulate("visual", 300, seed=2)
        expected = np.concatenate(first["v1"] + second["v1"])
        assert np.array_equal(r.spikes("visual-0", "v1").neuron_ids, expected)
        assert len(r.node_info("visual-0")["incarnations"]) == 2
        assert r.frames("late-0", "output").seq.tolist() == list(range(300))
        events = [(e["node_id"], e["event"]) for e in r.presence_events()]
    # joins and leaves (liveliness) are in the control log, in order, for both runs
    assert events[:4] == [("visual-0", "join"), ("visual-0", "leave")] * 2
    assert ("late-0", "join") in events
