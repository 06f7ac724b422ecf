"""recorderd under a hostile or heavy bus: many streams, floods, crashes.

The recorder under test is always a real ``python -m recorderd`` subprocess listening on
a free ``tcp/127.0.0.1`` port, with ``--recorderd-arg=...`` values appended verbatim to
its command line (``--recorderd-arg=--max-streams --recorderd-arg=2000``) and
``--recorderd-env NAME=VALUE`` added to its environment. Publishers are separate
processes: this script's hidden ``_publish`` / ``_flood`` sub-commands, and real
``python -m brain_nodes`` nodes. The harness process itself never opens a Zenoh
session. Every child resolves ``recorderd``, ``brain_nodes`` and ``analysis`` the usual
way (``python -m``: the working directory, then ``PYTHONPATH``, then the installed
package; this checkout only as a last resort), so running from an old worktree with
``PYTHONPATH`` set to it benchmarks that code; the paths actually used are printed and
stored in the JSON.

Scenarios (each prints one short table; ``--json OUT`` stores every figure):

- ``close``: closing time vs stream count. For each N in ``--streams``, N distinct
  spike streams (node ids ``n0..n{N-1}``, layer ``l``, 1,000 neurons, ``--messages``
  messages each, BLOCK + RELIABLE) are published; once ``recording_statistics.json``
  shows every message received (seen at flushes: 1 s resolution), recorderd gets
  SIGINT. Measured: seconds from SIGINT to exit and the exit code,
  ``simulation_data.h5`` bytes per stream, and whether ``analysis.reader.SessionReader``
  opens the session afterwards (its state and the number of spike groups).
  ``--drain-timeout X`` sets ``RECORDERD_DRAIN_TIMEOUT=X``; ``--repeat`` runs each N again.
- ``cadence``: flush cadence under many streams. N streams (2 messages each), then a
  steady light load on all of them (``--rate`` messages per stream per second) for
  ``--seconds``, started once the recorder has received the burst (``--load-after
  sent``: right after sending it, while the recorder still creates the streams); the
  modification time of ``recording_statistics.json`` (rewritten at every flush) is
  polled every 20 ms. Measured: largest, median and p90 gap between successive
  rewrites during the load, and the file's size.
- ``recovery``: recovering a crashed many-stream session. N streams x 14 messages;
  once all are received and two more flushes happened, SIGKILL. The session folder
  is copied twice: copy 1 is opened by ``SessionReader`` under ``/usr/bin/time -v``
  (peak RSS, wall time, state), on copy 2 recorderd is restarted under
  ``/usr/bin/time -v`` (seconds to ``ready``, peak RSS, exit code after SIGINT).
- ``flood``: fairness. A baseline run of a real ``brain_nodes`` pfc node alone
  (``--steps`` steps at ``--speed 0``), then K flooder processes publish big spike
  messages (100,000-neuron layer, 2,000 spikes each, BLOCK) as fast as they can; once
  the statistics show intake drops (or after ``--warmup`` s) the node runs again under
  the flood, which stops when the node has finished (bounded by ``--max-seconds``).
  Measured: the node's published messages (its ``--summary-json``) vs received /
  written / missing / dropped per stream in the statistics, its loss, its run time vs
  the baseline, the flooders' totals and ``intake_dropped``, the flush gaps during
  the flood, exit code and closing time, recorderd's peak RSS.
- ``keys``: a 50k-key flood. A real node at real-time speed while one publisher puts
  one valid spike message on each of ``--keys`` distinct keys (distinct node ids,
  or layer names with ``--key-style layer``) as fast as it can; SIGINT once
  everything is received or after ``--settle`` s. Measured: the node's loss, the
  number of streams in the statistics, recorderd's peak RSS (VmHWM), file size,
  statistics JSON size, rejections, log volume, exit code, reader check.

Every run also records recorderd's log volume (lines, bytes, per level, the most
frequent messages) and any tracebacks or HDF5 diagnostics in its stderr, and its
peak RSS, and the JSON notes how much CPU other processes used meanwhile
(``host.foreign_cpu_s``: on 2 cores, any other load skews the figures). Every wait
is bounded; every child is killed by pid if it overstays, and recorderd or a reader
whose RSS passes ``--max-rss-mb`` (40% of RAM) is killed too (recovering a crashed
17,000-stream session took a reader past 24 GB and the kernel's OOM killer).
``--quick`` shrinks every scenario to a smoke test of about a minute.

Usage:
  python bench/hostile.py close [--streams 10,100,1000,5000] [--repeat 1] [--drain-timeout X]
  python bench/hostile.py cadence [--streams 5000] [--seconds 20] [--rate 1] [--load-after sent]
  python bench/hostile.py recovery [--streams 1000] [--messages 14]
  python bench/hostile.py flood [--flooders 2] [--steps 3000] [--warmup 20]
  python bench/hostile.py keys [--keys 50000] [--steps 5000] [--speed 1] [--settle 120]
common: [--quick] [--json OUT [--append]] [--workdir DIR] [--keep] [--reader-timeout 120]
        [--recorderd-arg=--flag ...] [--recorderd-env NAME=VALUE ...] [--drain-timeout X]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    # Last resort only: PYTHONPATH, the working directory and an installed package win.
    sys.path.append(str(ROOT))

PREFIX = "brain"
STATS_FILE = "recording_statistics.json"
DATA_FILE = "simulation_data.h5"
JOURNAL_FILE = "simulation_data.h5-journal"
SESSION = "hostile"
TIME_BIN = "/usr/bin/time"
DEFAULT_DRAIN_TIMEOUT = 30.0  # recorderd's default drain_timeout, seconds
READY_RE = re.compile(rb"\): ready$", re.MULTILINE)
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: Scenario sizes: option -> (default, --quick).
SIZES: dict[str, dict[str, tuple[Any, Any]]] = {
    "close": {"streams": ("10,100,1000,5000", "10,50")},
    "cadence": {"streams": (5000, 200), "seconds": (20.0, 5.0)},
    "recovery": {"streams": (1000, 50)},
    "flood": {
        "steps": (3000, 500),
        "max_seconds": (60.0, 20.0),
        "warmup": (20.0, 5.0),
        "settle": (30.0, 10.0),
    },
    "keys": {"keys": (50_000, 2000), "steps": (5000, 1000), "settle": (120.0, 20.0)},
}

READER_CODE = """
import json, sys, time
t0 = time.perf_counter()
from analysis.reader import SessionReader
r = SessionReader(sys.argv[1])
groups = sum(len(r.layers(n)) for n in r.nodes())
print(json.dumps({"state": r.state, "spike_groups": groups,
                  "seconds": round(time.perf_counter() - t0, 3)}))
r.close()
"""

CODE_INFO = """
import json, os, recorderd, brain_nodes, analysis
print(json.dumps({m.__name__: os.path.dirname(os.path.abspath(m.__file__))
                  for m in (recorderd, brain_nodes, analysis)}))
