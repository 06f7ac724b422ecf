"""The recorder's Zenoh side: the only module of ``recorderd`` that imports zenoh.

The recorder's session (:class:`Bus`), the short-lived sessions of ``recorderctl``
(:class:`Client` to ask, :class:`Player` to publish a recorded session back), and
Zenoh's errors turned into :class:`BusError`, one line a person can act on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import zenoh

from recorderd.session.threads import QUERY, SUB, name_os_thread
from recorderd.wire import (
    ALIVE_WORD,
    CONTROL_WORD,
    FLUSH_WORD,
    Kind,
    is_safe_name,
    node_chunk,
    zenoh_settings,
)

log = logging.getLogger(__name__)

#: After a reply, how long a query waits for more before it returns (each recorder
#: answers at once; the query's own end comes sooner when every queryable has answered).
QUIET_S: Final = 0.3
#: Replies one query collects at most (a bus may hold any number of tokens or repliers),
#: and bytes of reply payloads at most: past either, the query stops collecting.
MAX_REPLIES: Final = 65_536
MAX_REPLY_BYTES: Final = 64 << 20
#: Where Zenoh's messages name their Rust source ("... at /root/.cargo/.../x.rs:447.").
_RUST_LOCATION = re.compile(r"\s+at /\S+?\.rs:\d+\.?")
#: The endpoint a failed listen names, in Zenoh's message.
_BOUND_TO = re.compile(r"bound to (\S+?):?\s")

BusProblem = Literal["in_use", "unreachable", "other"]


class BusError(RuntimeError):
    """A Zenoh session could not be opened or used.

    ``problem`` is ``in_use`` (a listen endpoint is taken), ``unreachable`` (nothing
    answers at the connect endpoints) or ``other``; ``endpoint`` names the endpoint(s)
    concerned; ``detail`` is Zenoh's message without its Rust source locations.
    """

    def __init__(self, problem: BusProblem, endpoint: str, detail: str) -> None:
        super().__init__(detail)
        self.problem: BusProblem = problem
        self.endpoint = endpoint
        self.detail = detail


def zenoh_message(exc: BaseException) -> str:
    """Zenoh's error text on one line, without the Rust source paths it carries."""
    return " ".join(_RUST_LOCATION.sub("", str(exc)).split())


def endpoints(config: zenoh.Config) -> dict[str, Any]:
    """Mode, connect and listen endpoints of ``config`` (for messages and logs)."""
    out: dict[str, Any] = {}
    for name, path in (("mode", "mode"), ("connect", "connect/endpoints")):
        out[name] = json.loads(config.get_json(path))
    out["listen"] = json.loads(config.get_json("listen/endpoints"))
    return out


def _as_list(value: Any) -> list[str]:
    # Zenoh's endpoint lists may also be given per mode ({"peer": [...], ...}).
    if isinstance(value, dict):
        return [str(e) for v in value.values() for e in (v if isinstance(v, list) else [v])]
    return [str(e) for e in value] if isinstance(value, list) else []


def open_session(config: zenoh.Config) -> zenoh.Session:
    """``zenoh.open(config)``, with a failure raised as :class:`BusError`."""
    try:
        return zenoh.open(config)
    except zenoh.ZError as exc:
        raise _bus_error(exc, config) from None


def _bus_error(exc: zenoh.ZError, config: zenoh.Config) -> BusError:
    detail = zenoh_message(exc)
    try:
        where = endpoints(config)
    except (zenoh.ZError, ValueError):  # pragma: no cover - the config was just used
        where = {"connect": [], "listen": []}
    if "already in use" in detail:
        bound = _BOUND_TO.search(detail)
        listen = _as_list(where.get("listen"))
        return BusError("in_use", bound.group(1) if bound else ", ".join(listen), detail)
    if "Unable to connect" in detail:
        return BusError("unreachable", ", ".join(_as_list(where.get("connect"))), detail)
    return BusError("other", ", ".join(_as_list(where.get("connect"))), detail)


class BusConfigError(ValueError):
    """The Zenoh options or config file are invalid."""


