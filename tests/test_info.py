"""``sim-analyzer info``: a real subprocess on real sessions (finished, live, crashed, empty)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import recorderd
from analysis import SimulationAnalyzer
from analysis.info import session_info
from recorderd import RecorderConfig, SimulationRecorder
from recorderd import wire as P
from recorderd.core.recorder import Recorder
from recorderd.daemon.settings import load_settings
from recorderd.session import layout as L
from tests.processes import sim_analyzer

ROOT = Path(__file__).resolve().parents[1]
LONG = "a_very_long_layer_name_that_used_to_push_every_column_out_of_line_x"[:64]


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return sim_analyzer(*args, cwd=cwd)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two nodes; a layer with a long name, subsampling, membrane, weights, control states."""
    out = tmp_path_factory.mktemp("info")
    config = RecorderConfig(
        output_dir=out,
        session_name="s",
        record_membrane=True,
        record_weights=True,
        spike_subsample_rate=0.5,
        membrane_subsample_rate=0.2,
        auto_flush=False,
    )
    rng = np.random.default_rng(2)
    with SimulationRecorder(config) as rec:
        for step in range(400):
            rec.record_spikes("n0", "out", rng.random(20) < 0.05, step=step)
            rec.record_spikes("n0", LONG, rng.random(30) < 0.03, step=step)
            rec.record_spikes("node-with-a-long-id-1", "v1", rng.random(40) < 0.02, step=step)
            rec.record_membrane("n0", "out", rng.normal(-65, 3, 20), step=step)
            if step % 100 == 0:
                rec.record_weights("n0", "w", rng.normal(size=(20, 30)), step=step)
                rec.record_control_state("n0", "pfc", "Idle", None, step=step)
    return out / "s"


