"""Key expressions: where each stream, token, barrier and status lives on the bus."""

from __future__ import annotations

import re
from dataclasses import dataclass

from recorderd.wire.data import Kind
from recorderd.wire.errors import ProtocolError, Reason
from recorderd.wire.names import check_name, is_safe_name

DEFAULT_PREFIX = "brain"
CONTROL_WORD = "control"
FLUSH_WORD = "flush"
#: Recorders answer status queries on ``<prefix>/_recorders/<session>/status``; the
#: leading "_" keeps it apart from node ids, which start with a letter or digit.
RECORDERS_WORD = "_recorders"
STATUS_WORD = "status"
#: Recorders of a session declare their part of the key space on
#: ``<prefix>/_recorders/<session>/shards/<shard>`` (``_all`` for an unsharded recorder).
SHARDS_WORD = "shards"
WHOLE_SESSION = "_all"
ALIVE_WORD = "alive"
_KINDS_BY_WORD = {kind.key_word: kind for kind in Kind}


@dataclass(frozen=True, slots=True)
class StreamKey:
    """A parsed key expression: which node, which kind, which layer or weight name."""

    node_id: str
    kind: Kind | None  # None for the control stream
    name: str  # layer or weight name; "" for control

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


def status_key(prefix: str, session: str = "*", shard: str | None = None) -> str:
    """Key of a recorder's live status queryable (``*``: every recorder under ``prefix``).

    A shard's recorder answers on ``.../<session>/status/<shard>``; query
    :func:`status_query_key` to reach every recorder of a session, sharded or not.
    """
    if session != "*":
        check_name(session, "session name")
    key = f"{prefix}/{RECORDERS_WORD}/{session}/{STATUS_WORD}"
    return key if shard is None else f"{key}/{check_name(shard, 'shard name')}"


def status_query_key(prefix: str, session: str = "*") -> str:
    """Key that queries every recorder's status of ``session`` (``*``: of every session)."""
    return status_key(prefix, session) + "/**"


def shard_key(prefix: str, session: str, shard: str | None) -> str:
    """Key on which a recorder answers which nodes it records (its shard's patterns)."""
    name = WHOLE_SESSION if shard is None else check_name(shard, "shard name")
    return f"{prefix}/{RECORDERS_WORD}/{check_name(session, 'session name')}/{SHARDS_WORD}/{name}"


def shards_query_key(prefix: str, session: str = "*") -> str:
    """Key that queries every recorder's part of the key space of ``session`` (or all)."""
    if session != "*":
        check_name(session, "session name")
    return f"{prefix}/{RECORDERS_WORD}/{session}/{SHARDS_WORD}/*"


#: A node pattern: node-id characters and ``*``, which stands for any run of characters
#: within the node id (``pfc-*``, ``*-0``, ``*``); never ``**``.
_NODE_PATTERN_RE = re.compile(r"(?!.*\*\*)[A-Za-z0-9*][A-Za-z0-9_*-]{0,63}")


def check_node_pattern(pattern: str) -> str:
    """Return ``pattern`` if it is a valid node pattern, else raise ``ValueError``."""
    if _NODE_PATTERN_RE.fullmatch(pattern) is None:
        raise ValueError(
            f"invalid node pattern {pattern!r}: a node id in which '*' stands for any "
            "characters (letters, digits, '_', '-' and single '*', at most 64 characters)"
        )
    return pattern


def node_chunk(pattern: str) -> str:
    """The key-expression chunk of a node pattern: ``pfc-*`` -> ``pfc-$*``, ``*`` -> ``*``.

    Zenoh routes on it: a shard's subscriptions reach only its nodes' publishers.
    """
    check_node_pattern(pattern)
    return "*" if pattern == "*" else pattern.replace("*", "$*")


def node_matches(pattern: str, node_id: str) -> bool:
    """Whether ``node_id`` falls in ``pattern`` (the same rule Zenoh applies to the chunk)."""
    regex = "".join(".*" if c == "*" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, node_id) is not None


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
