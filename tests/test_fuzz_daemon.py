"""Fuzz a running recorderd (real subprocess, real Zenoh on loopback, real HDF5).

Malformed payloads and hostile key expressions are published from this process,
interleaved with valid messages of a legitimate node. The daemon must keep running,
count each rejection under the reason of ``docs/wire-protocol.md`` (first failing check
in the order of its "Rejections" table), record every valid message exactly and create
nothing outside its session folder.

The expected reason of every data payload is computed by ``expected_data_reason``, an
implementation of the documented table that does not use ``recorderd.protocol.decode``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import zenoh
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from analysis.reader import SessionReader
from recorderd import wire as P
from recorderd.daemon.bus import make_config
from tests.helpers import free_port
from tests.processes import recorderd, statistics, stop, wait_for

PREFIX = "brain"
LEGIT = "legit-0"
LAYER = "out"
LAYER_SIZE = 50
INCARNATION = 0x1234_5678_9ABC_DEF0
#: Malformed control states carry another incarnation: one with the legitimate node's
#: incarnation and its next seq would count as that message (rejected once, not also
#: missing), and the legitimate message after it as a duplicate, by design.
HOSTILE_INCARNATION = 0x0BAD_0BAD_0BAD_0BAD
SPIKES_KEY = P.data_key(PREFIX, LEGIT, P.Kind.SPIKES, LAYER)
CONTROL_KEY = P.control_key(PREFIX, LEGIT)
# Streams that only ever receive malformed payloads (recorded kinds: see daemon_args).
MEMBRANE_KEY = P.data_key(PREFIX, "fuzz-0", P.Kind.MEMBRANE, "m")
WEIGHTS_KEY = P.data_key(PREFIX, "fuzz-0", P.Kind.WEIGHTS, "w")
KEY_KINDS = {SPIKES_KEY: 1, MEMBRANE_KEY: 2, WEIGHTS_KEY: 3}
MEMBRANE_SIZE = 8
WEIGHTS_SHAPE = (3, 4)
MAX_ELEMENTS = 1 << 26

HEADER = struct.Struct("<4sBBHQQqddIIII")
# Documented header offsets and struct formats of the fields the fuzzer overrides.
FIELDS: dict[str, tuple[int, str]] = {
    "magic": (0, "4s"),
    "version": (4, "B"),
    "kind": (5, "B"),
    "incarnation": (8, "<Q"),
    "seq": (16, "<Q"),
    "step": (24, "<q"),
    "time_ms": (32, "<d"),
    "dt_ms": (40, "<d"),
    "layer_size": (48, "<I"),
    "n0": (52, "<I"),
    "n1": (56, "<I"),
}

# Names that are not safe names (docs/wire-protocol.md "Safe names") but are valid
# Zenoh key chunks, so they reach the recorder's `<prefix>/*/...` subscriptions.
HOSTILE_NAMES = [
    "..",
    ".",
    "...",
    "a" * 65,
    "x" * 300,
    "with space",
    " lead",
    "a.b",
    "legit-0.out",
    "é",
    "naïve-node",
    "\u202eevil",
    "日本",
    "_recorders",
    "-dash",
    "_under",
    "%2e%2e",
    "..%2f..%2fetc",
    "a\\b",
    "C:",
    "~",
    "tab\there",
    "nul\x00byte",
    "control.json",
    "simulation_data.h5",
    ".recorder.lock",
    "legit-0.control",
]


SESSION_FILES = [
    ".recorder.lock",
    "control_states.jsonl",
    "recording_statistics.json",
    "simulation_data.h5",
]


# -- the oracle ------------------------------------------------------------------------


def expected_data_reason(key: str, payload: bytes) -> str | None:
    """The documented rejection reason of ``payload`` on one of our data keys, or None.

    Follows the order of the "Rejections" table. On the legitimate spikes key, a message
    that is valid on its own but declares another layer size is ``shape_changed``.
    """
    key_kind = KEY_KINDS[key]
    if len(payload) < 64:
        return "short_payload"
    magic, version, kind, _, _, _, step, t, dt, size, n0, n1, _ = HEADER.unpack_from(payload)
    if magic != b"BRNP":
        return "bad_magic"
    if version != 1:
        return "bad_version"
    if kind not in (1, 2, 3) or kind != key_kind:
        return "kind_mismatch"
    if not (math.isfinite(t) and math.isfinite(dt)) or dt <= 0:
        return "bad_number"
    if step < 0:
        return "negative_step"
    if kind in (1, 2) and n1 != 1:
        return "bad_length"
    if kind == 3 and (n0 == 0 or n1 == 0):
        return "bad_length"
    if n0 * n1 > MAX_ELEMENTS or size > MAX_ELEMENTS:
        return "bad_length"
    if len(payload) != 64 + 4 * n0 * n1:
        return "bad_length"
    if kind == 1 and n0 > size:
        return "bad_length"
    if kind == 2 and n0 != size:
        return "bad_length"
    if kind == 1 and n0:
        ids = [int(i) for i in np.frombuffer(payload, "<u4", offset=64)]
        if any(b <= a for a, b in itertools.pairwise(ids)) or ids[-1] >= size:
            return "bad_index"
    if key == SPIKES_KEY and size != LAYER_SIZE:
        return "shape_changed"
    return None  # valid: the fuzzer does not send these (they would be recorded)


# -- payload makers --------------------------------------------------------------------


def legit_ids(seq: int) -> list[int]:
    """The neurons of the legitimate node that fire in message ``seq`` (sometimes none)."""
    return sorted({(seq * 7 + k * 13) % LAYER_SIZE for k in range(seq % 6)})


def spikes(seq: int, ids: Any, *, layer_size: int = LAYER_SIZE) -> bytes:
    return P.encode(
        P.Kind.SPIKES,
        incarnation=INCARNATION,
        seq=seq,
        step=seq,
        time_ms=float(seq),
        dt_ms=1.0,
        layer_size=layer_size,
        data=np.asarray(ids, dtype=np.uint32),
    )


def membrane(seq: int) -> bytes:
    return P.encode(
        P.Kind.MEMBRANE,
        incarnation=INCARNATION,
        seq=seq,
        step=seq,
        time_ms=float(seq),
        dt_ms=1.0,
        layer_size=MEMBRANE_SIZE,
        data=np.linspace(-70.0, -50.0, MEMBRANE_SIZE),
    )


def weights(seq: int) -> bytes:
    return P.encode(
        P.Kind.WEIGHTS,
        incarnation=INCARNATION,
        seq=seq,
        step=seq,
        time_ms=float(seq),
        dt_ms=1.0,
        layer_size=WEIGHTS_SHAPE[1],
        data=np.arange(np.prod(WEIGHTS_SHAPE), dtype=np.float32).reshape(WEIGHTS_SHAPE),
    )


def override(payload: bytes, **values: Any) -> bytes:
    """``payload`` with header fields overwritten at their documented offsets."""
    buf = bytearray(payload)
    for name, value in values.items():
        offset, fmt = FIELDS[name]
        struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


def raw_spikes(ids: list[int], *, layer_size: int = LAYER_SIZE, seq: int = 0) -> bytes:
    """A spikes message with arbitrary (possibly unsorted or out-of-range) indices."""
    head = HEADER.pack(
        b"BRNP", 1, 1, 0, INCARNATION, seq, seq, float(seq), 1.0, layer_size, len(ids), 1, 0
    )
    return head + struct.pack(f"<{len(ids)}I", *ids)


def control_state(seq: int, **changes: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "protocol_version": 1,
        "node_id": LEGIT,
        "module_type": "pfc",
        "status": "Processing",
        "active_task": "fuzzing",
        "step_count": seq + 1,
        "step": seq,
        "time_ms": float(seq),
        "incarnation": INCARNATION,
        "seq": seq,
        "metadata": {"entropy": 1.5, "nested": {"list": [1, 2.5, "x"]}},
    }
    state.update(changes)
    return state


# -- the bench: one daemon, one publisher session, the bookkeeping -----------------------


@dataclass
class Bench:
    session: zenoh.Session
    proc: subprocess.Popen[bytes]
    session_dir: Path
    expected: Counter[str] = field(default_factory=Counter)
    sent_spikes: list[list[int]] = field(default_factory=list)
    sent_controls: list[dict[str, Any]] = field(default_factory=list)
    hostile_sent: int = 0

    def put(self, key: str, payload: bytes) -> None:
        self.session.put(key, payload, congestion_control=zenoh.CongestionControl.BLOCK)

    def hostile(self, key: str, payload: bytes, reason: str | None) -> None:
        """Publish a malformed message; ``reason`` None: the recorder never hears it."""
        self.put(key, payload)
        self.hostile_sent += 1
        if reason is not None:
            self.expected[reason] += 1

    def legit_spikes(self) -> None:
        seq = len(self.sent_spikes)
        ids = legit_ids(seq)
        self.put(SPIKES_KEY, spikes(seq, ids))
        self.sent_spikes.append(ids)

    def legit_control(self, size: int | None = None) -> None:
        """Publish the next valid control state (padded to exactly ``size`` bytes if given)."""
        seq = len(self.sent_controls)
        state = P.ControlState(**control_state(seq, status=f"step-{seq}"))
        payload = P.encode_control(state)
        if size is not None:
            pad = "x" * (size - len(payload) - len(',"pad":""'))
            meta = {**state.metadata, "pad": pad}
            state = P.ControlState(**control_state(seq, status=f"step-{seq}", metadata=meta))
            payload = P.encode_control(state)
            assert len(payload) == size
        self.put(CONTROL_KEY, payload)
        self.sent_controls.append(state.model_dump(mode="json"))

    def finish(self) -> dict[str, Any]:
        """Pass the flush barrier, wait for the daemon to account for everything, SIGINT it."""
        replies = list(self.session.get(P.flush_key(PREFIX, LEGIT), timeout=10))
        assert [r.ok is not None for r in replies] == [True], "flush barrier not answered"
        want_rejected = sum(self.expected.values())

        def accounted() -> bool:
            stats = statistics(self.session_dir)
            streams = stats.get("streams", {})
            return (
                stats.get("totals", {}).get("rejected") == want_rejected
                and streams.get(f"{LEGIT}/spikes/{LAYER}", {}).get("received")
                == len(self.sent_spikes)
                and streams.get(f"{LEGIT}/control", {}).get("received", 0)
                == len(self.sent_controls)
            )

        try:
            wait_for(accounted, 15, "the daemon to account for every message")
        finally:
            print_table(self.expected, statistics(self.session_dir).get("rejected", {}))
        assert self.proc.poll() is None, "recorderd exited while being fuzzed"
        assert stop(self.proc) == 0
        return statistics(self.session_dir)


def print_table(expected: Counter[str], got: dict[str, int]) -> None:
    print(f"\n{'reason':<15}{'sent':>8}{'counted':>9}")
    for reason in sorted(set(expected) | set(got)):
        print(f"{reason:<15}{expected.get(reason, 0):>8}{got.get(reason, 0):>9}")
    print(f"{'total':<15}{sum(expected.values()):>8}{sum(got.values()):>9}")


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@contextmanager
def bench(tmp_path: Path) -> Iterator[Bench]:
    """A running recorderd on loopback and a peer session connected to it, ready to put."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    rec_dir = tmp_path / "rec"
    session_dir = rec_dir / "fuzz"
    args = [
        "--session",
        "fuzz",
        "--recording-dir",
        str(rec_dir),
        "--listen",
        endpoint,
        "--flush-interval",
        "0.2",
        "--record-membrane",
        "--record-weights",
    ]
    with recorderd(tmp_path, *args) as proc, zenoh.open(make_config(connect=[endpoint])) as ses:
        # Wait until the daemon's subscription for every kind has reached this session.
        pubs = [ses.declare_publisher(k) for k in (SPIKES_KEY, MEMBRANE_KEY, WEIGHTS_KEY)]
        pubs.append(ses.declare_publisher(CONTROL_KEY))
        wait_for(lambda: all(p.matching_status.matching for p in pubs), 20, "matching subscribers")
        for p in pubs:
            p.undeclare()
        yield Bench(ses, proc, session_dir)