def test_json_counts_come_from_the_file(session: Path) -> None:
    res = run("info", session, "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["state"] == "finished" and doc["format_version"] == L.FORMAT_VERSION
    assert doc["integrity"] == "complete" and doc["recorder_runs"] == 1
    assert doc["recorder_version"] == recorderd.__version__  # stored by the recorder
    with SimulationAnalyzer(session) as an:
        for st in doc["streams"]:
            if st["kind"] != "spikes":
                continue
            want = an.compute_firing_rate(st["node_id"], st["name"])
            assert st["spikes"] == want["total_spikes"]
            assert st["rate_hz"] == pytest.approx(want["mean_rate_hz"], rel=1e-12)
            assert st["recorded_neurons"] == want["n_recorded_neurons"]
            assert st["messages"] == 400 and st["counters"]["written"] == 400
    kinds = sorted((s["kind"], s["name"]) for s in doc["streams"] if s["node_id"] == "n0")
    assert kinds == [("membrane", "out"), ("spikes", LONG), ("spikes", "out"), ("weights", "w")]
    nodes = {n["node_id"]: n for n in doc["nodes"]}
    assert nodes["n0"]["module_type"] == "pfc" and nodes["n0"]["control_states"] == 4
    assert doc["totals"]["spikes"] == sum(s["spikes"] or 0 for s in doc["streams"])
    assert doc["sim_t_start_ms"] == 0.0 and doc["sim_t_stop_ms"] == 400.0
    assert doc["settings"]["spike_subsample_rate"] == 0.5
    assert doc["compression"].startswith("gzip") and doc["bytes_per_spike"] > 0


def test_text_columns_stay_in_line_with_long_names(session: Path) -> None:
    res = run("info", session)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any("finished" in line for line in lines)
    assert not any(line != line.rstrip() for line in lines)  # no padding to a width
    head = next(
        i for i, line in enumerate(lines) if line.lstrip().startswith("node") and "size" in line
    )
    header = lines[head]
    rows = lines[head + 2 : head + 7]
    assert any(LONG in r for r in rows) and any("node-with-a-long-id-1" in r for r in rows)
    # Right-aligned columns end where their headers end, whatever the names' lengths.
    assert "no message missing, duplicated, dropped, rejected or stale" in res.stdout
    assert "stale" not in header  # loss columns only where a stream lost something
    for col in ("size", "rec.", "msgs", "spikes", "Hz"):
        end = header.index(col) + len(col)
        for row in rows:
            assert row[end - 1] != " " and (end == len(row) or row[end] == " "), (col, row)


def test_info_reads_no_spike_rows(session: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analysis import rows

    def no_spikes(*_: object) -> object:
        raise AssertionError("info read spike rows")

    monkeypatch.setattr(rows, "read_spike_rows", no_spikes)
    monkeypatch.setattr("analysis.reader.read_spike_rows", no_spikes)
    monkeypatch.setattr("analysis.reader.SessionReader.iter_spike_chunks", no_spikes)
    info = session_info(session)
    assert info.totals["spikes"] > 0


class _Checker(HTMLParser):
    VOID = frozenset({"br", "img", "meta", "hr", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack)
        self.stack.pop()


def test_repr_html_for_jupyter(session: Path) -> None:
    with SimulationAnalyzer(session) as an:
        html = an._repr_html_()
        info = an.info()
    assert html is not None and html == info._repr_html_()
    checker = _Checker()
    checker.feed(html)
    assert not checker.stack and checker.tags.count("table") == 2
    assert LONG in html and "node-with-a-long-id-1" in html and "complete" in html


def test_empty_session(tmp_path: Path) -> None:
    with SimulationRecorder(RecorderConfig(output_dir=tmp_path, session_name="e")):
        pass
    res = run("info", tmp_path / "e" / L.DATA_FILE)  # the data file's path works too
    assert res.returncode == 0, res.stderr
    assert "No nodes recorded." in res.stdout and "finished" in res.stdout
    doc = json.loads(run("info", tmp_path / "e", "--json").stdout)
    assert doc["streams"] == [] and doc["sim_t_start_ms"] is None


def test_missing_session_suggests_close_names(tmp_path: Path) -> None:
    rec = tmp_path / "sim_recordings"
    with SimulationRecorder(RecorderConfig(output_dir=rec, session_name="demo_20260101_1200")):
        pass
    res = run("info", "sim_recordings/demo_20260101_120", cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a recorded session (no such folder)" in lines[0]
    assert "did you mean sim_recordings/demo_20260101_1200?" in lines[0]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Path]:
    settings = load_settings(None, session="live", recording_dir=tmp_path)
    recorder = Recorder(settings.core())
    recorder.start()
    for seq in range(30):
        payload = P.encode(
            P.Kind.SPIKES,
            incarnation=1,
            seq=seq,
            step=seq,
            time_ms=float(seq),
            dt_ms=1.0,
            layer_size=10,
            data=np.array([seq % 10], np.uint32),
        )
        recorder.add("n", "l", P.decode(payload, P.Kind.SPIKES))
    recorder.flush()
    try:
        yield settings.session_dir
    finally:
        recorder.finish()


def test_a_live_session_is_recording(live: Path) -> None:
    doc = json.loads(run("info", live, "--json").stdout)
    assert doc["state"] == "recording" and doc["stop_time_utc"] == ""
    assert doc["totals"]["spikes"] == 30 and doc["last_write_utc"]


CRASH = """
import os, sys
import numpy as np
from recorderd import wire as P
from recorderd.core.recorder import Recorder
from recorderd.daemon.settings import load_settings

recorder = Recorder(load_settings(None, session="c", recording_dir=sys.argv[1]).core())
recorder.start()
for seq in range(20):
    payload = P.encode(P.Kind.SPIKES, incarnation=1, seq=seq, step=seq, time_ms=float(seq),
                       dt_ms=1.0, layer_size=4, data=np.array([seq % 4], np.uint32))
    recorder.add("n", "l", P.decode(payload, P.Kind.SPIKES))
recorder.flush()
os._exit(0)  # a crash: no clean close, the journal stays
"""


def test_a_crashed_session_is_described_not_repaired(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], check=True, cwd=ROOT)
    session = tmp_path / "c"
    journal = session / L.JOURNAL_FILE
    assert journal.exists()
    before = journal.read_bytes()
    doc = json.loads(run("info", session, "--json").stdout)
    assert doc["state"] == "crashed, recoverable" and doc["totals"]["spikes"] == 20
    assert journal.read_bytes() == before  # info changed nothing
    assert run(session, "--json").returncode == 0  # the analysis recovers it
    assert not journal.exists()
    doc = json.loads(run("info", session, "--json").stdout)
    assert doc["state"] == "crashed, recovered" and doc["totals"]["spikes"] == 20


def test_losses_show_in_the_badge_and_their_column(tmp_path: Path) -> None:
    settings = load_settings(None, session="gaps", recording_dir=tmp_path)
    recorder = Recorder(settings.core())
    recorder.start()
    for seq in [*range(10), *range(15, 20)]:  # 5 messages never arrive
        payload = P.encode(
            P.Kind.SPIKES,
            incarnation=1,
            seq=seq,
            step=seq,
            time_ms=float(seq),
            dt_ms=1.0,
            layer_size=10,
            data=np.array([seq % 10], np.uint32),
        )
        recorder.add("n", "l", P.decode(payload, P.Kind.SPIKES))
    recorder.finish()
    doc = json.loads(run("info", settings.session_dir, "--json").stdout)
    assert doc["integrity"] == "5 messages missing" and doc["totals"]["missing"] == 5
    assert doc["streams"][0]["missing_in_file"] == 5
    text = run("info", settings.session_dir).stdout
    assert "5 messages missing" in text
    header = next(line for line in text.splitlines() if "msgs" in line and "kind" in line)
    assert "missing" in header and "stale" not in header
