"""Exports read back by the tools they are for: libsonata, pynwb, neo/Elephant, and the CLI.

Optional packages are skipped when missing (``pytest.importorskip``); the session is
recorded through the in-process API, in two runs so that the second run's times go
back (a restart: a new incarnation and ``sorting = none``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import pytest
from typer.testing import CliRunner

from analysis.export import (
    SONATA_MAGIC,
    UnknownPopulationError,
    export_nwb,
    export_sonata,
    recording_span,
    to_neo,
)
from analysis.export_cli import export_app
from analysis.reader import SessionReader
from recorderd import RecorderConfig, SimulationRecorder
from recorderd.session import layout as L
from recorderd.session.frames import Frames
from recorderd.session.writer import SessionWriter
from recorderd.wire import Kind

LAYERS = {("pfc-0", "hidden"): 50, ("pfc-0", "output"): 20, ("visual-0", "v1"): 30}
STATES = ["Idle", "Processing", "Learning"]


def _record_run(out: Path, seed: int, steps: int) -> None:
    rng = np.random.default_rng(seed)
    config = RecorderConfig(
        output_dir=out,
        session_name="exp",
        record_membrane=True,
        membrane_subsample_rate=0.5,
        auto_flush=False,
    )
    with SimulationRecorder(config) as rec:
        for step in range(steps):
            for (node, layer), size in LAYERS.items():
                rec.record_spikes(node, layer, rng.random(size) < 0.08)
                if node == "pfc-0":
                    rec.record_membrane(node, layer, rng.normal(-65.0, 5.0, size))
            if step % 40 == 0:
                state = STATES[(step // 40) % 3]
                task = None if state == "Idle" else f"task-{step}"
                rec.record_control_state("pfc-0", "pfc", state, task, step + 1, step=step)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rec")
    _record_run(out, seed=1, steps=300)
    _record_run(out, seed=2, steps=120)  # appended run: times restart at 0
    return out / "exp"


def _expected(session: Path) -> dict[str, tuple[npt.NDArray[Any], npt.NDArray[Any]]]:
    """(times, ids) per population after a stable sort by time."""
    out = {}
    with SessionReader(session) as r:
        for node, layer in LAYERS:
            tr = r.spikes(node, layer)
            order = np.argsort(tr.times_ms, kind="stable")
            out[L.population(node, layer)] = (tr.times_ms[order], tr.neuron_ids[order])
    return out


# -- SONATA -------------------------------------------------------------------------------


def test_session_has_an_unsorted_population(session: Path) -> None:
    with SessionReader(session) as r:
        assert {r.sorting(n, lay) for n, lay in LAYERS} == {"none"}


@pytest.mark.parametrize("chunk_rows", [None, 5, 64])
def test_sonata_read_back_with_libsonata(
    session: Path, tmp_path: Path, chunk_rows: int | None
) -> None:
    libsonata = pytest.importorskip("libsonata")
    out = tmp_path / "spikes.h5"
    kwargs = {} if chunk_rows is None else {"chunk_rows": chunk_rows}
    counts = export_sonata(session, out, **kwargs)
    expected = _expected(session)
    assert counts == {pop: t.size for pop, (t, _) in expected.items()}
    reader = libsonata.SpikeReader(str(out))
    assert sorted(reader.get_population_names()) == sorted(expected)
    for pop, (times, ids) in expected.items():
        p = reader[pop]
        assert p.sorting == "by_time"
        d = p.get_dict()
        np.testing.assert_array_equal(d["timestamps"], times)
        if chunk_rows is None:  # one batch holds each run: exactly a stable sort
            np.testing.assert_array_equal(d["node_ids"], ids)
            assert p.get() == list(zip(ids.tolist(), times.tolist(), strict=True))
        else:  # equal times may come in any order (SONATA by_time)
            got = np.lexsort((d["node_ids"], d["timestamps"]))
            want = np.lexsort((ids, times))
            np.testing.assert_array_equal(d["node_ids"][got], ids[want])
        assert p.times == (times.min(), times.max())
        assert p.time_units == "ms"
        window = p.get_dict(tstart=50.0, tstop=60.0)["timestamps"]
        assert window.size == np.count_nonzero((times >= 50.0) & (times <= 60.0))


def test_sonata_file_layout(session: Path, tmp_path: Path) -> None:
    out = tmp_path / "spikes.h5"
    export_sonata(session, out, populations=["pfc-0.output"])
    with h5py.File(out, "r") as f:
        assert int(f.attrs["magic"]) == SONATA_MAGIC == 0x0A7A
        assert f.attrs["version"].tolist() == [0, 1] and f.attrs["version"].dtype == np.uint32
        assert list(f["spikes"]) == ["pfc-0.output"]
        g = f["spikes/pfc-0.output"]
        enum = h5py.check_enum_dtype(g.attrs.get_id("sorting").dtype)
        assert enum == {"none": 0, "by_id": 1, "by_time": 2}
        assert int(g.attrs["sorting"]) == 2
        for name, dtype in (("timestamps", np.float64), ("node_ids", np.uint64)):
            assert g[name].dtype == dtype
            assert g[name].compression is None  # the libsonata wheel has no deflate
        assert g["timestamps"].attrs["units"] == "ms"
    assert not list(tmp_path.glob("*.partial*"))


def _writer_session(path: Path, batches: list[npt.NDArray[np.float64]]) -> None:
    """A one-population session written batch by batch (times may go back)."""
    with SessionWriter(path, session="merge", compression="lzf") as w:
        h = w.streams.open(
            Kind.SPIKES,
            "n-0",
            "l",
            shape=(1000,),
            dt_ms=1.0,
            subsample_rate=1.0,
            select=lambda: np.arange(1000, dtype=np.uint32),
        )
        for i, times in enumerate(batches):
            ids = np.arange(times.size, dtype=np.uint32) % 1000
            one = np.ones(1, dtype=np.uint64)
            frames = Frames(
                np.array([i], np.int64),
                np.array([times[0]]),
                one * i,
                one,
                np.array([times.size], np.uint32),
            )
            w.streams.append_spikes(h, times.astype(np.int64), times, ids, frames)


@pytest.mark.parametrize("chunk_rows", [1, 7, 100, 1 << 20])
def test_sonata_merge_of_many_runs_with_ties(tmp_path: Path, chunk_rows: int) -> None:
    rng = np.random.default_rng(3)
    # Runs of different lengths, times back and forth, many equal times.
    batches = [np.sort(rng.integers(0, 50, size=int(n))).astype(np.float64) for n in (200, 3, 0)]
    batches += [np.sort(rng.integers(10, 20, size=150)).astype(np.float64)]
    batches += [np.full(40, 15.0), np.sort(rng.integers(0, 90, size=300)).astype(np.float64)]
    _writer_session(tmp_path / "s", [b for b in batches if b.size])
    export_sonata(tmp_path / "s", tmp_path / "o.h5", chunk_rows=chunk_rows)
    all_t = np.concatenate(batches)
    all_i = np.concatenate([np.arange(b.size) % 1000 for b in batches if b.size])
    with h5py.File(tmp_path / "o.h5", "r") as f:
        t, i = f["spikes/n-0.l/timestamps"][()], f["spikes/n-0.l/node_ids"][()]
    np.testing.assert_array_equal(t, np.sort(all_t, kind="stable"))
    got = sorted(zip(t.tolist(), i.tolist(), strict=True))
    assert got == sorted(zip(all_t.tolist(), all_i.tolist(), strict=True))


def test_sonata_of_a_sorted_population_is_a_copy(tmp_path: Path) -> None:
    batches = [np.arange(0, 100, dtype=np.float64), np.arange(100, 150, dtype=np.float64)]
    _writer_session(tmp_path / "s", batches)
    assert export_sonata(tmp_path / "s", tmp_path / "o.h5", chunk_rows=16) == {"n-0.l": 150}
    with h5py.File(tmp_path / "o.h5", "r") as f:
        assert f["spikes/n-0.l/timestamps"][()].tolist() == list(range(150))


# -- NWB ----------------------------------------------------------------------------------


def test_nwb_read_back_with_pynwb(session: Path, tmp_path: Path) -> None:
    pynwb = pytest.importorskip("pynwb")
    out = tmp_path / "s.nwb"
    export_nwb(session, out)
    with SessionReader(session) as r, pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        assert (
            nwb.session_start_time.isoformat(timespec="milliseconds")
            == (r.metadata()["start_time_utc"])
        )
        units = nwb.units.to_dataframe()
        n_units = sum(r.recorded_neurons(n, lay).size for n, lay in LAYERS)
        assert len(units) == n_units == 100
        for node, layer in LAYERS:
            tr = r.spikes(node, layer)
            rows = units[(units.node_id == node) & (units.layer == layer)]
            assert rows.neuron_index.tolist() == r.recorded_neurons(node, layer).tolist()
            for _, unit in rows.iloc[[0, 7]].iterrows():
                mine = np.sort(tr.times_ms[tr.neuron_ids == unit.neuron_index]) / 1000.0
                np.testing.assert_array_equal(unit.spike_times, mine)
            t0, t1 = recording_span(r.frames(node, layer).times_ms, 1.0)
            assert rows.obs_intervals.iloc[0].tolist() == [[t0 / 1000.0, t1 / 1000.0]]
        # Control states: 8 in the first run, 3 in the second; one interval each.
        states = nwb.intervals["control_states"].to_dataframe()
        records = r.control_states()
        assert len(states) == len(records) == 11
        first = states[states.incarnation == records[0]["incarnation"]]
        assert first.start_time.tolist() == [i * 0.04 for i in range(8)]
        assert first.stop_time.tolist() == [i * 0.04 for i in range(1, 8)] + [0.3]
        assert first.status.tolist() == [STATES[i % 3] for i in range(8)]
        assert first.active_task.iloc[0] == "" and first.active_task.iloc[1] == "task-40"
        assert (states.stop_time >= states.start_time).all()
        for layer in ("hidden", "output"):
            _, v = r.membrane("pfc-0", layer)
            series = nwb.acquisition[f"membrane_pfc-0.{layer}"]
            assert series.data.shape == v.shape == (420, LAYERS["pfc-0", layer] // 2)
            assert series.conversion == 1e-3 and series.unit == "volts"
            np.testing.assert_array_equal(series.data[()], v)
            np.testing.assert_allclose(series.timestamps[:3], [0.0, 0.001, 0.002])
        table = nwb.processing["recording"]["membrane_neurons"].to_dataframe()
        cols = table[table.series == "membrane_pfc-0.output"]
        assert cols.neuron.tolist() == r.recorded_neurons("pfc-0", "output", "membrane").tolist()


# -- neo / Elephant -----------------------------------------------------------------------


def test_neo_block_and_elephant_rate(session: Path) -> None:
    pytest.importorskip("neo")
    statistics = pytest.importorskip("elephant.statistics")
    pq = pytest.importorskip("quantities")
    block = to_neo(session, node_id="pfc-0", layer="output")
    seg = block.segments[0]
    assert len(seg.spiketrains) == 20 and len(seg.analogsignals) == 2
    with SessionReader(session) as r:
        tr = r.spikes("pfc-0", "output")
        t0, t1 = recording_span(r.frames("pfc-0", "output").times_ms, 1.0)
        _, v = r.membrane("pfc-0", "output")
        neurons = r.recorded_neurons("pfc-0", "output", "membrane")
    assert (t0, t1) == (0.0, 300.0)
    for train in seg.spiketrains:
        assert train.annotations["node_id"] == "pfc-0" and train.annotations["layer"] == "output"
        count = np.count_nonzero(tr.neuron_ids == train.annotations["neuron_index"])
        assert len(train) == count
        rate = statistics.mean_firing_rate(train).rescale(pq.Hz).magnitude
        assert rate == pytest.approx(count / ((t1 - t0) / 1000.0), rel=1e-12)
    # Two runs: the second run's times restart at 0, so it is a second signal.
    first, second = seg.analogsignals
    assert first.shape == (300, 10) and second.shape == (120, 10)
    assert str(first.units.dimensionality) == "mV"
    np.testing.assert_array_equal(np.vstack([first.magnitude, second.magnitude]), v)
    assert float(second.t_start) == 0.0
    assert first.annotations["incarnation"] != second.annotations["incarnation"]
    assert first.array_annotations["neuron_index"].tolist() == neurons.tolist()


def test_neo_regular_membrane_is_an_analog_signal(tmp_path: Path) -> None:
    pytest.importorskip("neo")
    _record_run(tmp_path, seed=4, steps=50)
    sig = to_neo(tmp_path / "exp", node_id="pfc-0", layer="hidden").segments[0].analogsignals[0]
    assert type(sig).__name__ == "AnalogSignal" and sig.shape == (50, 25)
    assert float(sig.sampling_period.rescale("ms")) == 1.0


# -- CLI ----------------------------------------------------------------------------------


def test_cli_sonata_and_errors(session: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(export_app, ["sonata", str(session), str(tmp_path / "o.h5")])
    assert res.exit_code == 0, res.output
    assert "populations" in res.output and (tmp_path / "o.h5").exists()
    res = runner.invoke(export_app, ["sonata", str(tmp_path), str(tmp_path / "x.h5")])
    assert res.exit_code == 2 and "is not a recorded session" in res.output
    res = runner.invoke(export_app, ["sonata", str(session), str(tmp_path / "x.h5"), "-p", "a.b"])
    assert res.exit_code == 2 and "no spike population a.b" in res.output
    newer = tmp_path / "newer"
    newer.mkdir()
    with h5py.File(newer / L.DATA_FILE, "w") as f:
        f.attrs[L.ATTR_FORMAT] = L.FORMAT_NAME
        f.attrs[L.ATTR_FORMAT_VERSION] = L.FORMAT_VERSION + 1
    res = runner.invoke(export_app, ["nwb", str(newer), str(tmp_path / "x.nwb")])
    assert res.exit_code == 2 and "format version" in res.output
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "x.nwb").exists()


def test_cli_nwb_without_pynwb(
    session: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynwb", None)  # import fails as if not installed
    res = CliRunner().invoke(export_app, ["nwb", str(session), str(tmp_path / "x.nwb")])
    assert res.exit_code == 3 and "pynwb is not installed" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_cli_nwb(session: Path, tmp_path: Path) -> None:
    pytest.importorskip("pynwb")
    res = CliRunner().invoke(export_app, ["nwb", str(session), str(tmp_path / "x.nwb")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "x.nwb").stat().st_size > 0


def test_failed_export_leaves_no_file(
    session: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import analysis.export.sonata as sonata

    def boom(*_: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(sonata, "_copy_population", boom)
    with pytest.raises(OSError, match="disk full"):
        export_sonata(session, tmp_path / "o.h5")
    assert list(tmp_path.iterdir()) == []


def test_neo_unknown_node(session: Path) -> None:
    pytest.importorskip("neo")
    with pytest.raises(UnknownPopulationError, match="no node"):
        to_neo(session, node_id="nope-0")


# -- SONATA for other readers: compressed, renamed, with a node file (issue 12) -------------


def test_sonata_compressed_for_h5py(session: Path, tmp_path: Path) -> None:
    plain, packed = tmp_path / "plain.h5", tmp_path / "packed.h5"
    export_sonata(session, plain)
    counts = export_sonata(session, packed, compress=True)
    assert counts == export_sonata(session, tmp_path / "again.h5")
    with h5py.File(plain, "r") as a, h5py.File(packed, "r") as b:
        for pop in counts:
            for name in ("timestamps", "node_ids"):
                ds = b[f"spikes/{pop}/{name}"]
                assert ds.compression == "gzip" and ds.shuffle
                np.testing.assert_array_equal(ds[()], a[f"spikes/{pop}/{name}"][()])
            assert int(b[f"spikes/{pop}"].attrs["sorting"]) == 2
    assert packed.stat().st_size < plain.stat().st_size / 2


def test_sonata_names_a_circuit_resolves(session: Path, tmp_path: Path) -> None:
    libsonata = pytest.importorskip("libsonata")
    rename = {"pfc-0.output": "PFC_L5"}
    counts = export_sonata(
        session, tmp_path / "spikes.h5", rename=rename, nodes_path=tmp_path / "nodes.h5"
    )
    assert set(counts) == {"PFC_L5", "pfc-0.hidden", "visual-0.v1"}
    # A circuit config made of the node file: every spike population is one of its node
    # populations, and every spike's node id is a node of it.
    import json

    config = {
        "manifest": {"$BASE_DIR": str(tmp_path)},
        "networks": {
            "nodes": [
                {
                    "nodes_file": "$BASE_DIR/nodes.h5",
                    "populations": {name: {"type": "point_neuron"} for name in counts},
                }
            ],
            "edges": [],
        },
    }
    circuit = libsonata.CircuitConfig(json.dumps(config), str(tmp_path))
    spikes = libsonata.SpikeReader(str(tmp_path / "spikes.h5"))
    assert set(spikes.get_population_names()) == set(circuit.node_populations) == set(counts)
    sizes = {"PFC_L5": 20, "pfc-0.hidden": 50, "visual-0.v1": 30}
    for name, size in sizes.items():
        nodes = circuit.node_population(name)
        assert nodes.size == size
        ids = spikes[name].get_dict()["node_ids"]
        assert ids.size == counts[name] and int(ids.max()) < nodes.size
    with h5py.File(tmp_path / "nodes.h5", "r") as f:
        assert f["nodes/PFC_L5"].attrs["recorderd_population"] == "pfc-0.output"


def test_sonata_bad_renames(session: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownPopulationError, match=r"rename names no exported population: a\.b"):
        export_sonata(session, tmp_path / "x.h5", rename={"a.b": "c"})
    with pytest.raises(UnknownPopulationError, match="same name"):
        export_sonata(session, tmp_path / "x.h5", rename={"pfc-0.output": "x", "pfc-0.hidden": "x"})
    res = CliRunner().invoke(
        export_app, ["sonata", str(session), str(tmp_path / "x.h5"), "--rename", "nope"]
    )
    assert res.exit_code == 2 and "OLD" not in res.output and "SESSION_NAME=NEW_NAME" in res.output
    assert not (tmp_path / "x.h5").exists()


def test_cli_sonata_compress_rename_nodes(session: Path, tmp_path: Path) -> None:
    args = ["sonata", str(session), str(tmp_path / "o.h5"), "--compress"]
    args += ["--rename", "visual-0.v1=V1", "--nodes", str(tmp_path / "n.h5")]
    res = CliRunner().invoke(export_app, args)
    assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "o.h5", "r") as f, h5py.File(tmp_path / "n.h5", "r") as n:
        assert "V1" in f["spikes"] and f["spikes/V1/timestamps"].compression == "gzip"
        assert set(n["nodes"]) == set(f["spikes"])
