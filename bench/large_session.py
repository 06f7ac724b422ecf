"""Out-of-core benchmark: a session of 1e8 spikes, a chunked summary and a SONATA export.

The session is written straight through ``recorderd.session.writer.SessionWriter`` (no bus)
in large batches: ``--populations`` populations of equal size, 100 spikes per 1 ms
step, the first ``--unsorted`` populations with a restart halfway (a new incarnation
whose times start again at 0, so ``sorting = none`` and the export has to merge).
Each measured step runs in a fresh subprocess, which reports its wall time and peak
resident memory (``VmHWM``) next to the peak right after its imports:

* ``summary``: per population the total and per-neuron spike counts (``np.bincount``
  over the reader's ``iter_spike_chunks``);
* ``sonata``: ``analysis.export.export_sonata`` of the whole session;
* ``libsonata``: read every exported population with ``libsonata`` (``get_dict``) and
  check its size and time order (one population in memory at a time).

The data live in a temporary folder under /tmp, deleted at the end unless ``--keep``.
Not part of the test suite; ``tests/test_large_session_smoke.py`` runs
``--spikes 200000``. Usage: ``PYTHONPATH=. python bench/large_session.py [--spikes N]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from analysis.export import export_sonata  # noqa: E402
from analysis.reader import SessionReader  # noqa: E402
from recorderd.session import layout as L  # noqa: E402
from recorderd.session.frames import Frames  # noqa: E402
from recorderd.session.writer import SessionWriter  # noqa: E402
from recorderd.wire import Kind  # noqa: E402

PER_STEP = 100  # spikes per message
LAYER_SIZE = 10_000
BATCH_STEPS = 20_000  # messages per append: 2 M spikes


def generate(session: Path, spikes: int, populations: int, unsorted: int, compression: str) -> int:
    """Write the session; returns the number of spikes written."""
    rng = np.random.default_rng(0)
    steps_per_pop = max(1, spikes // populations // PER_STEP)
    band = LAYER_SIZE // PER_STEP
    # Strictly increasing ids within a message, as the wire protocol has them.
    base = np.arange(PER_STEP, dtype=np.uint32) * band
    total = 0
    with SessionWriter(session, session=session.name, compression=compression) as w:  # type: ignore[arg-type]
        for p in range(populations):
            node, layer = f"bench-{p // 2}", f"l{p % 2}"
            w.note_node(node, module_type="bench", dt_ms=1.0, incarnation=1)
            h = w.streams.open(
                Kind.SPIKES,
                node,
                layer,
                shape=(LAYER_SIZE,),
                dt_ms=1.0,
                subsample_rate=1.0,
                select=lambda: np.arange(LAYER_SIZE, dtype=np.uint32),
            )
            restart = steps_per_pop // 2 if p < unsorted else steps_per_pop
            for a in range(0, steps_per_pop, BATCH_STEPS):
                msgs = np.arange(a, min(a + BATCH_STEPS, steps_per_pop), dtype=np.int64)
                inc = np.where(msgs < restart, 1, 2).astype(np.uint64)
                step = np.where(msgs < restart, msgs, msgs - restart)
                if p < unsorted and a <= restart < a + BATCH_STEPS:
                    w.note_node(node, incarnation=2)
                frames = Frames(
                    step,
                    step.astype(np.float64),
                    np.where(msgs < restart, msgs, msgs - restart).astype(np.uint64),
                    inc,
                    np.full(msgs.size, PER_STEP, dtype=np.uint32),
                )
                steps = np.repeat(step, PER_STEP)
                ids = (np.tile(base, msgs.size) + rng.integers(0, band, steps.size)).astype(
                    np.uint32
                )
                w.streams.append_spikes(h, steps, steps.astype(np.float64), ids, frames)
                total += steps.size
    return total


def summary(session: Path) -> dict[str, Any]:
    """Per population: total spikes and per-neuron counts, read chunk by chunk."""
    out: dict[str, Any] = {}
    with SessionReader(session) as r:
        chunked = hasattr(r, "iter_spike_chunks")
        for node in r.nodes():
            for layer in r.layers(node):
                size = int(np.atleast_1d(r.stream_attrs(node, layer)[L.ATTR_LAYER_SIZE])[0])
                counts = np.zeros(size, dtype=np.int64)
                for ids in _id_chunks(r, node, layer, chunked):
                    counts += np.bincount(ids, minlength=size)
                out[L.population(node, layer)] = {
                    "total": int(counts.sum()),
                    "max_per_neuron": int(counts.max()),
                    "silent": int(np.count_nonzero(counts == 0)),
                }
    out["_iteration"] = "SessionReader.iter_spike_chunks" if chunked else "h5py slices"
    return out


def _id_chunks(r: SessionReader, node: str, layer: str, chunked: bool) -> Any:
    if chunked:
        for c in r.iter_spike_chunks(node, layer, with_steps=False):
            yield c.neuron_ids
        return
    import h5py  # fallback for a reader without chunked iteration

    with h5py.File(r.path / L.DATA_FILE, "r", locking=False) as f:
        ds = f[L.SPIKES][L.population(node, layer)][L.NODE_IDS]
        for a in range(0, ds.shape[0], 1 << 21):
            yield ds[a : a + (1 << 21)]


def read_libsonata(path: Path) -> dict[str, Any]:
    """Read every population with libsonata; check sizes and time order."""
    import libsonata  # type: ignore[import-untyped]

    out: dict[str, Any] = {}
    for name in libsonata.SpikeReader(str(path)).get_population_names():
        # A reader keeps every population it has opened in memory (16 bytes per
        # spike): a fresh reader per population keeps one at a time.
        pop = libsonata.SpikeReader(str(path))[name]
        t = pop.get_dict()["timestamps"]
        out[name] = {
            "total": int(t.size),
            "sorting": pop.sorting,
            "ordered": bool(np.all(t[1:] >= t[:-1])),
        }
        del pop, t
    return out


def peak_rss_kib() -> int:
    """Peak resident memory of this process in KiB.

    ``VmHWM`` of the process's own address space: ``ru_maxrss`` would also count the
    parent's memory at fork time, which Linux carries over into the child across exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def measure(args: list[str]) -> None:
    """Child mode: run one step and print its time and peak memory as JSON."""
    what, session = args[0], Path(args[1])
    base = peak_rss_kib()
    t0 = time.perf_counter()
    if what == "summary":
        result: Any = summary(session)
    elif what == "sonata":
        result = export_sonata(session, Path(args[2]))
    else:
        result = read_libsonata(session)
    seconds = time.perf_counter() - t0
    peak = peak_rss_kib()
    print(json.dumps({"seconds": seconds, "peak_kib": peak, "base_kib": base, "result": result}))


