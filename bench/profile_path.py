"""The recorder's data path without the bus: decode, account and write, per message.

``--messages`` spike messages of ``--nodes`` nodes (default 4; one 1,000-neuron
layer each, ~5% firing, interleaved as they arrive from a bus) are pre-encoded, then
handed to recorderd's own ``Pipeline`` exactly as its Zenoh callback does
(``Pipeline.submit_data``: the intake's ``put``), and drained by the writer's own batch step
(``Pipeline._drain``) whenever ``--batch`` messages are queued; the clock stops when the session is
finished (closed). No Zenoh, no threads but the compression pool: this is the
per-message Python cost, then compression and HDF5.

``--profile`` prints cProfile's top entries by own time (``tottime``).

Usage: ``PYTHONPATH=. python bench/profile_path.py [--messages 100000]
[--compression gzip|lzf|none] [--profile] [--top 15]``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from recorderd import wire as P  # noqa: E402
from recorderd.core.recorder import Recorder  # noqa: E402
from recorderd.daemon.pipeline import BATCH_MESSAGES, Pipeline  # noqa: E402
from recorderd.daemon.settings import load_settings  # noqa: E402

NODES = 4
LAYER = 1000
RATE = 0.05


def messages(n: int, nodes: int) -> list[tuple[str, bytes]]:
    """``n`` encoded spike messages, node after node within each step."""
    rng = np.random.default_rng(0)
    per_node = n // nodes
    out = []
    for i in range(per_node):
        for node in range(nodes):
            ids = np.flatnonzero(rng.random(LAYER) < RATE)
            payload = P.encode(
                P.Kind.SPIKES,
                incarnation=1000 + node,
                seq=i,
                step=i,
                time_ms=float(i),
                dt_ms=1.0,
                layer_size=LAYER,
                data=ids,
            )
            out.append((f"brain/bench-{node}/spikes/layer", payload))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--nodes", type=int, default=NODES, help="publishing nodes [4]")
    p.add_argument("--compression", choices=["gzip", "lzf", "none"], default="gzip")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--top", type=int, default=15)
    p.add_argument(
        "--batch",
        type=int,
        default=BATCH_MESSAGES,
        help=f"drain whenever this many messages are queued [{BATCH_MESSAGES}]",
    )
    args = p.parse_args()
    msgs = messages(args.messages, args.nodes)
    work = Path(tempfile.mkdtemp(prefix="profile-path-"))
    try:
        settings = load_settings(
            None, session="p", recording_dir=work, compression=args.compression
        )
        rec = Recorder(settings.core())
        rec.start()
        pipe = Pipeline(rec, prefix="brain", capacity=200_000, flush_interval=1.0)
        prof = cProfile.Profile() if args.profile else None
        if prof is not None:
            prof.enable()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        for key, payload in msgs:
            pipe.submit_data(key, payload, 0)  # data keys: what the daemon's callback calls
            if len(pipe.intake) >= args.batch:
                pipe._drain()
        while len(pipe.intake):
            pipe._drain()
        rec.finish()
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        if prof is not None:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
        n = len(msgs)
        size = (work / "p" / "simulation_data.h5").stat().st_size
        print(
            f"{n} messages in {seconds:.2f} s = {n / seconds:,.0f} msg/s "
            f"({seconds / n * 1e6:.1f} us/msg), CPU {cpu / n * 1e6:.1f} us/msg "
            f"(all threads), {size:,} bytes"
        )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
