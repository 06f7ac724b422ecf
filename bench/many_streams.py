"""``sim-analyzer`` on sessions with thousands of streams (issue #11).

For each N in ``--streams`` a session of N spike streams is written in-process through
the recorder's decode path (no Zenoh: ``Recorder`` + ``Pipeline``, as
``tests/helpers.feed``): nodes ``n0, n1, ...`` of up to 256 layers ``l0..l255`` each
(the per-node cap), one message per stream (3 spikes of a 100-neuron layer), with
``max_streams`` raised to N. Then ``sim-analyzer SESSION --json``, ``sim-analyzer info
SESSION`` (stdout a pipe: the plain-text tables) and ``sim-analyzer info SESSION --json``
run as subprocesses under ``/usr/bin/time -v``: wall time and peak RSS of each, and a
SHA-256 of what each printed with the timing-free fields kept (compare before/after).

Usage: ``PYTHONPATH=. python bench/many_streams.py [--streams 1000,5000] [--repeat 1]
[--label after] [--json OUT] [--keep DIR]``. With ``--json`` an existing file is
updated: the run is stored under its ``--label`` next to other labels' runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from recorderd import wire as P  # noqa: E402
from recorderd.core.recorder import Recorder  # noqa: E402
from recorderd.daemon.pipeline import Pipeline  # noqa: E402
from recorderd.daemon.settings import load_settings  # noqa: E402

LAYERS_PER_NODE = 256
ANALYZER = [sys.executable, "-c", "from analysis.cli import main; main()"]


def make_session(root: Path, n: int) -> Path:
    """A session of ``n`` one-message spike streams under ``root``; its folder."""
    settings = load_settings(
        None,
        session=f"s{n}",
        recording_dir=root,
        max_streams=n + 16,
        max_streams_per_node=LAYERS_PER_NODE,
    )
    recorder = Recorder(settings.core())
    recorder.start()
    pipe = Pipeline(recorder, prefix="brain", capacity=n + 16, flush_interval=1.0)
    payload = P.encode(
        P.Kind.SPIKES,
        incarnation=1,
        seq=0,
        step=0,
        time_ms=0.0,
        dt_ms=1.0,
        layer_size=100,
        data=np.array([3, 17, 42], dtype=np.uint32),
    )
    for i in range(n):
        node, layer = divmod(i, LAYERS_PER_NODE)
        pipe.handle(f"brain/n{node}/spikes/l{layer}", payload, time.time())
    recorder.finish()
    return root / f"s{n}"


TIMING_KEYS = re.compile(r'"(analysis_version|path|session_dir)": "[^"]*"')


def stable_digest(text: str) -> str:
    """SHA-256 of an output with machine-dependent strings blanked."""
    return hashlib.sha256(TIMING_KEYS.sub("", text).encode()).hexdigest()


def timed(args: list[str], code: Path = ROOT) -> dict[str, Any]:
    """Run ``args`` under ``/usr/bin/time -v`` with ``code`` first on the path: wall s,
    peak RSS MB, exit code, digest of the output."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-v", "-o", tf.name, *args],
            capture_output=True,
            text=True,
            cwd=code,
            env={**os.environ, "PYTHONPATH": str(code)},
            check=False,
        )
        wall = time.perf_counter() - t0
        stats = tf.read()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stats)
    return {
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(int(rss.group(1)) / 1024, 1) if rss else None,
        "exit": proc.returncode,
        "stdout_bytes": len(proc.stdout),
        "stdout_sha256": stable_digest(proc.stdout),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--streams", default="1000,5000", help="comma list of stream counts")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--label", default="run", help="name of this run in the JSON")
    p.add_argument("--json", type=Path, help="store (update) the figures here")
    p.add_argument("--keep", type=Path, help="make (or reuse) the sessions in this folder")
    p.add_argument(
        "--code",
        type=Path,
        action="append",
        help="checkout(s) whose analysis runs, each in turn (a baseline worktree) [this one]",
    )
    a = p.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="many-streams-"))
    root.mkdir(parents=True, exist_ok=True)
    commands = {"json": [], "info": ["info"], "info_json": ["info", "--json"]}
    rows: list[dict[str, Any]] = []
    for n in (int(x) for x in a.streams.split(",")):
        session = root / f"s{n}"
        if not (session / "simulation_data.h5").exists():
            t0 = time.perf_counter()
            make_session(root, n)
            print(f"made {session} in {time.perf_counter() - t0:.1f} s", flush=True)
        for name, extra in commands.items():
            args = [*ANALYZER, *extra[:1], str(session), *extra[1:]]
            if name == "json":
                args = [*ANALYZER, str(session), "--json"]
            for rep in range(a.repeat):
                for code in a.code or [ROOT]:  # interleaved: the same load on each
                    r = {"streams": n, "command": name, "rep": rep, "code": str(code)}
                    r.update(timed(args, code.resolve()))
                    rows.append(r)
                    print(
                        f"{n:>6} {name:<10} {r['wall_s']:7.2f} s {r['peak_rss_mb']:7.1f} MB "
                        f"exit {r['exit']} {r['stdout_sha256'][:12]} {code}",
                        flush=True,
                    )
    if a.json:
        doc = json.loads(a.json.read_text()) if a.json.exists() else {}
        load = os.getloadavg()[0]
        doc[a.label] = {"cores": os.cpu_count(), "load_avg_1min_at_end": load, "runs": rows}
        a.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
