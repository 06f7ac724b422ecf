"""Sharded recording behind Zenoh routers: each spike in exactly one shard's file.

Real processes on loopback: two Zenoh routers (``recorderd-router``) stand for two
hosts, brain nodes and recorder shards are clients of one router or the other.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from analysis.export import export_sonata
from analysis.reader import SessionReader
from recorderd.session import layout as L
from recorderd.wire import check_node_pattern, node_chunk, node_matches
from recorderd.wire.shards import ShardClaim, coverage
from tests.helpers import free_port
from tests.processes import brain_node, recorderd, router, sim_analyzer, stop, wait_for

STEPS = 300


def shard_statistics(session: Path, shard: str | None) -> dict[str, Any]:
    path = L.SessionFiles(session, shard).statistics
    if not path.exists():
        return {}
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def node(
    node_id: str, module: str, endpoint: str, tmp_path: Path, *extra: str, wrap: Any = ()
) -> Any:
    return brain_node(
        "--node-id",
        node_id,
        "--module-type",
        module,
        "--mode",
        "client",
        "--connect",
        endpoint,
        "--summary-json",
        str(tmp_path / f"{node_id}.json"),
        *extra,
        wrap=wrap,
    )


def shard_args(tmp_path: Path, endpoint: str, shard: str, nodes: str) -> list[str]:
    return [
        "--session",
        "s",
        "--recording-dir",
        str(tmp_path / "rec"),
        "--mode",
        "client",
        "--connect",
        endpoint,
        "--shard",
        shard,
        "--nodes",
        nodes,
        "--flush-interval",
        "0.2",
    ]


# -- the key space -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "chunk"), [("pfc-*", "pfc-$*"), ("*", "*"), ("*-0", "$*-0"), ("a", "a")]
)
def test_node_patterns_become_zenoh_chunks(pattern: str, chunk: str) -> None:
    assert node_chunk(pattern) == chunk


@pytest.mark.parametrize("bad", ["**", "pfc-**", "-a", "_a", "a/b", "a.b", "", "a" * 65, "$*"])
def test_bad_node_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid node pattern"):
        check_node_pattern(bad)


def test_node_matching_follows_the_chunk_rule() -> None:
    assert node_matches("pfc-*", "pfc-0") and node_matches("pfc-*", "pfc-")
    assert not node_matches("pfc-*", "pfc") and not node_matches("pfc-*", "visual-0")
    assert node_matches("*-main-*", "lang-main-0") and node_matches("*", "x")


def test_coverage_lists_uncovered_and_overlapping_nodes() -> None:
    claims = [ShardClaim("s", "a", ("pfc-*", "lang-*")), ShardClaim("s", "b", ("*-0",))]
    claims.append(ShardClaim("other", None))  # another session's recorder: not counted
    report = coverage("s", claims, ["pfc-1", "pfc-0", "motor-1", "lang-main-2", "motor-1"])
    assert report.nodes_alive == 4
    assert (report.uncovered, report.uncovered_count) == (["motor-1"], 1)
    assert report.overlapping == {"pfc-0": ["a", "b"]} and report.overlapping_count == 1
    assert report.shards == {"a": ["pfc-*", "lang-*"], "b": ["*-0"]}


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"[]",
        b'{"session": "../x", "shard": null, "nodes": ["*"]}',
        b'{"session": "s", "shard": "a.b", "nodes": ["*"]}',
        b'{"session": "s", "shard": "a", "nodes": []}',
        b'{"session": "s", "shard": "a", "nodes": ["**"]}',
        b'{"session": "s", "shard": "a", "nodes": ' + json.dumps(["a"] * 300).encode() + b"}",
        b"x" * 70_000,
    ],
)
def test_hostile_claims_are_ignored(payload: bytes) -> None:
    assert ShardClaim.decode(payload) is None


def test_shard_files_are_named_after_the_shard(tmp_path: Path) -> None:
    files = L.SessionFiles(tmp_path, "pfc")
    names = [p.name for p in (files.data, files.journal, files.control, files.statistics)]
    assert names == [
        "simulation_data.pfc.h5",
        "simulation_data.pfc.h5-journal",
        "control_states.pfc.jsonl",
        "recording_statistics.pfc.json",
    ]
    assert files.lock.name == ".recorder.pfc.lock"
    for name in ("simulation_data.h5", "simulation_data.b.h5", "simulation_data.a.h5"):
        (tmp_path / name).touch()
    (tmp_path / "simulation_data.h5.creating").touch()
    (tmp_path / "simulation_data.x.y.h5").touch()  # not a shard name
    assert [f.shard for f in L.session_file_sets(tmp_path)] == [None, "a", "b"]


def test_nodes_without_a_shard_is_a_usage_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "recorderd",
            "--session",
            "s",
            "--recording-dir",
            str(tmp_path),
            "--nodes",
            "pfc-*",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "--shard" in out.stderr and list(tmp_path.iterdir()) == []


# -- two hosts, two shards ---------------------------------------------------------------


@dataclass(frozen=True)
class Hosts:
    """Two "hosts": each a router (listen endpoints, comma-separated) that its clients
    reach at ``client``; the second router connects to ``link`` (the first's)."""

    listen: tuple[str, str]
    client: tuple[str, str]
    link: str
    wrap: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())