def make_config(
    *,
    mode: str | None = "peer",
    connect: Sequence[str] = (),
    listen: Sequence[str] = (),
    config_file: Path | None = None,
    shared_memory: bool | None = False,
) -> zenoh.Config:
    """A Zenoh config: the file if given, then mode and endpoints; multicast scouting
    always off, and shared memory off unless ``shared_memory`` says otherwise (None:
    Zenoh's default, as the brain nodes have it; the bench's publishers use that).

    Endpoints left empty keep the file's, and so does a ``mode`` of None. Raises
    :class:`BusConfigError` naming the problem. Shared memory is off for the recorder's
    programs because Zenoh drops a sample whose shared-memory buffer it cannot map or
    finds invalidated, with only a debug log, and maps each publisher's pool into the
    recorder (``docs/deployment.md``, "Shared memory").
    """
    try:
        config = zenoh.Config.from_file(str(config_file)) if config_file else zenoh.Config()
        for path, value in zenoh_settings(
            mode=mode,
            connect=list(connect) if connect or config_file is None else None,
            listen=list(listen) if listen or config_file is None else None,
            shared_memory=shared_memory,
        ):
            config.insert_json5(path, value)
    except (zenoh.ZError, ValueError) as exc:
        where = f" in {config_file}" if config_file else ""
        detail = zenoh_message(exc) if isinstance(exc, zenoh.ZError) else str(exc)
        raise BusConfigError(f"invalid Zenoh configuration{where}: {detail}") from None
    return config


#: ``on_error(where, exc)``: what a callback or query thread of :class:`Bus` calls when
#: handling one sample or query raised (the default logs it).
ErrorSink = Callable[[str, BaseException], None]


def log_error(where: str, exc: BaseException) -> None:
    """The default :data:`ErrorSink`: one log line (callers with a bound use their own)."""
    log.error("%s failed: %r", where, exc)


def hand_over(
    submit: Callable[[str, bytes | None, int], object],
    thread_name: str,
    on_error: ErrorSink = log_error,
) -> Callable[[zenoh.Sample], None]:
    """A subscriber callback handing each sample to ``submit(key, payload, zenoh_time)``
    (see :meth:`Bus.subscribe`); it names its thread ``thread_name`` on first use. An
    exception while handling one sample goes to ``on_error`` and the next sample is
    handled as usual (zenoh-python would otherwise print a traceback per sample)."""
    put = zenoh.SampleKind.PUT
    named = False
    where = f"the subscriber callback ({thread_name})"

    def on_sample(sample: zenoh.Sample) -> None:
        # Runs on zenoh-python's thread of this subscription: copy out and hand over,
        # nothing else. Only an empty payload can be a DELETE's: the kind is looked at
        # then (0.2 us per message).
        nonlocal named
        try:
            if not named:  # the thread is zenoh-python's: it is named on first use
                named = True
                name_os_thread(thread_name)
            payload: bytes | None = sample.payload.to_bytes()
            if not payload and sample.kind != put:
                payload = None
            stamp = sample.timestamp
            submit(
                str(sample.key_expr),
                payload,
                0 if stamp is None else stamp.get_time_as_ntp64().as_nanos(),
            )
        except Exception as exc:
            report(on_error, where, exc)

    return on_sample


def report(on_error: ErrorSink, where: str, exc: BaseException) -> None:
    """Hand ``exc`` to ``on_error``; if that fails too, log both (never raises)."""
    try:
        on_error(where, exc)
    except Exception as failure:
        with contextlib.suppress(Exception):
            log.error("%s failed: %r (and reporting it failed: %r)", where, exc, failure)


def subscription_keys(
    prefix: str,
    *,
    spikes: bool,
    membrane: bool,
    weights: bool,
    control: bool,
    nodes: Sequence[str] = ("*",),
) -> list[str]:
    """The key expressions to subscribe to, one per recorded kind and node pattern.

    Membrane and weight publishers only publish while matched, so an unrecorded kind
    must not be subscribed to, not even by a wider wildcard. ``nodes`` (a shard's node
    patterns) narrow the node chunk, so that Zenoh routes only those nodes' samples here.
    """
    keys = []
    for chunk in dict.fromkeys(node_chunk(p) for p in nodes):
        for kind, wanted in (
            (Kind.SPIKES, spikes),
            (Kind.MEMBRANE, membrane),
            (Kind.WEIGHTS, weights),
        ):
            if wanted:
                keys.append(f"{prefix}/{chunk}/{kind.key_word}/*")
        if control:
            keys.append(f"{prefix}/{chunk}/{CONTROL_WORD}")
    return keys


