"""The recording layout: file names, HDF5 group and dataset names, dtypes, version.

This module is the single definition of ``docs/recording-format.md``. The writer
(``recorderd.session.writer``) and the analysis reader both import it; nothing else names a
group or a dataset. It imports numpy only (no h5py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

FORMAT_NAME: Final = "recorderd-session"
#: 3: ``recorded_neurons`` only for subsampled streams (absent: every neuron), no
#: per-spike ``steps`` (the frames' steps repeated by count), capped ``incarnations``.
#: 2: HDF5 written with SWMR and libver v110-v114, whole chunks and a journal while
#: recording (appended to, and upgraded to 3). 1: no journal; still read.
FORMAT_VERSION: Final = 3
#: Versions the recorder appends to (upgrading the file to FORMAT_VERSION).
APPENDABLE_VERSIONS: Final = (2, 3)

# Files of a session directory, as in the recording guide. HDF5 file locking is off:
# the lock file guards writers.
DATA_FILE: Final = "simulation_data.h5"
CONTROL_FILE: Final = "control_states.jsonl"
STATISTICS_FILE: Final = "recording_statistics.json"
PLOTS_DIR: Final = "plots"
LOCK_FILE: Final = ".recorder.lock"
#: Rows not yet in a whole chunk, while recording or after a crash (recorderd.session.journal).
JOURNAL_FILE: Final = "simulation_data.h5-journal"
#: A shard's files carry its name before the extension: ``simulation_data.<shard>.h5``,
#: ``control_states.<shard>.jsonl``, ``recording_statistics.<shard>.json``,
#: ``.recorder.<shard>.lock`` (docs/deployment.md). Shard names are safe names.
SHARD_NAME_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_SHARD_DATA_RE: Final = re.compile(rf"simulation_data\.({SHARD_NAME_PATTERN})\.h5")
#: Key of presence records (node joins and leaves) in the control log; control-state
#: records never have it.
CONTROL_EVENT: Final = "event"

# Root attributes.
ATTR_FORMAT: Final = "format"
ATTR_FORMAT_VERSION: Final = "format_version"

# Top-level groups.
SPIKES: Final = "spikes"  # SONATA: /spikes/<population>/{timestamps,node_ids}
MEMBRANE: Final = "membrane"
WEIGHTS: Final = "weights"
METADATA: Final = "metadata"
NODES: Final = "nodes"  # /metadata/nodes/<node_id>
#: /metadata/summary: one row of facts per stream, written at a clean close
#: (recorderd.session.summary); tables ``streams`` and ``runs``.
SUMMARY: Final = "summary"
SUMMARY_STREAMS: Final = "streams"
SUMMARY_RUNS: Final = "runs"
#: A summary row's ``kind`` is an index in this tuple.
SUMMARY_KINDS: Final = (SPIKES, MEMBRANE, WEIGHTS)

#: Population names join node id and layer with ".", which neither may contain.
POPULATION_SEP: Final = "."

# Spike population datasets (one row per spike).
TIMESTAMPS: Final = "timestamps"  # float64, ms (SONATA)
NODE_IDS: Final = "node_ids"  # uint32 neuron index in the layer (SONATA)
STEPS: Final = "steps"  # int64 simulation step; format 2 only (3: from the frames)
# Per-message index datasets (one row per received message), in every stream group.
FRAME_STEP: Final = "frame_step"  # int64
FRAME_TIME: Final = "frame_time"  # float64, ms
FRAME_SEQ: Final = "frame_seq"  # uint64
FRAME_INCARNATION: Final = "frame_incarnation"  # uint64
FRAME_COUNT: Final = "frame_count"  # uint32: spikes kept / neurons recorded / matrix rows
#: uint64: the message's Zenoh timestamp (hybrid logical clock), ns since 1970-01-01 UTC;
#: 0 when the sample carried none. In streams created by recorderd 0.5 and later.
FRAME_ZENOH_TIME: Final = "frame_zenoh_time"
# Which neurons of the layer are recorded (after subsampling), sorted uint32.
RECORDED_NEURONS: Final = "recorded_neurons"
# Membrane / weights data.
DATA: Final = (
    "data"  # membrane: (frames, recorded neurons) float32 mV; weights: (snapshots, rows, cols)
)

# Stream attributes.
ATTR_NODE_ID: Final = "node_id"
ATTR_LAYER: Final = "layer"
ATTR_LAYER_SIZE: Final = "layer_size"
ATTR_DT_MS: Final = "dt_ms"
ATTR_SUBSAMPLE_RATE: Final = "subsample_rate"
ATTR_UNITS: Final = "units"
ATTR_SORTING: Final = "sorting"  # HDF5 enum, SONATA

#: SONATA's ``sorting`` enum values.
SORTING_ENUM: Final = {"none": 0, "by_id": 1, "by_time": 2}

# Metadata attributes.
ATTR_SESSION: Final = "session"
ATTR_RECORDER_CONFIG: Final = "recorder_config"  # JSON
ATTR_SUBSAMPLE_SEED: Final = "subsample_seed"
ATTR_SUBSAMPLING: Final = "subsampling"  # JSON description of the rule
ATTR_START_TIME: Final = "start_time_utc"  # ISO 8601
ATTR_STOP_TIME: Final = "stop_time_utc"  # ISO 8601, "" while recording
ATTR_STATISTICS: Final = "statistics"  # JSON, same content as recording_statistics.json
ATTR_MODULE_TYPE: Final = "module_type"
ATTR_INCARNATIONS: Final = "incarnations"  # uint64 array: the node's first incarnations seen
ATTR_INCARNATIONS_TOTAL: Final = "incarnations_total"  # int: all incarnations seen
#: Incarnations listed per node at most (a node restarting without end is counted only).
MAX_NODE_INCARNATIONS: Final = 1024
ATTR_RECORDER_RUNS: Final = "recorder_runs"  # int: how many recorder runs appended
ATTR_RECORDER_VERSION: Final = "recorder_version"  # str: recorderd of the latest run
#: A shard's file: its name, and the node-id patterns it records (JSON list).
ATTR_SHARD: Final = "shard"
ATTR_SHARD_NODES: Final = "shard_nodes"

TIME_DTYPE: Final = np.dtype("<f8")
STEP_DTYPE: Final = np.dtype("<i8")
NEURON_DTYPE: Final = np.dtype("<u4")
VALUE_DTYPE: Final = np.dtype("<f4")
SEQ_DTYPE: Final = np.dtype("<u8")
COUNT_DTYPE: Final = np.dtype("<u4")

UNITS_TIME: Final = "ms"
UNITS_MEMBRANE: Final = "mV"
UNITS_WEIGHTS: Final = "1"  # dimensionless synaptic efficacy

#: Rows per chunk of 1-D per-spike datasets: 128 KiB of float64. A stream holds at most
#: one unfinished chunk of each dataset in memory, so this bounds its memory.
SPIKE_CHUNK: Final = 16384
#: Rows per chunk of per-message index datasets.
FRAME_CHUNK: Final = 4096
#: Target bytes per chunk of membrane and weight data.
DATA_CHUNK_BYTES: Final = 512 * 1024


def population(node_id: str, layer: str) -> str:
    """SONATA population name of a node's layer, e.g. ``pfc-0.output``."""
    return f"{node_id}{POPULATION_SEP}{layer}"


