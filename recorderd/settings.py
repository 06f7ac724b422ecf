"""Recorder settings: one validated model fed by flags, environment, a file and defaults."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from recorderd.protocol import DEFAULT_PREFIX, check_name, check_prefix

ENV_PREFIX = "RECORDERD_"
DEFAULT_ENDPOINT = "tcp/127.0.0.1:7447"


def default_intake_mb() -> float:
    """Default byte bound of the intake: 1/16 of the machine's memory, at most 512 MB."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover - not on Linux
        ram = 8 << 30
    return float(min(512, max(64, ram // 16 // 1_000_000)))


def default_session_name(now: dt.datetime | None = None) -> str:
    """Session name from the start time, as in the recording guide: ``sim_YYYYMMDD_HHMMSS``."""
    return (now or dt.datetime.now()).strftime("sim_%Y%m%d_%H%M%S")


class RecorderSettings(BaseSettings):
    """All settings of a recorder run (daemon or in-process)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    session: str = Field(default_factory=default_session_name)
    recording_dir: Path = Path("./sim_recordings")
    record_spikes: bool = True
    record_membrane: bool = False
    record_weights: bool = False
    record_control: bool = True
    spike_subsample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    membrane_subsample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    subsample_seed: int = Field(default=0, ge=0)
    max_duration: float | None = Field(default=None, gt=0, description="seconds")
    buffer_size: int = Field(default=1000, ge=1, le=1_000_000, description="messages per stream")
    compression: Literal["gzip", "lzf", "none"] = "gzip"
    compression_level: int = Field(default=4, ge=0, le=9)
    flush_interval: float = Field(default=1.0, gt=0, le=3600, description="seconds")
    intake_capacity: int = Field(default=200_000, ge=100, description="messages")
    intake_max_mb: float = Field(
        default_factory=default_intake_mb, ge=1, description="MB of queued payloads"
    )
    max_streams: int = Field(default=4096, ge=1, description="streams (data and control)")
    max_streams_per_node: int = Field(default=256, ge=1, description="streams of one node")
    max_stream_neurons: int = Field(
        default=1 << 22,
        ge=1,
        le=1 << 26,
        description="layer size of a subsampled or membrane stream, elements of a weight matrix",
    )
    min_free_disk_mb: float = Field(default=100.0, ge=0, description="stop below this; 0 = off")
    wait_for_lock: bool = False  # stand by while another process records the session
    parent_pid: int | None = Field(default=None, gt=0)  # standby ends when this parent exits
    stop_when_idle: float | None = Field(default=None, gt=0, description="seconds without a node")
    drain_timeout: float = Field(default=30.0, gt=0, description="seconds")
    prefix: str = DEFAULT_PREFIX
    mode: Literal["peer", "client", "router"] = "peer"
    connect: list[str] = Field(default_factory=list)
    listen: list[str] = Field(default_factory=lambda: [DEFAULT_ENDPOINT])
    zenoh_config: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("session")
    @classmethod
    def _safe_session(cls, value: str) -> str:
        return check_name(value, "session name")

    @field_validator("prefix")
    @classmethod
    def _safe_prefix(cls, value: str) -> str:
        return check_prefix(value)

    @property
    def session_dir(self) -> Path:
        """The session folder, ``<recording_dir>/<session>``."""
        return self.recording_dir / self.session

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init) over environment over the --config file over defaults.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


class SettingsError(ValueError):
    """Settings that do not validate; the message names each bad field and its source."""


def load_settings(config_file: Path | None = None, **flags: Any) -> RecorderSettings:
    """Build settings from flags (``None`` = not given), environment, a TOML file and defaults."""
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"config file {config_file} does not exist")
    given = {name: value for name, value in flags.items() if value is not None}
    settings_cls = RecorderSettings
    if config_file is not None:

        class FileSettings(RecorderSettings):
            model_config = SettingsConfigDict(toml_file=config_file)

        settings_cls = FileSettings
    try:
        return settings_cls(**given)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {field}: {err['msg']} (got {err.get('input')!r})")
        origin = f"flags, {ENV_PREFIX}* environment" + (f" or {config_file}" if config_file else "")
        raise SettingsError(
            f"invalid recorder settings (from {origin}):\n" + "\n".join(lines)
        ) from None
