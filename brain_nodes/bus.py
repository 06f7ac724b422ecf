"""The Zenoh session of a brain node: config, publishers with matching status, liveliness.

This is the only module that imports zenoh; callers see ``BusError`` and plain types.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zenoh

from recorderd.wire import is_safe_name, zenoh_settings

DEFAULT_MODE = "peer"
DEFAULT_CONNECT = ("tcp/127.0.0.1:7447",)
CONGESTION = {"block": zenoh.CongestionControl.BLOCK, "drop": zenoh.CongestionControl.DROP}
#: Where Zenoh's messages name their Rust source ("... at /root/.cargo/.../x.rs:447.").
_RUST_LOCATION = re.compile(r"\s+at /\S+?\.rs:\d+\.?")


def zenoh_message(exc: BaseException) -> str:
    """Zenoh's error text on one line, without the Rust source paths it carries."""
    return " ".join(_RUST_LOCATION.sub("", str(exc)).split())


class BusError(RuntimeError):
    """Opening or using the Zenoh session failed."""


class BusConfigError(ValueError):
    """The Zenoh options or config file are invalid."""


@dataclass(frozen=True, slots=True)
class BusOptions:
    """How to reach the bus. ``None`` means: the config file's value, else the default."""

    mode: str | None = None
    connect: tuple[str, ...] | None = None
    listen: tuple[str, ...] | None = None
    config_file: Path | None = None
    congestion: str = "block"


def build_config(opts: BusOptions) -> zenoh.Config:
    """The Zenoh config for ``opts``: the file (if any), then the explicit flags on top."""
    if opts.congestion not in CONGESTION:
        raise BusConfigError(f"congestion must be one of {sorted(CONGESTION)}")
    try:
        if opts.config_file is not None:
            config = zenoh.Config.from_file(str(opts.config_file))
            mode, connect, listen = opts.mode, opts.connect, opts.listen
        else:
            config = zenoh.Config()
            # Zenoh's own default listens on every interface; a node should not unless asked.
            mode = opts.mode or DEFAULT_MODE
            connect = DEFAULT_CONNECT if opts.connect is None else opts.connect
            listen = () if opts.listen is None else opts.listen
        for path, value in zenoh_settings(mode=mode, connect=connect, listen=listen):
            config.insert_json5(path, value)
    except (zenoh.ZError, ValueError) as exc:
        raise BusConfigError(f"invalid zenoh configuration: {exc}") from None
    return config


def describe(config: zenoh.Config) -> dict[str, Any]:
    """Mode, connect and listen endpoints of ``config``, for logging."""
    return {
        key: json.loads(config.get_json(path))
        for key, path in (
            ("mode", "mode"),
            ("connect", "connect/endpoints"),
            ("listen", "listen/endpoints"),
        )
    }


class Publication:
    """A publisher whose matching status is tracked by a listener that only sets a flag."""

    def __init__(self, session: zenoh.Session, key: str, congestion: zenoh.CongestionControl):
        self.key = key
        self._publisher = session.declare_publisher(
            key, congestion_control=congestion, reliability=zenoh.Reliability.RELIABLE
        )
        self._lock = threading.Lock()
        self._heard = False
        self._matched = False
        self._listener = self._publisher.declare_matching_listener(self._on_matching)
        # Read the current status after declaring the listener, but let a notification
        # that already arrived win: it is at least as recent as this read.
        status: object = self._publisher.matching_status
        current = bool(getattr(status, "matching", status))
        with self._lock:
            if not self._heard:
                self._matched = current

    def _on_matching(self, status: zenoh.MatchingStatus) -> None:
        # Runs on a zenoh thread: record the flag and return.
        with self._lock:
            self._heard = True
            self._matched = status.matching

    @property
    def matched(self) -> bool:
        """Whether some subscriber currently matches this key."""
        return self._matched

    def put(self, payload: bytes) -> None:
        """Publish ``payload``; raise ``BusError`` if Zenoh refuses."""
        try:
            self._publisher.put(payload)
        except zenoh.ZError as exc:
            raise BusError(f"put on {self.key} failed: {zenoh_message(exc)}") from None

    def undeclare(self) -> None:
        """Undeclare the matching listener and the publisher."""
        # zenoh's stubs leave these unannotated, hence the ignores.
        self._listener.undeclare()  # type: ignore[no-untyped-call]
        self._publisher.undeclare()  # type: ignore[no-untyped-call]


class Bus:
    """An open Zenoh session with the node's publishers and liveliness token."""

    def __init__(self, opts: BusOptions) -> None:
        self.config = build_config(opts)
        self.endpoints = describe(self.config)
        self._congestion = CONGESTION[opts.congestion]
        try:
            self._session = zenoh.open(self.config)
        except zenoh.ZError as exc:
            raise BusError(_open_failure(zenoh_message(exc), self.endpoints)) from None
        self._publications: list[Publication] = []
        self._token: zenoh.LivelinessToken | None = None

    def publication(self, key: str) -> Publication:
        """Declare a reliable publisher on ``key``."""
        try:
            pub = Publication(self._session, key, self._congestion)
        except zenoh.ZError as exc:
            raise BusError(f"cannot declare publisher {key}: {zenoh_message(exc)}") from None
        self._publications.append(pub)
        return pub

    def declare_token(self, key: str) -> None:
        """Hold a liveliness token on ``key`` until ``close``."""
        try:
            self._token = self._session.liveliness().declare_token(key)
        except zenoh.ZError as exc:
            raise BusError(f"cannot declare liveliness token {key}: {zenoh_message(exc)}") from None

    def flush_barrier(self, key: str, timeout_s: float) -> list[str]:
        """Query ``key`` and wait for the replies: the session named by each recorder's answer.

        Closing a session drops what is still queued for a slow subscriber; a recorder
        answers this query only after the samples sent before it have reached it. A reply
        whose payload names no session counts as ``"?"``.
        """
        try:
            # No consolidation: every recorder's reply counts, though all name the same key.
            replies = self._session.get(
                key, consolidation=zenoh.ConsolidationMode.NONE, timeout=timeout_s
            )
            return [_session_of(r.ok.payload.to_bytes()) for r in replies if r.ok is not None]
        except zenoh.ZError as exc:
            raise BusError(f"flush barrier on {key} failed: {zenoh_message(exc)}") from None

    def close(self) -> None:
        """Undeclare everything and close the session, which flushes pending puts."""
        try:
            if self._token is not None:
                self._token.undeclare()  # type: ignore[no-untyped-call]
                self._token = None
            for pub in self._publications:
                pub.undeclare()
            self._publications.clear()
        finally:
            self._session.close()  # type: ignore[no-untyped-call]


def _open_failure(detail: str, endpoints: dict[str, Any]) -> str:
    """One line saying why the session did not open, naming the endpoint, with a hint."""
    if "already in use" in detail:
        return (
            f"cannot listen on {', '.join(endpoints.get('listen') or [])}: the endpoint is "
            f"already in use; choose another --listen"
        )
    if "Unable to connect" in detail:
        return (
            f"cannot reach {', '.join(endpoints.get('connect') or [])} in {endpoints.get('mode')}"
            f" mode: nothing answers there; start recorderd (or the Zenoh router) first, or "
            f"use --mode peer to start without it"
        )
    return f"cannot open the Zenoh session: {detail}"


def _session_of(payload: bytes) -> str:
    """The session a flush-barrier reply names (``{"session": ...}``), ``"?"`` if none."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return "?"
    name = doc.get("session") if isinstance(doc, dict) else None
    return name if isinstance(name, str) and is_safe_name(name) else "?"
