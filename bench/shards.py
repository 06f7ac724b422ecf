"""Aggregate ingest of one session: one recorderd vs two shards, in one run (ratios).

The same published data goes, in turn, to each topology (fresh processes, fresh free
``tcp/127.0.0.1`` ports, multicast scouting off):

- ``one``: one recorderd (unsharded, ``simulation_data.h5``) as a peer; every publisher
  connects to it;
- ``two``: two recorderd shards of the same session as peers, ``--shard a --nodes
  'grp0-*'`` and ``--shard b --nodes 'grp1-*'`` (``simulation_data.a.h5`` and ``.b.h5``
  in the same session folder; b connects to a); the ``grp0`` publishers connect to a, the
  ``grp1`` publishers to b;
- ``two-routers``: the same two shards as clients of a ``recorderd-router`` each (the
  two routers connected, as on two hosts); each group of publishers connects to the
  router of its shard, so every message passes one router hop (publisher -> router ->
  recorder) and none crosses between the routers;
- ``one-router`` (opt-in): the unsharded recorderd as a client of one router.

Publishers, the "go" line, RELIABLE + BLOCK puts and the flush barrier are
``bench/perf.py``'s (its ``_publish`` child, ``start_publishers``, ``connect_publishers``):
``--publishers`` processes (half ``grp0-<i>``, half ``grp1-<i>``), each one 1,000-neuron
layer at ~5% firing, ``--messages`` messages each, pre-encoded with
``recorderd.wire.encode``. Publisher ``grpX-<i>`` draws its spikes with seed ``i``, so the
data is the same in every topology. A monitor process of this file queries every
recorder of the session at once (``status_query_key``) every 50 ms, at most at a 10% duty
cycle of the query time but at least every 0.5 s; a topology is done when every
recorder has written what its nodes published with an empty intake. Then the recorders
get SIGINT together; their closing is reported apart.

Figures per topology: msg/s and spikes/s from "go" until the last recorder has written
everything (the sum over shards); recorder CPU seconds per million messages (utime +
stime from "go" to exit, each recorder over the messages it wrote, and all recorders
together over all messages); router and publisher CPU from "go" until all is written;
lost = missing + intake_dropped + rejected from each recorder's own statistics file
(must be 0), and written vs published; peak RSS (``ru_maxrss``) per recorder. Ratios are
taken per round (every topology once, in a rotated order) against ``one`` of the same
round; the summary gives their median.

On a 2-core machine the publishers, the recorders and the routers share the two cores:
a second recorder process cannot run on a core of its own, so the ratio shows the
per-process ceiling and the CPU cost of sharding, not how shards on separate hosts
scale. The CPU seconds per message are the figure that carries over.

Usage:
  python bench/shards.py [--quick] [--publishers 4] [--messages 100000] [--rounds 5]
                         [--topologies one,two,two-routers] [--json OUT] [--keep]
``--quick``: 4 x 2,000 messages, one round (< 60 s; ``tests/test_bench_smoke.py``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import perf  # bench/perf.py: this script's folder is on sys.path
from perf import Child, Commands, Workload, emit, fnum, free_port, now, table

from recorderd.session import layout as L
from recorderd.wire import node_matches

SESSION = "shards"
GROUPS = ("grp0", "grp1")
TOPOLOGIES = ("one", "two", "two-routers", "one-router")
DEFAULT_TOPOLOGIES = ("one", "two", "two-routers")


def log(msg: str) -> None:
    print(f"[shards {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- topologies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rec:
    """One recorderd: its shard (None: unsharded) and where it attaches (None: a listening
    peer; else the name of the router it is a client of)."""

    name: str
    shard: str | None = None
    nodes: str | None = None
    router: str | None = None
    peer_of: str | None = None  # a peer recorder it connects to


@dataclass(frozen=True)
class Topology:
    name: str
    title: str
    recorders: tuple[Rec, ...]
    routers: tuple[str, ...] = ()  # each router after the first connects to the first
    attach: dict[str, str] = field(default_factory=dict)  # group -> recorder or router


def topologies() -> dict[str, Topology]:
    a, b = Rec("a", "a", "grp0-*"), Rec("b", "b", "grp1-*", peer_of="a")
    a_r0, b_r1 = Rec("a", "a", "grp0-*", router="r0"), Rec("b", "b", "grp1-*", router="r1")
    to_shards = {"grp0": "a", "grp1": "b"}
    tops = [
        Topology("one", "one recorderd (unsharded), peer", (Rec("all"),), (),
                 dict.fromkeys(GROUPS, "all")),
        Topology("two", "two shards (a: grp0-*, b: grp1-*), peers", (a, b), (), to_shards),
        Topology("two-routers", "two shards, each a client of its own router", (a_r0, b_r1),
                 ("r0", "r1"), {"grp0": "r0", "grp1": "r1"}),
        Topology("one-router", "one recorderd, client of a router", (Rec("all", router="r0"),),
                 ("r0",), dict.fromkeys(GROUPS, "r0")),
    ]  # fmt: skip
    return {t.name: t for t in tops}


# -- child: status of every recorder of the session ----------------------------------------


def child_monitor(spec: dict[str, Any]) -> None:
    """Query every recorder's status of the session; one "status" line per poll."""
    import zenoh

    from recorderd import wire as P
    from recorderd.daemon.bus import make_config

    cmds = Commands()
    deadline = now() + spec["max_seconds"]
    with zenoh.open(make_config(connect=spec["connect"])) as session:
        while now() < deadline:
            t0 = now()
            found: dict[str, Any] = {}
            for reply in session.get(P.status_query_key(perf.PREFIX, SESSION), timeout=2.0):
                if reply.ok is not None:
                    doc = json.loads(reply.ok.payload.to_bytes())
                    found[doc.get("shard") or "all"] = {
                        "totals": doc["totals"],
                        "queued": doc["intake_queued"],
                    }
            t1 = now()
            emit("status", t=t1, query_s=round(t1 - t0, 4), recorders=found)
            # At most a 10% duty cycle of the query time, as bench/perf.py, but a poll at
            # least every 0.5 s: the end of a run is known to within one poll.
            left = max(spec["interval"], min(10 * (t1 - t0), 0.5)) - (now() - t0)
            if cmds.get(max(left, 0.0)) in ("stop", "eof"):
                break