def check_recording(b: Bench, stats: dict[str, Any], tmp_path: Path) -> None:
    """Exact counts by reason, the legitimate node recorded exactly, nothing outside."""
    assert stats["rejected"] == dict(b.expected)
    assert stats["totals"]["intake_dropped"] == 0
    st = stats["streams"][f"{LEGIT}/spikes/{LAYER}"]
    n = len(b.sent_spikes)
    assert (st["received"], st["written"], st["missing"], st["duplicates"]) == (n, n, 0, 0)
    assert st["restarts"] == 0
    # Only the legitimate node's streams exist: no rejected message opened a stream.
    assert set(stats["streams"]) <= {f"{LEGIT}/spikes/{LAYER}", f"{LEGIT}/control"}
    with SessionReader(b.session_dir) as r:
        assert r.nodes() == [LEGIT]
        assert r.layers(LEGIT) == [LAYER]
        assert r.layers(LEGIT, "membrane") == r.layers(LEGIT, "weights") == []
        train = r.spikes(LEGIT, LAYER)
        frames = r.frames(LEGIT, LAYER)
        assert frames.seq.tolist() == list(range(n))
        assert frames.steps.tolist() == list(range(n))
        assert set(frames.incarnation.tolist()) == {INCARNATION}
        assert frames.count.tolist() == [len(ids) for ids in b.sent_spikes]
        assert train.neuron_ids.tolist() == [i for ids in b.sent_spikes for i in ids]
        assert train.steps.tolist() == [s for s, ids in enumerate(b.sent_spikes) for _ in ids]
        controls = r.control_states()
    for c in controls:
        c.pop("received_at")
    assert controls == b.sent_controls
    # Nothing outside the session folder, nothing but the session's own files inside it,
    # and no HDF5 object named after anything but the legitimate stream.
    assert tree(tmp_path) == {"recorderd.log", "rec", "rec/fuzz"} | {
        f"rec/fuzz/{f}" for f in SESSION_FILES
    }
    with h5py.File(b.session_dir / "simulation_data.h5", "r") as h5:
        names: list[str] = []
        h5.visit(names.append)
    assert {n.split("/")[1] for n in names if n.count("/") >= 1} <= {
        "nodes",
        "summary",  # /metadata/summary: its tables hold names as data, not as objects
        f"{LEGIT}.{LAYER}",
    }
    assert {n for n in names if n.startswith("metadata/nodes/")} == {f"metadata/nodes/{LEGIT}"}


