"""Memory of the data path over a long write: RSS while millions of messages are recorded.

recorderd's own ``Pipeline`` and ``Recorder`` in one process, without Zenoh: spike
messages of ``--streams`` streams (1,000-neuron layers at ~5%; 256 encoded messages
reused with a fresh seq, step and time each) are handed to the intake as the daemon's
callback does, drained in batches, and flushed every 20,000 messages (about a flush
interval of a real run at ~18,000 msg/s). Every ``--every`` messages it prints RSS, the
size of HDF5's metadata cache and of the file. A leak shows as RSS growing with the
messages written; a bound as a plateau.

Usage: ``python bench/data_path_memory.py [--messages 33e6] [--streams 9] [--every 1e6]
[--json OUT]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from perf import PAYLOAD_HEADER, proc_rss_kb  # noqa: E402  (header: seq, step, time_ms at 16)

from recorderd import wire as P  # noqa: E402
from recorderd.core.recorder import Recorder  # noqa: E402
from recorderd.daemon.pipeline import GATHER_MESSAGES, Pipeline  # noqa: E402
from recorderd.daemon.settings import load_settings  # noqa: E402

LAYER = 1000
RATE = 0.05
TEMPLATES = 256
FLUSH_EVERY = 20_000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=float, default=33e6)
    p.add_argument("--streams", type=int, default=9)
    p.add_argument("--every", type=float, default=1e6)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    total, every = int(args.messages), int(args.every)
    rng = np.random.default_rng(0)
    templates = [
        bytearray(
            P.encode(
                P.Kind.SPIKES,
                incarnation=1,
                seq=0,
                step=0,
                time_ms=0.0,
                dt_ms=1.0,
                layer_size=LAYER,
                data=np.flatnonzero(rng.random(LAYER) < RATE),
            )
        )
        for _ in range(TEMPLATES)
    ]
    keys = [f"brain/n{j}/spikes/layer{j % 3}" for j in range(args.streams)]
    work = Path(tempfile.mkdtemp(prefix="data-path-memory-"))
    samples: list[dict[str, float]] = []
    try:
        rec = Recorder(load_settings(None, session="m", recording_dir=work).core())
        rec.start()
        pipe = Pipeline(rec, prefix="brain", capacity=200_000, flush_interval=1.0)
        data = work / "m" / "simulation_data.h5"
        t0 = time.perf_counter()
        n = step = 0
        while n < total:
            for j, key in enumerate(keys):
                if n == total:
                    break
                t = templates[(step * 7 + j) % TEMPLATES]
                PAYLOAD_HEADER.pack_into(t, 16, step, step, float(step))
                pipe.submit_data(key, bytes(t), 0)
                n += 1
                if n % FLUSH_EVERY == 0:
                    pipe._drain()
                    pipe._flush()
                if n % every == 0:
                    mdc = rec.writer._file.id.get_mdc_size()
                    row = {
                        "messages": n,
                        "rss_mib": round(proc_rss_kb(os.getpid()) / 1024, 1),
                        "hdf5_metadata_cache_mib": round(mdc[2] / 2**20, 2),
                        "file_mb": round(data.stat().st_size / 1e6, 1),
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                    samples.append(row)
                    print("  ".join(f"{k} {v:,}" for k, v in row.items()), flush=True)
            step += 1
            if len(pipe.intake) >= GATHER_MESSAGES:
                pipe._drain()
        while len(pipe.intake):
            pipe._drain()
        rec.finish()
        totals = rec.statistics.totals()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{n:,} messages handed over, {totals['written']:,} written", flush=True)
    if args.json:
        doc = {"streams": args.streams, "messages": n, "totals": totals, "samples": samples}
        args.json.write_text(json.dumps(doc, indent=1))
    return 0 if totals["written"] == n else 1


if __name__ == "__main__":
    sys.exit(main())
