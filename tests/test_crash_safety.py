"""kill -9 at any moment: the session stays readable, intact up to the last flush.

The journal's own rules (torn and inconsistent records), a writer process killed at
random moments in the middle of writing whole chunks and journal records, and a short
run of ``bench/crash_loop.py`` (real recorderd, real brain node, real Zenoh).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis.reader import SessionReader
from recorderd.core.recorder import Recorder
from recorderd.daemon.settings import load_settings
from recorderd.session import layout as L
from recorderd.session.journal import Entry, Journal, JournalError, replay
from recorderd.session.superblock import lookup3_hashlittle

ROOT = Path(__file__).resolve().parents[1]


def entry(path: str, main: int, start: int, values: list[int]) -> Entry:
    return Entry(path, main, start, np.asarray(values, dtype=np.int64))


def test_journal_replays_records_in_order(tmp_path: Path) -> None:
    j = Journal.create(tmp_path / "j", [entry("/a", 0, 0, [1, 2])], fsync=False)
    j.append([entry("/a", 0, 2, [3]), entry("/b", 0, 0, [7])])
    j.append([entry("/a", 4, 0, [5])])  # a chunk of 4 rows went into the file
    j.close()
    rep = replay(tmp_path / "j")
    assert rep.records == 3 and rep.ignored_bytes == 0
    assert (rep.tails["/a"].main, rep.tail("/a").tolist()) == (4, [5])
    assert (rep.tails["/b"].main, rep.tail("/b").tolist()) == (0, [7])


def test_a_torn_or_damaged_last_record_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = Journal.create(path, [entry("/a", 0, 0, [1])], fsync=False)
    j.append([entry("/a", 0, 1, [2])])
    good = path.stat().st_size
    j.append([entry("/a", 0, 2, [3, 4, 5])])
    j.close()
    data = path.read_bytes()
    for cut in range(good + 1, len(data)):  # a crash at every byte of the last record
        path.write_bytes(data[:cut])
        rep = replay(path)
        assert rep.tail("/a").tolist() == [1, 2] and rep.ignored_bytes == cut - good
    flipped = bytearray(data)
    flipped[-3] ^= 0x01  # a damaged row: the CRC catches it
    path.write_bytes(bytes(flipped))
    assert replay(path).tail("/a").tolist() == [1, 2]


def test_a_record_that_does_not_follow_is_not_applied(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = Journal.create(path, [entry("/a", 0, 0, [1, 2])], fsync=False)
    j.append([entry("/b", 0, 0, [9]), entry("/a", 0, 5, [3])])  # rows 2-4 of /a missing
    j.append([entry("/a", 0, 2, [3])])
    j.close()
    rep = replay(path)
    assert rep.records == 1 and "/b" not in rep.tails  # all of the bad record or none
    assert rep.tail("/a").tolist() == [1, 2]


def test_superblock_checksum_is_lookup3() -> None:
    # Bob Jenkins' published test values for hashlittle.
    assert lookup3_hashlittle(b"") == 0xDEADBEEF
    assert lookup3_hashlittle(b"Four score and seven years ago") == 0x17770551
    assert lookup3_hashlittle(b"Four score and seven years ago", 1) == 0xCD628161


def test_not_a_journal_is_refused(tmp_path: Path) -> None:
    (tmp_path / "j").write_bytes(b"hello world, no journal here")
    with pytest.raises(JournalError, match="not a recorderd journal"):
        replay(tmp_path / "j")


# A writer that appends deterministic spikes (many whole chunks) and membrane rows,
# flushing every 40 messages, printing what each flush made durable.
CHILD = r"""
import sys, time
import numpy as np
from recorderd.daemon.settings import load_settings
from recorderd.session.superblock import lookup3_hashlittle
from recorderd.core.recorder import Recorder
from recorderd.daemon.pipeline import Pipeline
from recorderd import wire as P

