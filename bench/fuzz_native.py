"""Fuzz the C batch check (``recorderd/wire/_fastbatch.c``) under AddressSanitizer and UBSan.

Compiles the module with ``-fsanitize=address,undefined`` into a temporary folder, then,
in a child process that preloads the sanitizer runtime, feeds it random batches of data
messages (valid ones spoiled by byte flips, cuts, growth, hostile sizes, junk) and checks
that it returns a result exactly when ``decode`` finds every message valid, and that the
result is the numpy path's byte for byte (every 97th batch). Any out-of-bounds read or
undefined behaviour stops the child with the sanitizer's report. Run it after changing
the C file (needs gcc and its libasan)::

    python bench/fuzz_native.py [--batches 40000] [--seed 5]
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "recorderd" / "wire" / "_fastbatch.c"


def child(so: Path, batches: int, seed: int) -> int:
    import importlib.util

    spec = importlib.util.spec_from_file_location("recorderd.wire._fastbatch", so)
    assert spec is not None and spec.loader is not None
    fast = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fast)
    sys.modules["recorderd.wire._fastbatch"] = fast  # before batch.py imports it

    sys.path.insert(0, str(ROOT))
    from recorderd import wire as P
    from recorderd.wire import batch as B
    from tests import test_wire_batch as T

    assert B._decode_valid is fast.decode_valid, B.NATIVE_OFF
    rng = random.Random(seed)
    passed = refused = 0
    t0 = time.monotonic()
    for i in range(batches):
        kind = rng.choice(list(P.Kind))
        batch = []
        for s in range(rng.randint(0, 12)):
            p = bytearray(T.valid(kind, s, rng.randint(0, 12)))
            for _ in range(rng.choice([0, 0, 1, 2, 5])):
                op = rng.random()
                if op < 0.5 and p:
                    p[rng.randrange(len(p))] = rng.randrange(256)
                elif op < 0.7:
                    p = p[: rng.randint(0, len(p))]
                elif op < 0.8:
                    p += bytes(rng.randint(1, 9))
                elif op < 0.9 and len(p) >= 64:
                    sizes = [0, 1, 2**26, 2**26 + 1, 2**32 - 1, rng.randrange(2**32)]
                    struct.pack_into("<I", p, rng.choice([48, 52, 56]), rng.choice(sizes))
                else:
                    p = bytearray(rng.randbytes(rng.randint(0, 200)))
            batch.append(bytes(p))
        got = fast.decode_valid(batch, int(kind), P.MAX_ELEMENTS)
        all_valid = all(v[0] == "ok" for v in T.per_message(batch, kind))
        if (got is not None) != all_valid:
            print(f"batch {i}: C passes it: {got is not None}, decode finds all valid: {all_valid}")
            print(f"  the batch: {batch!r:.2000}")
            return 1
        passed += got is not None
        refused += got is None
        if i % 97 == 0:
            T.same_batch(B.decode_batch(batch, kind), T.numpy_only(batch, kind))
    print(
        f"{batches:,} batches in {time.monotonic() - t0:.1f} s under ASan + UBSan: "
        f"{passed:,} all valid (passed), {refused:,} refused; no sanitizer error"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=40_000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.batches, args.seed)
    runtime = subprocess.run(
        ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not Path(runtime).is_file():
        print("gcc has no libasan here", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        so = Path(tmp) / f"_fastbatch{sysconfig.get_config_var('EXT_SUFFIX')}"
        include = sysconfig.get_paths()["include"]
        flags = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
        flags += ["-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", f"-I{include}"]
        subprocess.run(["gcc", *flags, str(SOURCE), "-o", str(so)], check=True)
        env = {
            **os.environ,
            "LD_PRELOAD": runtime,
            "ASAN_OPTIONS": "detect_leaks=0",  # CPython's own allocations are not leaks
            "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
            "RECORDERD_NATIVE": "1",
        }
        cmd = [sys.executable, __file__, "--child", str(so)]
        cmd += ["--batches", str(args.batches), "--seed", str(args.seed)]
        return subprocess.run(cmd, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