def record_two_shards(tmp_path: Path, hosts: Hosts) -> tuple[Path, dict[str, Any]]:
    """Shard a (pfc-*, lang-*) on host 1, shard b (visual-*) on host 2; pfc-0 and
    lang-main-0 on host 2 and visual-0 on host 1, so every sample crosses both routers.
    Returns the session and the nodes' summaries, after checking each shard's counts
    and that every spike stream is in exactly one shard's file."""
    session = tmp_path / "rec" / "s"
    plan = [  # node, module, the host it runs on, the shard that owns it
        ("pfc-0", "pfc", 1, "a"),
        ("lang-main-0", "lang-main", 1, "a"),
        ("visual-0", "visual", 0, "b"),
    ]
    w1, w2 = hosts.wrap
    c1, c2 = hosts.client
    started_ns = time.time_ns()
    with (
        router(tmp_path, hosts.listen[0], name="router1", wrap=w1),
        router(tmp_path, hosts.listen[1], hosts.link, name="router2", wrap=w2),
        recorderd(tmp_path, *shard_args(tmp_path, c1, "a", "pfc-*,lang-*"), name="a", wrap=w1) as a,
        recorderd(tmp_path, *shard_args(tmp_path, c2, "b", "visual-*"), name="b", wrap=w2) as b,
    ):
        run = ["--steps", str(STEPS), "--speed", "0", "--wait-subscribers", "20"]
        procs = [
            node(n, m, hosts.client[h], tmp_path, *run, wrap=hosts.wrap[h]) for n, m, h, _ in plan
        ]
        assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
        summaries = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n, *_ in plan}
        published: dict[str, dict[str, dict[str, int]]] = {"a": {}, "b": {}}
        for n, _, _, shard in plan:
            for key, s in summaries[n]["streams"].items():
                if s["kind"] in ("spikes", "control"):
                    published[shard][key.removeprefix("brain/")] = s
        for shard in ("a", "b"):
            total = sum(s["messages"] for s in published[shard].values())
            wait_for(
                lambda shard=shard, total=total: (
                    shard_statistics(session, shard).get("totals", {}).get("written") == total
                ),
                30,
                f"shard {shard}: {total} messages written",
            )
        assert stop(a) == 0 and stop(b) == 0
    ended_ns = time.time_ns()
    on_disk: dict[str, set[str]] = {}
    for shard in ("a", "b"):
        stats = shard_statistics(session, shard)
        assert stats["shard"] == shard and stats["rejected"] == {}
        assert set(stats["streams"]) == set(published[shard])
        for key, pub in published[shard].items():
            st = stats["streams"][key]
            assert (st["received"], st["written"], st["missing"]) == (
                pub["messages"],
                pub["messages"],
                0,
            ), key
            if pub["kind"] == "spikes":
                assert st["spikes_written"] == pub["spikes"], key
                print(
                    f"shard {shard} {key}: published {pub['spikes']} spikes, recorded "
                    f"{st['spikes_written']}"
                )
        with h5py.File(L.SessionFiles(session, shard).data, "r") as f:
            on_disk[shard] = set(f[L.SPIKES])
            assert f[L.METADATA].attrs[L.ATTR_SHARD] == shard
            for pop in f[L.SPIKES].values():
                # each message's Zenoh timestamp (the node's hybrid logical clock): set,
                # within the run, never going back on a stream
                stamps = pop[L.FRAME_ZENOH_TIME][:]
                assert stamps.size == pop[L.FRAME_SEQ].size == STEPS
                assert started_ns < int(stamps[0]) and int(stamps[-1]) < ended_ns
                assert (np.diff(stamps.astype(np.int64)) > 0).all()
    # every spike stream is in exactly one shard's file
    assert not on_disk["a"] & on_disk["b"]
    assert on_disk["a"] | on_disk["b"] == {
        L.population(n, layer)
        for n, *_ in plan
        for layer in (
            k.split("/")[-1] for k, s in summaries[n]["streams"].items() if s["kind"] == "spikes"
        )
    }
    assert not L.SessionFiles(session).data.exists()  # no unsharded file

    return session, summaries


