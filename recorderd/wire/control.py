"""Control states: the JSON schema of a node's status, task, step count and metadata."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recorderd.wire.data import PROTOCOL_VERSION
from recorderd.wire.errors import ProtocolError, Reason
from recorderd.wire.names import check_name


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