def _collect(
    start: Callable[[zenoh.handlers.Callback[zenoh.Reply]], None], timeout_s: float, quiet_s: float
) -> list[zenoh.Reply]:
    """Replies of a query started by ``start(handler)``.

    Returns when the query ends (every queryable reached has answered), when ``quiet_s``
    pass without a further reply after one came, after ``timeout_s``, or once
    :data:`MAX_REPLIES` replies or :data:`MAX_REPLY_BYTES` of payload came, whichever is
    first (what repliers send never decides how much is held).
    """
    box: queue.SimpleQueue[zenoh.Reply | None] = queue.SimpleQueue()
    budget = [MAX_REPLIES, MAX_REPLY_BYTES]  # left to accept: replies, payload bytes

    def on_reply(reply: zenoh.Reply) -> None:
        # On Zenoh's thread: keep the reply only while within the budget, so that what
        # repliers send never decides how much is held, even before it is read here.
        size = len(reply.ok.payload) if reply.ok is not None else 0
        if budget[0] <= 0 or size > budget[1]:
            budget[0] = 0
            return
        budget[0] -= 1
        budget[1] -= size
        box.put(reply)

    start(zenoh.handlers.Callback(on_reply, lambda: box.put(None)))
    replies: list[zenoh.Reply] = []
    deadline = time.monotonic() + timeout_s
    until = deadline
    while (left := until - time.monotonic()) > 0:
        try:
            reply = box.get(timeout=left)
        except queue.Empty:
            break
        if reply is None:  # the query is complete
            break
        replies.append(reply)
        until = min(deadline, time.monotonic() + quiet_s)
    if budget[0] <= 0:
        log.warning(
            "a query's replies passed %d replies or %d bytes: the rest were ignored",
            MAX_REPLIES,
            MAX_REPLY_BYTES,
        )
    return replies


class Client:
    """A short-lived session that asks questions (``recorderctl``): status, nodes alive."""

    def __init__(self, config: zenoh.Config | zenoh.Session) -> None:
        # Over a session of its own, or over one it borrows (and then never closes).
        self._owned = isinstance(config, zenoh.Config)
        self._session = open_session(config) if isinstance(config, zenoh.Config) else config

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def query(self, key: str, timeout_s: float, quiet_s: float = QUIET_S) -> list[bytes]:
        """The payloads of the successful replies to a query on ``key`` (every replier's)."""

        def start(handler: zenoh.handlers.Callback[zenoh.Reply]) -> None:
            self._session.get(
                key, handler, consolidation=zenoh.ConsolidationMode.NONE, timeout=timeout_s
            )

        replies = _collect(start, timeout_s, quiet_s)
        return [r.ok.payload.to_bytes() for r in replies if r.ok is not None]

    def alive(self, prefix: str, timeout_s: float, quiet_s: float = QUIET_S) -> list[str]:
        """Node ids holding a liveliness token under ``prefix`` right now."""
        key = f"{prefix}/*/{ALIVE_WORD}"

        def start(handler: zenoh.handlers.Callback[zenoh.Reply]) -> None:
            self._session.liveliness().get(key, handler, timeout=timeout_s)

        replies = _collect(start, timeout_s, quiet_s)
        keys = [str(r.ok.key_expr) for r in replies if r.ok is not None]
        return sorted({k.split("/")[-2] for k in keys if is_safe_name(k.split("/")[-2])})

    def close(self) -> None:
        """Close the session if it is this client's own (idempotent)."""
        if self._owned and not self._session.is_closed():
            self._session.close()  # type: ignore[no-untyped-call]


def query(config: zenoh.Config, key: str, timeout_s: float) -> list[bytes]:
    """Open a session, query ``key``, return the payloads of the successful replies."""
    with Client(config) as client:
        return client.query(key, timeout_s)


def alive_nodes(config: zenoh.Config, prefix: str, timeout_s: float) -> list[str]:
    """Node ids holding a liveliness token under ``prefix`` right now."""
    with Client(config) as client:
        return client.alive(prefix, timeout_s)


