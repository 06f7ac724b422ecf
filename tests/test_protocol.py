"""Wire protocol: round trips, the documented example, and every rejection reason."""

from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorderd import wire as P
from recorderd.wire import Kind, ProtocolError, Reason

EXAMPLE_HEX = (  # docs/wire-protocol.md, "An example message"
    "42524e50010100000700000000000000000000000000000003000000000000000000000000000840"
    "000000000000f03f0a000000030000000100000000000000010000000400000009000000"
)


def spikes(**overrides: object) -> bytes:
    args: dict[str, object] = dict(
        incarnation=7, seq=0, step=3, time_ms=3.0, dt_ms=1.0, layer_size=10, data=[1, 4, 9]
    )
    args.update(overrides)
    return P.encode(Kind.SPIKES, **args)  # type: ignore[arg-type]


def test_documented_example_is_what_encode_produces() -> None:
    assert spikes().hex() == EXAMPLE_HEX
    msg = P.decode(bytes.fromhex(EXAMPLE_HEX), Kind.SPIKES)
    assert (msg.header.incarnation, msg.header.seq, msg.header.step) == (7, 0, 3)
    assert msg.data.tolist() == [1, 4, 9]


def test_decode_does_not_copy_the_data() -> None:
    payload = spikes()
    msg = P.decode(payload)
    assert not msg.data.flags.owndata
    assert np.shares_memory(msg.data, np.frombuffer(payload, dtype=np.uint8))


@settings(max_examples=200, deadline=None)
@given(
    layer_size=st.integers(1, 5000),
    seed=st.integers(0, 2**32 - 1),
    incarnation=st.integers(0, 2**64 - 1),
    seq=st.integers(0, 2**64 - 1),
    step=st.integers(0, 2**63 - 1),
    time_ms=st.floats(allow_nan=False, allow_infinity=False),
    dt_ms=st.floats(min_value=1e-9, max_value=1e6),
)
def test_spikes_round_trip(
    layer_size: int, seed: int, incarnation: int, seq: int, step: int, time_ms: float, dt_ms: float
) -> None:
    rng = np.random.default_rng(seed)
    ids = np.flatnonzero(rng.random(layer_size) < rng.random()).astype(np.uint32)
    payload = P.encode(
        Kind.SPIKES,
        incarnation=incarnation,
        seq=seq,
        step=step,
        time_ms=time_ms,
        dt_ms=dt_ms,
        layer_size=layer_size,
        data=ids,
    )
    msg = P.decode(payload, Kind.SPIKES)
    h = msg.header
    assert (h.incarnation, h.seq, h.step, h.time_ms, h.dt_ms, h.layer_size) == (
        incarnation,
        seq,
        step,
        time_ms,
        dt_ms,
        layer_size,
    )
    assert np.array_equal(msg.data, ids)


@settings(max_examples=50, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), seed=st.integers(0, 1000))
def test_weights_and_membrane_round_trip(rows: int, cols: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(rows, cols)).astype(np.float32)
    msg = P.decode(
        P.encode(
            Kind.WEIGHTS,
            incarnation=1,
            seq=2,
            step=3,
            time_ms=3.0,
            dt_ms=1.0,
            layer_size=cols,
            data=w,
        ),
        Kind.WEIGHTS,
    )
    assert msg.data.shape == (rows, cols) and np.array_equal(msg.data, w)
    v = rng.normal(-65, 5, size=cols).astype(np.float32)
    msg = P.decode(
        P.encode(
            Kind.MEMBRANE,
            incarnation=1,
            seq=2,
            step=3,
            time_ms=3.0,
            dt_ms=1.0,
            layer_size=cols,
            data=v,
        ),
        Kind.MEMBRANE,
    )
    assert np.array_equal(msg.data, v)


