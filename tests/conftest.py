"""Shared fixtures (helpers that tests import are in tests/helpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from recorderd.daemon.settings import RecorderSettings, load_settings


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., RecorderSettings]:
    def make(**overrides: Any) -> RecorderSettings:
        args: dict[str, Any] = {"session": "test", "recording_dir": tmp_path / "rec"}
        args.update(overrides)
        return load_settings(None, **args)

    return make
