"""``sim-analyzer`` as a real subprocess (``python -m analysis``) on real sessions."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis import SimulationAnalyzer
from recorderd import RecorderConfig, SimulationRecorder
from recorderd import wire as P
from recorderd.core.recorder import Recorder
from recorderd.daemon.settings import load_settings
from recorderd.session import layout as L
from tests.processes import sim_analyzer

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def run(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return sim_analyzer(*args, timeout=timeout)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two nodes: n0 with two layers, membrane, weights and control states; n1 one layer."""
    out = tmp_path_factory.mktemp("cli")
    config = RecorderConfig(
        output_dir=out,
        session_name="s",
        record_membrane=True,
        record_weights=True,
        membrane_subsample_rate=0.2,
        spike_subsample_rate=0.5,
        auto_flush=False,
    )
    rng = np.random.default_rng(5)
    with SimulationRecorder(config) as rec:
        for step in range(300):
            rec.record_spikes("n0", "output", rng.random(20) < 0.05, step=step)
            rec.record_spikes("n0", "hidden", rng.random(30) < 0.03, step=step)
            rec.record_spikes("n1", "v1", rng.random(40) < 0.02, step=step)
            rec.record_membrane("n0", "output", rng.normal(-65, 3, 20), step=step)
            if step % 100 == 0:
                rec.record_weights("n0", "w", rng.normal(size=(20, 30)), step=step)
            if step % 50 == 0:
                busy = step % 100 == 50
                rec.record_control_state(
                    "n0", "pfc", "Processing" if busy else "Idle", "t" if busy else None, step=step
                )
    return out / "s"


@pytest.fixture
def session(recorded: Path, tmp_path: Path) -> Path:
    """A private copy: the CLI writes into the session folder."""
    return Path(shutil.copytree(recorded, tmp_path / "s"))


