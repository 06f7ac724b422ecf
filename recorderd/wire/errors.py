"""Why a message is rejected: the reasons every rejection count is kept under."""

from __future__ import annotations

import enum


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
    #: A sequence jump far beyond what could have been lost (``recorderd.core.sequence``).
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