def spawn_here(role: str, spec: dict[str, Any], name: str, work: Path) -> Child:
    return Child(
        [sys.executable, str(Path(__file__).resolve()), role, json.dumps(spec)], name, work
    )


# -- harness --------------------------------------------------------------------------------


def python_module(module: str, call: str = "") -> list[str]:
    if call:  # recorderd.daemon.router has no __main__: the console script's own call
        return [sys.executable, "-c", f"from {module} import {call}; {call}()"]
    return [sys.executable, "-m", module]


def start_router(name: str, listen: str, connect: str | None, work: Path) -> Child:
    """``recorderd-router --listen LISTEN [--connect CONNECT]``, once it logs "ready"."""
    cmd = [*python_module("recorderd.daemon.router", "main"), "--listen", listen]
    cmd += ["--connect", connect] if connect else []
    return Child(cmd, name, work, events=False)


def router_ready(child: Child, timeout: float) -> bool:
    deadline = now() + timeout
    while now() < deadline and child.alive():
        if b"ready" in child.err_path.read_bytes():
            return True
        time.sleep(0.05)
    return False


def recorder_cmd(r: Rec, rec_dir: Path, listen: dict[str, str]) -> list[str]:
    cmd = [*python_module("recorderd"), "--session", SESSION, "--recording-dir", str(rec_dir)]
    if r.shard is not None:
        cmd += ["--shard", r.shard, "--nodes", r.nodes or "*"]
    if r.router is not None:
        return [*cmd, "--mode", "client", "--connect", listen[r.router]]
    cmd += ["--listen", listen[r.name]]
    return [*cmd, "--connect", listen[r.peer_of]] if r.peer_of else cmd


