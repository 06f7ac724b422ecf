"""Deflate of whole chunks: zlib against zlib-ng, default against run-length strategy.

The chunks are what recorderd writes for each kind of data, shuffled as HDF5's shuffle
filter does (``recorderd.session.chunks.shuffle``): spike indices of a 1,000-neuron layer
at ~5% and of a 100,000-neuron layer at ~2% (16,384 rows), spike times (16,384 float64
rows, one time per message of ~50 spikes), membrane values (float32) and two datasets of
the frame index (steps, Zenoh times; 4,096 rows). For each, the compressed size as a
fraction of the input and the best of three timings in ns per input byte, at the default
level 4. Pure CPU, no files.

Usage: ``PYTHONPATH=. python bench/deflate.py``.
"""

from __future__ import annotations

import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from zlib_ng import zlib_ng

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recorderd.session.chunks import shuffle

LEVEL = 4
CHUNKS = 8


def spike_ids(rng: np.random.Generator, layer: int, rate: float, rows: int) -> np.ndarray:
    out, n = [], 0
    while n < rows:
        ids = np.flatnonzero(rng.random(layer) < rate).astype("<u4")
        out.append(ids)
        n += ids.size
    return np.concatenate(out)[:rows]


def spike_times(rng: np.random.Generator, rows: int) -> np.ndarray:
    counts = rng.binomial(1000, 0.05, rows // 10)
    return np.repeat(np.arange(counts.size, dtype="<f8"), counts)[:rows]


def deflater(module: Any, rle: bool) -> Callable[[bytes], bytes]:
    def run(data: bytes) -> bytes:
        if not rle:
            return bytes(module.compress(data, LEVEL))
        c = module.compressobj(LEVEL, zlib.DEFLATED, zlib.MAX_WBITS, 8, zlib.Z_RLE)
        return bytes(c.compress(data) + c.flush())

    return run


def main() -> None:
    rng = np.random.default_rng(0)
    spike_rows, frame_rows, membrane_rows = 16384, 4096, 131072
    data = {
        "spike ids, 1,000 neurons": (spike_ids(rng, 1000, 0.05, CHUNKS * spike_rows), spike_rows),
        "spike ids, 100,000 neurons": (
            spike_ids(rng, 100_000, 0.02, CHUNKS * spike_rows),
            spike_rows,
        ),
        "spike times": (spike_times(rng, CHUNKS * spike_rows), spike_rows),
        "membrane (float32)": (
            (-65 + 5 * rng.standard_normal(CHUNKS * membrane_rows)).astype("<f4"),
            membrane_rows,
        ),
        "frame steps": (np.arange(10**6, 10**6 + CHUNKS * frame_rows, dtype="<i8"), frame_rows),
        "frame Zenoh times": (
            (1.7e18 + np.cumsum(rng.integers(10**5, 10**6, CHUNKS * frame_rows))).astype("<u8"),
            frame_rows,
        ),
    }
    ways = {
        "zlib": deflater(zlib, False),
        "zlib Z_RLE": deflater(zlib, True),
        "zlib-ng": deflater(zlib_ng, False),
        "zlib-ng Z_RLE": deflater(zlib_ng, True),
    }
    print(f"level {LEVEL}; size / input, ns per input byte (best of 3)")
    print("| data | " + " | ".join(ways) + " |")
    print("|---|" + "---|" * len(ways))
    for name, (values, rows) in data.items():
        chunks = [shuffle(values[k * rows : (k + 1) * rows]) for k in range(CHUNKS)]
        total = sum(len(c) for c in chunks)
        cells = []
        for run in ways.values():
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                out = [run(c) for c in chunks]
                best = min(best, time.perf_counter() - t)
            assert all(zlib.decompress(o) == c for o, c in zip(out, chunks, strict=True))
            size = sum(len(o) for o in out)
            cells.append(f"{size / total:.4f}, {best / total * 1e9:.2f} ns")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
