"""The stream summary (``/metadata/summary``): a cleanly closed file lists every stream's
facts, the analysis takes them from there, and what it shows is the same as when it reads
every stream itself (files without a summary, or with one that no longer holds)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from analysis.facts import gather
from analysis.reader import SessionReader
from recorderd import wire as P
from recorderd.daemon.settings import load_settings
from recorderd.session import layout as L
from recorderd.session import writer as writer_module
from recorderd.session.summary import MAX_RUNS
from recorderd.session.views import storage_under
from tests.helpers import data_message, feed
from tests.processes import sim_analyzer

Message = tuple[str, bytes | None]


def spikes(node: str, layer: str, seq: int, ids: Any, **kw: Any) -> Message:
    size = kw.pop("layer_size", 100)
    return (
        f"brain/{node}/spikes/{layer}",
        data_message(P.Kind.SPIKES, seq, ids, layer_size=size, **kw),
    )


def first_run() -> list[Message]:
    """Spikes with a gap, a restart, empty messages and a time going back; membrane with
    neurons and with none recorded; weights; a subsampled layer."""
    out: list[Message] = []
    for seq in (0, 1, 2, 5, 6):  # seq 3 and 4 missing
        out.append(spikes("a", "l0", seq, [1, 7, 42][: seq % 4], dt_ms=0.5))
    for seq in range(3):  # the node restarted: a new incarnation, steps from 0 again
        out.append(spikes("a", "l0", seq, [seq, 50 + seq], incarnation=2, dt_ms=0.5))
    out.append(spikes("a", "sub", 0, np.arange(0, 100, 3)))
    out.append(spikes("b", "big", 0, [5, 1 << 20], layer_size=1 << 21))
    for seq in range(4):
        v = np.linspace(-70, -50, 20, dtype=np.float32) + seq
        out.append(("brain/a/membrane/v", data_message(P.Kind.MEMBRANE, seq, v, layer_size=20)))
        one = np.array([-65.0], dtype=np.float32)
        out.append(("brain/b/membrane/tiny", data_message(P.Kind.MEMBRANE, seq, one, layer_size=1)))
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    for seq in range(2):
        out.append(("brain/a/weights/w", data_message(P.Kind.WEIGHTS, seq, w + seq, layer_size=4)))
    return out


def record(root: Path, messages: list[Message], **flags: Any) -> Path:
    settings = load_settings(
        None,
        session="s",
        recording_dir=root,
        record_membrane=True,
        record_weights=True,
        spike_subsample_rate=flags.pop("spike_subsample_rate", 1.0),
        membrane_subsample_rate=0.5,
        **flags,
    )
    feed(settings, messages)
    return root / "s"


def outputs(session: Path) -> dict[str, str]:
    """What ``sim-analyzer`` prints: the summary JSON, ``info`` and ``info --json`` (the
    session's path replaced)."""
    out = {}
    for name, args in {"json": [session, "--json"], "info": ["info", session]}.items():
        res = sim_analyzer(*args, timeout=300)
        assert res.returncode == 0, res.stderr
        out[name] = res.stdout
    res = sim_analyzer("info", session, "--json", timeout=300)
    doc = json.loads(res.stdout)
    doc.pop("analysis_version", None)
    out["info_json"] = json.dumps(doc, sort_keys=True)
    return {k: v.replace(str(session.resolve()), "SESSION") for k, v in out.items()}


def without_summary(session: Path, to: Path) -> Path:
    """A copy of the session whose file has no summary (as older recorders wrote them)."""
    shutil.copytree(session, to)
    with h5py.File(to / L.DATA_FILE, "a", locking=False) as h5:
        del h5[L.METADATA][L.SUMMARY]
    return to


def summarized_streams(session: Path) -> set[str]:
    """The streams whose facts come from the summary; every stream's facts are checked
    against the stream itself."""
    found = set()
    with SessionReader(session) as r:
        for node in r.nodes():
            for kind in L.SUMMARY_KINDS:
                for layer in r.layers(node, kind):
                    if r._file.summary(kind, node, layer) is not None:
                        found.add(f"{node}/{kind}/{layer}")
                    assert r.facts(node, layer, kind) == gather(r, kind, node, layer)
    return found


FIRST_STREAMS = {
    "a/spikes/l0",
    "a/spikes/sub",
    "b/spikes/big",
    "a/membrane/v",
    "b/membrane/tiny",
    "a/weights/w",
}


@pytest.mark.parametrize("compression", ["gzip", "lzf", "none"])
def test_the_summary_holds_what_the_streams_say(tmp_path: Path, compression: str) -> None:
    session = record(tmp_path, first_run(), compression=compression, spike_subsample_rate=0.5)
    assert summarized_streams(session) == FIRST_STREAMS
    with h5py.File(session / L.DATA_FILE, "r", locking=False) as h5:
        table = h5[L.METADATA][L.SUMMARY][L.SUMMARY_STREAMS][()]
        for row in table:
            kind = L.SUMMARY_KINDS[row["kind"]]
            group = h5[kind][row["population"].decode()]
            assert row["storage_bytes"] == storage_under(group.id)


def test_the_analysis_shows_the_same_with_and_without_the_summary(tmp_path: Path) -> None:
    session = record(tmp_path / "new", first_run())
    old = without_summary(session, tmp_path / "old" / "s")
    with SessionReader(old) as r:
        assert r._file.summary(L.SPIKES, "a", "l0") is None  # read the stream itself
    assert outputs(session) == outputs(old)


def test_an_appended_session_is_summarized_whole(tmp_path: Path) -> None:
    session = record(tmp_path, first_run())
    # A second run continues a.l0 (a gap from seq 6 to 9), adds c.new, leaves the others.
    more = [spikes("a", "l0", seq, [3], incarnation=2, dt_ms=0.5) for seq in (9, 10)]
    more.append(spikes("c", "new", 0, [1, 2]))
    record(tmp_path, more)
    assert summarized_streams(session) == FIRST_STREAMS | {"c/spikes/new"}
    with SessionReader(session) as r:
        f = r.facts("a", "l0")
        assert (f.frames, f.total_count, f.missing) == (10, 6 + 6 + 2, 2 + 6)


def test_a_summary_that_no_longer_holds_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = record(tmp_path, first_run())
    before = outputs(session)
    # A recorder that writes no summary (an older one) appends two messages: the file's
    # stop time and recorder runs change, the summary stays as the first run left it.
    monkeypatch.setattr(writer_module, "write_summary", lambda *a, **k: None)
    record(tmp_path, [spikes("a", "l0", seq, [3], incarnation=2, dt_ms=0.5) for seq in (3, 4)])
    with SessionReader(session) as r:
        assert r._file.summary(L.SPIKES, "a", "l0") is None
        assert r.facts("a", "l0").frames == 10
    after = json.loads(outputs(session)["info_json"])
    row = next(s for s in after["streams"] if s["key"] == "a/spikes/l0")
    assert row["messages"] == 10
    assert before != outputs(session)


CRASHING_RUN = """
import os, sys
from pathlib import Path
import numpy as np
from recorderd import wire as P
from recorderd.core.recorder import Recorder
from recorderd.daemon.settings import load_settings
rec = Recorder(load_settings(None, session="s", recording_dir=Path(sys.argv[1])).core())
rec.start()
for seq in (3, 4):
    msg = P.encode(P.Kind.SPIKES, incarnation=2, seq=seq, step=seq, time_ms=seq * 0.5,
                   dt_ms=0.5, layer_size=100, data=np.array([9], np.uint32))
    rec.add("a", "l0", P.decode(msg, P.Kind.SPIKES))
rec.flush()
os.kill(os.getpid(), 9)
"""


def test_a_crashed_run_leaves_no_summary_that_is_used(tmp_path: Path) -> None:
    session = record(tmp_path, first_run())
    done = subprocess.run([sys.executable, "-c", CRASHING_RUN, str(tmp_path)], timeout=120)
    assert done.returncode == -9
    with SessionReader(session) as r:  # recovers it
        assert r.state == "recovered"
        assert r._file.summary(L.SPIKES, "b", "big") is None
        assert r.facts("a", "l0").frames == 10
        assert r.facts("b", "big").frames == 1
    # The next clean close summarizes the streams it made; the others, continued from a
    # run that left no summary, are read from the file (and still agree with it).
    more = [spikes("a", "l0", 11, [4], incarnation=2, dt_ms=0.5), spikes("c", "new", 0, [1])]
    record(tmp_path, more)
    assert summarized_streams(session) == {"c/spikes/new"}


def test_a_stream_of_too_many_incarnations_is_read_from_the_file(tmp_path: Path) -> None:
    # One batch holding every incarnation, then one more message each on its own.
    churn = [spikes("a", "churn", 0, [1], incarnation=i + 1) for i in range(MAX_RUNS + 5)]
    session = record(tmp_path, [*churn, spikes("a", "calm", 0, [2])])
    assert summarized_streams(session) == {"a/spikes/calm"}
    with SessionReader(session) as r:
        assert len(r.facts("a", "churn").runs) == MAX_RUNS + 5
