"""Memory of recorderd over a long run: RSS sampled while three nodes publish in real time.

Usage: python bench/soak.py [--seconds 120] [--json OUT]. Prints RSS (MiB) every
``--every`` seconds and the growth between the first and the second half of the run.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NODES = [("pfc-0", "pfc"), ("visual-0", "visual"), ("lang-main-0", "lang-main")]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--every", type=float, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp/127.0.0.1:{s.getsockname()[1]}"
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        rec = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recorderd",
                "--session",
                "soak",
                "--recording-dir",
                tmp,
                "--listen",
                endpoint,
                "--record-membrane",
                "--membrane-subsample-rate",
                "0.1",
            ],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(3)
        nodes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "brain_nodes",
                    "--node-id",
                    n,
                    "--module-type",
                    m,
                    "--steps",
                    "0",
                    "--speed",
                    "1",
                    "--connect",
                    endpoint,
                    "--wait-subscribers",
                    "20",
                ],
                stderr=subprocess.DEVNULL,
            )
            for n, m in NODES
        ]
        samples: list[tuple[float, float]] = []
        start = time.monotonic()
        while (t := time.monotonic() - start) < args.seconds:
            samples.append((round(t, 1), round(rss_mib(rec.pid), 1)))
            print(f"{t:6.1f} s  RSS {samples[-1][1]:7.1f} MiB", file=sys.stderr)
            time.sleep(args.every)
        for node in nodes:
            node.send_signal(signal.SIGINT)
            node.wait(timeout=60)
        rec.send_signal(signal.SIGINT)
        code = rec.wait(timeout=60)
        size = (Path(tmp) / "soak" / "simulation_data.h5").stat().st_size
        stats = json.loads((Path(tmp) / "soak" / "recording_statistics.json").read_text())
    half = len(samples) // 2
    first = max(r for _, r in samples[1:half])
    second = max(r for _, r in samples[half:])
    totals = stats["totals"]
    print(
        f"\n{args.seconds:.0f} s, 3 nodes in real time: {totals['written']} messages, "
        f"{totals['spikes_written']} spikes, file {size / 1e6:.1f} MB, exit {code}; "
        f"peak RSS first half {first} MiB, second half {second} MiB"
    )
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "totals": totals}, indent=2) + "\n")


if __name__ == "__main__":
    main()
