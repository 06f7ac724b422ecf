"""decode_batch agrees with decode, message by message, on valid and arbitrary payloads."""

from __future__ import annotations

import os
import shutil
import struct
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorderd import wire as P
from recorderd.wire import batch as wire_batch
from recorderd.wire.batch import SMALL_BATCH, decode_batch

HEADER = struct.Struct("<4sBBHQQqddIIII")


def per_message(payloads: list[bytes], kind: P.Kind) -> list[tuple[str, object]]:
    """What decode says of each payload: ("ok", (header, data)) or (reason, sequence)."""
    out: list[tuple[str, object]] = []
    for p in payloads:
        try:
            m = P.decode(p, kind)
        except P.ProtocolError as exc:
            out.append((exc.reason.value, exc.sequence))
        else:
            out.append(("ok", (m.header, m.data.reshape(-1).tolist())))
    return out


def batched(payloads: list[bytes], kind: P.Kind) -> list[tuple[str, object]]:
    b = decode_batch(payloads, kind)
    out: list[tuple[str, object] | None] = [None] * len(payloads)
    for i, reason, _, seq in b.rejected:
        out[i] = (reason.value, seq)
    for j, i in enumerate(b.valid):
        h = b.header[j]
        header = P.Header(
            kind,
            int(h["incarnation"]),
            int(h["seq"]),
            int(h["step"]),
            float(h["time_ms"]),
            float(h["dt_ms"]),
            int(h["layer_size"]),
            int(h["n0"]),
            int(h["n1"]),
        )
        out[int(i)] = ("ok", (header, b.data[b.offsets[j] : b.offsets[j + 1]].tolist()))
    assert all(o is not None for o in out)
    return out  # type: ignore[return-value]


def valid(kind: P.Kind, seq: int, n: int, size: int = 50) -> bytes:
    rng = np.random.default_rng(seq)
    if kind is P.Kind.SPIKES:
        data: object = np.sort(rng.choice(size, min(n, size), replace=False))
    elif kind is P.Kind.MEMBRANE:
        data = rng.normal(-60, 5, size)
    else:
        data = rng.random((3, 4))
    return P.encode(
        kind,
        incarnation=7,
        seq=seq,
        step=seq,
        time_ms=float(seq),
        dt_ms=0.5,
        layer_size=size,
        data=data,
    )


def mutate(payload: bytes, field: int, value: int) -> bytes:
    """Overwrite one header byte (a field start) or cut/extend the payload."""
    b = bytearray(payload)
    if field < len(b):
        b[field] = value
    return bytes(b)


#: Header fields (offset, struct format) and values at the edges of each check.
FIELDS = {
    "version": (4, "<B", [0, 1, 2]),
    "kind": (5, "<B", [0, 1, 2, 3, 4]),
    "step": (24, "<q", [-1, 0, 1, -(2**63)]),
    "time_ms": (32, "<d", [float("nan"), float("inf"), -1e300, 0.0]),
    "dt_ms": (40, "<d", [0.0, -0.0, -1.0, float("nan"), 1e-300]),
    "layer_size": (48, "<I", [0, 1, 12, 13, 49, 50, 51, 2**26, 2**26 + 1]),
    "n0": (52, "<I", [0, 1, 11, 12, 13, 50, 51, 2**26]),
    "n1": (56, "<I", [0, 1, 2, 4]),
}


def set_field(payload: bytes, name: str, value: float) -> bytes:
    at, fmt, _ = FIELDS[name]
    b = bytearray(payload)
    struct.pack_into(fmt, b, at, value)
    return bytes(b)


@st.composite
def payloads(draw: st.DrawFn, kind: P.Kind, most: int = 30) -> list[bytes]:
    out = []
    for seq in range(draw(st.integers(0, most))):
        p = valid(kind, seq, draw(st.integers(0, 12)))
        action = draw(
            st.sampled_from(
                ["keep", "keep", "field", "field", "byte", "cut", "grow", "junk", "idx"]
            )
        )
        if action == "field" and len(p) >= 64:
            name = draw(st.sampled_from(sorted(FIELDS)))
            p = set_field(p, name, draw(st.sampled_from(FIELDS[name][2])))
        elif action == "byte":
            field = draw(st.sampled_from([0, 4, 5, 24, 31, 39, 40, 47, 48, 51, 52, 55, 56, 64, 68]))
            p = mutate(p, field, draw(st.integers(0, 255)))
        elif action == "cut":
            p = p[: draw(st.integers(0, len(p)))]
        elif action == "grow":
            p = p + bytes(draw(st.integers(1, 9)))
        elif action == "junk":
            p = draw(st.binary(max_size=120))
        elif action == "idx" and kind is P.Kind.SPIKES and len(p) > 68:
            ids = np.frombuffer(p, "<u4", offset=64).copy()
            at = draw(st.sampled_from([ids.size - 1, draw(st.integers(0, ids.size - 1))]))
            ids[at] = draw(st.sampled_from([0, 1, 48, 49, 50, 51]))
            p = p[:64] + ids.tobytes()
        out.append(p)
    return out


