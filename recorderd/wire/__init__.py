"""The wire protocol between brain nodes and recorders (``docs/wire-protocol.md``).

Key expressions, the data-message header and its encode/decode, the control-state
schema, safe names and rejection reasons: the single definition that publishers
import to encode and recorders to decode. Imports numpy and pydantic only, never
zenoh or h5py, so any process can speak the protocol.
"""

from __future__ import annotations

from recorderd.wire.busconfig import MODES, Mode, zenoh_settings
from recorderd.wire.control import MAX_CONTROL_BYTES, ControlState, decode_control, encode_control
from recorderd.wire.data import (
    HEADER_SIZE,
    MAGIC,
    MAX_ELEMENTS,
    PROTOCOL_VERSION,
    DataMessage,
    Header,
    Kind,
    decode,
    encode,
)
from recorderd.wire.errors import SEQUENCED_REASONS, ProtocolError, Reason
from recorderd.wire.keys import (
    ALIVE_WORD,
    CONTROL_WORD,
    DEFAULT_PREFIX,
    FLUSH_WORD,
    RECORDERS_WORD,
    StreamKey,
    check_node_pattern,
    control_key,
    data_key,
    flush_key,
    liveliness_key,
    node_chunk,
    node_matches,
    parse_key,
    shard_key,
    shards_query_key,
    status_key,
    status_query_key,
)
from recorderd.wire.names import NAME_PATTERN, check_name, check_prefix, is_safe_name

__all__ = [
    "ALIVE_WORD",
    "CONTROL_WORD",
    "DEFAULT_PREFIX",
    "FLUSH_WORD",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_CONTROL_BYTES",
    "MAX_ELEMENTS",
    "MODES",
    "NAME_PATTERN",
    "PROTOCOL_VERSION",
    "RECORDERS_WORD",
    "SEQUENCED_REASONS",
    "ControlState",
    "DataMessage",
    "Header",
    "Kind",
    "Mode",
    "ProtocolError",
    "Reason",
    "StreamKey",
    "check_name",
    "check_node_pattern",
    "check_prefix",
    "control_key",
    "data_key",
    "decode",
    "decode_control",
    "encode",
    "encode_control",
    "flush_key",
    "is_safe_name",
    "liveliness_key",
    "node_chunk",
    "node_matches",
    "parse_key",
    "shard_key",
    "shards_query_key",
    "status_key",
    "status_query_key",
    "zenoh_settings",
]
