"""kill -9 recorderd at random moments under load; check every session after each kill.

Each round: start ``recorderd --session crash`` (the same session every round, so a
restarted recorder must continue the session a crash left behind: it recovers it
first), start a brain node publishing in real time (1 step = 1 ms), SIGKILL recorderd
after a random delay, stop the node. One round in five instead kills recorderd 0.1-0.4 s
after it starts, before it is ready (while it opens or recovers the session), with no
node running.

After each kill, a copy of the session folder is opened with the analysis reader (no
manual step: the reader recovers the copy itself) and checked: for every run so far,
what is on disk is exactly the start of what the node published (same neuron ids,
steps 0..K-1, nothing corrupt), and how many ms of the run were lost at the kill: the
newest step a reference subscriber had seen when the kill happened, minus the newest
recorded step. Loss must stay within one flush interval plus 150 ms. The original
folder is left as the crash left it, for the next round's recorderd to recover.

Usage: python bench/crash_loop.py [--rounds 10] [--flush-interval 0.5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import zenoh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from analysis.reader import SessionReader
from brain_nodes.modules import simulate
from recorderd import wire as P
from recorderd.daemon.bus import make_config
from recorderd.session import layout as L

LAYER = "hidden"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_log(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{text!r} not in {path} after {timeout} s:\n{path.read_text()}")


def start_recorderd(
    i: int, work: Path, session: str, endpoint: str, flush: float
) -> tuple[subprocess.Popen[bytes], Path]:
    """recorderd on ``session`` in ``work``, its stderr in ``recorderd-<i>.log``."""
    log = work / f"recorderd-{i}.log"
    with open(log, "w") as fh:
        rec = subprocess.Popen(
            [
                *(sys.executable, "-m", "recorderd", "--session", session),
                *("--recording-dir", str(work), "--listen", endpoint),
                *("--flush-interval", str(flush)),
            ],
            stderr=fh,
        )
    return rec, log


def startup_kill(
    i: int, work: Path, session: str, endpoint: str, flush: float, rng: random.Random
) -> float:
    """Kill recorderd while it starts (opens or recovers the session); the delay."""
    delay = rng.uniform(0.1, 0.4)
    rec, _ = start_recorderd(i, work, session, endpoint, flush)
    time.sleep(delay)
    rec.send_signal(signal.SIGKILL)
    rec.wait()
    return delay


def one_round(
    i: int, work: Path, session: str, endpoints: tuple[str, str], flush: float, rng: random.Random
) -> dict[str, Any]:
    endpoint, ref_endpoint = endpoints
    rec, log = start_recorderd(i, work, session, endpoint, flush)
    wait_log(log, "ready", 30)
    # Reference subscriber: the newest step of this run's stream seen on the bus.
    newest = {"step": -1, "incarnation": -1}
    # Peers do not route for each other: the node connects to this subscriber directly.
    with zenoh.open(make_config(listen=[ref_endpoint])) as ref:

        def seen(sample: zenoh.Sample) -> None:
            header = P.decode(sample.payload.to_bytes()).header
            newest["step"] = max(newest["step"], header.step)
            newest["incarnation"] = header.incarnation

        sub = ref.declare_subscriber(P.data_key("brain", "pfc-0", P.Kind.SPIKES, LAYER), seen)
        node = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "brain_nodes",
                "--node-id",
                "pfc-0",
                "--module-type",
                "pfc",
                "--seed",
                str(i),
                "--steps",
                "0",
                "--speed",
                "1",
                "--connect",
                endpoint,
                "--connect",
                ref_endpoint,
                "--wait-subscribers",
                "20",
                "--flush-timeout",
                "0",
            ],
            stderr=subprocess.DEVNULL,
        )
        delay = rng.uniform(0.5, 4.0)
        deadline = time.monotonic() + 30
        while newest["step"] < 0:
            if time.monotonic() > deadline:
                node.kill()
                rec.kill()
                raise RuntimeError("the reference subscriber heard nothing in 30 s")
            time.sleep(0.01)
        try:
            time.sleep(delay)
            if rec.poll() is not None:
                raise RuntimeError(f"recorderd had already exited with {rec.returncode}")
            rec.send_signal(signal.SIGKILL)
            killed_at_step = newest["step"]
            rec.wait()
        finally:
            node.send_signal(signal.SIGINT)
            node.wait(timeout=30)
            sub.undeclare()
    return {
        "round": i,
        "seed": i,
        "incarnation": newest["incarnation"],
        "kill_after_s": round(delay, 3),
        "killed_at_step": killed_at_step,
    }


def check(work: Path, session: str, rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Open a copy of the session as a user would; check every run recorded so far."""
    out = []
    copy = work / "checked" / session
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(work / session, copy)
    with SessionReader(copy) as r:
        state = r.state
        for layer in r.layers("pfc-0"):  # every dataset must read, not only the one compared
            r.spikes("pfc-0", layer)
            r.frames("pfc-0", layer)
        train = r.spikes("pfc-0", LAYER)
        frames = r.frames("pfc-0", LAYER)
    if (copy / L.JOURNAL_FILE).exists() or state not in ("recovered", "clean"):
        raise AssertionError(f"reader left the session {state}, journal still there")
    offsets = np.concatenate([[0], np.cumsum(frames.count.astype(np.int64))]).astype(np.int64)
    for run in rounds:
        # A run killed before its first flush has nothing on disk: all of it is lost.
        rows = np.flatnonzero(frames.incarnation == np.uint64(run["incarnation"]))
        steps = frames.steps[rows]
        n = steps.size
        assert steps.tolist() == list(range(n)), f"round {run['round']}: steps not 0..{n - 1}"
        if n:
            expected = np.concatenate(simulate("pfc", n, seed=run["seed"])[LAYER])
            got = train.neuron_ids[offsets[rows[0]] : offsets[rows[-1] + 1]]
            assert np.array_equal(got, expected), f"round {run['round']}: corrupt spikes"
        lost_ms = run["killed_at_step"] - (n - 1)
        out.append({**run, "recorded_steps": n, "lost_ms": lost_ms, "reader": state})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--flush-interval", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workdir", type=Path, help="keep the session here (default: temporary)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    ref_endpoint = f"tcp/127.0.0.1:{free_port()}"
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="crash-loop-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        session, epoch = "crash-0", 0
        rounds: list[dict[str, Any]] = []
        corrupted: list[dict[str, Any]] = []
        startup_kills = 0
        for i in range(args.rounds):
            endpoints = (endpoint, ref_endpoint)
            if i % 5 == 4:
                delay = startup_kill(i, work, session, endpoint, args.flush_interval, rng)
                startup_kills += 1
                if rounds:
                    check(work, session, rounds)  # raises if earlier runs were damaged
                print(
                    f"round {i}: killed {delay:.3f} s after start; earlier runs intact",
                    file=sys.stderr,
                )
                continue
            rounds.append(one_round(i, work, session, endpoints, args.flush_interval, rng))
            try:
                checked = check(work, session, rounds)
            except Exception as exc:  # an unreadable or corrupt session: the finding
                corrupted.append({**rounds[-1], "session": session, "error": str(exc)[:200]})
                print(
                    f"round {i}: killed after {rounds[-1]['kill_after_s']} s: session "
                    f"{session} UNREADABLE after {len(rounds)} runs: {str(exc)[:120]}",
                    file=sys.stderr,
                )
                epoch += 1
                session, rounds = f"crash-{epoch}", []  # go on with a fresh session
                continue
            last = checked[-1]
            results.append(last)
            print(
                f"round {i}: killed after {last['kill_after_s']} s "
                f"at step {last['killed_at_step']}, "
                f"recorded {last['recorded_steps']} steps, lost {last['lost_ms']} ms; "
                f"session {session} readable, all {len(checked)} runs intact",
                file=sys.stderr,
            )
    worst = max((r["lost_ms"] for r in results), default=0)
    bound = args.flush_interval * 1000 + 150  # one flush interval + batching and bus latency
    print(
        f"\n{args.rounds} kills ({startup_kills} during start-up): {len(results)} under load "
        f"left the session readable and intact, {len(corrupted)} left it unreadable; "
        f"largest loss {worst} ms (bound {bound:.0f} ms = flush interval + 150 ms)"
    )
    results.extend(corrupted)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if worst > bound or corrupted:
        sys.exit(1)


if __name__ == "__main__":
    main()