def _patch(payload: bytes, fmt: str, offset: int, value: object) -> bytes:
    buf = bytearray(payload)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (spikes()[:63], Reason.SHORT_PAYLOAD),
        (b"XXXX" + spikes()[4:], Reason.BAD_MAGIC),
        (_patch(spikes(), "<B", 4, 2), Reason.BAD_VERSION),
        (_patch(spikes(), "<B", 5, 9), Reason.KIND_MISMATCH),
        (_patch(spikes(), "<B", 5, 2), Reason.KIND_MISMATCH),  # membrane payload on a spikes key
        (spikes()[:-1], Reason.BAD_LENGTH),
        (spikes() + b"\0", Reason.BAD_LENGTH),
        (_patch(spikes(), "<I", 52, 2**31), Reason.BAD_LENGTH),  # huge declared count
        (_patch(spikes(), "<I", 56, 2), Reason.BAD_LENGTH),
        (_patch(spikes(), "<d", 32, float("nan")), Reason.BAD_NUMBER),
        (_patch(spikes(), "<d", 40, 0.0), Reason.BAD_NUMBER),
        (_patch(spikes(), "<d", 40, float("inf")), Reason.BAD_NUMBER),
        (_patch(spikes(), "<q", 24, -1), Reason.NEGATIVE_STEP),
        (spikes(data=[1, 10]), Reason.BAD_INDEX),  # index == layer size
        (spikes(data=[4, 1]), Reason.BAD_INDEX),  # unsorted
        (spikes(data=[4, 4]), Reason.BAD_INDEX),  # duplicate
        (spikes(layer_size=2, data=[0, 1, 1]), Reason.BAD_LENGTH),
        (
            P.encode(
                Kind.WEIGHTS,
                incarnation=1,
                seq=0,
                step=0,
                time_ms=0.0,
                dt_ms=1.0,
                layer_size=0,
                data=np.zeros((0, 3), np.float32),
            ),
            Reason.BAD_LENGTH,
        ),
    ],
)
def test_invalid_messages_are_rejected_with_their_reason(payload: bytes, reason: Reason) -> None:
    with pytest.raises(ProtocolError) as info:
        P.decode(payload, Kind.SPIKES if payload[5] != Kind.WEIGHTS else Kind.WEIGHTS)
    assert info.value.reason is reason


def test_membrane_must_cover_the_layer() -> None:
    payload = P.encode(
        Kind.MEMBRANE,
        incarnation=1,
        seq=0,
        step=0,
        time_ms=0.0,
        dt_ms=1.0,
        layer_size=5,
        data=np.zeros(4, np.float32),
    )
    with pytest.raises(ProtocolError) as info:
        P.decode(payload, Kind.MEMBRANE)
    assert info.value.reason is Reason.BAD_LENGTH


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoder(payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        P.decode(payload, Kind.SPIKES)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("brain/pfc-0/spikes/output", P.StreamKey("pfc-0", Kind.SPIKES, "output")),
        (
            "brain/lang-main-0/membrane/lif_layer",
            P.StreamKey("lang-main-0", Kind.MEMBRANE, "lif_layer"),
        ),
        ("brain/v/weights/w_in_out", P.StreamKey("v", Kind.WEIGHTS, "w_in_out")),
        ("brain/pfc-0/control", P.StreamKey("pfc-0", None, "")),
    ],
)
def test_parse_key(key: str, expected: P.StreamKey) -> None:
    assert P.parse_key(key, "brain") == expected


@pytest.mark.parametrize(
    "key",
    [
        "brain/../spikes/x",
        "brain/a/spikes/..",
        "brain/.hidden/spikes/x",
        "brain/a b/spikes/x",
        "brain/a/spikes",
        "brain/a/voltage/x",
        "brain/a/spikes/x/y",
        "other/a/spikes/x",
        "brain/" + "a" * 65 + "/spikes/x",
        "brain/é/spikes/x",
        "brain/a/control/x",
        "brain//control",
    ],
)
def test_hostile_keys_are_rejected(key: str) -> None:
    with pytest.raises(ProtocolError) as info:
        P.parse_key(key, "brain")
    assert info.value.reason is Reason.BAD_KEY


def test_control_round_trip_and_rejections() -> None:
    state = P.ControlState(
        node_id="pfc-0",
        module_type="pfc",
        status="Processing",
        active_task="working_memory_task",
        step_count=5,
        step=5,
        time_ms=5.0,
        incarnation=3,
        seq=0,
        metadata={"pfc_entropy": 1.5, "working_memory_size": 3},
    )
    assert P.decode_control(P.encode_control(state), "pfc-0") == state
    with pytest.raises(ProtocolError) as info:
        P.decode_control(P.encode_control(state), "visual-0")
    assert info.value.reason is Reason.NODE_MISMATCH
    good = P.encode_control(state)
    for bad in (
        b"{",
        b"[]",
        b'{"node_id": "../x"}',
        good.replace(b"5.0", b"NaN"),
        good.replace(b'"step":5', b'"step":-1'),
        good.replace(b'"step":5', b'"step":"5"'),
        good.replace(b'"seq":0,', b""),
        good.replace(b"1.5", b"Infinity"),
        good.replace(b'"status":"Processing"', b'"status":"Processing","extra":1'),
    ):
        with pytest.raises(ProtocolError) as info:
            P.decode_control(bad)
        assert info.value.reason is Reason.BAD_CONTROL, bad
    with pytest.raises(ProtocolError) as info:
        P.decode_control(good.replace(b'"protocol_version":1', b'"protocol_version":2'))
    assert info.value.reason is Reason.BAD_VERSION