"""


def log(msg: str) -> None:
    print(f"[hostile {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def read_stats(session_dir: Path) -> dict[str, Any]:
    """``recording_statistics.json`` (rewritten atomically); ``{}`` before the first flush."""
    try:
        data: dict[str, Any] = json.loads((session_dir / STATS_FILE).read_bytes())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data


def totals(stats: dict[str, Any]) -> dict[str, int]:
    t: dict[str, int] = stats.get("totals", {})
    return t


def file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS of ``pid`` in kB (empty once it has exited)."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return out
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            out[name] = int(value.split()[0])
    return out


def mem_total_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    return 8192.0


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` (None if it no longer exists)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(x) for x in text.split()]


def parse_time_v(path: Path) -> dict[str, Any]:
    """The figures of a ``/usr/bin/time -v -o PATH`` report."""
    out: dict[str, Any] = {}
    try:
        text = path.read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        name, _, value = line.strip().rpartition(": ")
        if name == "Maximum resident set size (kbytes)":
            out["max_rss_kb"] = int(value)
        elif name.startswith("Elapsed (wall clock) time"):
            seconds = 0.0
            for part in value.split(":"):
                seconds = seconds * 60 + float(part)
            out["wall_s"] = round(seconds, 3)
        elif name == "User time (seconds)":
            out["user_s"] = float(value)
        elif name == "System time (seconds)":
            out["sys_s"] = float(value)
        elif name == "Exit status":
            out["exit_status"] = int(value)
    if "Command terminated by signal" in text:
        out["signalled"] = text.split("Command terminated by signal", 1)[1].split()[0]
    return out


def log_summary(path: Path) -> dict[str, Any]:
    """Volume and notable lines of a recorderd stderr log."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    text = raw.decode(errors="replace")
    lines = text.splitlines()
    levels: collections.Counter[str] = collections.Counter()
    shapes: collections.Counter[str] = collections.Counter()
    for line in lines:
        word = line.split(" ", 1)[0]
        if word in LEVELS:
            levels[word] += 1
            shapes[re.sub(r"[0-9a-f]*[0-9][0-9a-f]*", "#", line)[:120]] += 1
    notable = [
        line[:300]
        for line in lines
        if line.startswith(("ERROR", "CRITICAL")) or "HDF5-DIAG" in line or "Fatal" in line
    ]
    tracebacks = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            tail = lines[i + 1 : i + 40]
            end = next((j for j, t in enumerate(tail) if not t.startswith(" ")), len(tail) - 1)
            tracebacks.append("\n".join(tail[max(0, end - 4) : end + 1])[:800])
    return {
        "bytes": len(raw),
        "lines": len(lines),
        "levels": dict(levels),
        "top_messages": [[m, n] for m, n in shapes.most_common(5)],
        "tracebacks": len(tracebacks),
        "traceback_tails": tracebacks[:3],
        "hdf5_diag": text.count("HDF5-DIAG"),
        "close_logged": any(" closed: " in line for line in lines[-5:]),
        "new_stream_lines": sum(1 for line in lines if " new stream " in line),
        "notable": notable[:8],
        "last_lines": [t[:300] for t in lines[-3:]],
    }


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its reaped
    descendants): their difference over a run is the work of other processes."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        own += ru.ru_utime + ru.ru_stime
    return busy, own


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def fmt(x: Any, spec: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    return format(x, spec)


def print_table(rows: Sequence[dict[str, str]]) -> None:
    """A markdown table; the headers are the first row's keys."""
    if not rows:
        print("(no results)")
        return
    headers = list(rows[0])
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(row.get(k, "-") for k in headers) + " |")
    sys.stdout.flush()


# -- children -------------------------------------------------------------------------


