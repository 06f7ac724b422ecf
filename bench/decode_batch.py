"""``decode_batch`` alone: microseconds per message for batches of one key's spike messages.

The writer decodes each key's messages of a batch at once (``recorderd.wire.batch``); a
batch's fixed cost (a few dozen numpy calls) is paid per key, so small batches (many
streams, a low rate) cost more per message. This times it for batch sizes 64-2,048 of
1,000-neuron spike messages at ~5% firing (the perf bench's workloads a and b), best of
7 x 50 calls each, with the decoder as installed: the C module's one-pass check of an
all-valid batch where it was built, numpy alone with ``RECORDERD_NATIVE=0``::

    python bench/decode_batch.py [--json OUT]
    RECORDERD_NATIVE=0 python bench/decode_batch.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recorderd.wire import Kind, encode  # noqa: E402
from recorderd.wire.batch import NATIVE_OFF, decode_batch  # noqa: E402

SIZES = (64, 128, 256, 512, 1024, 2048)


def messages(n: int, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for seq in range(n):
        ids = np.flatnonzero(rng.random(1000) < 0.05).astype(np.uint32)
        out.append(
            encode(
                Kind.SPIKES,
                data=ids,
                incarnation=1,
                seq=seq,
                step=seq,
                time_ms=float(seq),
                dt_ms=1.0,
                layer_size=1000,
            )
        )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    msgs = messages(max(SIZES))
    result = {}
    decoder = "C one-pass check" if NATIVE_OFF is None else f"numpy only ({NATIVE_OFF})"
    print(f"decoder: {decoder}")
    for n in SIZES:
        batch = msgs[:n]
        assert len(decode_batch(batch, Kind.SPIKES)) == n
        best = min(timeit.repeat(lambda b=batch: decode_batch(b, Kind.SPIKES), number=50, repeat=7))
        us = best / 50 / n * 1e6
        result[n] = round(us, 3)
        print(f"{n:5d} messages: {us:.3f} us per message ({best / 50 * 1e6:.0f} us per batch)")
    if args.json:
        args.json.write_text(json.dumps({"decoder": decoder, "us_per_message": result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
