"""Helpers shared by the tests: messages, feeding the recorder core, small sessions."""

from __future__ import annotations

import socket
import time
from typing import Any

import numpy as np

from recorderd import wire as P
from recorderd.core.recorder import Recorder
from recorderd.daemon.pipeline import Pipeline
from recorderd.daemon.settings import RecorderSettings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def spike_message(
    seq: int, ids: Any, *, incarnation: int = 1, layer_size: int = 100, step: int | None = None
) -> bytes:
    """A spikes payload at step ``seq`` (unless ``step`` is given), dt 1 ms."""
    step = seq if step is None else step
    return P.encode(
        P.Kind.SPIKES,
        incarnation=incarnation,
        seq=seq,
        step=step,
        time_ms=float(step),
        dt_ms=1.0,
        layer_size=layer_size,
        data=np.asarray(ids, dtype=np.uint32),
    )


def feed(settings: RecorderSettings, messages: list[tuple[str, bytes | None]]) -> Recorder:
    """Record ``messages`` through the pipeline's decode path and finish the session."""
    recorder = Recorder(settings.core())
    recorder.start()
    pipe = Pipeline(recorder, prefix="brain", capacity=10_000, flush_interval=1.0)
    for key, payload in messages:
        pipe.handle(key, payload, time.time())
    recorder.finish()
    return recorder


def data_message(
    kind: P.Kind,
    seq: int,
    data: Any,
    *,
    incarnation: int = 1,
    layer_size: int = 100,
    step: int | None = None,
    dt_ms: float = 1.0,
) -> bytes:
    """A data payload at step ``seq`` (unless ``step`` is given)."""
    step = seq if step is None else step
    return P.encode(
        kind,
        incarnation=incarnation,
        seq=seq,
        step=step,
        time_ms=step * dt_ms,
        dt_ms=dt_ms,
        layer_size=layer_size,
        data=np.asarray(data, dtype=kind.dtype),
    )


def control_message(node_id: str, seq: int, *, incarnation: int = 1, **fields: Any) -> bytes:
    """A valid control-state payload (fields override the defaults)."""
    state: dict[str, Any] = {
        "node_id": node_id,
        "module_type": "pfc",
        "status": "Processing",
        "step_count": seq,
        "step": seq,
        "time_ms": float(seq),
        "incarnation": incarnation,
        "seq": seq,
    }
    state.update(fields)
    return P.encode_control(P.ControlState(**state))
