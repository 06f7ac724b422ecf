"""What an idle recorderd costs: CPU per second of a daemon with nothing on the bus.

A recorder runs as a service for hours or days, and most of that time no simulation may
be publishing. This starts ``python -m recorderd`` with default settings (a listen
endpoint on 127.0.0.1, a fresh session), waits until it is ready, and reads the CPU of
each of its threads (``/proc/PID/task/*/stat``) over ``--seconds``, ``--rounds`` times;
then stops it with SIGINT. The table gives milliseconds of CPU per second of wall time,
by thread role (as in ``bench/perf.py``)::

    python bench/idle_cost.py [--seconds 20] [--rounds 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perf import child_env, cpu_by_role, free_port, thread_cpu  # noqa: E402


def wait_ready(log: Path, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and ": ready" in log.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def measure(seconds: float, rounds: int, work: Path) -> dict[str, Any]:
    log = work / "recorderd.log"
    cmd = [
        *(sys.executable, "-m", "recorderd", "--session", "idle"),
        *("--recording-dir", str(work / "rec"), "--listen", f"tcp/127.0.0.1:{free_port()}"),
    ]
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stderr=err, env=child_env(), cwd=ROOT)
    try:
        if not wait_ready(log, proc, 60):
            return {"error": f"recorderd not ready: {log.read_text(errors='replace')[-2000:]}"}
        time.sleep(1.0)  # past the first flush
        out = []
        for _ in range(rounds):
            before, t0 = thread_cpu(proc.pid), time.monotonic()
            time.sleep(seconds)
            after, t1 = thread_cpu(proc.pid), time.monotonic()
            roles = cpu_by_role(before, after)
            wall = t1 - t0
            out.append(
                {
                    "seconds": round(wall, 3),
                    "ms_per_s": {k: round(1000 * v / wall, 2) for k, v in roles.items()},
                    "all_ms_per_s": round(1000 * sum(roles.values()) / wall, 2),
                }
            )
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
        code = proc.wait(60)
    return {"rounds": out, "exit_code": code}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="per round [20]")
    p.add_argument("--rounds", type=int, default=2, help="[2]")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idle-cost-") as tmp:
        result = measure(args.seconds, args.rounds, Path(tmp))
    if "error" in result:
        print(result["error"], file=sys.stderr)
        return 1
    roles = list(result["rounds"][0]["ms_per_s"])
    print("| round | " + " | ".join(roles) + " | all, ms of CPU per s |")
    print("|---" * (len(roles) + 2) + "|")
    for i, r in enumerate(result["rounds"], 1):
        cells = [f"{r['ms_per_s'][k]:.2f}" for k in roles]
        print(f"| {i} | " + " | ".join(cells) + f" | {r['all_ms_per_s']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if result["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