class Harness:
    """Options, environment and every child process of one benchmark run."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.procs: list[subprocess.Popen[Any]] = []
        #: (pid, parent) of processes started by our children (recorderd under time(1)).
        self.grandchildren: list[tuple[int, subprocess.Popen[Any]]] = []
        self.env = dict(os.environ)
        self.recorderd_env: dict[str, str] = {}
        for item in args.recorderd_env or []:
            name, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"--recorderd-env wants NAME=VALUE, got {item!r}")
            self.recorderd_env[name] = value
        drain = getattr(args, "drain_timeout", None)
        if drain is not None:
            self.recorderd_env["RECORDERD_DRAIN_TIMEOUT"] = str(drain)
        value = self.recorderd_env.get("RECORDERD_DRAIN_TIMEOUT", DEFAULT_DRAIN_TIMEOUT)
        self.drain_timeout = float(value)
        self.recorderd_args: list[str] = list(args.recorderd_arg or [])
        self.max_rss_kb = int(args.max_rss_mb * 1024)
        self._readers = 0

    def popen(self, cmd: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        kw.setdefault("env", self.env)
        proc: subprocess.Popen[Any] = subprocess.Popen(list(cmd), **kw)
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        """Kill every child still running (by pid), then reap it."""
        for pid, parent in self.grandchildren:
            # Only while its parent (our child, e.g. time(1)) still runs: the pid is ours.
            if parent.poll() is None and parent_of(pid) == parent.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            if proc.poll() is None:
                log(f"killing leftover child {proc.pid} ({str(proc.args)[:80]})")
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def code_info(self) -> dict[str, Any]:
        """Where the children import recorderd, brain_nodes and analysis from."""
        out = subprocess.run(
            [sys.executable, "-c", CODE_INFO],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        info: dict[str, Any] = json.loads(out.stdout) if out.returncode == 0 else {}
        info["python"] = sys.executable
        info["cwd"] = os.getcwd()
        info["PYTHONPATH"] = os.environ.get("PYTHONPATH")
        if "recorderd" in info:
            head = subprocess.run(
                ["git", "-C", str(Path(info["recorderd"]).parent), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            info["git_head"] = head.stdout.strip() or None
        return info

    def child_cmd(self, sub: str, *args: str) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), sub, *args]

    def reader_check(
        self, session_dir: Path, timeout: float, *, timed: bool = False
    ) -> dict[str, Any]:
        """Open the session with analysis.reader.SessionReader in a fresh process (under
        ``/usr/bin/time -v`` if ``timed``), bounded in time and memory."""
        self._readers += 1
        tf = self.work / f"reader-{self._readers}.time"
        cmd = [sys.executable, "-c", READER_CODE, str(session_dir)]
        timed = timed and os.access(TIME_BIN, os.X_OK)
        if timed:
            cmd = [TIME_BIN, "-v", "-o", str(tf), *cmd]
        t0 = time.perf_counter()
        proc = self.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pid = proc.pid
        if timed:
            wait_until(lambda: bool(children_of(proc.pid)) or proc.poll() is not None, 10, 0.005)
            pid = next(iter(children_of(proc.pid)), proc.pid)
            self.grandchildren.append((pid, proc))
        hwm = HwmPoller(pid, proc, limit_kb=self.max_rss_kb, interval=0.02)
        res: dict[str, Any] = {}
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            if pid != proc.pid and parent_of(pid) == proc.pid:
                os.kill(pid, signal.SIGKILL)
            proc.kill()
            out, err = proc.communicate(timeout=30)
            res["error"] = f"timed out after {timeout:.0f} s"
        hwm.stop()
        res.update(ok=proc.returncode == 0, returncode=proc.returncode)
        res["wall_s"] = r3(time.perf_counter() - t0)
        res["max_rss_kb"] = hwm.hwm_kb
        if timed:
            res["time_v"] = parse_time_v(tf)
            res["max_rss_kb"] = res["time_v"].get("max_rss_kb", hwm.hwm_kb)
        if hwm.killed_over_limit:
            res["error"] = f"killed: RSS over {self.max_rss_kb // 1024} MB"
        if proc.returncode == 0:
            with contextlib.suppress(json.JSONDecodeError, IndexError):
                res.update(json.loads(out.strip().splitlines()[-1]))
        elif "error" not in res:
            lines = [t for t in err.splitlines() if t.strip() and not t.startswith("\t")]
            lines = [t for t in lines if not t.startswith(("Command ", "Exit status"))]
            res["error"] = lines[-1][:300] if lines else f"exit status {proc.returncode}"
        return res


class HwmPoller:
    """Samples VmHWM / VmRSS of ``pid`` (``owner`` or its child) until it exits; SIGKILLs
    it once its RSS passes ``limit_kb``, so that no benchmarked process can exhaust memory."""

    def __init__(
        self,
        pid: int,
        owner: subprocess.Popen[Any],
        *,
        limit_kb: int | None = None,
        interval: float = 0.1,
    ) -> None:
        self.pid = pid
        self.owner = owner
        self.limit_kb = limit_kb
        self.hwm_kb = 0
        self.rss_kb = 0
        self.killed_over_limit = False
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            st = proc_status(self.pid)
            if not st:
                return
            self.hwm_kb = max(self.hwm_kb, st.get("VmHWM", 0))
            self.rss_kb = max(self.rss_kb, st.get("VmRSS", 0))
            if self.limit_kb is not None and st.get("VmRSS", 0) > self.limit_kb:
                ours = self.pid == self.owner.pid or parent_of(self.pid) == self.owner.pid
                if ours and self.owner.poll() is None:
                    log(f"pid {self.pid}: RSS over {self.limit_kb // 1024} MB; killing it")
                    self.killed_over_limit = True
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGKILL)
                return
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Recorderd:
    """One ``python -m recorderd`` subprocess (optionally under ``/usr/bin/time -v``)."""

    def __init__(
        self, h: Harness, name: str, rec_dir: Path, *, timed: bool = False, session: str = SESSION
    ) -> None:
        self.h = h
        self.name = name
        self.rec_dir = rec_dir
        self.session_dir = rec_dir / session
        self.endpoint = f"tcp/127.0.0.1:{free_port()}"
        self.log_path = h.work / f"{name}.log"
        self.time_path = h.work / f"{name}.time" if timed else None
        rec_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            *(sys.executable, "-m", "recorderd", "--session", session),
            *("--recording-dir", str(rec_dir), "--listen", self.endpoint),
            *h.recorderd_args,
        ]
        if self.time_path is not None:
            cmd = [TIME_BIN, "-v", "-o", str(self.time_path), *cmd]
        env = {**h.env, **h.recorderd_env}
        self._fh: IO[bytes] = open(self.log_path, "wb")  # noqa: SIM115
        self.t_start = time.perf_counter()
        self.proc = h.popen(cmd, stderr=self._fh, stdout=subprocess.DEVNULL, env=env)
        self.pid = self.proc.pid
        if self.time_path is not None:  # signal recorderd itself, not time(1)
            found = wait_until(lambda: bool(children_of(self.proc.pid)), 10, 0.005)
            if not found:
                raise RuntimeError("/usr/bin/time started no child")
            self.pid = children_of(self.proc.pid)[0]
            h.grandchildren.append((self.pid, self.proc))
        self.hwm = HwmPoller(self.pid, self.proc, limit_kb=h.max_rss_kb)
        self.t_signal: float | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 60) -> float | None:
        """Seconds from start to the ``ready`` log line; None if it exited or timed out."""
        ok = wait_until(
            lambda: bool(READY_RE.search(self.log_path.read_bytes())) or not self.alive(),
            timeout,
            0.02,
        )
        if ok and self.alive():
            return time.perf_counter() - self.t_start
        if ok and READY_RE.search(self.log_path.read_bytes()):
            return time.perf_counter() - self.t_start
        return None

    def stats(self) -> dict[str, Any]:
        return read_stats(self.session_dir)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 120) -> dict[str, Any]:
        """Send ``sig``; seconds to exit, exit code, and whether it had to be killed."""
        if not self.alive():
            self.hwm.stop()
            return {"signal": None, "exit_code": self.proc.returncode, "already_exited": True}
        self.t_signal = time.perf_counter()
        wall_signal = time.time()
        if self.pid != self.proc.pid and parent_of(self.pid) != self.proc.pid:
            raise RuntimeError(f"{self.name}: pid {self.pid} is no longer recorderd")
        os.kill(self.pid, sig)
        hung = False
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            hung = True
            log(f"{self.name}: still running {timeout:.0f} s after {signal.Signals(sig).name}")
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        seconds = time.perf_counter() - self.t_signal
        self.hwm.stop()
        self._fh.close()
        return {
            "signal": signal.Signals(sig).name,
            "seconds_to_exit": r3(seconds),
            "exit_code": self.proc.returncode,
            "hung_killed": hung,
            "wall_signal": wall_signal,
        }

    def figures(self) -> dict[str, Any]:
        """Sizes, peak memory and log of the (stopped) recorder."""
        out: dict[str, Any] = {
            "h5_bytes": file_size(self.session_dir / DATA_FILE),
            "journal_bytes": file_size(self.session_dir / JOURNAL_FILE),
            "stats_bytes": file_size(self.session_dir / STATS_FILE),
            "peak_rss_mb": round(self.hwm.hwm_kb / 1024, 1),
            "killed_over_rss_limit": self.hwm.killed_over_limit,
            "log": log_summary(self.log_path),
        }
        if self.time_path is not None:
            out["time_v"] = parse_time_v(self.time_path)
        return out


class Child:
    """A publisher subprocess printing JSON events, one per line, on stdout."""

    def __init__(self, h: Harness, cmd: Sequence[str], name: str) -> None:
        self.name = name
        self.events: list[dict[str, Any]] = []
        self.err_path = h.work / f"{name}.err"
        self._err = open(self.err_path, "wb")  # noqa: SIM115
        self.proc = h.popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True
        )
        self._cv = threading.Condition()
        self._eof = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                with self._cv:
                    self.events.append(event)
                    self._cv.notify_all()
        with self._cv:
            self._eof = True
            self._cv.notify_all()

    def event(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == name), None)

    def wait_event(self, name: str, timeout: float) -> dict[str, Any] | None:
        """The first event ``name``, waiting up to ``timeout`` s (None if it never came)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while (e := self.event(name)) is None and not self._eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(min(left, 0.5))
            return e

    def say(self, line: str) -> None:
        """Write one line to the child's stdin and close it."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.close()

    def finish(self, timeout: float) -> int | None:
        """Wait for exit (bounded); kill by pid if it overstays; the exit code."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name}: still running after {timeout:.0f} s; killing")
            self.proc.kill()
            self.proc.wait(timeout=30)
            code = None
        self._err.close()
        return code

    def stderr_tail(self) -> list[str]:
        try:
            lines = self.err_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        return [t[:300] for t in lines[-5:]]


def start_publisher(
    h: Harness,
    endpoint: str,
    name: str,
    *,
    count: int,
    messages: int,
    base: str = "n",
    naming: str = "node",
    layer_size: int = 1000,
    spikes: int = 3,
    steady_seconds: float = 0.0,
    rate: float = 1.0,
    cycle: bool = False,
    wait_go: bool = False,
    max_seconds: float = 120.0,
) -> Child:
    cmd = h.child_cmd(
        "_publish",
        *("--endpoint", endpoint, "--count", str(count), "--messages", str(messages)),
        *("--base", base, "--naming", naming, "--layer-size", str(layer_size)),
        *("--spikes", str(spikes), "--steady-seconds", str(steady_seconds)),
        *("--rate", str(rate), "--max-seconds", str(max_seconds)),
        *(["--cycle"] if cycle else []),
        *(["--wait-go"] if wait_go else []),
    )
    return Child(h, cmd, name)


