"""What the recorder core needs to know, and the settings' constraints defined once.

:class:`CoreSettings` is the core's own small, frozen settings object. The daemon's
settings (``recorderd.daemon.settings.RecorderSettings``, flags/environment/file) and
the guide's ``RecorderConfig`` both build one; both declare their fields with the
constrained types below, so a rate, a buffer size or a compression choice is checked
the same way everywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import Field

from recorderd.session.schema import Compression

#: Defaults of the settings that the daemon and the in-process API share.
DEFAULT_BUFFER_SIZE: Final = 1000
DEFAULT_COMPRESSION: Final[Compression] = "gzip"
DEFAULT_COMPRESSION_LEVEL: Final = 4
DEFAULT_FLUSH_INTERVAL: Final = 1.0
DEFAULT_MAX_STREAMS: Final = 4096
DEFAULT_MAX_STREAMS_PER_NODE: Final = 256
DEFAULT_MAX_STREAM_NEURONS: Final = 1 << 22

Rate = Annotated[float, Field(ge=0.0, le=1.0, description="fraction of a layer's neurons")]
Seed = Annotated[int, Field(ge=0)]
BufferSize = Annotated[int, Field(ge=1, le=1_000_000, description="messages per stream")]
CompressionLevel = Annotated[int, Field(ge=0, le=9, description="gzip level")]
FlushInterval = Annotated[float, Field(gt=0, le=3600, description="seconds")]
Duration = Annotated[float, Field(gt=0, description="seconds")]
StreamCount = Annotated[int, Field(ge=1)]
StreamNeurons = Annotated[int, Field(ge=1, le=1 << 26)]


def default_session_name(now: dt.datetime | None = None) -> str:
    """Session name from the start time, as in the recording guide: ``sim_YYYYMMDD_HHMMSS``."""
    return (now or dt.datetime.now()).strftime("sim_%Y%m%d_%H%M%S")


@dataclass(frozen=True)
class CoreSettings:
    """The recorder core's settings: the session, subsampling, batching, limits, storage."""

    session: str
    session_dir: Path
    buffer_size: int = DEFAULT_BUFFER_SIZE
    spike_subsample_rate: float = 1.0
    membrane_subsample_rate: float = 1.0
    subsample_seed: int = 0
    compression: Compression = DEFAULT_COMPRESSION
    compression_level: int = DEFAULT_COMPRESSION_LEVEL
    max_streams: int = DEFAULT_MAX_STREAMS
    max_streams_per_node: int = DEFAULT_MAX_STREAMS_PER_NODE
    max_stream_neurons: int = DEFAULT_MAX_STREAM_NEURONS
    #: This recorder's shard of the session (its own files), and the node-id patterns it
    #: records; None: the whole session (docs/deployment.md).
    shard: str | None = None
    shard_nodes: tuple[str, ...] = ()
    #: Every setting of the run, as stored in the session's ``recorder_config`` attribute.
    recorder_config: dict[str, Any] = field(default_factory=dict)