class Publication:
    """A reliable publisher (congestion control BLOCK) whose matching status is tracked."""

    def __init__(self, session: zenoh.Session, key: str) -> None:
        self.key = key
        self._publisher = session.declare_publisher(
            key,
            congestion_control=zenoh.CongestionControl.BLOCK,
            reliability=zenoh.Reliability.RELIABLE,
        )
        self._lock = threading.Lock()
        self._heard = False
        self._matched = False
        self._listener = self._publisher.declare_matching_listener(self._on_matching)
        # A notification that arrived meanwhile is at least as recent as this read.
        status: object = self._publisher.matching_status  # a MatchingStatus (stubs: bool)
        current = bool(getattr(status, "matching", status))
        with self._lock:
            if not self._heard:
                self._matched = current

    def _on_matching(self, status: zenoh.MatchingStatus) -> None:
        with self._lock:  # a Zenoh thread: set the flag, nothing else
            self._heard = True
            self._matched = status.matching

    @property
    def matched(self) -> bool:
        """Whether some subscriber matches this key now."""
        return self._matched

    def put(self, payload: bytes) -> None:
        """Publish ``payload`` (waits while Zenoh's queue is full)."""
        try:
            self._publisher.put(payload)
        except zenoh.ZError as exc:
            raise BusError("other", self.key, f"put on {self.key}: {zenoh_message(exc)}") from None

    def undeclare(self) -> None:
        """Undeclare the matching listener and the publisher."""
        self._listener.undeclare()  # type: ignore[no-untyped-call]
        self._publisher.undeclare()  # type: ignore[no-untyped-call]


class Player:
    """A session that publishes as brain nodes do: publishers, liveliness tokens, the
    flush barrier (``recorderctl play``)."""

    def __init__(self, config: zenoh.Config) -> None:
        self._session = open_session(config)
        self._publications: dict[str, Publication] = {}
        self._tokens: dict[str, zenoh.LivelinessToken] = {}

    def publication(self, key: str) -> Publication:
        """The publisher of ``key`` (declared on first use)."""
        pub = self._publications.get(key)
        if pub is None:
            try:
                pub = self._publications[key] = Publication(self._session, key)
            except zenoh.ZError as exc:
                raise BusError("other", key, zenoh_message(exc)) from None
        return pub

    def hold_token(self, key: str) -> None:
        """Declare the liveliness token ``key`` (held until :meth:`release_token` or close)."""
        if key not in self._tokens:
            self._tokens[key] = self._session.liveliness().declare_token(key)

    def release_token(self, key: str) -> None:
        """Undeclare the liveliness token ``key`` if held."""
        token = self._tokens.pop(key, None)
        if token is not None:
            token.undeclare()  # type: ignore[no-untyped-call]

    def flush_barrier(self, key: str, timeout_s: float) -> list[str]:
        """Query ``key`` (``<prefix>/<node>/flush``); the session each recorder's reply names.

        A reply means everything published before the query has reached that recorder
        (``docs/wire-protocol.md``, "flush barrier"). Every reply counts (no consolidation).
        """
        try:
            replies = self._session.get(
                key, consolidation=zenoh.ConsolidationMode.NONE, timeout=timeout_s
            )
            return [_session_named(r.ok.payload.to_bytes()) for r in replies if r.ok is not None]
        except zenoh.ZError as exc:
            raise BusError("other", key, zenoh_message(exc)) from None

    def close(self) -> None:
        """Release the tokens, undeclare the publishers, close the session (idempotent)."""
        try:
            for key in list(self._tokens):
                self.release_token(key)
            for pub in self._publications.values():
                pub.undeclare()
            self._publications.clear()
        finally:
            if not self._session.is_closed():
                self._session.close()  # type: ignore[no-untyped-call]


