"""Wire protocol between brain nodes and recorders: key expressions and payloads.

This module is the single definition of the protocol documented in
``docs/wire-protocol.md``. It imports numpy and pydantic only (never zenoh), so
publishers in any process can encode with it and the daemon can decode with it.
"""

from __future__ import annotations

import enum
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PROTOCOL_VERSION = 1
MAGIC = b"BRNP"
DEFAULT_PREFIX = "brain"

#: Node ids, layer and weight names: ASCII letters, digits, ``_`` and ``-``,
#: starting with a letter or digit, at most 64 characters. No ``.``, ``/`` or
#: anything else that could mean something in a path, a key expression or HDF5.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_NAME_RE = re.compile(NAME_PATTERN)
#: Key prefixes: one or more safe names joined by ``/``.
_PREFIX_RE = re.compile(rf"{NAME_PATTERN}(/{NAME_PATTERN})*")

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
_KINDS_BY_WORD = {word: kind for kind, word in _KEY_WORDS.items()}
_DTYPES: dict[Kind, np.dtype[Any]] = {
    Kind.SPIKES: np.dtype("<u4"),
    Kind.MEMBRANE: np.dtype("<f4"),
    Kind.WEIGHTS: np.dtype("<f4"),
}
CONTROL_WORD = "control"
FLUSH_WORD = "flush"
#: Recorders answer status queries on ``<prefix>/_recorders/<session>/status``; the
#: leading "_" keeps it apart from node ids, which start with a letter or digit.
RECORDERS_WORD = "_recorders"
ALIVE_WORD = "alive"


class Reason(enum.StrEnum):
    """Why a received message was rejected; each is counted separately."""

    BAD_KEY = "bad_key"
    SHORT_PAYLOAD = "short_payload"
    BAD_MAGIC = "bad_magic"
    BAD_VERSION = "bad_version"
    KIND_MISMATCH = "kind_mismatch"
    BAD_LENGTH = "bad_length"
    BAD_NUMBER = "bad_number"
    NEGATIVE_STEP = "negative_step"
    BAD_INDEX = "bad_index"
    BAD_CONTROL = "bad_control"
    NODE_MISMATCH = "node_mismatch"
    #: Valid on its own, but its layer size or matrix shape differs from what the
    #: session already holds for that stream (rejected by the recorder, not the decoder).
    SHAPE_CHANGED = "shape_changed"
    #: A new stream beyond the recorder's limits (streams in all, per node, or the memory
    #: one stream may claim); existing streams keep recording.
    STREAM_LIMIT = "stream_limit"
    #: A sequence jump far beyond what could have been lost (``recorderd.sequence``).
    IMPLAUSIBLE_SEQ = "implausible_seq"
    #: A Zenoh DELETE sample on one of our keys: it carries no message.
    DELETE_SAMPLE = "delete_sample"


#: Reasons found once the header is known to be ours (magic, version and kind checked):
#: the message's incarnation and seq count for the stream's sequence accounting.
SEQUENCED_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.BAD_NUMBER,
        Reason.NEGATIVE_STEP,
        Reason.BAD_LENGTH,
        Reason.BAD_INDEX,
        Reason.BAD_CONTROL,
        Reason.SHAPE_CHANGED,
    }
)


