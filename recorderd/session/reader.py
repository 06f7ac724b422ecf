"""Reading a session as committed: finished, live and crashed sessions alike, sharded or not.

:class:`SessionFile` opens every data file of a session folder read-only
(``simulation_data.h5`` and each shard's ``simulation_data.<shard>.h5``, see
``docs/deployment.md``) as :class:`~recorderd.session.datafile.DataFile` objects and
gives their streams as one session: :class:`StreamView` objects whose datasets
(:class:`DatasetView`) return row ranges as numpy arrays. What a reader sees is exactly
what the last flush made durable: for a live or crashed session each appendable dataset
is its committed HDF5 rows followed by the tail the journal holds
(``docs/recording-format.md``, "Reading"). No h5py object leaves this package.

Whether a crashed session is repaired in place is the caller's choice (``recover``):
recovering takes the session lock for a moment and modifies the file, as the next
recorder would; without it the session is read through its journal and never changed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from recorderd.session import layout as L
from recorderd.session.controllog import read_records
from recorderd.session.datafile import DataFile
from recorderd.session.recovery import SessionState
from recorderd.session.schema import TOP_GROUPS
from recorderd.session.statistics import merged
from recorderd.session.summary import RunSummary, StreamSummary
from recorderd.session.views import DatasetView, SessionFileError, StreamView, plain

__all__ = [
    "KINDS",
    "DataFile",
    "DatasetView",
    "RunSummary",
    "SessionFile",
    "SessionFileError",
    "StreamSummary",
    "StreamView",
    "plain",
]

log = logging.getLogger(__name__)

#: The stream kinds, as the names of their top-level groups.
KINDS: Final = tuple(TOP_GROUPS.values())
#: How a session's state sums up its files' states: the first that any file has.
_STATE_ORDER: Final[tuple[SessionState, ...]] = ("live", "read-only", "recovered", "clean")


class SessionFile:
    """Every data file of a session folder, read as one session (see module docstring).

    A stream recorded by two shards (their node patterns overlapped) is read from the
    first of them, by shard name (the unsharded file first), and listed in
    :attr:`overlapping`.
    """

    def __init__(self, session_dir: Path, *, recover: bool = True) -> None:
        self.path = session_dir
        sets = L.session_file_sets(session_dir)
        if not sets:
            raise SessionFileError(f"no {L.DATA_FILE} (or shard data file) in {session_dir}")
        self.files: list[DataFile] = []
        try:
            for files in sets:
                self.files.append(DataFile(files, recover=recover))
        except BaseException:
            self.close()
            raise
        #: Streams (``kind/population``) found in more than one file, with the shards.
        self.overlapping: dict[str, list[str]] = {}
        self._owner: dict[str, dict[str, DataFile]] = {}  # kind -> population -> file

    @property
    def state(self) -> SessionState:
        """``live`` if any file is being recorded, else ``read-only``, ``recovered`` or
        ``clean`` (the first any file is, in that order)."""
        states = {f.state for f in self.files}
        return next(s for s in _STATE_ORDER if s in states or s == "clean")

    @property
    def shards(self) -> list[str | None]:
        """The shards whose files the session holds (None: the unsharded file)."""
        return [f.files.shard for f in self.files]

    def close(self) -> None:
        """Close every file (idempotent)."""
        for f in self.files:
            f.close()

    # -- what is there ---------------------------------------------------------------

    def root_attrs(self) -> dict[str, Any]:
        """Root attributes (format name and version): the oldest format among the files."""
        attrs = [f.root_attrs() for f in self.files]
        return min(attrs, key=lambda a: int(a.get(L.ATTR_FORMAT_VERSION, 0)))

    def metadata_attrs(self) -> dict[str, Any]:
        """``/metadata`` attributes; for several files, the first's, with the earliest
        start, the latest stop ("" while any file is still open) and the most recorder
        runs, without the per-file ``shard``, ``shard_nodes`` and ``statistics`` (see
        :meth:`shard_files`; the reader merges the statistics documents)."""
        if len(self.files) == 1:
            return self.files[0].metadata_attrs()
        every = [f.metadata_attrs() for f in self.files]
        merged = dict(every[0])
        starts = [str(m.get(L.ATTR_START_TIME, "")) for m in every]
        stops = [str(m.get(L.ATTR_STOP_TIME, "")) for m in every]
        merged[L.ATTR_START_TIME] = min((s for s in starts if s), default="")
        merged[L.ATTR_STOP_TIME] = "" if "" in stops else max(stops)
        merged[L.ATTR_RECORDER_RUNS] = max(int(m.get(L.ATTR_RECORDER_RUNS, 0)) for m in every)
        for per_file in (L.ATTR_SHARD, L.ATTR_SHARD_NODES, L.ATTR_STATISTICS):
            merged.pop(per_file, None)
        return merged

    def shard_files(self) -> list[dict[str, Any]]:
        """Per data file: ``{"shard", "nodes", "file", "bytes"}`` (``shard`` None and
        ``nodes`` ``["*"]`` for the unsharded file), in :attr:`shards` order."""
        out = []
        for f in self.files:
            nodes = f.metadata_attrs().get(L.ATTR_SHARD_NODES)
            data = f.files.data
            out.append(
                {
                    "shard": f.files.shard,
                    "nodes": json.loads(str(nodes)) if nodes else ["*"],
                    "file": data.name,
                    "bytes": data.stat().st_size,
                }
            )
        return out

    def node_ids_with_metadata(self) -> list[str]:
        """Nodes under ``/metadata/nodes`` of any file, in file order."""
        seen: dict[str, None] = {}
        for f in self.files:
            seen.update(dict.fromkeys(f.node_ids_with_metadata()))
        return list(seen)

    def node_attrs(self, node_id: str) -> dict[str, Any]:
        """``/metadata/nodes/<node_id>`` attributes ({} if the node has none); with several
        files, merged (incarnations joined)."""
        found = [a for f in self.files if (a := f.node_attrs(node_id))]
        if len(found) <= 1:
            return found[0] if found else {}
        merged = dict(found[0])
        incarnations: set[int] = set()
        for attrs in found:
            for key, value in attrs.items():
                merged.setdefault(key, value)
            incarnations.update(int(i) for i in attrs.get(L.ATTR_INCARNATIONS, []))
        if L.ATTR_INCARNATIONS in merged:
            merged[L.ATTR_INCARNATIONS] = sorted(incarnations)[: L.MAX_NODE_INCARNATIONS]
        return merged

    def _owners(self, kind: str) -> dict[str, DataFile]:
        """Each stream of a kind and the file it is read from (the first that has it)."""
        owners = self._owner.get(kind)
        if owners is not None:
            return owners
        owners = self._owner[kind] = {}
        for f in self.files:
            for pop in f.populations(kind):
                first = owners.setdefault(pop, f)
                if first is f:
                    continue
                stream = f"{kind}/{pop}"
                shards = self.overlapping.setdefault(stream, [str(first.files.shard)])
                shards.append(str(f.files.shard))
                log.warning(
                    "%s: stream %s recorded by shards %s: reading %s's",
                    self.path,
                    stream,
                    " and ".join(shards),
                    shards[0],
                )
        return owners

    def populations(self, kind: str) -> list[str]:
        """Stream group names under ``spikes``, ``membrane`` or ``weights`` (file order)."""
        return list(self._owners(kind))

    def stream(self, kind: str, node_id: str, layer: str) -> StreamView:
        """One stream (the last few stay open); ``KeyError`` naming it if there is none."""
        owner = self._owners(kind).get(L.population(node_id, layer))
        if owner is None:
            raise KeyError(f"no {kind} stream for node {node_id!r} layer {layer!r}")
        return owner.stream(kind, node_id, layer)

    def summary(self, kind: str, node_id: str, layer: str) -> StreamSummary | None:
        """A stream's row of the stream summary of the file it is read from (None if that
        file has no summary that holds, or no row for it: read the stream itself)."""
        pop = L.population(node_id, layer)
        owner = self._owners(kind).get(pop)
        return None if owner is None else owner.summary(kind, pop)

    def streams(self, kind: str) -> Iterator[StreamView]:
        """Every stream of a kind, one at a time."""
        for pop in self.populations(kind):
            node, layer = L.split_population(pop)
            yield self.stream(kind, node, layer)

    def control_records(self) -> list[dict[str, Any]]:
        """Every record of the control logs (``control_states.jsonl``, each shard's
        ``control_states.<shard>.jsonl``); several logs merged by the time received."""
        logs = [f.files.control for f in self.files]
        if len(logs) == 1:
            return read_records(logs[0])
        records = [r for path in logs for r in read_records(path)]
        records.sort(key=lambda r: str(r.get("received_at") or ""))  # ISO 8601 UTC; stable
        return records

    def statistics(self) -> dict[str, Any]:
        """``recording_statistics.json``, or the copy inside the HDF5 file; for a sharded
        session the shards' documents merged (:func:`~recorderd.session.statistics.merged`)."""
        documents: dict[str | None, dict[str, Any]] = {}
        for f in self.files:
            path = f.files.statistics
            if path.exists():
                documents[f.files.shard] = json.loads(path.read_text(encoding="utf-8"))
            else:
                text = f.metadata_attrs().get(L.ATTR_STATISTICS)
                documents[f.files.shard] = json.loads(text) if text else {}
        return merged(documents)

    def storage_bytes(self, kind: str) -> int:
        """Bytes the datasets under ``spikes``, ``membrane`` or ``weights`` take in the files."""
        return sum(f.storage_bytes(kind) for f in self.files)