def split_population(name: str) -> tuple[str, str]:
    """Inverse of :func:`population`: ``(node_id, layer)``."""
    node_id, _, layer = name.partition(POPULATION_SEP)
    return node_id, layer


def _sharded(name: str, shard: str | None) -> str:
    """``name`` with ``.<shard>`` before its extension (a leading dot is kept)."""
    if shard is None:
        return name
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.{shard}{dot}{ext}"


@dataclass(frozen=True, slots=True)
class SessionFiles:
    """The files one recorder writes in a session folder: the whole session's, or a shard's."""

    dir: Path
    shard: str | None = None

    @property
    def data(self) -> Path:
        """``simulation_data.h5``, or ``simulation_data.<shard>.h5``."""
        return self.dir / _sharded(DATA_FILE, self.shard)

    @property
    def journal(self) -> Path:
        """The data file's journal: its name plus ``-journal``."""
        return self.dir / (self.data.name + "-journal")

    @property
    def control(self) -> Path:
        """``control_states.jsonl``, or ``control_states.<shard>.jsonl``."""
        return self.dir / _sharded(CONTROL_FILE, self.shard)

    @property
    def statistics(self) -> Path:
        """``recording_statistics.json``, or ``recording_statistics.<shard>.json``."""
        return self.dir / _sharded(STATISTICS_FILE, self.shard)

    @property
    def lock(self) -> Path:
        """``.recorder.lock``, or ``.recorder.<shard>.lock``: one writer per file set."""
        return self.dir / _sharded(LOCK_FILE, self.shard)

    @classmethod
    def of_data_file(cls, path: Path) -> SessionFiles | None:
        """The file set a data file belongs to, from its name; None if it is not one."""
        if path.name == DATA_FILE:
            return cls(path.parent)
        match = _SHARD_DATA_RE.fullmatch(path.name)
        return cls(path.parent, match.group(1)) if match else None


def session_file_sets(session_dir: Path) -> list[SessionFiles]:
    """Every recorder's file set in a session folder: the unsharded one first, then each
    shard by name. Empty if the folder holds no data file."""
    try:
        names = sorted(p.name for p in session_dir.iterdir())
    except OSError:
        return []
    sets = [SessionFiles.of_data_file(session_dir / n) for n in names]
    found = [f for f in sets if f is not None]
    return sorted(found, key=lambda f: (f.shard is not None, f.shard or ""))