class ProtocolError(ValueError):
    """A message that does not follow the wire protocol.

    ``sequence`` is the message's ``(incarnation, seq)`` when they could be read from a
    header (or control state) that is otherwise ours, else None.
    """

    def __init__(
        self, reason: Reason, detail: str, sequence: tuple[int, int] | None = None
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.sequence = sequence
        super().__init__(f"{reason.value}: {detail}")


def is_safe_name(name: str) -> bool:
    """Whether ``name`` is a valid node id, layer name or weight name."""
    return _NAME_RE.fullmatch(name) is not None


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is safe, else raise ``ValueError`` naming the rule."""
    if not is_safe_name(name):
        raise ValueError(
            f"invalid {what} {name!r}: must match {NAME_PATTERN} "
            "(letters, digits, '_' and '-', at most 64 characters)"
        )
    return name


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a valid key prefix, else raise ``ValueError``."""
    if _PREFIX_RE.fullmatch(prefix) is None:
        raise ValueError(f"invalid key prefix {prefix!r}: safe names joined by '/'")
    return prefix


@dataclass(frozen=True, slots=True)
class StreamKey:
    """A parsed key expression: which node, which kind, which layer or weight name."""

    node_id: str
    kind: Kind | None  # None for the control stream
    name: str  # layer or weight name; "" for control

    @property
    def is_control(self) -> bool:
        """Whether this is the node's control-state stream."""
        return self.kind is None

    @property
    def stream_id(self) -> str:
        """The key without its prefix, e.g. ``pfc-0/spikes/output``, naming a stream."""
        if self.kind is None:
            return f"{self.node_id}/{CONTROL_WORD}"
        return f"{self.node_id}/{self.kind.key_word}/{self.name}"


def data_key(prefix: str, node_id: str, kind: Kind, name: str) -> str:
    """Key expression of a data stream, e.g. ``brain/pfc-0/spikes/output``."""
    return f"{prefix}/{check_name(node_id, 'node id')}/{kind.key_word}/{check_name(name)}"


def control_key(prefix: str, node_id: str) -> str:
    """Key expression of a node's control states, e.g. ``brain/pfc-0/control``."""
    return f"{prefix}/{check_name(node_id, 'node id')}/{CONTROL_WORD}"


def liveliness_key(prefix: str, node_id: str) -> str:
    """Liveliness token key a node holds while it runs, e.g. ``brain/pfc-0/alive``."""
    return f"{prefix}/{check_name(node_id, 'node id')}/{ALIVE_WORD}"


def flush_key(prefix: str, node_id: str) -> str:
    """Key a node queries before it closes its session (flush barrier): ``brain/pfc-0/flush``.

    A recorder answers only once the samples the node sent before the query have reached
    it, so a node that waits for the replies loses nothing when it closes its session.
    """
    return f"{prefix}/{check_name(node_id, 'node id')}/{FLUSH_WORD}"


def status_key(prefix: str, session: str = "*") -> str:
    """Key of a recorder's live status queryable (``*``: every recorder under ``prefix``)."""
    if session != "*":
        check_name(session, "session name")
    return f"{prefix}/{RECORDERS_WORD}/{session}/status"


def parse_key(key: str, prefix: str) -> StreamKey:
    """Parse a key expression under ``prefix``; raise ``ProtocolError`` if it is not one of ours."""
    head = prefix + "/"
    if not key.startswith(head):
        raise ProtocolError(Reason.BAD_KEY, f"key outside prefix {prefix!r}: {key[:200]!r}")
    parts = key[len(head) :].split("/")
    if not parts or not is_safe_name(parts[0]):
        raise ProtocolError(Reason.BAD_KEY, f"unsafe node id in key {key[:200]!r}")
    if len(parts) == 2 and parts[1] == CONTROL_WORD:
        return StreamKey(parts[0], None, "")
    if len(parts) == 3 and parts[1] in _KINDS_BY_WORD and is_safe_name(parts[2]):
        return StreamKey(parts[0], _KINDS_BY_WORD[parts[1]], parts[2])
    raise ProtocolError(Reason.BAD_KEY, f"unknown key {key[:200]!r}")


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


class ControlState(BaseModel):
    """One control-state message: the recording guide's fields plus step, time and sequence."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    protocol_version: int = PROTOCOL_VERSION
    node_id: str
    module_type: str = Field(min_length=1, max_length=64)
    status: str = Field(min_length=1, max_length=64)
    active_task: str | None = Field(default=None, max_length=256)
    step_count: int = Field(ge=0)
    step: int = Field(ge=0)
    time_ms: float = Field(allow_inf_nan=False)
    incarnation: int = Field(ge=0, lt=1 << 64)
    seq: int = Field(ge=0, lt=1 << 64)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _finite_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not _all_finite(value):
            raise ValueError("metadata must not contain NaN or infinite numbers")
        return value

    @field_validator("node_id")
    @classmethod
    def _safe_node_id(cls, value: str) -> str:
        return check_name(value, "node id")

    @field_validator("module_type", "status", "active_task")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        # These texts reach HDF5 attributes and reports: HDF5 strings cannot hold NUL,
        # and no control character belongs in a label.
        if value is not None and _CONTROL_CHARS.search(value):
            raise ValueError("must not contain control characters (U+0000-U+001F, U+007F-U+009F)")
        return value

    @field_validator("protocol_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != PROTOCOL_VERSION:
            raise ValueError(f"protocol_version {value} != {PROTOCOL_VERSION}")
        return value


MAX_CONTROL_BYTES = 64 * 1024
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f]")


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_all_finite(v) for v in value)
    return True


def encode_control(state: ControlState) -> bytes:
    """Encode a control state as UTF-8 JSON."""
    return state.model_dump_json().encode()


def decode_control(
    payload: bytes | bytearray | memoryview, node_id: str | None = None
) -> ControlState:
    """Decode and validate a control state; raise ``ProtocolError`` if invalid."""
    if len(payload) > MAX_CONTROL_BYTES:
        raise ProtocolError(Reason.BAD_LENGTH, f"control state of {len(payload)} bytes")
    try:
        state = ControlState.model_validate_json(bytes(payload))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        reason = Reason.BAD_VERSION if where == "protocol_version" else Reason.BAD_CONTROL
        raise ProtocolError(
            reason, f"{where}: {first['msg']}", _control_sequence(payload)
        ) from None
    if node_id is not None and state.node_id != node_id:
        raise ProtocolError(
            Reason.NODE_MISMATCH, f"node_id {state.node_id!r} on key of {node_id!r}"
        )
    return state


def _control_sequence(payload: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """``(incarnation, seq)`` of an invalid control state, if both are valid integers."""
    try:
        obj = json.loads(bytes(payload))
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    inc, seq = obj.get("incarnation"), obj.get("seq")
    if type(inc) is int and type(seq) is int and 0 <= inc < 1 << 64 and 0 <= seq < 1 << 64:
        return inc, seq
    return None
