"""Recorder settings: one validated model fed by flags, environment, a file and defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from recorderd.core.settings import (
    DEFAULT_BUFFER_SIZE,
    DEFAULT_COMPRESSION,
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_STREAM_NEURONS,
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_STREAMS_PER_NODE,
    BufferSize,
    CompressionLevel,
    CoreSettings,
    Duration,
    FlushInterval,
    Rate,
    Seed,
    StreamCount,
    StreamNeurons,
    default_session_name,
)
from recorderd.session.schema import Compression
from recorderd.wire import DEFAULT_PREFIX, Mode, check_name, check_node_pattern, check_prefix
from recorderd.wire.shards import MAX_CLAIM_PATTERNS

ENV_PREFIX = "RECORDERD_"
DEFAULT_ENDPOINT = "tcp/127.0.0.1:7447"


def default_intake_mb() -> float:
    """Default byte bound of the intake: 1/16 of the machine's memory, at most 512 MB."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover - not on Linux
        ram = 8 << 30
    return float(min(512, max(64, ram // 16 // 1_000_000)))


class RecorderSettings(BaseSettings):
    """All settings of a recorder daemon run: flags over environment over a file over defaults."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    session: str = Field(default_factory=default_session_name)
    #: This recorder's shard of the session: it records only the nodes matching
    #: ``nodes`` into its own files (docs/deployment.md). None: the whole session.
    shard: str | None = None
    nodes: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    recording_dir: Path = Path("./sim_recordings")
    record_spikes: bool = True
    record_membrane: bool = False
    record_weights: bool = False
    record_control: bool = True
    spike_subsample_rate: Rate = 1.0
    membrane_subsample_rate: Rate = 1.0
    subsample_seed: Seed = 0
    max_duration: Duration | None = None
    buffer_size: BufferSize = DEFAULT_BUFFER_SIZE
    compression: Compression = DEFAULT_COMPRESSION
    compression_level: CompressionLevel = DEFAULT_COMPRESSION_LEVEL
    flush_interval: FlushInterval = DEFAULT_FLUSH_INTERVAL
    intake_capacity: int = Field(default=200_000, ge=100, description="messages")
    #: What a full intake does: drop new messages (counted), or block Zenoh's thread
    #: until there is room (publishers with BLOCK congestion control are slowed).
    on_overflow: Literal["drop", "block"] = "drop"
    intake_max_mb: float = Field(
        default_factory=default_intake_mb, ge=1, description="MB of queued payloads"
    )
    max_streams: StreamCount = DEFAULT_MAX_STREAMS
    max_streams_per_node: StreamCount = DEFAULT_MAX_STREAMS_PER_NODE
    #: Layer size of a subsampled or membrane stream, elements of a weight matrix.
    max_stream_neurons: StreamNeurons = DEFAULT_MAX_STREAM_NEURONS
    min_free_disk_mb: float = Field(default=100.0, ge=0, description="stop below this; 0 = off")
    wait_for_lock: bool = False  # stand by while another process records the session
    parent_pid: int | None = Field(default=None, gt=0)  # standby ends when this parent exits
    stop_when_idle: float | None = Field(default=None, gt=0, description="seconds without a node")
    drain_timeout: float = Field(default=30.0, gt=0, description="seconds")
    prefix: str = DEFAULT_PREFIX
    mode: Mode = "peer"
    connect: list[str] = Field(default_factory=list)
    listen: list[str] = Field(default_factory=lambda: [DEFAULT_ENDPOINT])
    zenoh_config: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("session")
    @classmethod
    def _safe_session(cls, value: str) -> str:
        return check_name(value, "session name")

    @field_validator("shard")
    @classmethod
    def _safe_shard(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "shard name")

    @field_validator("nodes", mode="before")
    @classmethod
    def _node_patterns(cls, value: object) -> object:
        # "pfc-*,visual-*" (a flag, RECORDERD_NODES) or a list (a flag repeated, TOML).
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        patterns = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
        if not patterns:
            raise ValueError("at least one node pattern")
        if len(patterns) > MAX_CLAIM_PATTERNS:
            raise ValueError(f"at most {MAX_CLAIM_PATTERNS} node patterns")
        return list(dict.fromkeys(check_node_pattern(p) for p in patterns))

    @model_validator(mode="before")
    @classmethod
    def _clients_do_not_listen(cls, data: Any) -> Any:
        # A Zenoh client reaches the bus through its router: no listen endpoint unless given.
        if isinstance(data, dict) and data.get("mode") == "client" and "listen" not in data:
            return {**data, "listen": []}
        return data

    @model_validator(mode="after")
    def _nodes_need_a_shard(self) -> RecorderSettings:
        if self.nodes != ["*"] and self.shard is None:
            raise ValueError("--nodes records part of a session: name the shard with --shard")
        return self

    @field_validator("prefix")
    @classmethod
    def _safe_prefix(cls, value: str) -> str:
        return check_prefix(value)

    @property
    def session_dir(self) -> Path:
        """The session folder, ``<recording_dir>/<session>``."""
        return self.recording_dir / self.session

    def core(self) -> CoreSettings:
        """The recorder core's settings for this run."""
        return CoreSettings(
            session=self.session,
            session_dir=self.session_dir,
            buffer_size=self.buffer_size,
            spike_subsample_rate=self.spike_subsample_rate,
            membrane_subsample_rate=self.membrane_subsample_rate,
            subsample_seed=self.subsample_seed,
            compression=self.compression,
            compression_level=self.compression_level,
            max_streams=self.max_streams,
            max_streams_per_node=self.max_streams_per_node,
            max_stream_neurons=self.max_stream_neurons,
            shard=self.shard,
            shard_nodes=tuple(self.nodes),
            recorder_config=self.model_dump(mode="json"),
        )

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
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            lines.append(f"  {field}: {err['msg']} (got {err.get('input')!r})")
        origin = f"flags, {ENV_PREFIX}* environment" + (f" or {config_file}" if config_file else "")
        raise SettingsError(
            f"invalid recorder settings (from {origin}):\n" + "\n".join(lines)
        ) from None