def test_two_shards_behind_two_routers_record_each_spike_exactly_once(tmp_path: Path) -> None:
    r1, r2 = (f"tcp/127.0.0.1:{free_port()}" for _ in range(2))
    session, summaries = record_two_shards(tmp_path, Hosts((r1, r2), (r1, r2), r1))

    # The analysis reads the shards as one session: every node, every stream, the totals.
    spikes_published = {
        k.removeprefix("brain/"): s["spikes"]
        for summ in summaries.values()
        for k, s in summ["streams"].items()
        if s["kind"] == "spikes"
    }
    with SessionReader(session) as r:
        assert r.shards == ["a", "b"]
        assert r.nodes() == sorted(summaries)
        for key, spikes in spikes_published.items():
            node_id, _, layer = key.split("/")
            assert r.spikes(node_id, layer).neuron_ids.size == spikes, key
        assert r.statistics()["totals"]["spikes_written"] == sum(spikes_published.values())
        assert {c["node_id"] for c in r.control_states()} == set(summaries)
        stamps = r.zenoh_times("pfc-0", "output")
        assert stamps is not None and stamps.size == STEPS and (stamps > 0).all()
    out = sim_analyzer("info", session, "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["totals"]["spikes"] == sum(spikes_published.values())
    assert [s["shard"] for s in info["shards"]] == ["a", "b"]
    counts = export_sonata(session, tmp_path / "spikes.h5")
    assert sum(counts.values()) == sum(spikes_published.values())
    # and replays as one session: every stream, into one recorder
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    again = ["--session", "again", "--recording-dir", str(tmp_path / "rec"), "--listen", endpoint]
    with recorderd(tmp_path, *again, name="again") as rec:
        play = subprocess.run(
            [
                sys.executable,
                "-m",
                "recorderd.daemon.ctl",
                "play",
                str(session),
                "--connect",
                endpoint,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert play.returncode == 0, play.stderr
        assert stop(rec) == 0
    with SessionReader(tmp_path / "rec" / "again") as r:
        for key, spikes in spikes_published.items():
            node_id, _, layer = key.split("/")
            assert r.spikes(node_id, layer).neuron_ids.size == spikes, key


def test_recorderctl_reports_uncovered_and_overlapping_nodes(tmp_path: Path) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    paced = ["--steps", "0", "--speed", "1", "--wait-subscribers", "0"]
    with (
        router(tmp_path, endpoint),
        recorderd(tmp_path, *shard_args(tmp_path, endpoint, "a", "pfc-*"), name="a") as a,
        recorderd(tmp_path, *shard_args(tmp_path, endpoint, "b", "*-0"), name="b") as b,
    ):
        procs = [
            node("pfc-0", "pfc", endpoint, tmp_path, *paced),  # a and b
            node("pfc-1", "pfc", endpoint, tmp_path, *paced),  # a only
            node("motor-1", "pfc", endpoint, tmp_path, *paced),  # nobody
        ]
        ctl = [sys.executable, "-m", "recorderd.daemon.ctl", "status", "--mode", "client"]
        ctl += ["--connect", endpoint]

        def report() -> dict[str, Any]:
            out = subprocess.run([*ctl, "--json"], capture_output=True, text=True, timeout=60)
            answers = json.loads(out.stdout) if out.returncode == 0 else []
            return answers[0]["coverage"] if len(answers) == 2 else {}

        wait_for(lambda: report().get("nodes_alive") == 3, 30, "three nodes alive")
        cov = report()
        assert (cov["uncovered"], cov["uncovered_count"]) == (["motor-1"], 1)
        assert cov["overlapping"] == {"pfc-0": ["a", "b"]}
        assert cov["shards"] == {"a": ["pfc-*"], "b": ["*-0"]}
        text = subprocess.run(ctl, capture_output=True, text=True, timeout=60)
        assert text.returncode == 0
        assert "1 node(s) recorded by NO recorder: motor-1" in text.stdout
        assert "1 node(s) recorded by TWO or more: pfc-0 (a + b)" in text.stdout

        # each shard also puts what it found into its statistics
        def during_run(shard: str, what: str) -> Any:
            doc = shard_statistics(tmp_path / "rec" / "s", shard).get("coverage") or {}
            return doc.get(f"{what}_during_run")

        wait_for(lambda: during_run("a", "uncovered") == ["motor-1"], 30, "a's coverage")
        wait_for(lambda: during_run("b", "overlapping") == ["pfc-0"], 30, "b's coverage")
        for p in procs:
            assert stop(p) == 0
        assert stop(a) == 0 and stop(b) == 0
    stats = shard_statistics(tmp_path / "rec" / "s", "b")
    assert stats["coverage"]["overlapping_during_run"] == ["pfc-0"]  # kept after the end


def test_a_router_restarted_mid_run_loses_only_what_the_gaps_count(tmp_path: Path) -> None:
    r1, r2 = (f"tcp/127.0.0.1:{free_port()}" for _ in range(2))
    session = tmp_path / "rec" / "s"

    def totals() -> dict[str, int]:
        doc: dict[str, int] = shard_statistics(session, "a").get("totals", {})
        return doc

    with contextlib.ExitStack() as stack:
        stack.enter_context(router(tmp_path, r2, r1, name="router2"))  # the node's host
        first = stack.enter_context(router(tmp_path, r1, name="router1"))  # the recorder's
        rec = stack.enter_context(
            recorderd(tmp_path, *shard_args(tmp_path, r1, "a", "*"), name="a")
        )
        run = ["--steps", "6000", "--speed", "1", "--wait-subscribers", "20"]
        pfc = node("pfc-0", "pfc", r2, tmp_path, *run)
        wait_for(lambda: totals().get("written", 0) > 1000, 30, "recording under way")
        assert stop(first, signal.SIGTERM) == 0  # the recorder's router goes away...
        time.sleep(1.0)
        stack.enter_context(router(tmp_path, r1, name="router1"))  # ...and comes back
        assert pfc.wait(timeout=60) == 0
        summary = json.loads((tmp_path / "pfc-0.json").read_text())
        assert summary["flush_sessions"] == ["s"]  # the route was back before the end
        published = {
            k.removeprefix("brain/"): s["messages"]
            for k, s in summary["streams"].items()
            if s["kind"] in ("spikes", "control")
        }
        wait_for(
            lambda: (
                totals().get("received", 0) + totals().get("missing", 0) == sum(published.values())
            ),
            30,
            "every message received or counted missing",
        )
        assert stop(rec) == 0
    stats = shard_statistics(session, "a")
    lost = 0
    with h5py.File(L.SessionFiles(session, "a").data, "r") as f:
        for key, messages in published.items():
            st = stats["streams"][key]
            assert st["written"] + st["missing"] == messages, key
            if "/spikes/" in key:
                node_id, _, layer = key.split("/")
                seq = f[L.SPIKES][L.population(node_id, layer)][L.FRAME_SEQ][:]
                gaps = int(np.sum(np.diff(seq.astype(np.int64)) - 1))
                assert gaps == st["missing"] and seq[-1] == messages - 1, key
            lost += st["missing"]
            print(f"{key}: published {messages}, written {st['written']}, missing {st['missing']}")
    assert lost > 0  # the router really was gone for a while
    # a folder holding one shard's files only reads as a session of that shard
    out = sim_analyzer("info", session, "--json")
    assert out.returncode == 0, out.stderr
    shards = json.loads(out.stdout)["shards"]
    assert [(s["shard"], s["nodes"], s["file"]) for s in shards] == [
        ("a", ["*"], "simulation_data.a.h5")
    ]


def test_the_shipped_router_and_client_configs_route_a_node_to_a_recorder(
    tmp_path: Path,
) -> None:
    config = Path(__file__).resolve().parents[1] / "config"
    client = ["--zenoh-config", str(config / "zenoh-client.json5")]
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    rec_args = [*client, "--connect", endpoint, "--session", "s"]
    rec_args += ["--recording-dir", str(tmp_path), "--flush-interval", "0.2"]
    with (
        router(tmp_path, endpoint, extra=["--zenoh-config", str(config / "zenoh-router.json5")]),
        recorderd(tmp_path, *rec_args) as rec,
    ):
        # the file's mode and (empty) listen endpoints, not recorderd's peer defaults
        assert "(client, listen [], connect" in (tmp_path / "recorderd.log").read_text()
        run = ["--steps", "200", "--speed", "0", "--wait-subscribers", "20"]
        summary = tmp_path / "pfc-1.json"
        node_run = brain_node(
            *client,
            "--connect",
            endpoint,
            "--node-id",
            "pfc-1",
            "--module-type",
            "pfc",
            "--summary-json",
            str(summary),
            *run,
        )
        assert node_run.wait(timeout=120) == 0
        streams = json.loads(summary.read_text())["streams"]
        published = sum(s["spikes"] for s in streams.values() if s["kind"] == "spikes")
        wait_for(
            lambda: (
                shard_statistics(tmp_path / "s", None).get("totals", {}).get("spikes_written")
                == published
            ),
            30,
            f"{published} spikes written",
        )
        assert stop(rec) == 0


NETNS_LINK = ("10.213.47.1", "10.213.47.2")  # a veth pair between two namespaces


@contextlib.contextmanager
def two_namespaces(tag: str) -> Iterator[tuple[str, str]]:
    """Two network namespaces joined by a veth pair, each with its loopback up; removed
    at the end. Skips the test where namespaces cannot be made (not root, no ``ip``)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2's ip")
    names = (f"rdt{tag}a", f"rdt{tag}b")

    def ip(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)

    made: list[str] = []
    try:
        for ns in names:
            if ip("netns", "add", ns).returncode != 0:
                pytest.skip(f"cannot create network namespace {ns}")
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        veth = (f"v{tag}a", f"v{tag}b")
        pair = ("link", "add", veth[0], "netns", names[0], "type", "veth", "peer", "name")
        steps: list[tuple[str, ...]] = [(*pair, veth[1], "netns", names[1])]
        for ns, dev, addr in zip(names, veth, NETNS_LINK, strict=True):
            steps += [
                ("-n", ns, "addr", "add", f"{addr}/30", "dev", dev),
                ("-n", ns, "link", "set", dev, "up"),
            ]
        for step in steps:
            done = ip(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot link the namespaces: ip {' '.join(step)}: {done.stderr}")
        yield names
    finally:
        for ns in made:  # deleting a namespace deletes its end of the veth pair too
            ip("netns", "del", ns)


def test_two_shards_across_network_namespaces(tmp_path: Path) -> None:
    """The same sharded run with each "host" in its own network namespace, the routers
    linked over a veth pair: the real network path between hosts, on this machine."""
    with two_namespaces(str(os.getpid() % 100000)) as (ns1, ns2):
        p1, p2 = free_port(), free_port()
        hosts = Hosts(
            listen=(f"tcp/127.0.0.1:{p1},tcp/{NETNS_LINK[0]}:{p1}", f"tcp/127.0.0.1:{p2}"),
            client=(f"tcp/127.0.0.1:{p1}", f"tcp/127.0.0.1:{p2}"),
            link=f"tcp/{NETNS_LINK[0]}:{p1}",
            wrap=(("ip", "netns", "exec", ns1), ("ip", "netns", "exec", ns2)),
        )
        session, summaries = record_two_shards(tmp_path, hosts)
    with SessionReader(session) as r:
        assert r.shards == ["a", "b"] and r.nodes() == sorted(summaries)


def test_what_repliers_send_is_held_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A query keeps at most MAX_REPLIES replies and MAX_REPLY_BYTES of payload, however
    many repliers answer and however much they send (a hostile claim flood)."""
    from recorderd.daemon import bus as B

    monkeypatch.setattr(B, "MAX_REPLY_BYTES", 1_000)
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    server = B.Bus(B.make_config(listen=[endpoint]))
    server.open()
    try:
        for i in range(10):  # ten "shards", 400 bytes each
            server.serve_queries(f"brain/_recorders/s/shards/x{i}", lambda: b"y" * 400)
        with B.Client(B.make_config(connect=[endpoint], listen=[])) as client:
            time.sleep(0.5)
            got = client.query("brain/_recorders/s/shards/*", 3.0)
            assert len(got) == 2  # 800 bytes; a third would pass 1,000
            monkeypatch.setattr(B, "MAX_REPLY_BYTES", 1 << 20)
            assert len(client.query("brain/_recorders/s/shards/*", 3.0)) == 10
    finally:
        server.close()