def test_default_run_writes_reports_and_plots(session: Path) -> None:
    res = run(session)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # no progress output without a terminal
    assert str(session / "report.txt") in res.stdout
    text = (session / "report.txt").read_text()
    assert "Node n0 (module pfc)" in text and "n1/spikes/v1" in text
    names = {p.name for p in (session / L.PLOTS_DIR).iterdir()}
    assert {
        "n0_raster.png",
        "n0_output_raster.png",
        "n0_output_timeline.png",
        "n0_hidden_isi.png",
        "n0_output_membrane.png",
        "n0_w_weights.png",
        "n1_raster.png",
        "n1_v1_timeline.png",
    } <= names
    for name in names:
        data = (session / L.PLOTS_DIR / name).read_bytes()
        assert data[:8] == PNG and len(data) > 1024
    html = (session / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(names)


def test_no_plots(session: Path) -> None:
    res = run(session, "--no-plots")
    assert res.returncode == 0, res.stderr
    assert not (session / L.PLOTS_DIR).exists()
    assert (session / "report.txt").is_file()
    assert "<img" not in (session / "report.html").read_text()


def test_json_matches_the_api(recorded: Path) -> None:
    res = run("analyze", recorded, "--json")  # the explicit command name works too
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert not (recorded / "report.txt").exists()  # --json writes nothing
    assert doc["format_version"] == L.FORMAT_VERSION and doc["session"] == "s"
    assert set(doc["nodes"]) == {"n0", "n1"}
    with SimulationAnalyzer(recorded) as an:
        for node, entry in doc["nodes"].items():
            assert entry["module_type"] == an.analyze_node_behavior(node)["module_type"]
            for layer in an.get_recorded_layers(node):
                got, want = entry["layers"][layer], an.compute_firing_rate(node, layer)
                assert got["total_spikes"] == want["total_spikes"]
                assert got["mean_rate_hz"] == pytest.approx(want["mean_rate_hz"], rel=1e-12)
                assert got["neurons_recorded"] == want["n_recorded_neurons"]
                assert got["layer_size"] == want["layer_size"]
                assert got["active_fraction"] == pytest.approx(want["active_fraction"])
                assert (got["first_step"], got["last_step"]) == (0, 299)
                assert (got["t_start_ms"], got["t_stop_ms"]) == (0.0, 300.0)
        b = an.analyze_node_behavior("n0")
    assert doc["nodes"]["n0"]["behavior"]["task_active_ratio"] == pytest.approx(
        b["task_active_ratio"]
    )
    assert doc["nodes"]["n0"]["behavior"]["step_range"] == [0, 250]
    assert doc["nodes"]["n1"]["behavior"]["task_active_ratio"] is None  # nan -> null
    assert doc["streams"]["n0/spikes/output"]["written"] == 300
    assert doc["rejected"] == {} and doc["complete"] is True


def test_not_a_session_exits_2(tmp_path: Path) -> None:
    for path in (tmp_path, tmp_path / "missing"):
        res = run(path)
        assert res.returncode == 2
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "is not a recorded session" in lines[0]


def test_newer_format_version_exits_2(session: Path) -> None:
    with h5py.File(session / L.DATA_FILE, "a") as f:
        f.attrs[L.ATTR_FORMAT_VERSION] = 99
    res = run(session, "--json")
    assert res.returncode == 2
    assert "format version 99" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_bad_arguments_exit_2(session: Path) -> None:
    assert run(session, "--bogus").returncode == 2
    assert run(session, "--max-neurons", "0").returncode == 2


def test_export_group_is_registered() -> None:
    res = run("export", "--help")
    assert res.returncode == 0 and "sonata" in res.stdout


@pytest.fixture
def unfinished(tmp_path: Path) -> Iterator[Path]:
    """A session whose writer is open (started, flushed, never finished) during the test."""
    settings = load_settings(None, session="live", recording_dir=tmp_path)
    recorder = Recorder(settings.core())
    recorder.start()
    for seq in range(50):
        payload = P.encode(
            P.Kind.SPIKES,
            incarnation=1,
            seq=seq,
            step=seq,
            time_ms=float(seq),
            dt_ms=1.0,
            layer_size=10,
            data=np.array([seq % 9, 9], np.uint32),
        )
        recorder.add("n", "l", P.decode(payload, P.Kind.SPIKES))
    recorder.flush()
    try:
        yield settings.session_dir
    finally:
        recorder.finish()


def test_unfinished_session_is_analysed(unfinished: Path) -> None:
    res = run(unfinished)
    assert res.returncode == 0, res.stderr
    assert (unfinished / "plots" / "n_l_raster.png").is_file()
    assert "not finished" in (unfinished / "report.txt").read_text()
    doc = json.loads(run(unfinished, "--json").stdout)
    assert doc["complete"] is False and doc["stop_time_utc"] == ""
    layer = doc["nodes"]["n"]["layers"]["l"]
    assert layer["total_spikes"] == 100 and layer["mean_rate_hz"] == pytest.approx(200.0)


# -- issue 12: errors a newcomer hits, version, completion, windows ----------------------


def test_the_data_file_path_is_accepted(recorded: Path) -> None:
    res = run(recorded / L.DATA_FILE, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["session"] == "s"
    assert run("export", "sonata", recorded / L.DATA_FILE, recorded.parent / "x.h5").returncode == 0


def test_a_missing_folder_suggests_close_sessions(tmp_path: Path) -> None:
    rec = tmp_path / "sim_recordings"
    with SimulationRecorder(RecorderConfig(output_dir=rec, session_name="demo_20260101_1200")):
        pass
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args in (
        ["sim_recordings/demo_20260101_120"],
        ["export", "nwb", "sim_recordings/demo_2026010_1200", "x.nwb"],
    ):
        res = subprocess.run(
            [sys.executable, "-m", "analysis", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 2
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "did you mean sim_recordings/demo_20260101_1200?" in lines[0]
    res = run(tmp_path / "nothing-like-it")
    assert res.returncode == 2 and "did you mean" not in res.stderr


def test_an_empty_session_says_no_nodes(tmp_path: Path) -> None:
    with SimulationRecorder(RecorderConfig(output_dir=tmp_path, session_name="e")):
        pass
    res = run(tmp_path / "e")
    assert res.returncode == 0, res.stderr
    assert "No nodes recorded" in res.stdout and "Plots:" not in res.stdout
    assert not (tmp_path / "e" / L.PLOTS_DIR).exists()
    assert "No nodes recorded." in (tmp_path / "e" / "report.txt").read_text()


def test_version_and_short_help() -> None:
    from analysis.info import package_version

    res = run("--version")
    assert (
        res.returncode == 0
        and res.stdout.strip() == f"sim-analyzer (recorderd) {package_version()}"
    )
    for args in (["-h"], ["--help"], ["info", "-h"], ["export", "-h"], ["export", "nwb", "-h"]):
        res = run(*args)
        assert res.returncode == 0 and "Usage: sim-analyzer" in res.stdout, args


def test_shell_completion() -> None:
    assert "--install-completion" in run("--help").stdout
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "_SIM_ANALYZER_COMPLETE": "complete_bash",
        "COMP_WORDS": "sim-analyzer export s",
        "COMP_CWORD": "2",
    }
    res = subprocess.run(
        [sys.executable, "-m", "analysis"], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0 and res.stdout.split() == ["sonata"]
    shown = run("--show-completion", "bash")
    assert shown.returncode == 0 and "_SIM_ANALYZER_COMPLETE" in shown.stdout


def _commands(help_text: str) -> list[str]:
    """Command names listed in a help text's Commands panel."""
    panel = help_text.split("Commands", 1)[1] if "Commands" in help_text else ""
    return re.findall(r"^│ (\w[\w-]*)\s", panel, flags=re.M)


def test_every_spelling_the_help_shows_works(session: Path) -> None:
    """Walk the help texts: every command they list and every example they quote runs."""
    seen = set()
    todo = [[]]
    while todo:
        path = todo.pop()
        res = run(*path, "--help")
        assert res.returncode == 0, (path, res.stderr)
        for cmd in _commands(res.stdout):
            if (*path, cmd) not in seen:
                seen.add((*path, cmd))
                todo.append([*path, cmd])
        for quoted in re.findall(r"`(sim-analyzer [^`]+)`", res.stdout.replace("\n", " ")):
            words = re.sub(r"\s+", " ", quoted).split()[1:]
            args = [str(session) if w == "SESSION_DIR" else w for w in words]
            done = run(*args, "--no-plots")
            assert done.returncode == 0, (quoted, done.stderr)
    assert {("analyze",), ("info",), ("export",), ("export", "sonata"), ("export", "nwb")} <= seen


def test_window_options(session: Path) -> None:
    res = run(session, "--t-start", "100", "--t-stop", "150")
    assert res.returncode == 0, res.stderr
    html = (session / "report.html").read_text()
    assert "Shown: 100-150 ms of the 0-300 ms recorded" in html
    bad = run(session, "--t-start", "100", "--t-stop", "50")
    assert bad.returncode == 2 and "--t-stop" in bad.stderr
