"""A short run of the throughput benchmark: every sink completes and gets every message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "throughput.py"


def test_throughput_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--publishers",
            "2",
            "--messages",
            "300",
            "--timeout",
            "60",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    results = {r["sink"]: r for r in json.loads(out.read_text())}
    assert set(results) == {"count", "mcap", "seed", "recorderd"}
    assert all(r["completed"] for r in results.values())
    assert results["recorderd"]["written"] == 600
    assert "| recorderd |" in run.stdout
