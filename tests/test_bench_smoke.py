"""Short runs of the benches: every sink completes and gets every message."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.processes import bench


def test_throughput_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    run = bench(
        "throughput.py", "--publishers", "2", "--messages", "300", "--timeout", "60",
        "--json", out, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    results = {r["sink"]: r for r in json.loads(out.read_text())}
    assert set(results) == {"count", "mcap", "seed", "recorderd"}
    assert all(r["completed"] for r in results.values())
    assert results["recorderd"]["written"] == 600
    assert "| recorderd |" in run.stdout


def test_shards_bench_quick(tmp_path: Path) -> None:
    """One recorderd, two shards, two shards behind routers: every message written once."""
    out = tmp_path / "shards.json"
    run = bench("shards.py", "--quick", "--json", out)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    (round_,) = result["rounds"]
    assert set(round_) == {"one", "two", "two-routers"}
    for name, r in round_.items():
        assert "error" not in r, (name, r.get("error"))
        assert r["published"] == r["expected"] == 4 * 2_000, name
        assert r["written"] == r["published"], (name, r["recorders"])
        assert r["spikes_written"] == r["spikes"] > 0, name
        assert r["lost"] == 0, (name, r["recorders"])
        assert r["exit_codes"] == [0] * len(r["recorders"]), name
    assert set(round_["two"]["recorders"]) == {"a", "b"}
    for shard in ("a", "b"):  # each shard wrote only its own group's half
        assert round_["two"]["recorders"][shard]["totals"]["written"] == 2 * 2_000, shard


def test_data_path_memory_bench_smoke(tmp_path: Path) -> None:
    """The long-write memory bench, shortened: every message written, RSS sampled."""
    out = tmp_path / "memory.json"
    run = bench("data_path_memory.py", "--messages", "60000", "--every", "20000", "--json", out)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["totals"]["written"] == result["messages"] == 60_000
    assert [s["messages"] for s in result["samples"]] == [20_000, 40_000, 60_000]
    assert all(s["rss_mib"] > 0 for s in result["samples"])
    assert result["samples"][0]["file_mb"] < result["samples"][-1]["file_mb"]


def test_fuzz_native_bench_smoke() -> None:
    """The sanitizer fuzz of the C batch check runs and finds nothing (2,000 batches)."""
    runtime = (
        subprocess.run(
            ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=False
        )
        if shutil.which("gcc")
        else None
    )
    if runtime is None or not Path(runtime.stdout.strip()).is_file():
        pytest.skip("no gcc with libasan here")
    r = bench("fuzz_native.py", "--batches", "2000", timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "2,000 batches" in r.stdout and "no sanitizer error" in r.stdout


def test_callback_cost_bench_smoke(tmp_path: Path) -> None:
    """Each callback variant receives every sample of its publisher (counts only)."""
    out = tmp_path / "cb.json"
    r = bench("callback_cost.py", "--messages", "2000", "--rounds", "1", "--json", out)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    variants = json.loads(out.read_text())["variants"]
    assert list(variants) == [
        "empty", "payload", "timestamp", "key", "handover", "handover-python"
    ]  # fmt: skip
    assert all(v["thread_us"] > 0 for v in variants.values())


def test_idle_cost_bench_smoke(tmp_path: Path) -> None:
    """An idle recorderd is measured by thread role and stops with exit code 0."""
    out = tmp_path / "idle.json"
    r = bench("idle_cost.py", "--seconds", "1", "--rounds", "1", "--json", out)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["exit_code"] == 0
    (round_,) = result["rounds"]
    assert set(round_["ms_per_s"]) == {"zenoh", "callback", "writer", "compression", "other"}
    assert "| 1 |" in r.stdout