# -- strategies ------------------------------------------------------------------------

u32 = st.one_of(
    st.sampled_from(
        [0, 1, LAYER_SIZE - 1, LAYER_SIZE, LAYER_SIZE + 1, MAX_ELEMENTS, MAX_ELEMENTS + 1]
    ),
    st.just(2**32 - 1),
    st.integers(0, 2**32 - 1),
)
bad_dt = st.one_of(
    st.floats(max_value=0.0, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, -1e-300]),
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "magic": st.binary(min_size=4, max_size=4),
    "version": st.integers(0, 255),
    "kind": st.integers(0, 255),
    "step": st.one_of(st.integers(-(2**63), -1), st.integers(0, 2**63 - 1)),
    "time_ms": st.floats(),
    "dt_ms": st.one_of(bad_dt, st.floats()),
    "layer_size": u32,
    "n0": u32,
    "n1": u32,
}


@st.composite
def malformed_data(draw: st.DrawFn) -> tuple[str, bytes]:
    """A (key, payload) pair: a valid message of some kind, then one class of mutation."""
    base_kind = draw(st.sampled_from(["spikes", "membrane", "weights"]))
    matching = {"spikes": SPIKES_KEY, "membrane": MEMBRANE_KEY, "weights": WEIGHTS_KEY}
    # Mostly on the key of the payload's own kind, so that later checks get reached.
    key = draw(st.sampled_from([matching[base_kind]] * 4 + sorted(KEY_KINDS)))
    seq = draw(st.integers(0, 5))
    if base_kind == "spikes":
        ids = draw(st.lists(st.integers(0, LAYER_SIZE - 1), unique=True, max_size=8))
        base = spikes(seq, sorted(ids))
    else:
        base = membrane(seq) if base_kind == "membrane" else weights(seq)
    mutation = draw(
        st.sampled_from(["truncate", "append", "flip", "fields", "fields", "indices", "indices"])
    )
    if mutation == "truncate":
        payload = base[: draw(st.integers(0, len(base) - 1))]
    elif mutation == "append":
        payload = base + draw(st.binary(min_size=1, max_size=16))
    elif mutation == "flip":
        buf = bytearray(base)
        for _ in range(draw(st.integers(1, 3))):
            buf[draw(st.integers(0, len(buf) - 1))] ^= draw(st.integers(1, 255))
        payload = bytes(buf)
    elif mutation == "fields":
        names = draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), min_size=1, max_size=3))
        payload = override(base, **{name: draw(FIELD_VALUES[name]) for name in names})
    else:  # spikes with drawn indices: unsorted, duplicates, out of range
        size = draw(st.sampled_from([LAYER_SIZE, LAYER_SIZE, 1, 0, 2**32 - 1]))
        ids = draw(
            st.lists(
                st.one_of(st.integers(0, LAYER_SIZE + 2), st.integers(0, 2**32 - 1)),
                min_size=1,
                max_size=10,
            )
        )
        payload = raw_spikes(ids, layer_size=size, seq=seq)
    return key, payload