def _session_named(payload: bytes) -> str:
    """The session a flush-barrier reply names (``{"session": ...}``), ``"?"`` if none."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return "?"
    name = doc.get("session") if isinstance(doc, dict) else None
    return name if isinstance(name, str) and is_safe_name(name) else "?"


class Bus:
    """An open Zenoh session with the recorder's subscribers."""

    def __init__(self, config: zenoh.Config, on_error: ErrorSink = log_error) -> None:
        self._config = config
        self._session: zenoh.Session | None = None
        self._subscribers: list[Any] = []
        #: Where an exception raised while handling one sample or query goes: the
        #: callback or query thread then goes on with the next one.
        self.on_error = on_error

    def open(self) -> None:
        """Open the session (blocking; may take a moment while endpoints connect).

        Raises :class:`BusError` (a listen endpoint taken, a connect endpoint unreachable
        in client mode, ...).
        """
        self._session = open_session(self._config)

    def subscribe(
        self, keys: Sequence[str], submit: Callable[[str, bytes | None, int], object]
    ) -> None:
        """Subscribe to ``keys``; each sample goes to ``submit(key, payload, zenoh_time)``
        on Zenoh's thread.

        A DELETE sample (no message) is handed over with ``payload`` None. ``zenoh_time``
        is the sample's timestamp (hybrid logical clock) in ns since 1970, 0 if it has none.
        """
        if self._session is None:
            raise RuntimeError("bus not open")
        for key in keys:
            on_sample = hand_over(submit, f"{SUB}{len(self._subscribers)}", self.on_error)
            self._subscribers.append(self._session.declare_subscriber(key, on_sample))
            log.info("subscribed to %s", key)

    def serve_queries(self, key: str, answer: Callable[[], bytes]) -> None:
        """Answer queries on ``key`` with ``answer()``, from a thread of ours."""
        if self._session is None:
            raise RuntimeError("bus not open")
        queryable = self._session.declare_queryable(key)
        self._subscribers.append(queryable)
        # Reply on our own key when it names one (a status key), so that replies of
        # several recorders to one wildcard query differ and none is consolidated away.
        own = None if "*" in key else key

        where = f"answering a query on {key}"

        def serve() -> None:
            name_os_thread(QUERY)
            for query in queryable.handler:  # ends when the queryable is undeclared
                with query:
                    try:
                        query.reply(own or str(query.key_expr), answer())
                    except Exception as exc:  # one failed answer must not end this thread
                        report(self.on_error, where, exc)
                        with contextlib.suppress(Exception):  # no details: anyone may ask
                            query.reply_err("recorderd could not answer (see its bus_errors)")

        threading.Thread(target=serve, name=f"recorderd-query-{key}", daemon=True).start()

    def client(self) -> Client:
        """A :class:`Client` over this session (for the recorder's own questions)."""
        if self._session is None:
            raise RuntimeError("bus not open")
        return Client(self._session)

    def serve_flush_barrier(
        self, prefix: str, answer: bytes, nodes: Sequence[str] = ("*",)
    ) -> None:
        """Answer flush-barrier queries of the nodes in ``nodes`` (``<prefix>/*/flush``).

        Queries are answered from a thread of ours, not from Zenoh's callback thread.
        A query arrives after the samples its node sent before it, so answering tells
        the node that closing its session can no longer drop any of them.
        """
        if self._session is None:
            raise RuntimeError("bus not open")
        for chunk in dict.fromkeys(node_chunk(p) for p in nodes):
            self.serve_queries(f"{prefix}/{chunk}/{FLUSH_WORD}", lambda: answer)

    def watch_nodes(
        self, prefix: str, on_change: Callable[[str, bool], None], nodes: Sequence[str] = ("*",)
    ) -> None:
        """Call ``on_change(node_id, alive)`` as the liveliness tokens of the nodes in
        ``nodes`` come and go."""
        if self._session is None:
            raise RuntimeError("bus not open")

        where = f"the liveliness callback ({prefix})"

        def on_token(sample: zenoh.Sample) -> None:
            try:
                node_id = str(sample.key_expr).split("/")[-2]
                if is_safe_name(node_id):  # a hostile name is ignored, never logged as a node
                    on_change(node_id, sample.kind == zenoh.SampleKind.PUT)
            except Exception as exc:
                report(self.on_error, where, exc)

        for chunk in dict.fromkeys(node_chunk(p) for p in nodes):
            sub = self._session.liveliness().declare_subscriber(
                f"{prefix}/{chunk}/{ALIVE_WORD}", on_token, history=True
            )
            self._subscribers.append(sub)

    def unsubscribe(self) -> None:
        """Stop receiving samples and queries."""
        for sub in self._subscribers:
            sub.undeclare()
        self._subscribers.clear()

    def close(self) -> None:
        """Undeclare everything and close the session (idempotent)."""
        self.unsubscribe()
        if self._session is not None:
            self._session.close()  # type: ignore[no-untyped-call]
            self._session = None
