"""Data messages: the 64-byte header, the three kinds and their encode/decode."""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recorderd.wire.errors import ProtocolError, Reason

PROTOCOL_VERSION = 1
MAGIC = b"BRNP"

#: Upper bound on elements in one data message (64 Mi elements = 256 MiB of float32).
MAX_ELEMENTS = 1 << 26

# Header: magic, version, kind, reserved, incarnation, seq, step, time_ms, dt_ms,
# layer_size, n0, n1, reserved. Little-endian, 64 bytes, so data starts 8-aligned.
_HEADER = struct.Struct("<4sBBHQQqddIIII")
HEADER_SIZE = _HEADER.size
assert HEADER_SIZE == 64


class Kind(enum.IntEnum):
    """Data stream kinds; the value is the ``kind`` byte of the header."""

    SPIKES = 1
    MEMBRANE = 2
    WEIGHTS = 3

    @property
    def key_word(self) -> str:
        """The key-expression segment naming this kind."""
        return _KEY_WORDS[self]

    @property
    def dtype(self) -> np.dtype[Any]:
        """The little-endian element dtype of this kind's data."""
        return _DTYPES[self]


_KEY_WORDS = {Kind.SPIKES: "spikes", Kind.MEMBRANE: "membrane", Kind.WEIGHTS: "weights"}
_DTYPES: dict[Kind, np.dtype[Any]] = {
    Kind.SPIKES: np.dtype("<u4"),
    Kind.MEMBRANE: np.dtype("<f4"),
    Kind.WEIGHTS: np.dtype("<f4"),
}


@dataclass(frozen=True, slots=True)
class Header:
    """The fixed 64-byte header of every data message."""

    kind: Kind
    incarnation: int
    seq: int
    step: int
    time_ms: float
    dt_ms: float
    layer_size: int
    n0: int
    n1: int


@dataclass(frozen=True, slots=True)
class DataMessage:
    """A decoded data message; ``data`` is a read-only view into the payload."""

    header: Header
    data: npt.NDArray[Any]


def encode(
    kind: Kind,
    *,
    incarnation: int,
    seq: int,
    step: int,
    time_ms: float,
    dt_ms: float,
    layer_size: int,
    data: npt.ArrayLike,
) -> bytes:
    """Encode one data message.

    ``data`` is the spiking neurons' indices (spikes), one float per neuron
    (membrane, mV) or a 2-D matrix (weights).
    """
    arr = np.ascontiguousarray(data, dtype=kind.dtype)
    if kind is Kind.WEIGHTS:
        if arr.ndim != 2:
            raise ValueError(f"weights must be 2-D, got shape {arr.shape}")
        n0, n1 = arr.shape
    else:
        if arr.ndim != 1:
            raise ValueError(f"{kind.key_word} data must be 1-D, got shape {arr.shape}")
        n0, n1 = arr.shape[0], 1
    header = _HEADER.pack(
        MAGIC,
        PROTOCOL_VERSION,
        int(kind),
        0,
        incarnation,
        seq,
        step,
        time_ms,
        dt_ms,
        layer_size,
        n0,
        n1,
        0,
    )
    return header + arr.tobytes()


def decode(payload: bytes | bytearray | memoryview, expected: Kind | None = None) -> DataMessage:
    """Decode and validate a data message; raise ``ProtocolError`` with a reason if invalid."""
    if len(payload) < HEADER_SIZE:
        raise ProtocolError(Reason.SHORT_PAYLOAD, f"{len(payload)} bytes < {HEADER_SIZE}")
    (magic, version, kind_b, _r0, inc, seq, step, t, dt, size, n0, n1, _r1) = _HEADER.unpack_from(
        payload
    )
    if magic != MAGIC:
        raise ProtocolError(Reason.BAD_MAGIC, f"magic {magic!r} != {MAGIC!r}")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(Reason.BAD_VERSION, f"version {version} != {PROTOCOL_VERSION}")
    try:
        kind = Kind(kind_b)
    except ValueError:
        raise ProtocolError(Reason.KIND_MISMATCH, f"unknown kind byte {kind_b}") from None
    if expected is not None and kind is not expected:
        raise ProtocolError(
            Reason.KIND_MISMATCH, f"{kind.key_word} payload on a {expected.key_word} key"
        )
    sequence = (inc, seq)
    if not (math.isfinite(t) and math.isfinite(dt)) or dt <= 0.0:
        raise ProtocolError(Reason.BAD_NUMBER, f"time_ms={t!r} dt_ms={dt!r}", sequence)
    if step < 0:
        raise ProtocolError(Reason.NEGATIVE_STEP, f"step {step}", sequence)
    n_elements = n0 * n1
    if kind is not Kind.WEIGHTS and n1 != 1:
        raise ProtocolError(Reason.BAD_LENGTH, f"n1={n1} must be 1 for {kind.key_word}", sequence)
    if kind is Kind.WEIGHTS and (n0 == 0 or n1 == 0):
        raise ProtocolError(Reason.BAD_LENGTH, f"empty {n0}x{n1} weight matrix", sequence)
    if n_elements > MAX_ELEMENTS or size > MAX_ELEMENTS:
        raise ProtocolError(
            Reason.BAD_LENGTH, f"declared {n0}x{n1} elements, layer {size}", sequence
        )
    expected_len = HEADER_SIZE + n_elements * kind.dtype.itemsize
    if len(payload) != expected_len:
        raise ProtocolError(
            Reason.BAD_LENGTH, f"{len(payload)} bytes, header declares {expected_len}", sequence
        )
    data = np.frombuffer(payload, dtype=kind.dtype, count=n_elements, offset=HEADER_SIZE)
    if kind is Kind.SPIKES:
        if n0 > size:
            raise ProtocolError(Reason.BAD_LENGTH, f"{n0} spikes in a layer of {size}", sequence)
        if n0 and (int(data[-1]) >= size or (n0 > 1 and not bool(np.all(data[1:] > data[:-1])))):
            raise ProtocolError(
                Reason.BAD_INDEX,
                f"indices must be strictly increasing and < layer size {size}",
                sequence,
            )
    elif kind is Kind.MEMBRANE:
        if n0 != size:
            raise ProtocolError(
                Reason.BAD_LENGTH, f"{n0} membrane values for a layer of {size}", sequence
            )
    else:
        data = data.reshape(n0, n1)
    header = Header(kind, inc, seq, step, t, dt, size, n0, n1)
    return DataMessage(header, data)
