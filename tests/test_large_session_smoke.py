"""A small run of the out-of-core benchmark: it completes, checks itself and cleans up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "large_session.py"


def test_large_session_bench_smoke(tmp_path: Path) -> None:
    pytest.importorskip("libsonata")
    out = tmp_path / "figures.json"
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--spikes",
            "200000",
            "--dir",
            str(tmp_path),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    figures = json.loads(out.read_text())
    assert figures["spikes"] == 200_000
    assert figures["sonata"]["result"] == {
        k: v["total"] for k, v in figures["summary"]["result"].items() if not k.startswith("_")
    }
    assert "| sonata |" in run.stdout and "| summary |" in run.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["figures.json"]  # temp dir removed
