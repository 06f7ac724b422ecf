"""The analysis of a huge, sparse layer: 6 spikes in a layer of 2**26 neurons.

A real ``recorderd`` process records five spike messages of one layer of ``2**26``
neurons (the protocol's largest) published over Zenoh on ``127.0.0.1``; after the flush
barrier it gets SIGINT. Then ``sim-analyzer SESSION --json`` runs as a subprocess,
``--repeat`` times: wall time and peak resident memory (``ru_maxrss`` of the reaped
process) per run, and the total it printed for the layer; next to them the floor, the
same interpreter only importing the CLI (``python -c "import analysis.cli"``).
The analysis must follow the 6 spikes, not the 2**26 neurons.

Usage: ``PYTHONPATH=. python bench/huge_layer.py [--repeat 3] [--json OUT] [--keep]``.
Not part of the test suite (``tests/test_limits.py`` checks the same session in-process).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import zenoh  # noqa: E402

from recorderd import wire as P  # noqa: E402
from recorderd.daemon.bus import make_config  # noqa: E402

LAYER = 1 << 26
SPIKES = [[5], [], [5, 70_000_000 % LAYER], [9, 60], [5]]  # 6 spikes, 4 neurons
PREFIX = "brain"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], work: Path, timeout: float) -> tuple[int, float, int, str]:
    """Exit code, wall seconds, peak RSS (KiB) and stdout of ``cmd`` (reaped by wait4)."""
    out_path, err_path = work / "run.out", work / "run.err"
    t0 = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
    deadline = t0 + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.perf_counter() > deadline:
            os.kill(proc.pid, signal.SIGKILL)  # our own child, by pid
            _, status, ru = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code:
        print(err_path.read_text(errors="replace")[-2000:], file=sys.stderr)
    return code, wall, ru.ru_maxrss, out_path.read_text()


def record(work: Path) -> Path:
    """Record the session with a real recorderd; its folder."""
    port = free_port()
    endpoint = f"tcp/127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "recorderd", "--session", "huge"]
    daemon = subprocess.Popen(
        [*cmd, "--recording-dir", str(work), "--listen", endpoint],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("RECORDERD_")},
    )
    try:
        with zenoh.open(make_config(connect=[endpoint])) as z:
            key = P.data_key(PREFIX, "big", P.Kind.SPIKES, "l")
            pub = z.declare_publisher(key, congestion_control=zenoh.CongestionControl.BLOCK)
            deadline = time.monotonic() + 30
            while not pub.matching_status.matching:
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise SystemExit("recorderd did not subscribe")
                time.sleep(0.05)
            inc = int.from_bytes(os.urandom(8), "little")
            for step, ids in enumerate(SPIKES):
                pub.put(
                    P.encode(
                        P.Kind.SPIKES,
                        incarnation=inc,
                        seq=step,
                        step=step,
                        time_ms=float(step),
                        dt_ms=1.0,
                        layer_size=LAYER,
                        data=ids,
                    )
                )
            replies = list(z.get(P.flush_key(PREFIX, "big"), timeout=10))
            if not replies:
                raise SystemExit("no answer to the flush barrier")
            pub.undeclare()
    finally:
        daemon.send_signal(signal.SIGINT)
        _, err = daemon.communicate(timeout=60)
    if daemon.returncode != 0:
        raise SystemExit(f"recorderd exited {daemon.returncode}: {err[-2000:]}")
    return work / "huge"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="huge-layer-"))
    try:
        session = record(work)
        runs: list[dict[str, Any]] = []
        for _ in range(args.repeat):
            cmd = [sys.executable, "-m", "analysis", str(session), "--json"]
            code, wall, rss, out = run(cmd, work, timeout=600)
            layer: dict[str, Any] = {}
            if code == 0:
                layer = json.loads(out)["nodes"]["big"]["layers"]["l"]
            runs.append(
                {
                    "exit": code,
                    "wall_s": round(wall, 3),
                    "peak_rss_mb": round(rss / 1024, 1),
                    "total_spikes": layer.get("total_spikes"),
                }
            )
            print(json.dumps(runs[-1]))
        # The floor: the same interpreter importing the CLI and doing nothing else.
        floor_cmd = [sys.executable, "-c", "import analysis.cli"]
        floor = [run(floor_cmd, work, timeout=120) for _ in range(args.repeat)]
        result = {
            "import_floor": {
                "wall_s": round(min(f[1] for f in floor), 3),
                "peak_rss_mb": round(max(f[2] for f in floor) / 1024, 1),
            },
            "layer_size": LAYER,
            "spikes": sum(map(len, SPIKES)),
            "h5_bytes": (session / "simulation_data.h5").stat().st_size,
            "runs": runs,
        }
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        ok = all(r["exit"] == 0 and r["total_spikes"] == result["spikes"] for r in runs)
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