def group_workload(w: Workload, group: str) -> Workload:
    return Workload(group, w.title, w.processes // len(GROUPS), 1, w.messages, w.layer, w.rate)


def expected_per_recorder(t: Topology, w: Workload) -> dict[str, int]:
    nodes = [f"{g}-{i}" for g in GROUPS for i in range(w.processes // len(GROUPS))]
    return {
        r.name: w.messages * sum(node_matches(r.nodes or "*", n) for n in nodes)
        for r in t.recorders
    }


def run_topology(t: Topology, w: Workload, work: Path, timeout: float) -> dict[str, Any]:
    """Fresh routers, recorders, monitor and publishers of ``t``; the figures."""
    wdir = work / t.name
    wdir.mkdir(parents=True, exist_ok=True)
    rec_dir = wdir / "rec"
    session_dir = rec_dir / SESSION
    busy0, own0 = perf.host_cpu()
    row: dict[str, Any] = {"topology": t.name, "title": t.title}
    listen = {n: f"tcp/127.0.0.1:{free_port()}" for n in t.routers}
    listen |= {r.name: f"tcp/127.0.0.1:{free_port()}" for r in t.recorders if r.router is None}
    expected = expected_per_recorder(t, w)
    routers: dict[str, Child] = {}
    recs: dict[str, Child] = {}
    pubs: list[Child] = []
    monitor: Child | None = None
    try:
        for k, name in enumerate(t.routers):
            connect = listen[t.routers[0]] if k else None
            routers[name] = start_router(name, listen[name], connect, wdir)
            if not router_ready(routers[name], 30):
                row["error"] = f"router {name} not ready: {routers[name].stderr_tail(2)}"
                return row
        for r in t.recorders:
            cmd = recorder_cmd(r, rec_dir, listen)
            recs[r.name] = Child(cmd, f"recorder-{r.name}", wdir, events=False)
        row["recorder_args"] = {r.name: recorder_cmd(r, rec_dir, listen)[2:] for r in t.recorders}
        mon_spec = {
            "connect": list(listen.values()),
            "interval": perf.STATUS_INTERVAL_S,
            "max_seconds": timeout + 120,
        }
        monitor = spawn_here("_monitor", mon_spec, "monitor", wdir)
        for g in GROUPS:
            pubs += perf.start_publishers(group_workload(w, g), listen[t.attach[g]], wdir, g)
        if not wait_all_answer(monitor, set(recs), 60):
            row["error"] = "recorders not ready: " + "; ".join(
                f"{n}: {c.stderr_tail(2)}" for n, c in recs.items()
            )
            return row
        problem = perf.connect_publishers(pubs, 60)
        if problem:
            row["error"] = problem
            return row
        watched = {**{f"recorder-{n}": c for n, c in recs.items()}, **routers}
        cpu0 = {n: perf.proc_cpu(c.pid) or 0.0 for n, c in watched.items()}
        pub_cpu0 = sum(perf.proc_cpu(p.pid) or 0.0 for p in pubs)
        t_go = perf.go(pubs)
        row["done"] = wait_written(monitor, recs, pubs, expected, t_go, timeout)
        cpu1 = {n: perf.proc_cpu(c.pid) for n, c in watched.items()}
        perf.wait_all_done(pubs, 30)
        pub_cpu = sum(perf.proc_cpu(p.pid) or 0.0 for p in pubs) - pub_cpu0
        row["publishers"] = perf.publisher_figures(pubs)
        row["publisher_cpu_s"] = round(pub_cpu, 3)
        row["publisher_exit_codes"] = perf.finish_publishers(pubs, 30)
        monitor.say("stop")
        monitor.reap(15)
        t_sig = now()
        for c in recs.values():
            if c.alive():
                os.kill(c.pid, signal.SIGINT)
        row["recorders"] = {
            r.name: recorder_figures(r, recs[r.name], session_dir, cpu0[f"recorder-{r.name}"])
            for r in t.recorders
        }
        row["close_s"] = round(now() - t_sig, 3)
        row["routers"] = {
            n: {"cpu_run_s": round((cpu1[n] or cpu0[n]) - cpu0[n], 3)} for n in routers
        }
        for n, c in routers.items():
            os.kill(c.pid, signal.SIGINT)
            row["routers"][n]["exit_code"] = c.reap(30)
        row["bytes"] = perf.dir_bytes(session_dir)
        summarise(row, expected)
        return row
    finally:
        for c in [*pubs, *recs.values(), *routers.values(), *([monitor] if monitor else [])]:
            if c.proc.returncode is None:
                c.reap(5)
        busy1, own1 = perf.host_cpu()
        row["foreign_cpu_s"] = round(max(0.0, (busy1 - busy0) - (own1 - own0)), 2)


def wait_all_answer(monitor: Child, names: set[str], timeout: float) -> bool:
    deadline = now() + timeout
    while now() < deadline and monitor.alive():
        st = monitor.latest.get("status")
        if st is not None and names <= set(st["recorders"]):
            return True
        time.sleep(0.05)
    return False


def wait_written(
    monitor: Child,
    recs: dict[str, Child],
    pubs: Sequence[Child],
    expected: dict[str, int],
    t_go: float,
    timeout: float,
) -> dict[str, Any]:
    """Until every recorder has written its expected messages with an empty intake (or
    the publishers are through and nothing moved for 5 s); seconds from "go" per recorder."""
    deadline = t_go + timeout
    done: dict[str, float] = {}
    last: Any = None
    since = now()
    while now() < deadline and all(c.alive() for c in recs.values()):
        st = monitor.latest.get("status")
        if st is not None and st["t"] >= t_go:
            for name, doc in st["recorders"].items():
                written = doc["totals"]["written"]
                if name in expected and written >= expected[name] and doc["queued"] == 0:
                    done.setdefault(name, st["t"] - t_go)
            if set(done) >= set(expected):
                break
            sig = json.dumps(st["recorders"], sort_keys=True)
            if sig != last:
                last, since = sig, now()
            pubs_done = all(p.latest.get("done") or not p.alive() for p in pubs)
            if pubs_done and now() - since > 5:
                break
        time.sleep(0.02)
    complete = set(done) >= set(expected)
    t_done = t_go + max(done.values()) if complete else now()
    polls = [e for e in monitor.snapshot() if e.get("event") == "status" and t_go <= e["t"]]
    polls = [e for e in polls if e["t"] <= t_done]
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(polls)]
    return {
        "completed": complete,
        "seconds": round(t_done - t_go, 4) if complete else None,
        "per_recorder_s": {n: round(s, 4) for n, s in done.items()},
        # The end is known to within the gap between the last two polls.
        "polls": len(polls),
        "poll_query_ms_mean": round(1000 * statistics.fmean(e["query_s"] for e in polls), 1)
        if polls
        else None,
        "resolution_s": round(gaps[-1], 3) if gaps else None,
    }


def recorder_figures(r: Rec, child: Child, session_dir: Path, cpu0: float) -> dict[str, Any]:
    """Exit code, CPU from "go" to exit, peak RSS and the final totals of its statistics."""
    code = child.reap(120)
    ru = child.rusage
    try:
        stats = json.loads(L.SessionFiles(session_dir, r.shard).statistics.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        stats = {}
    t = stats.get("totals", {})
    return {
        "shard": r.shard,
        "nodes": r.nodes or "*",
        "exit_code": code,
        "cpu_s": round(ru.ru_utime + ru.ru_stime - cpu0, 3) if ru else None,
        "peak_rss_mb": round(ru.ru_maxrss / 1024, 1) if ru else None,
        "totals": {k: t.get(k, 0) for k in ("received", "written", "missing", "intake_dropped",
                                            "rejected", "spikes_written")},
        "lost": t.get("missing", 0) + t.get("intake_dropped", 0) + t.get("rejected", 0),
        "log": perf.log_summary(child.err_path),
    }  # fmt: skip


def summarise(row: dict[str, Any], expected: dict[str, int]) -> None:
    pf, recs = row["publishers"], row["recorders"]
    row["published"], row["spikes"] = pf["published"], pf["spikes"]
    row["expected"] = sum(expected.values())
    row["written"] = sum(r["totals"]["written"] for r in recs.values())
    row["spikes_written"] = sum(r["totals"]["spikes_written"] for r in recs.values())
    row["lost"] = sum(r["lost"] for r in recs.values())
    row["exit_codes"] = [r["exit_code"] for r in recs.values()]
    secs = row["done"]["seconds"]
    if secs:
        row["msg_per_s"] = row["published"] / secs
        row["spikes_per_s"] = row["spikes"] / secs
    for r in recs.values():
        w = r["totals"]["written"]
        r["cpu_s_per_M"] = r["cpu_s"] / w * 1e6 if r["cpu_s"] is not None and w else None
    cpu = [r["cpu_s"] for r in recs.values()]
    if row["published"] and None not in cpu:
        row["recorder_cpu_s_per_M"] = sum(cpu) / row["published"] * 1e6
        router_cpu = sum(x["cpu_run_s"] for x in row["routers"].values())
        row["router_cpu_s_per_M"] = router_cpu / row["published"] * 1e6
        row["publisher_cpu_s_per_M"] = row["publisher_cpu_s"] / row["published"] * 1e6
    row["peak_rss_mb_max"] = max((r["peak_rss_mb"] or 0 for r in recs.values()), default=0)
    row["peak_rss_mb_sum"] = round(sum(r["peak_rss_mb"] or 0 for r in recs.values()), 1)
    if row["spikes"]:
        row["bytes_per_spike"] = row["bytes"] / row["spikes"]


# -- report ---------------------------------------------------------------------------------


def ratios(rounds: list[dict[str, dict[str, Any]]], names: Sequence[str]) -> dict[str, Any]:
    """Per topology, the median over rounds of each figure and of its ratio to ``one``
    of the same round (``two-routers`` also against ``two``)."""
    keys = ("msg_per_s", "spikes_per_s", "recorder_cpu_s_per_M", "peak_rss_mb_sum")
    out: dict[str, Any] = {}
    for name in names:
        rows = [rd[name] for rd in rounds if name in rd and not rd[name].get("error")]
        med: dict[str, Any] = {}
        for k in keys:
            vals = [r[k] for r in rows if r.get(k) is not None]
            med[k] = statistics.median(vals) if vals else None
            for base in ("one", "two"):
                rel = [
                    rd[name][k] / rd[base][k]
                    for rd in rounds
                    if name in rd and base in rd and name != base
                    and rd[name].get(k) and rd[base].get(k)
                ]  # fmt: skip
                if rel:
                    med[f"{k}_vs_{base}"] = statistics.median(rel)
                    med[f"{k}_vs_{base}_all"] = [round(x, 3) for x in rel]
        med["lost"] = sum(r["lost"] for r in rows)
        med["rounds"] = len(rows)
        out[name] = med
    return out


def times(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def markdown(result: dict[str, Any]) -> str:
    w = result["workload"]
    lines = [
        f"## Workload: {w['processes']} publishers x one {w['layer']:,}-neuron layer at "
        f"~{w['rate']:.0%}, {w['messages']:,} messages each ({w['processes'] * w['messages']:,} "
        f"messages); {len(result['rounds'])} round(s)",
        "",
        "### Every round (ratio to `one` of the same round)",
        "",
    ]
    rows = []
    for k, rd in enumerate(result["rounds"]):
        for name, r in rd.items():
            if r.get("error"):
                rows.append([str(k + 1), name, "error: " + r["error"][:80], *["-"] * 11])
                continue
            base = rd.get("one", {})
            rel = (
                f" ({r['msg_per_s'] / base['msg_per_s']:.2f}x)"
                if base.get("msg_per_s") and r.get("msg_per_s")
                else ""
            )
            per_rec = ", ".join(f"{n} {fnum(x['cpu_s_per_M'])}" for n, x in r["recorders"].items())
            rows.append([
                str(k + 1), name, fnum(r.get("msg_per_s")) + rel, fnum(r.get("spikes_per_s")),
                f"{r['written']:,} / {r['published']:,}", str(r["lost"]),
                fnum(r.get("recorder_cpu_s_per_M")) + f" ({per_rec})",
                fnum(r.get("router_cpu_s_per_M")), fnum(r.get("publisher_cpu_s_per_M")),
                ", ".join(f"{n} {x['peak_rss_mb']}" for n, x in r["recorders"].items()),
                str(r["exit_codes"]), fnum(r.get("foreign_cpu_s")),
                fnum(r["done"].get("resolution_s")),
            ])  # fmt: skip
    lines += table(
        ["round", "topology", "msg/s", "spikes/s", "written / published", "lost",
         "recorder CPU s/M (per recorder)", "router CPU s/M", "publisher CPU s/M",
         "peak RSS MB", "exit", "other processes' CPU s", "end known to s"],
        rows,
    )  # fmt: skip
    lines += ["", "### Median over rounds", ""]
    rows = []
    for name, m in result["summary"].items():
        rows.append([
            name, fnum(m["msg_per_s"]), times(m.get("msg_per_s_vs_one")),
            fnum(m["spikes_per_s"]), fnum(m["recorder_cpu_s_per_M"]),
            times(m.get("recorder_cpu_s_per_M_vs_one")),
            fnum(m["peak_rss_mb_sum"]), str(m["lost"]),
        ])  # fmt: skip
    lines += table(
        ["topology", "msg/s", "vs one", "spikes/s", "recorder CPU s/M (all recorders)",
         "vs one", "peak RSS MB (sum)", "lost"],
        rows,
    )  # fmt: skip
    m = result["machine"]
    lines += [
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}, eclipse-zenoh "
        f"{m['zenoh']}; load at start {m['loadavg_start']}; CPU s used by other processes "
        f"{fnum(result.get('foreign_cpu_s'))}; wall {fnum(result.get('wall_s'))} s. Publishers, "
        "recorders and routers share the cores: the ratio is the per-process ceiling and the "
        "CPU cost of sharding, not the scaling on separate hosts.",
    ]
    return "\n".join(lines) + "\n"


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="One recorderd vs two shards (module docstring).")
    p.add_argument("--quick", action="store_true", help="a smoke run (< 60 s)")
    p.add_argument("--publishers", type=int, default=4, help="even; half per group [4]")
    p.add_argument("--messages", type=int, help="messages per publisher [100000; quick 2000]")
    p.add_argument("--rounds", type=int, help="every topology once per round [5; quick 1]")
    p.add_argument("--topologies", default=",".join(DEFAULT_TOPOLOGIES), help=f"of {TOPOLOGIES}")
    p.add_argument("--timeout", type=float, help="per topology run, s [300; quick 60]")
    p.add_argument("--json", type=Path, help="write every figure here")
    p.add_argument("--workdir", type=Path, help="keep data here (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args(argv)
    for name, full, quick in (
        ("messages", 100_000, 2_000),
        ("rounds", 5, 1),
        ("timeout", 300.0, 60.0),
    ):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.publishers < 2 or args.publishers % 2:
        p.error("--publishers must be even and >= 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_monitor":
        child_monitor(json.loads(argv[1]))
        return 0
    args = parse_args(argv)
    names = [n.strip() for n in args.topologies.split(",") if n.strip()]
    if bad := [n for n in names if n not in TOPOLOGIES]:
        print(f"unknown topology: {', '.join(bad)}", file=sys.stderr)
        return 2
    w = Workload("shards", "", args.publishers, 1, args.messages, 1000, 0.05)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="shards-"))
    t0 = now()
    busy0, own0 = perf.host_cpu()
    result: dict[str, Any] = {
        "machine": perf.machine(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "workload": {"processes": w.processes, "messages": w.messages, "layer": w.layer,
                     "rate": w.rate},
        "rounds": [],
    }  # fmt: skip
    tops = topologies()
    try:
        for k in range(args.rounds):
            order = names[k % len(names) :] + names[: k % len(names)]  # rotated per round
            rd: dict[str, Any] = {}
            for name in order:
                log(f"round {k + 1}: {name} ({w.total:,} messages)")
                rd[name] = r = run_topology(tops[name], w, work / f"round{k + 1}", args.timeout)
                log(
                    f"  -> {r.get('error') or ''}{fnum(r.get('msg_per_s'))} msg/s, lost "
                    f"{r.get('lost')}, recorder CPU {fnum(r.get('recorder_cpu_s_per_M'))} s/M"
                )
            result["rounds"].append({n: rd[n] for n in names})
    finally:
        Child.cleanup()
        busy1, own1 = perf.host_cpu()
        result["foreign_cpu_s"] = round(max(0.0, (busy1 - busy0) - (own1 - own0)), 2)
        result["wall_s"] = round(now() - t0, 1)
        if args.workdir is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"data kept in {work}")
    result["summary"] = ratios(result["rounds"], names)
    text = markdown(result)
    print(text)
    result["markdown"] = text
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    bad_runs = [r for rd in result["rounds"] for r in rd.values() if r.get("error")]
    return 1 if bad_runs else 0


if __name__ == "__main__":
    sys.exit(main())
