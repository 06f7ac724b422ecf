"""Demo: recorderd and three brain nodes on loopback, a summary of the session, its analysis."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from analysis.reader import SessionReader
from recorderd.session import layout as L

NODES = [("pfc-0", "pfc"), ("visual-0", "visual"), ("lang-main-0", "lang-main")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        print("  recorderd |", line.rstrip())
        if "ready" in line:
            return
    raise SystemExit("recorderd did not become ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3000, help="steps per node (1 ms each)")
    parser.add_argument("--recording-dir", default="sim_recordings")
    parser.add_argument("--session", default=dt.datetime.now().strftime("demo_%Y%m%d_%H%M%S"))
    args = parser.parse_args()
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    print(f"recorderd on {endpoint}, session {args.session}")
    recorder = subprocess.Popen(
        [
            "recorderd",
            "--session",
            args.session,
            "--recording-dir",
            args.recording_dir,
            "--listen",
            endpoint,
            "--record-membrane",
            "--membrane-subsample-rate",
            "0.1",
            "--record-weights",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_ready(recorder, 30)
        nodes = [
            subprocess.Popen(
                [
                    "brain-node",
                    "--node-id",
                    node,
                    "--module-type",
                    module,
                    "--connect",
                    endpoint,
                    "--steps",
                    str(args.steps),
                    "--seed",
                    str(i),
                    "--wait-subscribers",
                    "10",
                ],
                env=env,
            )
            for i, (node, module) in enumerate(NODES)
        ]
        print(f"3 brain nodes running {args.steps} steps each...")
        codes = [n.wait(timeout=args.steps / 100 + 120) for n in nodes]
        time.sleep(1.0)  # let the last samples cross the bus
    finally:
        recorder.send_signal(signal.SIGINT)
        _, err = recorder.communicate(timeout=60)
        for line in err.splitlines():
            print("  recorderd |", line)
    if any(codes) or recorder.returncode:
        print(f"failed: node exit codes {codes}, recorderd {recorder.returncode}", file=sys.stderr)
        return 1
    session = Path(args.recording_dir) / args.session
    summarize(session)
    print("\nanalysis: sim-analyzer", session)
    return subprocess.run(["sim-analyzer", str(session)], env=env).returncode


def summarize(session: Path) -> None:
    """Print what the session holds and its bytes on disk per recorded spike."""
    with SessionReader(session) as r:
        print(f"\nsession {session.resolve()}")
        for node in r.nodes():
            info = r.node_info(node)
            print(f"  {node} ({info.get('module_type', '?')})")
            for layer in r.layers(node):
                tr = r.spikes(node, layer)
                size = r.stream_attrs(node, layer)["layer_size"][0]
                frames = r.frames(node, layer)
                span = f"{frames.steps.min()}..{frames.steps.max()}" if frames.steps.size else "-"
                print(
                    f"    spikes   {layer:<20} {size:>5} neurons {tr.neuron_ids.size:>8} spikes "
                    f"steps {span}"
                )
            for layer in r.layers(node, L.MEMBRANE):
                _, data = r.membrane(node, layer)
                print(f"    membrane {layer:<20} {data.shape[0]} frames x {data.shape[1]} neurons")
            for name in r.layers(node, L.WEIGHTS):
                _, data = r.weights(node, name)
                shape = f"{data.shape[1]}x{data.shape[2]}"
                print(f"    weights  {name:<20} {data.shape[0]} snapshots of {shape}")
        stats = r.statistics()
        controls = r.control_states()
        spike_bytes = r.storage_bytes(L.SPIKES)
    totals = stats["totals"]
    print(f"  control states: {len(controls)} records in {L.CONTROL_FILE}")
    print(
        "  totals:",
        json.dumps(
            {
                k: totals[k]
                for k in (
                    "received",
                    "written",
                    "missing",
                    "duplicates",
                    "rejected",
                    "intake_dropped",
                    "total_spikes_recorded",
                )
            }
        ),
    )
    n = max(1, totals["total_spikes_recorded"])
    print(
        f"  {L.DATA_FILE}: {(session / L.DATA_FILE).stat().st_size:,} bytes in all; spike "
        f"datasets {spike_bytes:,} bytes = {spike_bytes / n:.2f} bytes per recorded spike"
    )


if __name__ == "__main__":
    sys.exit(main())
