"""Fuzz the C modules (``recorderd/*/_fast*.c``) under AddressSanitizer and UBSan.

Compiles both with ``-fsanitize=address,undefined`` into a temporary folder, then, in a
child process that preloads the sanitizer runtime:

- feeds the batch check (``_fastbatch``) random batches of data messages (valid ones
  spoiled by byte flips, cuts, growth, hostile sizes, junk) and checks that it returns a
  result exactly when ``decode`` finds every message valid, and that the result is the
  numpy path's byte for byte (every 97th batch);
- runs the intake's random script of puts, takes and clears (``tests/test_intake.py``,
  ``trace``) with the C put and with the Python put, for ``--scripts`` seeds, and checks
  that the two answer the same; then four threads putting while one takes.

Any out-of-bounds access or undefined behaviour stops the child with the sanitizer's
report. Run it after changing a C file (needs gcc and its libasan)::

    python bench/fuzz_native.py [--batches 40000] [--scripts 20] [--seed 5]
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
MODULES = ("recorderd.wire._fastbatch", "recorderd.daemon._fastintake")


def load(name: str, folder: Path) -> object:
    """The sanitized build of module ``name``, in ``sys.modules`` before anyone imports it."""
    import importlib.util

    short = name.rsplit(".", 1)[1]
    spec = importlib.util.spec_from_file_location(
        name, folder / f"{short}{sysconfig.get_config_var('EXT_SUFFIX')}"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


def child(folder: Path, batches: int, scripts: int, seed: int) -> int:
    fast = load("recorderd.wire._fastbatch", folder)
    fast_intake = load("recorderd.daemon._fastintake", folder)

    sys.path.insert(0, str(ROOT))
    from recorderd import wire as P
    from recorderd.daemon import intake as I
    from recorderd.wire import batch as B
    from tests import test_intake as TI
    from tests import test_wire_batch as T

    assert B._decode_valid is fast.decode_valid, B.NATIVE_OFF  # type: ignore[attr-defined]
    assert issubclass(I.Intake, fast_intake.IntakeBase), I.NATIVE_OFF  # type: ignore[attr-defined]
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
        f"{passed:,} all valid (passed), {refused:,} refused"
    )
    t0 = time.monotonic()
    for s in range(seed, seed + scripts):
        if TI.trace(s) != TI.trace(s, python_put=True):
            print(f"intake script {s}: the C put and the Python put answer differently")
            return 1
    TI.test_puts_from_many_threads_while_the_writer_takes_lose_nothing_uncounted()
    print(
        f"{scripts} intake scripts (C put = Python put) and 4 threads x 20,000 puts in "
        f"{time.monotonic() - t0:.1f} s under ASan + UBSan; no sanitizer error"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=40_000)
    ap.add_argument("--scripts", type=int, default=20)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.batches, args.scripts, args.seed)
    runtime = subprocess.run(
        ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not Path(runtime).is_file():
        print("gcc has no libasan here", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        include = sysconfig.get_paths()["include"]
        flags = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
        flags += ["-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", f"-I{include}"]
        for name in MODULES:
            source = ROOT / f"{name.replace('.', '/')}.c"
            so = Path(tmp) / f"{name.rsplit('.', 1)[1]}{sysconfig.get_config_var('EXT_SUFFIX')}"
            subprocess.run(["gcc", *flags, str(source), "-o", str(so)], check=True)
        env = {
            **os.environ,
            "LD_PRELOAD": runtime,
            "ASAN_OPTIONS": "detect_leaks=0",  # CPython's own allocations are not leaks
            "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
            "RECORDERD_NATIVE": "1",
        }
        cmd = [sys.executable, __file__, "--child", tmp, "--batches", str(args.batches)]
        cmd += ["--scripts", str(args.scripts), "--seed", str(args.seed)]
        return subprocess.run(cmd, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