def hostile_name(draw: st.DrawFn) -> str:
    return draw(
        st.one_of(
            st.sampled_from(HOSTILE_NAMES),
            st.integers(65, 200).map(lambda n: "n" * n),
            st.tuples(
                st.sampled_from(["a", "node", "legit-0", "out"]),
                st.sampled_from([".", " ", "é", "..", "ü", "\u00a0", ":", "%", "\\", "'"]),
                st.sampled_from(["", "b", "control", "spikes", "h5", "."]),
            ).map("".join),
        )
    )


@st.composite
def hostile_key(draw: st.DrawFn) -> str:
    """A key matching a subscription of the recorder whose node id or name is unsafe."""
    bad = hostile_name(draw)
    good = draw(st.sampled_from([LEGIT, "out", "fuzz-0"]))
    form = draw(st.integers(0, 4))
    return [
        f"{PREFIX}/{bad}/spikes/{good}",
        f"{PREFIX}/{good}/spikes/{bad}",
        f"{PREFIX}/{bad}/control",
        f"{PREFIX}/{bad}/membrane/{good}",
        f"{PREFIX}/{good}/weights/{bad}",
    ][form]


# Control states with one fault each, and the documented reason.
NOT_JSON = [b"", b"{", b"null", b"[]", b'"x"', b"42", b"\xff\xfe{}", b"{'a': 1}", b"{} {}"]
BAD_FIELD_VALUES: dict[str, list[Any]] = {
    "module_type": ["", "m" * 65, 5, None],
    "status": ["", "s" * 65, ["Idle"], None],
    "active_task": ["t" * 257, 7, {}],
    "step_count": [-1, "5", 5.0, True, None],
    "step": [-1, "0", 1.5, False],
    "time_ms": ["1.0", None, True, [1.0]],
    "incarnation": [-1, 2**64, "1", 1.0],
    "seq": [-1, 2**64, 2**70, "0"],
    "metadata": [[], "x", 1, None],
    "node_id": ["a.b", "..", "", "é", "n" * 65, 5, None, "_x"],
}
RAW_NONFINITE = [  # (field, JSON token) spliced in as raw text: not JSON, but parseable
    ("time_ms", "NaN"),
    ("time_ms", "Infinity"),
    ("time_ms", "-Infinity"),
    ("time_ms", "1e999"),
    ("metadata", '{"x": NaN}'),
    ("metadata", '{"deep": {"list": [1, {"y": Infinity}]}}'),
    ("metadata", '{"big": -1e400}'),
]


