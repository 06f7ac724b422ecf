"""NWB exports that pass the field's validator (nwbinspector), and their metadata options."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.export import MetadataError, NwbMetadata, export_nwb
from recorderd import RecorderConfig, SimulationRecorder

ROOT = Path(__file__).resolve().parents[1]
TOML = """
session_description = "Two brain nodes for 0.5 s"
experiment_description = "nwbinspector test"
experimenter = ["Doe, Jane"]
institution = "Example Institute"
lab = "Simulation Lab"
keywords = ["spiking network", "simulation"]

[subject]
subject_id = "net-1"
species = "Mus musculus"
sex = "U"
age = "P90D"
description = "in-silico LIF network"
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nwb")
    config = RecorderConfig(
        output_dir=out,
        session_name="n",
        record_membrane=True,
        membrane_subsample_rate=0.2,
        auto_flush=False,
    )
    rng = np.random.default_rng(0)
    with SimulationRecorder(config) as rec:
        for step in range(500):
            rec.record_spikes("pfc-0", "out", rng.random(30) < 0.05, step=step)
            rec.record_spikes("vis-0", "v1", rng.random(20) < 0.05, step=step, dt_ms=0.5)
            rec.record_membrane("pfc-0", "out", rng.normal(-65, 3, 30), step=step)
            if step % 100 == 0:
                rec.record_control_state("pfc-0", "pfc", "Idle", None, step=step)
    return out / "n"


def _export_cli(session: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "analysis", "export", "nwb", str(session), str(out), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _problems(path: Path) -> list[str]:
    """nwbinspector's messages of importance BEST_PRACTICE_VIOLATION and above."""
    inspector = pytest.importorskip("nwbinspector")
    serious = {"CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR", "PYNWB_VALIDATION"}
    return [
        f"{m.importance.name} {m.check_function_name}: {m.message}"
        for m in inspector.inspect_nwbfile(nwbfile_path=path)
        if m is not None and m.importance.name in serious
    ]


def test_an_export_with_metadata_passes_nwbinspector(session: Path, tmp_path: Path) -> None:
    pytest.importorskip("pynwb")
    meta = tmp_path / "meta.toml"
    meta.write_text(TOML)
    res = _export_cli(session, tmp_path / "a.nwb", "--metadata", str(meta))
    assert res.returncode == 0, res.stderr
    assert "warning" not in res.stderr
    assert _problems(tmp_path / "a.nwb") == []


def test_options_override_the_file_and_land_in_the_file(session: Path, tmp_path: Path) -> None:
    pynwb = pytest.importorskip("pynwb")
    meta = tmp_path / "meta.toml"
    meta.write_text(TOML)
    res = _export_cli(
        session,
        tmp_path / "b.nwb",
        "--metadata",
        str(meta),
        "--subject-id",
        "net-2",
        "--keyword",
        "LIF",
        "--keyword",
        "recorderd",
    )
    assert res.returncode == 0, res.stderr
    with pynwb.NWBHDF5IO(str(tmp_path / "b.nwb"), "r") as io:
        nwb = io.read()
        assert nwb.subject.subject_id == "net-2" and nwb.subject.species == "Mus musculus"
        assert nwb.subject.sex == "U" and nwb.subject.age == "P90D"
        assert list(nwb.keywords[:]) == ["LIF", "recorderd"]
        assert list(nwb.experimenter) == ["Doe, Jane"] and nwb.lab == "Simulation Lab"
        assert nwb.session_description == "Two brain nodes for 0.5 s"
        assert nwb.units.resolution == pytest.approx(0.0005)  # the finest dt, 0.5 ms
        v = nwb.acquisition["membrane_pfc-0.out"]
        assert v.rate == pytest.approx(1000.0) and v.starting_time == 0.0 and v.timestamps is None


def test_without_a_subject_the_export_warns(session: Path, tmp_path: Path) -> None:
    pytest.importorskip("pynwb")
    res = _export_cli(session, tmp_path / "c.nwb")
    assert res.returncode == 0, res.stderr
    assert "warning: no subject" in res.stderr
    problems = _problems(tmp_path / "c.nwb")
    # Only the subject is missing: resolution and sampling are set from the recording.
    assert [p.split(":")[0] for p in problems] == ["CRITICAL check_subject_exists"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"subject": {"sex": "X"}}, "subject sex must be one of"),
        ({"subject": {"age": "90 days"}}, "ISO 8601 duration"),
        ({"experimentor": "typo"}, "unknown NWB metadata key(s): experimentor"),
        ({"subject": {"name": "x"}}, "subject.name"),
        ({"keywords": [1, 2]}, "keywords must be a string or a list of strings"),
    ],
)
def test_bad_metadata_is_refused(doc: dict[str, object], message: str) -> None:
    with pytest.raises(MetadataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        NwbMetadata.from_mapping(doc)


def test_bad_metadata_exits_2(session: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("subject = [")
    res = _export_cli(session, tmp_path / "d.nwb", "--metadata", str(bad))
    assert res.returncode == 2 and "cannot read NWB metadata" in res.stderr
    res = _export_cli(session, tmp_path / "d.nwb", "--sex", "maybe")
    assert res.returncode == 2 and "subject sex" in res.stderr
    assert not (tmp_path / "d.nwb").exists()


def test_api_takes_a_mapping(session: Path, tmp_path: Path) -> None:
    pynwb = pytest.importorskip("pynwb")
    export_nwb(session, tmp_path / "e.nwb", metadata={"subject": {"subject_id": "x"}})
    with pynwb.NWBHDF5IO(str(tmp_path / "e.nwb"), "r") as io:
        assert io.read().subject.subject_id == "x"