def start_node(
    h: Harness, endpoint: str, node_id: str, steps: int, speed: float, summary: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    err = h.work / f"node-{node_id}.err"
    with open(err, "wb") as fh:
        proc = h.popen(
            [
                *(sys.executable, "-m", "brain_nodes", "--node-id", node_id),
                *("--module-type", "pfc", "--steps", str(steps), "--speed", str(speed)),
                *("--connect", endpoint, "--summary-json", str(summary)),
                *("--wait-subscribers", "10"),
            ],
            stderr=fh,
            stdout=subprocess.DEVNULL,
        )
    return proc, err


def finish_node(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """Wait for a node (SIGINT after ``timeout``, kill 20 s later); its exit code."""
    out: dict[str, Any] = {"stopped_early": False}
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        out["stopped_early"] = True
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
            out["killed"] = True
    out["exit_code"] = proc.returncode
    return out


def node_figures(summary_path: Path, stats: dict[str, Any]) -> dict[str, Any]:
    """A node's published messages (its summary) against what the recorder counted."""
    try:
        summary = json.loads(summary_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"summary": "missing"}
    per: dict[str, dict[str, Any]] = {}
    rec_streams = stats.get("streams", {})
    for key, s in summary.get("streams", {}).items():
        if not s.get("messages"):
            continue
        sid = key[len(PREFIX) + 1 :] if key.startswith(PREFIX + "/") else key
        st = rec_streams.get(sid, {})
        per[sid] = {
            "published": s["messages"],
            **{c: st.get(c) for c in ("received", "written", "missing", "dropped", "duplicates")},
        }
    published = sum(v["published"] for v in per.values())
    received = sum(v["received"] or 0 for v in per.values())
    written = sum(v["written"] or 0 for v in per.values())
    return {
        "steps": summary.get("steps"),
        "stop_reason": summary.get("stop_reason"),
        "flush_confirmations": summary.get("flush_confirmations"),
        "published": published,
        "received": received,
        "written": written,
        "missing": sum(v["missing"] or 0 for v in per.values()),
        "dropped": sum(v["dropped"] or 0 for v in per.values()),
        # Published, but neither received nor counted as dropped: silently lost.
        "unaccounted": published - received - sum(v["dropped"] or 0 for v in per.values()),
        "loss_pct": round(100 * (published - written) / published, 3) if published else None,
        "unreceived_pct": round(100 * (published - received) / published, 3) if published else None,
        "streams": per,
    }


def settle(
    rec: Recorderd,
    target: Callable[[dict[str, Any]], bool],
    timeout: float,
    stall: float | None = 10.0,
) -> bool:
    """Wait until the statistics satisfy ``target`` (True), or timeout, or (with ``stall``)
    until ``received`` has not changed for ``stall`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline and rec.alive():
        st = rec.stats()
        if st and target(st):
            return True
        received = totals(st).get("received", 0)
        if received != last:
            last, since = received, time.monotonic()
        elif stall is not None and time.monotonic() - since > stall:
            return False
        time.sleep(1.0)
    return False


def stop_timeout(h: Harness, streams: int) -> float:
    """How long a stopping recorderd may take before it counts as hung (and is killed)."""
    return h.drain_timeout + 60 + 0.002 * streams


def updated_after(stats: dict[str, Any], stop: dict[str, Any]) -> float | None:
    """Seconds from the stop signal to the statistics' ``updated_at`` (< 0: not after it)."""
    try:
        updated = dt.datetime.fromisoformat(stats["updated_at"]).timestamp()
        return r3(updated - float(stop["wall_signal"]))
    except (KeyError, TypeError, ValueError):
        return None


def stats_brief(stats: dict[str, Any]) -> dict[str, Any]:
    t = totals(stats)
    return {
        "streams": len(stats.get("streams", {})),
        "totals": t,
        "rejected": stats.get("rejected", {}),
        "updated_at": stats.get("updated_at"),
    }


# -- scenarios ------------------------------------------------------------------------


def close_once(h: Harness, n: int, rep: int) -> dict[str, Any]:
    a = h.args
    name = f"close-{n}-{rep}"
    rec = Recorderd(h, name, h.work / name)
    row: dict[str, Any] = {"streams": n, "repeat": rep, "messages_per_stream": a.messages}
    row["drain_timeout"] = h.drain_timeout
    ready = rec.wait_ready()
    row["seconds_to_ready"] = r3(ready)
    if ready is None:
        row["error"] = "recorderd not ready"
        row.update(rec.stop(signal.SIGKILL, 30))
        row.update(rec.figures())
        return row
    total = n * a.messages
    t0 = time.perf_counter()
    pub = start_publisher(h, rec.endpoint, f"{name}-pub", count=n, messages=a.messages)
    limit = 60 + 0.06 * total
    got = wait_until(
        lambda: totals(rec.stats()).get("received", 0) >= total or not rec.alive(), limit, 0.1
    )
    all_received = got and rec.alive()
    row["all_received"] = all_received
    row["seconds_to_all_received"] = r3(time.perf_counter() - t0) if all_received else None
    pub.finish(30)
    done = pub.event("done")
    row["published"] = done.get("published") if done else None
    before = rec.stats()
    row["before_sigint"] = stats_brief(before)
    row.update(rec.stop(signal.SIGINT, stop_timeout(h, n)))
    after = rec.stats()
    row["stats_updated_after_signal_s"] = updated_after(after, row)
    row["after_close"] = stats_brief(after)
    row.update(rec.figures())
    h5 = row["h5_bytes"]
    row["h5_bytes_per_stream"] = round(h5 / n, 1) if h5 else None
    row["reader"] = h.reader_check(rec.session_dir, max(a.reader_timeout, 0.05 * n))
    return row


def scenario_close(h: Harness) -> list[dict[str, Any]]:
    a = h.args
    counts = [int(x) for x in str(a.streams).split(",") if x.strip()]
    rows = []
    for n in counts:
        for rep in range(a.repeat):
            log(f"close: {n} streams, run {rep + 1}/{a.repeat}")
            rows.append(close_once(h, n, rep))
            r = rows[-1]
            log(
                f"  -> exit {r.get('exit_code')} after {r.get('seconds_to_exit')} s, "
                f"reader {'ok' if r.get('reader', {}).get('ok') else 'FAILED'}"
            )

    return rows


class MtimePoller:
    """Records every rewrite of a file (mtime / inode change), polling every ``interval``."""

    def __init__(self, path: Path, interval: float) -> None:
        self.path = path
        self.interval = interval
        self.rewrites: list[tuple[float, int]] = []  # (mtime as wall seconds, size)
        self.polls = 0
        self.max_size = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last: tuple[int, int] | None = None
        while not self._stop.is_set():
            self.polls += 1
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                st = None
            if st is not None:
                ident = (st.st_mtime_ns, st.st_ino)
                if ident != last:
                    last = ident
                    self.rewrites.append((st.st_mtime_ns / 1e9, st.st_size))
                    self.max_size = max(self.max_size, st.st_size)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def gap_figures(times: Sequence[float], start: float, end: float) -> dict[str, Any]:
    """Gaps between successive rewrites within [start, end] (the open tail counted too)."""
    before = [t for t in times if t < start]
    inside = [t for t in times if start <= t <= end]
    series = ([before[-1]] if before else []) + inside
    gaps = [b - a for a, b in itertools.pairwise(series)]
    tail = end - series[-1] if series else end - start
    return {
        "rewrites": len(inside),
        "max_gap_s": r3(max([*gaps, tail])),
        "open_tail_s": r3(tail),
        "median_gap_s": r3(statistics.median(gaps)) if gaps else None,
        "p90_gap_s": r3(percentile(gaps, 0.9)),
        "mean_gap_s": r3(statistics.fmean(gaps)) if gaps else None,
    }


def scenario_cadence(h: Harness) -> list[dict[str, Any]]:
    a = h.args
    n, burst = int(a.streams), 2
    rec = Recorderd(h, "cadence", h.work / "cadence")
    row: dict[str, Any] = {"streams": n, "load_seconds": a.seconds, "rate_per_stream": a.rate}
    row["load_after"] = a.load_after
    row["seconds_to_ready"] = r3(rec.wait_ready())
    # The statistics file is rewritten at every flush by 464cb84, but at most every 10 s
    # once it is large by later versions; the journal gets a record at every flush that
    # changed something (steady load: every flush), in both.
    watched = JOURNAL_FILE if a.watch == "journal" else STATS_FILE
    poller = MtimePoller(rec.session_dir / watched, a.poll)
    row["watched_file"] = watched
    wait_go = a.load_after == "received"
    pub = start_publisher(
        h,
        rec.endpoint,
        "cadence-pub",
        count=n,
        messages=burst,
        steady_seconds=a.seconds,
        rate=a.rate,
        wait_go=wait_go,
        max_seconds=a.seconds + 300 + 0.1 * n,
    )
    t0 = time.perf_counter()
    pub.wait_event("burst_done", 60 + 0.01 * n)
    row["burst_sent_s"] = r3(time.perf_counter() - t0)
    got = wait_until(
        lambda: totals(rec.stats()).get("received", 0) >= n * burst or not rec.alive(),
        60 + 0.06 * n * burst,
        0.1,
    )
    row["burst_received_s"] = r3(time.perf_counter() - t0) if got and rec.alive() else None
    if wait_go:
        pub.say("go")
    code = pub.finish(a.seconds + 120 + 0.05 * n)
    row["publisher_exit"] = code
    done = pub.event("done") or {}
    published = int(done.get("published", 0))
    row["published"] = published
    row["load_rounds"] = done.get("rounds")
    row["planned_rounds"] = int(a.seconds * a.rate)
    row["all_received_after_load"] = wait_until(
        lambda: totals(rec.stats()).get("received", 0) >= published or not rec.alive(), 60, 0.2
    )
    row["before_sigint"] = stats_brief(rec.stats())
    time.sleep(max(2.0, 2 * a.poll))
    poller.stop()
    row.update(rec.stop(signal.SIGINT, stop_timeout(h, n)))
    row.update(rec.figures())
    times = [t for t, _ in poller.rewrites]
    start = (pub.event("load_start") or {}).get("t")
    end = (pub.event("load_end") or {}).get("t")
    if start is not None and end is not None:
        row["during_load"] = gap_figures(times, float(start), float(end))
    if times:
        row["whole_run"] = gap_figures(times, times[0], row["wall_signal"])
    burst_end = (pub.event("burst_done") or {}).get("t")
    after_burst = [t for t in times if burst_end is not None and t >= float(burst_end)]
    row["first_rewrite_after_burst_s"] = (
        r3(after_burst[0] - float(burst_end)) if after_burst and burst_end is not None else None
    )
    row["stats_file_max_bytes"] = poller.max_size
    row["polls"] = poller.polls
    return [row]


def scenario_recovery(h: Harness) -> list[dict[str, Any]]:
    a = h.args
    n, m = int(a.streams), int(a.messages)
    rec = Recorderd(h, "recovery", h.work / "recovery")
    row: dict[str, Any] = {"streams": n, "messages_per_stream": m}
    row["seconds_to_ready"] = r3(rec.wait_ready())
    pub = start_publisher(h, rec.endpoint, "recovery-pub", count=n, messages=m)
    t0 = time.perf_counter()
    total = n * m
    got = wait_until(
        lambda: totals(rec.stats()).get("received", 0) >= total or not rec.alive(),
        60 + 0.02 * total,
        0.1,
    )
    row["all_received"] = got and rec.alive()
    row["seconds_to_all_received"] = r3(time.perf_counter() - t0)
    pub.finish(30)
    # Two more flushes (rewrites of the statistics file) after everything was received.
    stats_path = rec.session_dir / STATS_FILE
    seen: list[tuple[int, int]] = []

    def two_more() -> bool:
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(stats_path)
            ident = (st.st_mtime_ns, st.st_ino)
            if not seen or seen[-1] != ident:
                seen.append(ident)
        return len(seen) >= 3

    row["two_flushes_seen"] = wait_until(two_more, 60, 0.02)
    row["before_kill"] = stats_brief(rec.stats())
    row["kill"] = rec.stop(signal.SIGKILL, 30)
    row.update(rec.figures())
    copies = []
    for i in (1, 2):
        dest = h.work / f"recovery-copy{i}" / SESSION
        shutil.copytree(rec.session_dir, dest)
        copies.append(dest)
    log("recovery: SessionReader on copy 1")
    row["reader_copy1"] = h.reader_check(copies[0], max(a.reader_timeout, 0.2 * n), timed=True)
    log("recovery: recorderd restarted on copy 2")
    use_time = os.access(TIME_BIN, os.X_OK)
    rec2 = Recorderd(h, "recovery-restart", copies[1].parent, timed=use_time)
    ready = rec2.wait_ready(300 + 0.2 * n)
    restart: dict[str, Any] = {"seconds_to_ready": r3(ready), "timed": use_time}
    restart.update(rec2.stop(signal.SIGINT, stop_timeout(h, n)))
    restart.update(rec2.figures())
    tv = restart.get("time_v", {})
    restart["max_rss_kb"] = tv.get("max_rss_kb") or rec2.hwm.hwm_kb
    restart["after"] = stats_brief(rec2.stats())
    restart["reader_after"] = h.reader_check(copies[1], max(a.reader_timeout, 0.05 * n))
    row["restart_copy2"] = restart

    return [row]


def scenario_flood(h: Harness) -> list[dict[str, Any]]:
    a = h.args
    rec = Recorderd(h, "flood", h.work / "flood")
    row: dict[str, Any] = {
        "flooders": a.flooders,
        "steps": a.steps,
        "flood_layer_size": a.flood_layer_size,
        "flood_spikes": a.flood_spikes,
    }
    row["seconds_to_ready"] = r3(rec.wait_ready())
    poller = MtimePoller(rec.session_dir / STATS_FILE, 0.05)
    if a.baseline:
        log("flood: baseline node run, no flood")
        summary = h.work / "node-solo.json"
        t0 = time.perf_counter()
        proc, _ = start_node(h, rec.endpoint, "pfc-solo", a.steps, 0, summary)
        base = finish_node(proc, a.max_seconds)
        base["wall_s"] = r3(time.perf_counter() - t0)
        settle(rec, lambda st: False, 3)
        base.update(node_figures(summary, rec.stats()))
        base.pop("streams", None)
        row["baseline"] = base
    log(f"flood: {a.flooders} flooder(s)")
    flooders = [
        Child(
            h,
            h.child_cmd(
                "_flood",
                *("--endpoint", rec.endpoint, "--node-id", f"flood-{k}"),
                *("--layer-size", str(a.flood_layer_size), "--spikes", str(a.flood_spikes)),
                *("--max-seconds", str(a.warmup + a.max_seconds + 30)),
            ),
            f"flooder-{k}",
        )
        for k in range(a.flooders)
    ]
    for f in flooders:
        f.wait_event("started", 30)
    t_flood = time.perf_counter()
    overflowed = wait_until(
        lambda: totals(rec.stats()).get("intake_dropped", 0) > 0 or not rec.alive(),
        a.warmup,
        0.2,
    )
    row["warmup_s"] = r3(time.perf_counter() - t_flood)
    # The statistics file lags (it is rewritten at flushes, which the flood delays).
    row["intake_drops_in_stats_before_node"] = overflowed and rec.alive()
    row["stats_at_node_start"] = stats_brief(rec.stats())
    log("flood: node pfc-0 under flood")
    summary = h.work / "node-pfc-0.json"
    t0, node_start = time.perf_counter(), time.time()
    proc, node_err = start_node(h, rec.endpoint, "pfc-0", a.steps, 0, summary)
    node_run = finish_node(proc, a.max_seconds)
    node_run["wall_s"] = r3(time.perf_counter() - t0)
    node_end = time.time()
    for f in flooders:
        f.say("stop")
    fl = []
    for f in flooders:
        code = f.finish(60)
        done = f.event("done") or {}
        fl.append({"exit": code, **done, "stderr_tail": [] if done else f.stderr_tail()})
    row["flooders_detail"] = fl
    row["flooded_s"] = r3(time.perf_counter() - t_flood)

    def node_done(st: dict[str, Any]) -> bool:
        try:
            published = json.loads(summary.read_text())["streams"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return False
        streams = st.get("streams", {})
        return all(
            streams.get(k[len(PREFIX) + 1 :], {}).get("received", 0) >= s["messages"]
            for k, s in published.items()
            if s["messages"]
        )

    row["node_fully_received_before_sigint"] = settle(rec, node_done, a.settle)
    before = rec.stats()
    row["before_sigint"] = stats_brief(before)
    row["node_before_sigint"] = node_figures(summary, before)
    row["node_before_sigint"].pop("streams", None)
    poller.stop()
    row.update(rec.stop(signal.SIGINT, stop_timeout(h, 10)))
    times = [t for t, _ in poller.rewrites]
    row["flushes_during_node_run"] = gap_figures(times, node_start, node_end)
    row["flushes_during_flood"] = gap_figures(times, node_start - row["warmup_s"], node_end)
    after = rec.stats()
    row["stats_updated_after_signal_s"] = updated_after(after, row)
    row["after_close"] = stats_brief(after)
    row.update(rec.figures())
    row["node_run"] = node_run
    row["node"] = node_figures(summary, after)
    row["node_stderr_warnings"] = sum(
        1 for t in node_err.read_text(errors="replace").splitlines() if "WARNING" in t
    )
    streams = after.get("streams", {})
    row["flooders_total"] = {
        "published": sum(int(f.get("published", 0)) for f in fl),
        "received": sum(
            streams.get(f"flood-{k}/spikes/l", {}).get("received", 0) for k in range(a.flooders)
        ),
        "written": sum(
            streams.get(f"flood-{k}/spikes/l", {}).get("written", 0) for k in range(a.flooders)
        ),
        "dropped": sum(
            streams.get(f"flood-{k}/spikes/l", {}).get("dropped", 0) for k in range(a.flooders)
        ),
        "missing": sum(
            streams.get(f"flood-{k}/spikes/l", {}).get("missing", 0) for k in range(a.flooders)
        ),
        "intake_dropped": totals(after).get("intake_dropped"),
        "max_put_block_s": max((float(f.get("max_put_s", 0)) for f in fl), default=None),
    }
    ft = row["flooders_total"]
    # Published, but in no counter: still queued at a drain-timeout exit, or drops not counted.
    ft["unaccounted"] = ft["published"] - ft["received"] - ft["dropped"]
    row["reader"] = h.reader_check(rec.session_dir, a.reader_timeout)

    return [row]


def scenario_keys(h: Harness) -> list[dict[str, Any]]:
    a = h.args
    k = int(a.keys)
    rec = Recorderd(h, "keys", h.work / "keys")
    row: dict[str, Any] = {"keys": k, "key_style": a.key_style, "steps": a.steps, "speed": a.speed}
    row["seconds_to_ready"] = r3(rec.wait_ready())
    poller = MtimePoller(rec.session_dir / STATS_FILE, 0.05)
    summary = h.work / "node-keys.json"
    t0 = time.perf_counter()
    proc, _ = start_node(h, rec.endpoint, "pfc-0", a.steps, a.speed, summary)
    base = "k" if a.key_style == "node" else "keys"
    pub = start_publisher(
        h,
        rec.endpoint,
        "keys-pub",
        count=k,
        messages=1,
        base=base,
        naming=a.key_style,
        cycle=True,
        max_seconds=a.max_seconds,
    )
    run_s = a.steps / 1000 / a.speed if a.speed > 0 else 60
    node_run = finish_node(proc, run_s + 60)
    node_run["wall_s"] = r3(time.perf_counter() - t0)
    pub.finish(a.max_seconds + 60)
    done = pub.event("done") or {}
    key_pub = int(done.get("published", 0))
    row["keys_published"] = key_pub
    row["keys_publish_s"] = done.get("seconds")
    try:
        node_pub = sum(s["messages"] for s in json.loads(summary.read_text())["streams"].values())
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        node_pub = 0
    expected = key_pub + node_pub
    t_settle = time.perf_counter()
    row["all_received_before_sigint"] = settle(
        rec, lambda st: totals(st).get("received", 0) >= expected, a.settle, stall=None
    )
    row["settle_s"] = r3(time.perf_counter() - t_settle)
    row["seconds_from_start_to_sigint"] = r3(time.perf_counter() - t0)
    before = rec.stats()
    row["before_sigint"] = stats_brief(before)
    row["node_before_sigint"] = node_figures(summary, before)
    row["node_before_sigint"].pop("streams", None)
    poller.stop()
    row.update(rec.stop(signal.SIGINT, stop_timeout(h, k)))
    times = [t for t, _ in poller.rewrites]
    if times:
        row["flushes_before_sigint"] = gap_figures(times, times[0], row["wall_signal"])
    after = rec.stats()
    row["stats_updated_after_signal_s"] = updated_after(after, row)
    row["after_close"] = stats_brief(after)
    row.update(rec.figures())
    row["node_run"] = node_run
    row["node"] = node_figures(summary, after)
    row["node"].pop("streams", None)
    opened = row["log"].get("new_stream_lines", 0)
    row["streams_opened_per_s"] = r3(opened / (row["seconds_from_start_to_sigint"] or 1))
    row["reader"] = h.reader_check(rec.session_dir, a.reader_timeout)
    return [row]


# -- tables (one row of cells per result: header -> text) ---------------------------


def reader_cell(reader: dict[str, Any]) -> str:
    if not reader:
        return "-"
    return f"ok ({reader.get('state')})" if reader.get("ok") else "FAILED"


def cells_close(r: dict[str, Any]) -> dict[str, str]:
    reader = r.get("reader", {})
    killed = " (killed)" if r.get("hung_killed") else ""
    return {
        "streams": str(r["streams"]),
        "run": str(r["repeat"] + 1),
        "recv all (s)": fmt(r.get("seconds_to_all_received"), ".2f"),
        "SIGINT->exit (s)": fmt(r.get("seconds_to_exit"), ".2f") + killed,
        "exit": fmt(r.get("exit_code")),
        "h5 B/stream": fmt(r.get("h5_bytes_per_stream"), ",.0f"),
        "reader": reader_cell(reader),
        "groups": fmt(reader.get("spike_groups")),
        "log lines": fmt(r.get("log", {}).get("lines"), ","),
        "peak RSS MB": fmt(r.get("peak_rss_mb"), ",.0f"),
    }


def cells_cadence(r: dict[str, Any]) -> dict[str, str]:
    d = r.get("during_load", {})
    return {
        "streams": str(r["streams"]),
        "load after": str(r.get("load_after")),
        "burst recv (s)": fmt(r.get("burst_received_s"), ".1f"),
        "load (s)": fmt(r["load_seconds"]),
        "rewrites": fmt(d.get("rewrites")),
        "max gap (s)": fmt(d.get("max_gap_s"), ".3f"),
        "median gap (s)": fmt(d.get("median_gap_s"), ".3f"),
        "p90 gap (s)": fmt(d.get("p90_gap_s"), ".3f"),
        "stats file (B)": fmt(r.get("stats_file_max_bytes"), ","),
        "load rounds": f"{r.get('load_rounds')}/{r.get('planned_rounds')}",
        "exit": fmt(r.get("exit_code")),
        "SIGINT->exit (s)": fmt(r.get("seconds_to_exit"), ".2f"),
    }


def mb(kb: int | None) -> str:
    return fmt(kb / 1024 if kb else None, ",.1f")


def cells_recovery(r: dict[str, Any]) -> dict[str, str]:
    rd, rs = r.get("reader_copy1", {}), r.get("restart_copy2", {})
    return {
        "streams": str(r["streams"]),
        "h5 (B)": fmt(r.get("h5_bytes"), ","),
        "journal (B)": fmt(r.get("journal_bytes"), ","),
        "reader": reader_cell(rd),
        "reader RSS MB": mb(rd.get("max_rss_kb")),
        "reader wall (s)": fmt(rd.get("wall_s"), ".2f"),
        "restart ready (s)": fmt(rs.get("seconds_to_ready"), ".2f"),
        "restart RSS MB": mb(rs.get("max_rss_kb")),
        "restart exit": fmt(rs.get("exit_code")),
        "groups after": fmt(rs.get("reader_after", {}).get("spike_groups")),
    }


def cells_flood(r: dict[str, Any]) -> dict[str, str]:
    nd, ft = r.get("node", {}), r.get("flooders_total", {})
    solo = r.get("baseline", {}).get("wall_s")
    return {
        "node pub": fmt(nd.get("published")),
        "recv": fmt(nd.get("received")),
        "written": fmt(nd.get("written")),
        "missing": fmt(nd.get("missing")),
        "dropped": fmt(nd.get("dropped")),
        "loss %": fmt(nd.get("loss_pct"), ".2f"),
        "node s (solo)": f"{fmt(r.get('node_run', {}).get('wall_s'), '.1f')} ({fmt(solo, '.1f')})",
        "flood pub": fmt(ft.get("published"), ","),
        "flood written": fmt(ft.get("written"), ","),
        "intake_dropped": fmt(ft.get("intake_dropped"), ","),
        "exit": fmt(r.get("exit_code")),
        "SIGINT->exit (s)": fmt(r.get("seconds_to_exit"), ".1f"),
        "reader": reader_cell(r.get("reader", {})),
        "RSS MB": fmt(r.get("peak_rss_mb"), ",.0f"),
    }


def cells_keys(r: dict[str, Any]) -> dict[str, str]:
    nd, ac = r.get("node", {}), r.get("after_close", {})
    t = ac.get("totals", {})
    return {
        "keys pub": fmt(r.get("keys_published"), ","),
        "streams in stats": fmt(ac.get("streams"), ","),
        "node loss %": fmt(nd.get("loss_pct"), ".2f"),
        "received": fmt(t.get("received"), ","),
        "rejected": fmt(t.get("rejected")),
        "intake_dropped": fmt(t.get("intake_dropped")),
        "peak RSS MB": fmt(r.get("peak_rss_mb"), ",.0f"),
        "h5 (B)": fmt(r.get("h5_bytes"), ","),
        "stats JSON (B)": fmt(r.get("stats_bytes"), ","),
        "log lines": fmt(r.get("log", {}).get("lines"), ","),
        "exit": fmt(r.get("exit_code")),
        "SIGINT->exit (s)": fmt(r.get("seconds_to_exit"), ".1f"),
        "reader": reader_cell(r.get("reader", {})),
    }


Scenario = tuple[
    Callable[[Harness], list[dict[str, Any]]], Callable[[dict[str, Any]], dict[str, str]]
]
SCENARIOS: dict[str, Scenario] = {
    "close": (scenario_close, cells_close),
    "cadence": (scenario_cadence, cells_cadence),
    "recovery": (scenario_recovery, cells_recovery),
    "flood": (scenario_flood, cells_flood),
    "keys": (scenario_keys, cells_keys),
}


# -- publisher sub-commands (child processes) -----------------------------------------


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


def cmd_publish(a: argparse.Namespace) -> int:
    """Put ``messages`` spike messages on each of ``count`` keys, then an optional steady load."""
    import numpy as np
    import zenoh

    # Works against the code before and after recorderd's packages were split.
    try:
        from recorderd import wire as P
        from recorderd.daemon.bus import make_config
    except ImportError:
        from recorderd.bus import make_config  # type: ignore[no-redef]

        from recorderd import protocol as P  # type: ignore[no-redef]

    inc = int.from_bytes(os.urandom(8), "little")
    rng = np.random.default_rng(a.seed)
    datas = [
        np.sort(rng.choice(a.layer_size, a.spikes, replace=False)).astype(np.uint32)
        for _ in range(8)
    ]

    def key(i: int) -> str:
        if a.naming == "node":
            return P.data_key(PREFIX, f"{a.base}{i}", P.Kind.SPIKES, "l")
        return P.data_key(PREFIX, a.base, P.Kind.SPIKES, f"l{i}")

    opts: dict[str, Any] = {
        "congestion_control": zenoh.CongestionControl.BLOCK,
        "reliability": zenoh.Reliability.RELIABLE,
    }
    seqs = [0] * a.count
    published = 0
    t_start = time.monotonic()
    deadline = t_start + a.max_seconds
    with zenoh.open(make_config(connect=[a.endpoint])) as session:
        probe = session.declare_publisher(key(0), **opts)
        if not wait_until(lambda: bool(probe.matching_status.matching), 30, 0.005):
            emit("error", what="no subscriber matched in 30 s")
            return 3
        emit("matched")
        pubs: list[Any] = (
            [] if a.cycle else [session.declare_publisher(key(i), **opts) for i in range(a.count)]
        )

        def put(i: int) -> None:
            nonlocal published
            s = seqs[i]
            payload = P.encode(
                P.Kind.SPIKES,
                incarnation=inc,
                seq=s,
                step=s,
                time_ms=float(s),
                dt_ms=1.0,
                layer_size=a.layer_size,
                data=datas[(i + s) % len(datas)],
            )
            if a.cycle:
                pub = session.declare_publisher(key(i), **opts)
                pub.put(payload)
                pub.undeclare()
            else:
                pubs[i].put(payload)
            seqs[i] = s + 1
            published += 1

        timed_out = False
        for _ in range(a.messages):
            for i in range(a.count):
                put(i)
                if i % 256 == 0 and time.monotonic() > deadline:
                    timed_out = True
                    break
            if timed_out:
                break
        emit("burst_done", published=published, seconds=round(time.monotonic() - t_start, 3))
        rounds = 0
        if a.steady_seconds > 0 and a.wait_go and not timed_out:
            sys.stdin.readline()  # the harness says go (or closes stdin)
        if a.steady_seconds > 0 and not timed_out:
            planned = int(a.steady_seconds * a.rate)
            t0 = time.monotonic()
            emit("load_start", planned_rounds=planned)
            for r in range(planned):
                wait = t0 + r / a.rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if time.monotonic() > min(deadline, t0 + a.steady_seconds + 10):
                    timed_out = True
                    break
                for i in range(a.count):
                    put(i)
                rounds += 1
            emit("load_end", rounds=rounds, published=published)
        # Flush barrier (docs/wire-protocol.md): everything put has reached the recorder.
        flush = P.flush_key(PREFIX, f"{a.base}0" if a.naming == "node" else a.base)
        replies = [r for r in session.get(flush, timeout=a.flush_timeout) if r.ok is not None]
        emit(
            "done",
            published=published,
            rounds=rounds,
            timed_out=timed_out,
            flush_replies=len(replies),
            seconds=round(time.monotonic() - t_start, 3),
        )
    return 0


def cmd_flood(a: argparse.Namespace) -> int:
    """Put big spike messages on one key as fast as possible until told to stop (bounded)."""
    import numpy as np
    import zenoh

    # Works against the code before and after recorderd's packages were split.
    try:
        from recorderd import wire as P
        from recorderd.daemon.bus import make_config
    except ImportError:
        from recorderd.bus import make_config  # type: ignore[no-redef]

        from recorderd import protocol as P  # type: ignore[no-redef]

    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.readline()  # a line or EOF
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    inc = int.from_bytes(os.urandom(8), "little")
    rng = np.random.default_rng(zlib.crc32(a.node_id.encode()))
    datas = [
        np.sort(rng.choice(a.layer_size, a.spikes, replace=False)).astype(np.uint32)
        for _ in range(16)
    ]
    key = P.data_key(PREFIX, a.node_id, P.Kind.SPIKES, "l")
    n, worst, error = 0, 0.0, None
    with zenoh.open(make_config(connect=[a.endpoint])) as session:
        pub = session.declare_publisher(
            key,
            congestion_control=zenoh.CongestionControl.BLOCK,
            reliability=zenoh.Reliability.RELIABLE,
        )
        if not wait_until(lambda: bool(pub.matching_status.matching), 30, 0.005):
            emit("error", what="no subscriber matched in 30 s")
            return 3
        t0 = time.monotonic()
        deadline = t0 + a.max_seconds
        emit("started")
        try:
            while not stop.is_set() and n < a.max_messages and time.monotonic() < deadline:
                payload = P.encode(
                    P.Kind.SPIKES,
                    incarnation=inc,
                    seq=n,
                    step=n,
                    time_ms=float(n),
                    dt_ms=1.0,
                    layer_size=a.layer_size,
                    data=datas[n % len(datas)],
                )
                tp = time.perf_counter()
                pub.put(payload)
                worst = max(worst, time.perf_counter() - tp)
                n += 1
        except zenoh.ZError as exc:
            error = str(exc)
        seconds = time.monotonic() - t0
        replies = [
            r for r in session.get(P.flush_key(PREFIX, a.node_id), timeout=5) if r.ok is not None
        ]
        emit(
            "done",
            published=n,
            seconds=round(seconds, 3),
            rate=round(n / seconds, 1) if seconds else None,
            max_put_s=round(worst, 4),
            bytes_per_message=64 + 4 * a.spikes,
            flush_replies=len(replies),
            error=error,
            stopped_by=(
                "request"
                if stop.is_set()
                else "max_messages"
                if n >= a.max_messages
                else "max_seconds"
            ),
        )
    return 0


# -- command line -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hostile.py",
        description="Benchmark recorderd under a hostile or heavy bus (see the module docstring).",
    )
    subs = parser.add_subparsers(
        dest="scenario", required=True, metavar="{close,cadence,recovery,flood,keys}"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quick", action="store_true", help="smoke-test sizes (~1 minute)")
    common.add_argument("--json", type=Path, help="write every figure here")
    common.add_argument("--append", action="store_true", help="add to an existing --json file")
    common.add_argument("--workdir", type=Path, help="keep sessions and logs here")
    common.add_argument("--keep", action="store_true", help="keep the temporary workdir")
    common.add_argument(
        "--recorderd-arg",
        action="append",
        metavar="ARG",
        help="extra recorderd argument, verbatim (repeatable; use --recorderd-arg=--flag)",
    )
    common.add_argument(
        "--recorderd-env", action="append", metavar="NAME=VALUE", help="recorderd environment"
    )
    common.add_argument(
        "--reader-timeout",
        type=float,
        default=120.0,
        help="bound of each SessionReader check, seconds [120]",
    )
    common.add_argument(
        "--max-rss-mb",
        type=float,
        default=round(0.4 * mem_total_mb()),
        help="SIGKILL recorderd or a reader whose RSS passes this [40%% of RAM]",
    )
    common.add_argument(
        "--drain-timeout",
        type=float,
        help="RECORDERD_DRAIN_TIMEOUT for recorderd (seconds)",
    )

    p = subs.add_parser("close", parents=[common], help="closing time vs stream count")
    p.add_argument("--streams", help="comma list of stream counts [10,100,1000,5000]")
    p.add_argument("--messages", type=int, default=2, help="messages per stream [2]")
    p.add_argument("--repeat", type=int, default=1, help="runs per stream count [1]")

    p = subs.add_parser("cadence", parents=[common], help="flush cadence under many streams")
    p.add_argument("--streams", type=int, help="streams [5000]")
    p.add_argument("--seconds", type=float, help="steady load duration [20]")
    p.add_argument("--rate", type=float, default=1.0, help="messages per stream per second [1]")
    p.add_argument("--poll", type=float, default=0.02, help="mtime poll interval [0.02]")
    p.add_argument(
        "--watch",
        choices=("stats", "journal"),
        default="journal",
        help="file whose rewrites mark the flushes [journal]",
    )
    p.add_argument(
        "--load-after",
        choices=("received", "sent"),
        default="received",
        help="start the steady load once the recorder has every burst message (received: "
        "steady-state cadence) or right after sending them (sent: cadence while it is "
        "still creating the streams) [received]",
    )

    p = subs.add_parser("recovery", parents=[common], help="crashed many-stream recovery")
    p.add_argument("--streams", type=int, help="streams [1000]")
    p.add_argument("--messages", type=int, default=14, help="messages per stream [14]")

    p = subs.add_parser("flood", parents=[common], help="fairness under a flood")
    p.add_argument("--flooders", type=int, default=2, help="flooder processes [2]")
    p.add_argument("--steps", type=int, help="steps of the real node [3000]")
    p.add_argument("--flood-layer-size", type=int, default=100_000)
    p.add_argument("--flood-spikes", type=int, default=2000, help="spikes per flood message")
    p.add_argument("--max-seconds", type=float, help="bound of the node run [60]")
    p.add_argument("--warmup", type=float, help="flood alone until intake drops, at most [20] s")
    p.add_argument("--settle", type=float, help="wait for the node's messages, at most [30] s")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)

    p = subs.add_parser("keys", parents=[common], help="a flood of distinct keys")
    p.add_argument("--keys", type=int, help="distinct keys [50000]")
    p.add_argument("--key-style", choices=("node", "layer"), default="node")
    p.add_argument("--steps", type=int, help="steps of the real node [5000]")
    p.add_argument("--speed", type=float, default=1.0, help="node speed [1 = real time]")
    p.add_argument("--max-seconds", type=float, default=120.0, help="bound of the key flood")
    p.add_argument("--settle", type=float, help="wait for everything, at most [120] s")

    p = subs.add_parser("_publish")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--messages", type=int, default=2)
    p.add_argument("--base", default="n")
    p.add_argument("--naming", choices=("node", "layer"), default="node")
    p.add_argument("--layer-size", type=int, default=1000)
    p.add_argument("--spikes", type=int, default=3)
    p.add_argument("--steady-seconds", type=float, default=0.0)
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--cycle", action="store_true", help="declare/put/undeclare per message")
    p.add_argument("--wait-go", action="store_true", help="read a stdin line before the load")
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--flush-timeout", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)

    p = subs.add_parser("_flood")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--node-id", required=True)
    p.add_argument("--layer-size", type=int, default=100_000)
    p.add_argument("--spikes", type=int, default=2000)
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--max-messages", type=int, default=2_000_000)
    return parser


def resolve_sizes(args: argparse.Namespace) -> None:
    for name, (full, quick) in SIZES.get(args.scenario, {}).items():
        if getattr(args, name, None) is None:
            setattr(args, name, quick if args.quick else full)


def write_json(path: Path, doc: dict[str, Any], append: bool) -> None:
    runs: list[Any] = []
    if append and path.exists():
        with contextlib.suppress(json.JSONDecodeError):
            runs = list(json.loads(path.read_text()).get("runs", []))
    runs.append(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"runs": runs}, indent=2, default=str) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def workdir(args: argparse.Namespace) -> Iterator[Path]:
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        yield args.workdir
        return
    path = Path(tempfile.mkdtemp(prefix=f"hostile-{args.scenario}-"))
    try:
        yield path
    finally:
        if args.keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.scenario == "_publish":
        return cmd_publish(args)
    if args.scenario == "_flood":
        return cmd_flood(args)
    resolve_sizes(args)
    started = dt.datetime.now(dt.UTC)
    load_start = list(os.getloadavg())  # other work on the machine skews every figure
    busy0, own0 = cpu_seconds()
    t0 = time.perf_counter()
    with workdir(args) as work:
        h = Harness(args, work)
        code = h.code_info()
        log(f"code under test: recorderd {code.get('recorderd')} at {code.get('git_head')}")
        run, cells = SCENARIOS[args.scenario]
        rows: list[dict[str, Any]] = []
        interrupted = False
        try:
            rows = run(h)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            h.cleanup()
        busy1, own1 = cpu_seconds()
        print_table([cells(r) for r in rows])
        options = {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("json", "append", "workdir", "keep")
        }
        doc = {
            "scenario": args.scenario,
            "argv": sys.argv,
            "options": options,
            "recorderd_args": h.recorderd_args,
            "recorderd_env": h.recorderd_env,
            "code": code,
            "host": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "loadavg_start": load_start,
                "loadavg_end": list(os.getloadavg()),
                # CPU seconds used meanwhile by processes other than this run's (approx.).
                "foreign_cpu_s": round((busy1 - busy0) - (own1 - own0), 1),
                "own_cpu_s": round(own1 - own0, 1),
            },
            "started_at": started.isoformat(),
            "seconds": r3(time.perf_counter() - t0),
            "interrupted": interrupted,
            "workdir": str(work) if (args.workdir or args.keep) else None,
            "results": rows,
        }
        if args.json:
            write_json(args.json, doc, args.append)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
