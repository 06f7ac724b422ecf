"""Shared fixtures: free loopback ports, settings in tmp_path, message makers."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recorderd import wire as P
from recorderd.daemon.settings import RecorderSettings, load_settings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., RecorderSettings]:
    def make(**overrides: Any) -> RecorderSettings:
        args: dict[str, Any] = {"session": "test", "recording_dir": tmp_path / "rec"}
        args.update(overrides)
        return load_settings(None, **args)

    return make


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