def run_child(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--measure", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{proc.stderr}")
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spikes", type=float, default=1e8, help="total spikes [1e8]")
    parser.add_argument("--populations", type=int, default=10)
    parser.add_argument("--unsorted", type=int, default=1, help="populations with a restart")
    parser.add_argument("--compression", choices=["lzf", "gzip", "none"], default="lzf")
    parser.add_argument("--dir", type=Path, default=Path("/tmp"), help="parent of the temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the session and export")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return 0
    spikes = int(args.spikes)
    need = spikes * (16 + 20)  # export (f8 + u8) plus an uncompressed worst case
    free = shutil.disk_usage(args.dir).free
    if free < need:
        raise SystemExit(
            f"need ~{need / 2**30:.1f} GiB free in {args.dir}, have {free / 2**30:.1f}"
        )
    work = Path(tempfile.mkdtemp(prefix="large_session_", dir=args.dir))
    session, out = work / "bench", work / "spikes_sonata.h5"
    try:
        t0 = time.perf_counter()
        total = generate(session, spikes, args.populations, args.unsorted, args.compression)
        gen_s = time.perf_counter() - t0
        steps = {
            "summary": run_child("summary", str(session)),
            "sonata": run_child("sonata", str(session), str(out)),
            "libsonata": run_child("libsonata", str(out)),
        }
        totals = {k: v["total"] for k, v in steps["summary"]["result"].items() if k[0] != "_"}
        assert sum(totals.values()) == total, "summary total differs"
        assert steps["sonata"]["result"] == totals, "export counts differ"
        read = steps["libsonata"]["result"]
        assert {k: v["total"] for k, v in read.items()} == totals, "libsonata counts differ"
        assert all(v["ordered"] and v["sorting"] == "by_time" for v in read.values())
        src_mb = (session / L.DATA_FILE).stat().st_size / 2**20
        print(
            f"\n{total:,} spikes, {args.populations} populations ({args.unsorted} with a "
            f"restart), {args.compression}: session {src_mb:,.0f} MiB written in {gen_s:.1f} s; "
            f"SONATA export {out.stat().st_size / 2**20:,.0f} MiB; summary via "
            f"{steps['summary']['result']['_iteration']}.\n"
        )
        print("| step | time (s) | Mspikes/s | peak RSS (MiB) | RSS after imports (MiB) |")
        print("|---|---:|---:|---:|---:|")
        for name, s in steps.items():
            rate = total / s["seconds"] / 1e6
            print(
                f"| {name} | {s['seconds']:.1f} | {rate:.1f} | {s['peak_kib'] / 1024:.0f} "
                f"| {s['base_kib'] / 1024:.0f} |"
            )
        if args.json:
            figures = {"spikes": total, "generate_s": gen_s, "session_mib": src_mb, **steps}
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