@st.composite
def malformed_control(draw: st.DrawFn) -> tuple[bytes, str]:
    seq = draw(st.integers(0, 3))
    state = control_state(seq, incarnation=HOSTILE_INCARNATION)
    fault = draw(
        st.sampled_from(["json", "truncate", "missing", "extra", "value", "raw", "version"])
    )
    if fault == "json":
        return draw(st.sampled_from(NOT_JSON)), "bad_control"
    if fault == "truncate":
        text = json.dumps(state).encode()
        return text[: draw(st.integers(0, len(text) - 1))], "bad_control"
    if fault == "missing":
        required = ["node_id", "module_type", "status", "step_count", "step", "time_ms"]
        del state[draw(st.sampled_from([*required, "incarnation", "seq"]))]
        return json.dumps(state).encode(), "bad_control"
    if fault == "extra":
        name = draw(st.sampled_from(["extra", "protocol", "nodeId", "__class__", "é"]))
        state[name] = draw(st.sampled_from([1, None, "x", {}]))
        return json.dumps(state).encode(), "bad_control"
    if fault == "version":  # not the integer 1, whatever the type: bad_version comes first
        state["protocol_version"] = draw(
            st.sampled_from([0, 2, 255, -1, 2**64, "1", 1.0, True, None])
        )
        return json.dumps(state).encode(), "bad_version"
    if fault == "raw":
        name, token = draw(st.sampled_from(RAW_NONFINITE))
        state[name] = "@@RAW@@"
        return json.dumps(state).replace('"@@RAW@@"', token).encode(), "bad_control"
    name = draw(st.sampled_from(sorted(BAD_FIELD_VALUES)))
    state[name] = draw(st.sampled_from(BAD_FIELD_VALUES[name]))
    return json.dumps(state).encode(), "bad_control"


FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# -- the tests -------------------------------------------------------------------------


def test_malformed_data_payloads_are_counted_by_reason_and_valid_ones_recorded(
    tmp_path: Path,
) -> None:
    start = time.monotonic()
    with bench(tmp_path) as b:
        b.legit_spikes()  # the legitimate stream exists before anything hostile arrives
        b.legit_control()
        base = spikes(0, [1, 4, 9])
        # Deterministic classes, one or more per documented reason.
        fixed: list[tuple[str, bytes, str]] = [
            (SPIKES_KEY, b"", "short_payload"),
            (SPIKES_KEY, b"BRNP", "short_payload"),
            (SPIKES_KEY, base[:63], "short_payload"),
            (SPIKES_KEY, b"\x00" * 64, "bad_magic"),
            (SPIKES_KEY, override(base, magic=b"brnp"), "bad_magic"),
            (SPIKES_KEY, override(base, magic=b"PNRB"), "bad_magic"),
            (SPIKES_KEY, override(base, version=0), "bad_version"),
            (SPIKES_KEY, override(base, version=2), "bad_version"),
            (SPIKES_KEY, override(base, version=255, kind=9), "bad_version"),
            (SPIKES_KEY, override(base, kind=0), "kind_mismatch"),
            (SPIKES_KEY, override(base, kind=4), "kind_mismatch"),
            (SPIKES_KEY, membrane(0), "kind_mismatch"),
            (SPIKES_KEY, weights(0), "kind_mismatch"),
            (MEMBRANE_KEY, base, "kind_mismatch"),
            (WEIGHTS_KEY, membrane(0), "kind_mismatch"),
            (SPIKES_KEY, override(base, time_ms=math.nan), "bad_number"),
            (SPIKES_KEY, override(base, time_ms=math.inf), "bad_number"),
            (SPIKES_KEY, override(base, time_ms=-math.inf), "bad_number"),
            (SPIKES_KEY, override(base, dt_ms=0.0), "bad_number"),
            (SPIKES_KEY, override(base, dt_ms=-0.0), "bad_number"),
            (SPIKES_KEY, override(base, dt_ms=-1.0), "bad_number"),
            (SPIKES_KEY, override(base, dt_ms=math.nan), "bad_number"),
            (SPIKES_KEY, override(base, dt_ms=math.inf), "bad_number"),
            (SPIKES_KEY, override(base, step=-1, dt_ms=0.0), "bad_number"),
            (SPIKES_KEY, override(base, step=-1), "negative_step"),
            (SPIKES_KEY, override(base, step=-(2**63)), "negative_step"),
            (SPIKES_KEY, override(base, step=-1, n0=2**32 - 1), "negative_step"),
            (SPIKES_KEY, override(base, n1=2), "bad_length"),
            (SPIKES_KEY, override(base, n1=0), "bad_length"),
            (SPIKES_KEY, override(base, n0=2**32 - 1), "bad_length"),  # huge declared length
            (SPIKES_KEY, override(base, n0=MAX_ELEMENTS + 1), "bad_length"),
            (SPIKES_KEY, override(base, layer_size=2**32 - 1), "bad_length"),
            (SPIKES_KEY, override(base, layer_size=MAX_ELEMENTS + 1), "bad_length"),
            (SPIKES_KEY, override(base, n0=4), "bad_length"),  # declares more than it carries
            (SPIKES_KEY, override(base, n0=2), "bad_length"),  # declares less
            (SPIKES_KEY, base + b"\x00\x00\x00\x00", "bad_length"),
            (SPIKES_KEY, base[:-1], "bad_length"),
            (SPIKES_KEY, raw_spikes([0, 1, 2], layer_size=2), "bad_length"),  # n0 > layer
            (MEMBRANE_KEY, override(membrane(0), layer_size=MEMBRANE_SIZE + 1), "bad_length"),
            (MEMBRANE_KEY, override(membrane(0), n1=2), "bad_length"),
            (WEIGHTS_KEY, override(weights(0), n0=0), "bad_length"),
            (WEIGHTS_KEY, override(weights(0), n1=0), "bad_length"),
            (WEIGHTS_KEY, override(weights(0), n0=65536, n1=1025), "bad_length"),
            (WEIGHTS_KEY, override(weights(0), n0=2**32 - 1, n1=2**32 - 1), "bad_length"),
            # n0 * n1 = 2^63 + 871 (wrapped in int64 to 871 - 2^63): 871 words must not
            # pass for its length (this stopped the recorder's writer thread once)
            (
                WEIGHTS_KEY,
                override(weights(0), n0=3_038_845_399, n1=3_035_156_721)[:64] + bytes(4 * 871),
                "bad_length",
            ),
            (SPIKES_KEY, raw_spikes([4, 1, 9]), "bad_index"),  # unsorted
            (SPIKES_KEY, raw_spikes([2, 2]), "bad_index"),  # duplicate
            (SPIKES_KEY, raw_spikes([0, LAYER_SIZE]), "bad_index"),  # == layer size
            (SPIKES_KEY, raw_spikes([2**32 - 1]), "bad_index"),
            (SPIKES_KEY, raw_spikes([3, 2**32 - 1, 5]), "bad_index"),
            (SPIKES_KEY, spikes(1, [1, 4], layer_size=LAYER_SIZE + 1), "shape_changed"),
            (SPIKES_KEY, spikes(1, [], layer_size=0), "shape_changed"),
            (SPIKES_KEY, spikes(1, [0], layer_size=MAX_ELEMENTS), "shape_changed"),
        ]
        for key, payload, reason in fixed:
            assert expected_data_reason(key, payload) == reason, (key, payload.hex())
            b.hostile(key, payload, reason)
            b.legit_spikes()

        @FUZZ
        @given(malformed_data())
        def send(case: tuple[str, bytes]) -> None:
            key, payload = case
            reason = expected_data_reason(key, payload)
            assume(reason is not None)  # a mutation that is still valid would be recorded
            b.hostile(key, payload, reason)
            b.legit_spikes()
            if len(b.sent_spikes) % 25 == 0:
                b.legit_control()

        send()
        stats = b.finish()
    check_recording(b, stats, tmp_path)
    print(
        f"{b.hostile_sent} hostile, {len(b.sent_spikes)} valid spikes messages, "
        f"{time.monotonic() - start:.1f} s"
    )
    # Every documented data reason was exercised.
    assert set(b.expected) == {
        "short_payload",
        "bad_magic",
        "bad_version",
        "kind_mismatch",
        "bad_number",
        "negative_step",
        "bad_length",
        "bad_index",
        "shape_changed",
    }


