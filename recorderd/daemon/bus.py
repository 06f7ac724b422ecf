"""The recorder's Zenoh side: the only module of ``recorderd`` that imports zenoh."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import zenoh

from recorderd.wire import ALIVE_WORD, CONTROL_WORD, FLUSH_WORD, Kind, is_safe_name, zenoh_settings

log = logging.getLogger(__name__)


class BusConfigError(ValueError):
    """The Zenoh options or config file are invalid."""


def make_config(
    *,
    mode: str = "peer",
    connect: Sequence[str] = (),
    listen: Sequence[str] = (),
    config_file: Path | None = None,
) -> zenoh.Config:
    """A Zenoh config: the file if given, then mode and endpoints; multicast scouting always off.

    Endpoints left empty keep the file's. Raises :class:`BusConfigError` naming the problem.
    """
    try:
        config = zenoh.Config.from_file(str(config_file)) if config_file else zenoh.Config()
        for path, value in zenoh_settings(
            mode=mode,
            connect=list(connect) if connect or config_file is None else None,
            listen=list(listen) if listen or config_file is None else None,
        ):
            config.insert_json5(path, value)
    except (zenoh.ZError, ValueError) as exc:
        where = f" in {config_file}" if config_file else ""
        raise BusConfigError(f"invalid Zenoh configuration{where}: {exc}") from None
    return config


def subscription_keys(
    prefix: str, *, spikes: bool, membrane: bool, weights: bool, control: bool
) -> list[str]:
    """The key expressions to subscribe to, one per recorded kind.

    Membrane and weight publishers only publish while matched, so an unrecorded kind
    must not be subscribed to, not even by a wider wildcard.
    """
    keys = []
    for kind, wanted in ((Kind.SPIKES, spikes), (Kind.MEMBRANE, membrane), (Kind.WEIGHTS, weights)):
        if wanted:
            keys.append(f"{prefix}/*/{kind.key_word}/*")
    if control:
        keys.append(f"{prefix}/*/{CONTROL_WORD}")
    return keys


def query(config: zenoh.Config, key: str, timeout_s: float) -> list[bytes]:
    """Open a session, query ``key``, return the payloads of the successful replies."""
    with zenoh.open(config) as session:
        replies = session.get(key, timeout=timeout_s)
        return [reply.ok.payload.to_bytes() for reply in replies if reply.ok is not None]


def alive_nodes(config: zenoh.Config, prefix: str, timeout_s: float) -> list[str]:
    """Node ids holding a liveliness token under ``prefix`` right now."""
    with zenoh.open(config) as session:
        replies = session.liveliness().get(f"{prefix}/*/{ALIVE_WORD}", timeout=timeout_s)
        keys = [str(reply.ok.key_expr) for reply in replies if reply.ok is not None]
    return sorted({key.split("/")[-2] for key in keys})


class Bus:
    """An open Zenoh session with the recorder's subscribers."""

    def __init__(self, config: zenoh.Config) -> None:
        self._config = config
        self._session: zenoh.Session | None = None
        self._subscribers: list[Any] = []

    def open(self) -> None:
        """Open the session (blocking; may take a moment while endpoints connect)."""
        self._session = zenoh.open(self._config)

    def subscribe(self, keys: Sequence[str], submit: Callable[[str, bytes | None], None]) -> None:
        """Subscribe to ``keys``; each sample goes to ``submit(key, payload)`` on Zenoh's thread.

        A DELETE sample (no message) is handed over with ``payload`` None.
        """
        if self._session is None:
            raise RuntimeError("bus not open")
        put = zenoh.SampleKind.PUT

        def on_sample(sample: zenoh.Sample) -> None:
            # Runs on a Zenoh thread: copy out and hand over, nothing else.
            payload = sample.payload.to_bytes() if sample.kind == put else None
            submit(str(sample.key_expr), payload)

        for key in keys:
            self._subscribers.append(self._session.declare_subscriber(key, on_sample))
            log.info("subscribed to %s", key)

    def serve_queries(self, key: str, answer: Callable[[], bytes]) -> None:
        """Answer queries on ``key`` with ``answer()``, from a thread of ours."""
        if self._session is None:
            raise RuntimeError("bus not open")
        queryable = self._session.declare_queryable(key)
        self._subscribers.append(queryable)

        def serve() -> None:
            for query in queryable.handler:  # ends when the queryable is undeclared
                with query:
                    query.reply(str(query.key_expr), answer())

        threading.Thread(target=serve, name=f"recorderd-query-{key}", daemon=True).start()

    def serve_flush_barrier(self, prefix: str, answer: bytes) -> None:
        """Answer nodes' flush-barrier queries (``<prefix>/*/flush``) with ``answer``.

        Queries are answered from a thread of ours, not from Zenoh's callback thread.
        A query arrives after the samples its node sent before it, so answering tells
        the node that closing its session can no longer drop any of them.
        """
        if self._session is None:
            raise RuntimeError("bus not open")
        self.serve_queries(f"{prefix}/*/{FLUSH_WORD}", lambda: answer)

    def watch_nodes(self, prefix: str, on_change: Callable[[str, bool], None]) -> None:
        """Call ``on_change(node_id, alive)`` as nodes' liveliness tokens come and go."""
        if self._session is None:
            raise RuntimeError("bus not open")

        def on_token(sample: zenoh.Sample) -> None:
            node_id = str(sample.key_expr).split("/")[-2]
            if is_safe_name(node_id):  # a hostile token name is ignored, never logged as a node
                on_change(node_id, sample.kind == zenoh.SampleKind.PUT)

        sub = self._session.liveliness().declare_subscriber(
            f"{prefix}/*/{ALIVE_WORD}", on_token, history=True
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