root, run = sys.argv[1], int(sys.argv[2])
settings = load_settings(None, session="s", recording_dir=root, record_membrane=True,
                         min_free_disk_mb=0)
recorder = Recorder(settings.core())
recorder.start()
pipe = Pipeline(recorder, prefix="brain", capacity=1000, flush_interval=60.0)
print("READY", flush=True)
for seq in range(1_000_000):
    ids = np.sort((np.arange(1500, dtype=np.uint32) * 7 + seq * 13 + run) % 4000)
    pipe.handle("brain/pfc-0/spikes/out", P.encode(P.Kind.SPIKES, incarnation=run + 1, seq=seq,
                step=seq, time_ms=float(seq), dt_ms=1.0, layer_size=4000, data=ids), time.time())
    v = (np.arange(64, dtype=np.float32) + seq + run * 1000).astype(np.float32)
    pipe.handle("brain/pfc-0/membrane/out", P.encode(P.Kind.MEMBRANE, incarnation=run + 1,
                seq=seq, step=seq, time_ms=float(seq), dt_ms=1.0, layer_size=64, data=v),
                time.time())
    if seq % 40 == 39:
        recorder.flush()
        print("FLUSHED", seq + 1, flush=True)
"""


def expected_ids(run: int, steps: int) -> np.ndarray:
    seq = np.arange(steps, dtype=np.int64)[:, None]
    ids = (np.arange(1500, dtype=np.int64)[None, :] * 7 + seq * 13 + run) % 4000
    return np.sort(ids, axis=1).ravel().astype(np.uint32)


def check_runs(session: Path, flushed: list[int]) -> str:
    """Every run on disk is the start of what it wrote, at least what it had flushed."""
    with SessionReader(session) as r:
        state = r.state
        frames = r.frames("pfc-0", "out")
        ids = r.spikes("pfc-0", "out").neuron_ids
        mframes = r.frames("pfc-0", "out", L.MEMBRANE)
        _, mem = r.membrane("pfc-0", "out")
    at = 0
    for run, least in enumerate(flushed):
        rows = frames.incarnation == np.uint64(run + 1)
        steps = frames.steps[rows]
        n = steps.size
        assert steps.tolist() == list(range(n)), f"run {run}: steps not 0..{n - 1}"
        assert least <= n <= least + 40, f"run {run}: {n} steps on disk, {least} flushed"
        assert np.array_equal(ids[at : at + n * 1500], expected_ids(run, n)), f"run {run}"
        at += n * 1500
        mrows = np.flatnonzero(mframes.incarnation == np.uint64(run + 1))
        assert mframes.steps[mrows].tolist() == list(range(n))
        want = np.arange(64, dtype=np.float32)[None, :] + np.arange(n)[:, None] + run * 1000
        assert np.array_equal(mem[mrows], want.astype(np.float32)), f"run {run}: membrane"
    assert at == ids.size
    return state


def test_writer_killed_at_random_moments_keeps_every_flushed_row(tmp_path: Path) -> None:
    rng = random.Random(7)
    flushed: list[int] = []
    for run in range(5):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), str(run)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY"
        deadline = time.monotonic() + rng.uniform(0.3, 2.0)
        last = 0
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if line.startswith("FLUSHED"):
                last = int(line.split()[1])
        child.send_signal(signal.SIGKILL)
        child.wait()
        for line in child.stdout.read().splitlines():  # printed before it died
            if line.startswith("FLUSHED"):
                last = int(line.split()[1])
        child.stdout.close()
        flushed.append(last)
        assert last >= 40, "the kill came before any flush: make the run longer"
        # A reader recovers a copy (no manual step); the next writer recovers the original.
        copy = tmp_path / f"copy-{run}"
        shutil.copytree(tmp_path / "s", copy)
        assert (copy / L.JOURNAL_FILE).exists()
        assert check_runs(copy, flushed) == "recovered"
        assert not (copy / L.JOURNAL_FILE).exists()
        with h5py.File(copy / L.DATA_FILE, "r") as f:  # a plain HDF5 file again
            assert f[L.SPIKES]["pfc-0.out"][L.TIMESTAMPS].shape[0] >= last * 1500
    # Total: several whole 64 Ki-row chunks per run, so chunk writes were interrupted too.
    assert sum(flushed) * 1500 > 5 * L.SPIKE_CHUNK
    with SessionReader(tmp_path / "s") as r:
        assert r.metadata()[L.ATTR_RECORDER_RUNS] == 5


def test_crash_loop_bench_smoke(tmp_path: Path) -> None:
    """The bench's kill -9 loop, short: 4 kills under load and 1 during start-up."""
    out = tmp_path / "crash.json"
    done = subprocess.run(
        [sys.executable, "bench/crash_loop.py", "--rounds", "5", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    print(done.stdout, done.stderr[-3000:])
    assert done.returncode == 0
    results = json.loads(out.read_text())
    assert len(results) == 4 and all("error" not in r for r in results)
    assert all(r["lost_ms"] <= 650 for r in results)
    assert {r["reader"] for r in results} == {"recovered"}


def killed_writer(root: Path, flushes: int = 3) -> None:
    """Leave session ``root/s`` as a writer killed after ``flushes`` flushes."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("FLUSHED") and int(line.split()[1]) >= 40 * flushes:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()


def test_an_unusable_journal_is_kept_and_the_session_read_as_it_is(tmp_path: Path) -> None:
    killed_writer(tmp_path)
    journal = tmp_path / "s" / L.JOURNAL_FILE
    data = bytearray(journal.read_bytes())
    data[12:16] = (99).to_bytes(4, "little")  # a journal version this reader does not know
    journal.write_bytes(bytes(data))
    with SessionReader(tmp_path / "s") as r:
        assert r.state == "read-only"
        assert r.spikes("pfc-0", "out").neuron_ids.size % 1500 == 0  # whole messages only
    assert journal.read_bytes() == bytes(data)  # never deleted, never changed
    done = subprocess.run(
        [sys.executable, "-m", "recorderd", "--session", "s", "--recording-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 1
    assert "cannot be continued automatically" in done.stderr
    assert journal.read_bytes() == bytes(data)


def test_a_writer_killed_before_its_journal_leaves_a_readable_session(tmp_path: Path) -> None:
    session = tmp_path / "s"
    killed_writer(tmp_path)
    with SessionReader(session) as r:
        assert r.state == "recovered"
        n = r.spikes("pfc-0", "out").neuron_ids.size
    # The next writer is killed right after opening the file for writing, before the
    # journal exists: the file keeps its "open for write" flags and no journal.
    code = (
        "import h5py, os\n"
        f"f = h5py.File({str(session / L.DATA_FILE)!r}, 'a', libver=('v110', 'v114'),"
        " locking=False)\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with pytest.raises(OSError):
        h5py.File(session / L.DATA_FILE, "r", locking=False).close()
    with SessionReader(session) as r:
        assert r.state == "recovered" and r.spikes("pfc-0", "out").neuron_ids.size == n
    with h5py.File(session / L.DATA_FILE, "r", locking=False) as f:  # flags cleared
        assert f[L.SPIKES]["pfc-0.out"][L.NODE_IDS].shape == (n,)


def test_a_new_session_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    session = tmp_path / "s"
    session.mkdir()
    # What a writer killed while creating the file leaves: a partial temporary file.
    (session / (L.DATA_FILE + ".creating")).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    settings = load_settings(None, session="s", recording_dir=tmp_path)
    recorder = Recorder(settings.core())
    recorder.start()
    recorder.finish()
    assert not (session / (L.DATA_FILE + ".creating")).exists()
    with SessionReader(session) as r:
        assert r.state == "clean" and r.metadata()[L.ATTR_RECORDER_RUNS] == 1