def test_hostile_keys_and_control_states_are_rejected_and_nothing_escapes(
    tmp_path: Path,
) -> None:
    start = time.monotonic()
    with bench(tmp_path) as b:
        b.legit_spikes()
        b.legit_control()
        valid_control = P.encode_control(P.ControlState(**control_state(0)))
        # Every hostile name under every key form: bad_key, whatever the payload.
        for name in HOSTILE_NAMES:
            for key in (
                f"{PREFIX}/{name}/spikes/{LAYER}",
                f"{PREFIX}/{LEGIT}/spikes/{name}",
                f"{PREFIX}/{name}/membrane/m",
                f"{PREFIX}/{LEGIT}/weights/{name}",
            ):
                b.hostile(key, spikes(0, [1]), "bad_key")
            b.hostile(f"{PREFIX}/{name}/control", valid_control, "bad_key")
            b.legit_spikes()
        # Path-like keys with extra segments match no subscription: never delivered.
        for key in (
            f"{PREFIX}/{LEGIT}/spikes/../../etc",
            f"{PREFIX}/../../{LEGIT}/spikes/{LAYER}",
            f"{PREFIX}/{LEGIT}/control/..",
            f"{PREFIX}/{LEGIT}/spikes/{LAYER}/control",
            f"{PREFIX}/_recorders/fuzz/status/x",
        ):
            b.hostile(key, spikes(0, [1]), None)
        # Control states with one fault each.
        over_limit = json.dumps(control_state(0, metadata={"pad": "x" * 70_000})).encode()
        deep = json.dumps(control_state(0, metadata="@@")).replace('"@@"', "[" * 5000)
        controls: list[tuple[bytes, str]] = [
            (over_limit, "bad_length"),
            (deep.encode(), "bad_control"),  # truncated, 5000 levels deep
            (deep.replace("[" * 5000, '{"a":' * 2000 + "1" + "}" * 2000).encode(), "bad_control"),
            (json.dumps(control_state(0, node_id="other-0")).encode(), "node_mismatch"),
            (json.dumps(control_state(0, node_id="pfc-0")).encode(), "node_mismatch"),
            (json.dumps(control_state(0, protocol_version=2)).encode(), "bad_version"),
            (json.dumps(control_state(0, extra=1)).encode(), "bad_control"),
            (json.dumps(control_state(0, metadata={"x": math.nan})).encode(), "bad_control"),
            (b"not json at all", "bad_control"),
            # Texts that reach HDF5 attributes: a NUL used to kill the writer thread.
            (json.dumps(control_state(0, module_type="a\u0000b")).encode(), "bad_control"),
            (json.dumps(control_state(0, status="\u001b[2J")).encode(), "bad_control"),
        ]
        for payload, reason in controls:
            b.hostile(CONTROL_KEY, payload, reason)
            b.legit_spikes()
        # The size limit is inclusive: exactly 65,536 bytes is valid, one more is not.
        b.legit_control(size=P.MAX_CONTROL_BYTES)
        state = json.loads(json.dumps(b.sent_controls[-1])) | {"seq": len(b.sent_controls)}
        compact = json.dumps(state, separators=(",", ":")).encode()
        state["metadata"]["pad"] += "x" * (P.MAX_CONTROL_BYTES + 1 - len(compact))
        one_more = json.dumps(state, separators=(",", ":")).encode()
        assert len(one_more) == P.MAX_CONTROL_BYTES + 1
        b.hostile(CONTROL_KEY, one_more, "bad_length")
        # A control state on another node's key naming the legitimate node.
        b.hostile(P.control_key(PREFIX, "other-0"), valid_control, "node_mismatch")
        # Zenoh DELETE samples on our keys carry no message: counted under their own reason.
        for key in (SPIKES_KEY, CONTROL_KEY):
            b.session.delete(key)
            b.hostile_sent += 1
            b.expected["delete_sample"] += 1

        @FUZZ
        @given(hostile_key(), malformed_control())
        def send(key: str, control: tuple[bytes, str]) -> None:
            payload, reason = control
            b.hostile(key, payload if key.endswith("/control") else spikes(0, [1]), "bad_key")
            b.hostile(CONTROL_KEY, payload, reason)
            b.legit_spikes()
            if len(b.sent_spikes) % 10 == 0:
                b.legit_control()

        send()
        b.legit_control()
        stats = b.finish()
    check_recording(b, stats, tmp_path)
    print(
        f"{b.hostile_sent} hostile, {len(b.sent_spikes)} valid spikes messages, "
        f"{len(b.sent_controls)} valid control states, {time.monotonic() - start:.1f} s"
    )
    assert {"bad_key", "bad_control", "bad_version", "node_mismatch", "bad_length"} <= set(
        b.expected
    )