CHECK = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@CHECK
@given(st.data())
def test_decode_batch_matches_decode(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(list(P.Kind)))
    batch = data.draw(payloads(kind))
    assert batched(batch, kind) == per_message(batch, kind)


@CHECK
@given(st.data())
def test_small_batches_decode_as_the_column_path_does(data: st.DataObject) -> None:
    """Up to SMALL_BATCH messages take the message-by-message path: the same Batch
    (valid rows, header columns, data, offsets, rejections with their detail text)."""
    kind = data.draw(st.sampled_from(list(P.Kind)))
    batch = data.draw(payloads(kind, most=SMALL_BATCH))
    small = decode_batch(batch, kind)
    saved, wire_batch.SMALL_BATCH = wire_batch.SMALL_BATCH, 0
    try:
        column = decode_batch(batch, kind)
    finally:
        wire_batch.SMALL_BATCH = saved
    assert small.valid.tolist() == column.valid.tolist()
    assert small.header.tobytes() == column.header.tobytes()
    assert small.data.dtype == column.data.dtype
    assert small.data.tolist() == column.data.tolist()
    assert small.offsets.tolist() == column.offsets.tolist()
    assert small.rejected == column.rejected
    assert batched(batch, kind) == per_message(batch, kind)


def test_a_batch_of_valid_spikes_keeps_every_message_and_spike() -> None:
    batch = [valid(P.Kind.SPIKES, s, s % 9) for s in range(500)]
    b = decode_batch(batch, P.Kind.SPIKES)
    assert b.rejected == [] and b.valid.tolist() == list(range(500))
    assert b.data.size == sum(min(s % 9, 50) for s in range(500))
    assert b.header["seq"].tolist() == list(range(500))


def test_wrong_kind_key_and_empty_batch() -> None:
    assert len(decode_batch([], P.Kind.SPIKES)) == 0
    b = decode_batch([valid(P.Kind.MEMBRANE, 0, 0)], P.Kind.SPIKES)
    assert [r[1] for r in b.rejected] == [P.Reason.KIND_MISMATCH]


def test_a_weight_matrix_whose_size_overflows_int64_is_rejected_as_decode_does() -> None:
    """n0 * n1 of two u32 passes 2^63: in int64 it wrapped, and a 3,548-byte payload then
    "had" its declared length; decode_batch kept it as valid and the writer thread raised
    (one crafted message on a weights key would have stopped the recorder)."""
    n0, n1, words = 3_038_845_399, 3_035_156_721, 871  # n0 * n1 = 2^63 + 871
    assert n0 * n1 == 2**63 + words
    hostile = HEADER.pack(b"BRNP", 1, int(P.Kind.WEIGHTS), 0, 1, 2, 3, 1.0, 1.0, 10, n0, n1, 0)
    hostile += bytes(4 * words)
    ok = valid(P.Kind.WEIGHTS, 5, 0)
    for batch in ([hostile], [hostile] * (SMALL_BATCH + 1), [ok] * SMALL_BATCH + [hostile]):
        assert batched(batch, P.Kind.WEIGHTS) == per_message(batch, P.Kind.WEIGHTS)
        b = decode_batch(batch, P.Kind.WEIGHTS)
        bad = [i for i, p in enumerate(batch) if p is hostile]
        assert [(r[0], r[1]) for r in b.rejected] == [(i, P.Reason.BAD_LENGTH) for i in bad]
        assert b.valid.tolist() == [i for i in range(len(batch)) if i not in bad]


# -- the C module (recorderd/wire/_fastbatch.c) ----------------------------------------


