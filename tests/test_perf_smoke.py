"""A quick run of the side-by-side benchmark: counts only, no timing.

``bench/perf.py --quick`` runs every sink (count, mcap, seed, recorderd as a daemon
process) on every workload, a second round of workloads a and b, plus the sustained-rate
steps. Asserted: every sink got every published message in workloads a and b, recorderd
lost nothing and wrote everything (in both rounds), and the tables have one row per sink
and the rounds' ratios.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.processes import bench

SINKS = ("count", "mcap", "seed", "recorderd")


def test_perf_quick(tmp_path: Path) -> None:
    out = tmp_path / "perf.json"
    run = bench("perf.py", "--quick", "--json", out)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    runs: dict[tuple[str, str], dict[str, Any]] = {
        (r["workload"], r["sink"]): r for r in result["runs"] if "round" not in r
    }
    again = [(r["workload"], r["sink"]) for r in result["runs"] if r.get("round") == 2]
    # a second round of a and b, every sink but seed, recorderd as exact as in round 1
    assert sorted(again) == sorted((w, s) for w in "ab" for s in SINKS if s != "seed")
    for r in result["runs"]:
        if r.get("round") == 2 and r["sink"] == "recorderd":
            assert r["lost"] == 0 and r["written"] == r["published"] == r["expected"], r
            # a session of its own: the file holds this round's spikes only
            first = runs[(r["workload"], "recorderd")]["bytes_per_spike"]
            assert 0.8 < r["bytes_per_spike"] / first < 1.25, (first, r["bytes_per_spike"])
    for workload in ("a", "b"):
        for sink in SINKS:
            r = runs[(workload, sink)]
            assert "error" not in r, r.get("error")
            assert r["published"] == r["expected"] > 0, (workload, sink)
            assert r["received"] == r["published"], (workload, sink)
            assert r["completed"], (workload, sink)
    for (workload, sink), r in runs.items():
        assert "error" not in r, (workload, sink, r.get("error"))
        if sink == "recorderd":
            assert r["lost"] == 0, (workload, r["recorderd"]["final_totals"])
            assert r["written"] == r["published"] == r["expected"], workload
            assert r["recorderd"]["exit_code"] == 0, r["recorderd"]["log"]
            # CPU by the role of each thread (their OS names), for the profile table
            assert set(r["cpu_by_thread_s"]) == {
                "zenoh", "callback", "writer", "compression", "other"
            }, workload  # fmt: skip
    for sink in SINKS:
        assert f"| {sink} |" in run.stdout
    assert "### CPU by thread" in run.stdout
    assert "| a | recorderd | msg/s vs count | " in run.stdout  # the rounds' ratios
    # the whole machine during each run: the cores were used, the publishers' CPU read
    # (a run of a few ms can take less than one 10 ms tick of theirs: summed over runs)
    machine = [r["machine_run"] for r in result["runs"]]
    assert all(m["busy_pct"] > 0 and m["publishers_cpu_s"] >= 0 for m in machine), machine
    assert sum(m["publishers_cpu_s"] for m in machine) > 0, machine
    assert "### The whole machine during each run" in run.stdout
    sustained = result["sustained"]
    assert sustained["steps"], sustained
    for step in sustained["steps"]:  # the bare subscriber's CPU after every clean step
        assert not step["ok"] or "count_cpu_pct" in step, step
    assert sustained["latency"]["frames"] > 0, sustained["latency"]


def test_perf_handoff_sinks_in_rounds(tmp_path: Path) -> None:
    """recorderd's hand-off alone (its callback and intake, nothing recorded), as the
    bench's opt-in sinks: every message gets through both ways, and the rounds table
    shows their ratios to the bare subscriber, the floor under recorderd's."""
    out = tmp_path / "handoff.json"
    run = bench(
        "perf.py", "run", "--workloads", "a", "--sinks", "count,handoff-callback,handoff-fifo",
        "--rounds", "2", "--messages", "2000", "--json", out,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    runs = json.loads(out.read_text())["runs"]
    assert sorted((r["sink"], r.get("round", 1)) for r in runs) == sorted(
        (s, k) for s in ("count", "handoff-callback", "handoff-fifo") for k in (1, 2)
    )
    for r in runs:
        assert "error" not in r, r.get("error")
        assert r["received"] == r["published"] == r["expected"] == 8000, r
        assert r["completed"], r
    for sink in ("handoff-callback", "handoff-fifo"):
        for label in ("msg/s vs count", "CPU per message vs count"):
            assert f"| a | {sink} | {label} | " in run.stdout, (sink, label)
