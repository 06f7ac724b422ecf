"""Sessions with hundreds of streams: ``sim-analyzer info`` lists every one, and the
summary's per-stream facts (read once per stream) agree with the file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from rich.text import Text

from analysis import SimulationAnalyzer
from analysis.console import PLAIN_ROWS, PlainTable, table, to_text
from analysis.reader import SessionReader
from recorderd import RecorderConfig, SimulationRecorder
from recorderd.session import layout as L
from tests.processes import sim_analyzer

ROOT = Path(__file__).resolve().parents[1]
NODES = 3
LAYERS = 90  # 270 spike streams: more than PLAIN_ROWS


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return sim_analyzer(*args, timeout=300)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NODES x LAYERS spike streams of a few messages, one with a restart gap."""
    out = tmp_path_factory.mktemp("many")
    config = RecorderConfig(output_dir=out, session_name="many", auto_flush=False)
    rng = np.random.default_rng(5)
    with SimulationRecorder(config) as rec:
        for step in range(3):
            for node in range(NODES):
                for layer in range(LAYERS):
                    size = 10 + layer
                    rec.record_spikes(f"n{node}", f"l{layer}", rng.random(size) < 0.3, step=step)
    return out / "many"


def test_info_lists_every_stream_of_a_many_stream_session(session: Path) -> None:
    assert NODES * LAYERS > PLAIN_ROWS
    res = run("info", session)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("Streams"))
    rows = lines[head + 3 : head + 3 + NODES * LAYERS]
    names = [line.split()[-6] for line in rows]  # node kind name size rec. msgs spikes Hz
    assert sorted(names) == sorted(f"l{i}" for i in range(LAYERS) for _ in range(NODES))
    # Columns stay in line: every row ends (the Hz column) at the header's end.
    assert {len(r) for r in rows} == {len(lines[head + 1])}
    doc = json.loads(run("info", session, "--json").stdout)
    assert len(doc["streams"]) == NODES * LAYERS
    with SimulationAnalyzer(session) as an:
        for st in doc["streams"][:: LAYERS // 3]:
            want = an.compute_firing_rate(st["node_id"], st["name"])
            assert st["spikes"] == want["total_spikes"]
            assert st["messages"] == want["last_step"] - want["first_step"] + 1


def test_the_plain_table_is_laid_out_as_rich_lays_out_a_table() -> None:
    cols: list[str | tuple[str, str]] = ["node", "name", ("size", "right"), ("Hz", "right")]
    rows = [
        [Text("n0", style="bold"), "a_long_layer_name", "1,000", "12.50"],
        ["", "v1", "7", "-"],
        ["node-with-a-long-id", "x", "123,456", "0.01"],
    ]
    kw = {"title": "Streams", "min_widths": {"size": 9}}
    assert to_text([PlainTable(cols, rows, **kw)]) == to_text([table(cols, rows, **kw)])
    assert isinstance(table(cols, rows * (PLAIN_ROWS // 3 + 1)), PlainTable)


def test_stream_facts_agree_with_the_file(session: Path) -> None:
    with SessionReader(session) as r:
        slow = r.storage_bytes(L.SPIKES)  # before any facts: every dataset visited
        for node in r.nodes():
            for layer in r.layers(node):
                f = r.facts(node, layer)
                fr = r.frames(node, layer)
                assert f.frames == fr.steps.size == 3
                assert f.total_count == int(fr.count.sum()) == r.spike_rows(node, layer)
                assert f.layer_size == r.layer_size(node, layer)
                assert f.shape == (r.stream_attrs(node, layer)[L.ATTR_LAYER_SIZE][0],)
                assert f.dt_ms == r.dt_ms(node, layer) == 1.0
                assert f.sorting == r.sorting(node, layer)
                assert f.recorded == r.recorded_count(node, layer)
        assert r.storage_bytes(L.SPIKES) == slow  # now the streams' own sums