def compiler_and_headers() -> bool:
    """A C compiler and Python's headers: what the optional C module needs at install."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which(cc) is not None and headers.is_file()


def numpy_only(payloads: list[bytes], kind: P.Kind) -> wire_batch.Batch:
    saved, wire_batch._decode_valid = wire_batch._decode_valid, None
    try:
        return decode_batch(payloads, kind)
    finally:
        wire_batch._decode_valid = saved


def same_batch(a: wire_batch.Batch, b: wire_batch.Batch) -> None:
    assert a.valid.tolist() == b.valid.tolist()
    assert a.header.dtype == b.header.dtype and a.header.tobytes() == b.header.tobytes()
    assert a.data.dtype == b.data.dtype
    assert a.data.tobytes() == b.data.tobytes()  # bytes: NaN membrane values compare equal
    assert a.offsets.tolist() == b.offsets.tolist()
    assert a.rejected == b.rejected


def test_the_c_modules_are_used_where_they_can_be_built() -> None:
    """Where the install could compile them, the daemon runs them: a build that silently
    fell back to the Python code would leave the C code untested."""
    from recorderd.daemon import intake

    if os.environ.get(wire_batch.NATIVE_ENV) == "0":
        pytest.skip(f"{wire_batch.NATIVE_ENV}=0 in the environment")
    if not compiler_and_headers():
        pytest.skip("no C compiler or no Python headers here: the Python code alone runs")
    assert (wire_batch.NATIVE_OFF, intake.NATIVE_OFF) == (None, None)


native = pytest.mark.skipif(wire_batch.NATIVE_OFF is not None, reason="the C module is off")


@st.composite
def mostly_valid(draw: st.DrawFn, kind: P.Kind) -> list[bytes]:
    """Batches of valid messages, some with one message spoiled as ``payloads`` does."""
    batch = [valid(kind, s, draw(st.integers(0, 12))) for s in range(draw(st.integers(0, 40)))]
    if batch and draw(st.booleans()):
        at = draw(st.integers(0, len(batch) - 1))
        batch[at] = draw(payloads(kind, most=1).filter(len))[0]
    return batch


@native
@CHECK
@given(st.data())
def test_the_c_module_passes_exactly_the_batches_decode_finds_all_valid(
    data: st.DataObject,
) -> None:
    """decode_valid returns None when decode rejects any message of the batch, and else
    what the numpy path gives, byte for byte."""
    kind = data.draw(st.sampled_from(list(P.Kind)))
    batch = data.draw(st.one_of(mostly_valid(kind), payloads(kind)))
    verdicts = per_message(batch, kind)
    all_valid = all(v[0] == "ok" for v in verdicts)
    assert (wire_batch._fastbatch.decode_valid(batch, int(kind), P.MAX_ELEMENTS) is not None) is (
        all_valid
    )
    same_batch(decode_batch(batch, kind), numpy_only(batch, kind))
    assert batched(batch, kind) == verdicts


@native
def test_the_c_module_leaves_other_payload_types_and_hostile_sizes_to_numpy() -> None:
    ok = valid(P.Kind.SPIKES, 1, 5)
    fast = wire_batch._fastbatch.decode_valid
    assert fast([ok, bytearray(ok)], int(P.Kind.SPIKES), P.MAX_ELEMENTS) is None
    assert fast([ok, memoryview(ok)], int(P.Kind.SPIKES), P.MAX_ELEMENTS) is None  # type: ignore[list-item]
    same_batch(
        decode_batch([ok, bytearray(ok)], P.Kind.SPIKES), numpy_only([ok, ok], P.Kind.SPIKES)
    )
    # Declared sizes past the bound, a count that overflows 32 bits when multiplied.
    n0, n1 = 3_038_845_399, 3_035_156_721
    hostile = HEADER.pack(b"BRNP", 1, int(P.Kind.WEIGHTS), 0, 1, 2, 3, 1.0, 1.0, 10, n0, n1, 0)
    assert fast([hostile + bytes(3484)], int(P.Kind.WEIGHTS), P.MAX_ELEMENTS) is None
    assert fast([ok[:63]], int(P.Kind.SPIKES), P.MAX_ELEMENTS) is None


@pytest.mark.parametrize("decoder", ["as installed", "numpy only"])
def test_a_large_valid_batch_of_each_kind_on_both_paths(decoder: str) -> None:
    for kind in P.Kind:
        batch = [valid(kind, s, s % 13) for s in range(1000)]
        b = decode_batch(batch, kind) if decoder == "as installed" else numpy_only(batch, kind)
        assert b.rejected == [] and b.valid.tolist() == list(range(1000))
        assert b.header["seq"].tolist() == list(range(1000))
        expect = [P.decode(p, kind).data.reshape(-1) for p in batch]
        assert b.data.tobytes() == np.concatenate(expect).tobytes()
        assert b.offsets.tolist() == np.cumsum([0] + [e.size for e in expect]).tolist()
