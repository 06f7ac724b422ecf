"""One data file of a session folder, open for reading as committed.

:class:`DataFile` opens ``simulation_data.h5`` (or a shard's ``simulation_data.<shard>.h5``)
read-only, recovering or replaying its journal as the caller chooses, and gives its
streams as :class:`~recorderd.session.views.StreamView`. A session is one or more of
them: :class:`recorderd.session.reader.SessionFile`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, Final

import h5py

from recorderd.session import layout as L
from recorderd.session.journal import JournalError, Replay, replay
from recorderd.session.recovery import SessionState, open_readonly, recover_if_idle
from recorderd.session.summary import StreamSummary, read_summary
from recorderd.session.views import SessionFileError, StreamView, plain, storage_under

log = logging.getLogger(__name__)

#: How long a reader waits for a live session's journal to appear or a closing one's to go.
JOURNAL_WAIT_S: Final = 2.0
#: Streams kept open per file (with their datasets): the last few used. An open dataset
#: holds HDF5's chunk cache, so thousands of streams must not stay open.
STREAMS_KEPT: Final = 8
#: Most bytes of metadata (object headers, B-tree nodes) HDF5 keeps cached per file, as
#: HDF5 counts them: decoded in memory they take about ten times that. HDF5's default
#: lets the cache grow to 32 MiB, which a pass over 5,000 streams reaches (~400 MB of
#: RSS); a reader passes over each stream once, so a small cache costs no time.
METADATA_CACHE_BYTES: Final = 2 << 20


def _bound_metadata_cache(h5: h5py.File) -> None:
    """Cap the file's metadata cache at :data:`METADATA_CACHE_BYTES`."""
    config = h5.id.get_mdc_config()
    config.max_size = METADATA_CACHE_BYTES
    config.min_size = min(config.min_size, METADATA_CACHE_BYTES)
    config.initial_size = min(config.initial_size, METADATA_CACHE_BYTES)
    config.set_initial_size = True
    h5.id.set_mdc_config(config)


class DataFile:
    """One recorder's data file of a session folder (the whole session's or a shard's),
    open for reading."""

    def __init__(self, files: L.SessionFiles, *, recover: bool = True) -> None:
        self.files = files
        self.path = files.dir
        data = files.data
        #: ``clean``, ``recovered`` (a crashed recording, repaired on opening), ``live``
        #: (being recorded) or ``read-only`` (crashed, not repaired: read through the
        #: journal, the file left as it is).
        self.state: SessionState = "clean"
        self._journal: Replay | None = None
        self._streams: dict[tuple[str, str, str], StreamView] = {}
        self._tops: dict[str, h5py.h5g.GroupID | None] = {}
        self._summary: dict[tuple[str, str], StreamSummary] | None = None  # read on first use
        try:
            self._open_journal(recover)
            self._h5 = open_readonly(data)
            if self._journal is None and self._h5.swmr_mode:
                # A recorder started on the session meanwhile: read it as live, the
                # journal first and then the file (never older than the journal).
                self._h5.close()
                self._open_journal(recover)
                self._h5 = open_readonly(data)
            _bound_metadata_cache(self._h5)
        except (OSError, ValueError, RuntimeError) as exc:
            raise SessionFileError(f"cannot open {data}: {exc}") from exc

    def _open_journal(self, recover: bool) -> None:
        files = self.files
        """Recover a crashed session, or replay a journal to read through it."""
        deadline = time.monotonic() + JOURNAL_WAIT_S
        while True:
            self.state = recover_if_idle(self.path, may_recover=recover, shard=files.shard)
            if self.state not in ("live", "read-only"):
                return
            try:
                self._journal = replay(files.journal)
                return
            except FileNotFoundError:
                # A writer that is closing (journal just deleted) or opening (journal
                # not yet written), or flags without a journal: look again shortly.
                if time.monotonic() > deadline:
                    if self.state == "live":
                        log.warning("%s: no journal; reading whole chunks only", files.data)
                    return
                time.sleep(0.05)
            except JournalError as exc:
                log.warning("%s: reading whole chunks only: %s", files.data, exc)
                return

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._streams.clear()
        self._tops.clear()
        self._h5.close()

    # -- what is there ---------------------------------------------------------------

    def root_attrs(self) -> dict[str, Any]:
        """The file's root attributes (format name and version)."""
        return {k: plain(v) for k, v in self._h5.attrs.items()}

    def metadata_attrs(self) -> dict[str, Any]:
        """``/metadata`` attributes as plain Python values."""
        return {k: plain(v) for k, v in self._h5[L.METADATA].attrs.items()}

    def node_ids_with_metadata(self) -> list[str]:
        """Nodes under ``/metadata/nodes``."""
        return list(self._h5[L.METADATA][L.NODES].keys())

    def node_attrs(self, node_id: str) -> dict[str, Any]:
        """``/metadata/nodes/<node_id>`` attributes ({} if the node has none)."""
        nodes = self._h5[L.METADATA][L.NODES]
        if node_id not in nodes:
            return {}
        return {k: plain(v) for k, v in nodes[node_id].attrs.items()}

    def populations(self, kind: str) -> list[str]:
        """Stream group names under ``spikes``, ``membrane`` or ``weights`` (file order)."""
        return list(self._h5[kind].keys()) if kind in self._h5 else []

    def stream(self, kind: str, node_id: str, layer: str) -> StreamView:
        """One stream (the last few stay open); ``KeyError`` naming it if there is none."""
        key = (kind, node_id, layer)
        view = self._streams.get(key)
        if view is None:
            pop = L.population(node_id, layer)
            top = self._top(kind)
            group = None
            if top is not None and top.links.exists(pop.encode()):
                group = h5py.h5o.open(top, pop.encode())
            if not isinstance(group, h5py.h5g.GroupID):
                raise KeyError(f"no {kind} stream for node {node_id!r} layer {layer!r}")
            if len(self._streams) >= STREAMS_KEPT:  # the oldest: its datasets close
                del self._streams[next(iter(self._streams))]
            view = self._streams[key] = StreamView(group, f"/{kind}/{pop}", self._journal)
        return view

    def summary(self, kind: str, population: str) -> StreamSummary | None:
        """A stream's row of the file's stream summary; None if the file has no summary
        that holds as the file is (only a cleanly closed file's does) or no row for it."""
        if self._summary is None:
            found = read_summary(self._h5) if self.state == "clean" else None
            self._summary = found or {}
        return self._summary.get((kind, population))

    def _top(self, kind: str) -> h5py.h5g.GroupID | None:
        """The top-level group of a kind, opened once (None if the file has none)."""
        if kind not in self._tops:
            self._tops[kind] = self._h5[kind].id if kind in self._h5 else None
        return self._tops[kind]

    def streams(self, kind: str) -> Iterator[StreamView]:
        """Every stream of a kind, one at a time."""
        for pop in self.populations(kind):
            node, layer = L.split_population(pop)
            yield self.stream(kind, node, layer)

    def storage_bytes(self, kind: str) -> int:
        """Bytes the datasets under ``spikes``, ``membrane`` or ``weights`` take in the file."""
        top = self._top(kind)
        return 0 if top is None else storage_under(top)