HOSTILE_SESSIONS = [
    "../x",
    "/abs/path",
    "a/b",
    "..",
    ".",
    "../../escape",
    "a b",
    "é",
    "a.b",
    "s" * 65,
    "-x",
    "_x",
    "",
]


def test_hostile_session_names_exit_2_and_create_nothing(tmp_path: Path) -> None:
    rec_dir = tmp_path / "work" / "rec"
    inside_abs = str(tmp_path / "abs" / "path")
    absent = [p for p in ("/abs/path", "/abs") if not os.path.exists(p)]
    cwd_before = sorted(os.listdir())
    parent_before = sorted(os.listdir(tmp_path.parent))
    for name in [*HOSTILE_SESSIONS, inside_abs]:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "recorderd",
                "--session",
                name,
                "--recording-dir",
                str(rec_dir),
                "--listen",
                f"tcp/127.0.0.1:{free_port()}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2, (name, out.returncode, out.stderr[-2000:])
        assert "invalid session name" in out.stderr, (name, out.stderr[-2000:])
        assert list(tmp_path.rglob("*")) == [], (name, tree(tmp_path))
    assert [p for p in absent if os.path.exists(p)] == []
    assert sorted(os.listdir()) == cwd_before
    assert sorted(os.listdir(tmp_path.parent)) == parent_before


@pytest.mark.parametrize("name", ["ok-session"])
def test_a_safe_session_name_is_accepted_for_contrast(tmp_path: Path, name: str) -> None:
    """The same command with a safe name starts and records into <recording-dir>/<name>."""
    rec_dir = tmp_path / "rec"
    args = ["--session", name, "--recording-dir", str(rec_dir)]
    with recorderd(tmp_path, *args, "--listen", f"tcp/127.0.0.1:{free_port()}") as proc:
        assert stop(proc) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"recorderd.log", "rec"}
    assert [p.name for p in rec_dir.iterdir()] == [name]
