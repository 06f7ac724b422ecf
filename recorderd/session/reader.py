"""Reading a session file as committed: finished, live and crashed sessions alike.

:class:`SessionFile` opens ``simulation_data.h5`` read-only and gives its streams as
:class:`StreamView` objects whose datasets (:class:`DatasetView`) return row ranges as
numpy arrays. What a reader sees is exactly what the last flush made durable: for a live
or crashed session each appendable dataset is its committed HDF5 rows followed by the
tail the journal holds (``docs/recording-format.md``, "Reading"). No h5py object leaves
this module.

Whether a crashed session is repaired in place is the caller's choice (``recover``):
recovering takes the session lock for a moment and modifies the file, as the next
recorder would; without it the session is read through its journal and never changed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np
import numpy.typing as npt

from recorderd.session import layout as L
from recorderd.session.journal import JournalError, Replay, replay
from recorderd.session.recovery import SessionState, open_readonly, recover_if_idle
from recorderd.session.schema import TOP_GROUPS

log = logging.getLogger(__name__)

#: How long a reader waits for a live session's journal to appear or a closing one's to go.
JOURNAL_WAIT_S: Final = 2.0
#: Streams kept open per file (with their datasets): the last few used. An open dataset
#: holds HDF5's chunk cache, so thousands of streams must not stay open.
STREAMS_KEPT: Final = 8
#: The stream kinds, as the names of their top-level groups.
KINDS: Final = tuple(TOP_GROUPS.values())


#: Most bytes of metadata (object headers, B-tree nodes) HDF5 keeps cached per file, as
#: HDF5 counts them: decoded in memory they take about ten times that. HDF5's default
#: lets the cache grow to 32 MiB, which a pass over 5,000 streams reaches (~400 MB of
#: RSS); a reader passes over each stream once, so a small cache costs no time.
METADATA_CACHE_BYTES: Final = 2 << 20


class SessionFileError(Exception):
    """The file cannot be opened as a session (the message says why)."""


def plain(value: Any) -> Any:
    """An attribute value as plain Python (arrays as lists, bytes as str)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


class DatasetView:
    """One dataset of a stream as committed: ``rows`` rows, read as numpy arrays.

    For a live or crashed session an appendable dataset is its first ``main`` HDF5 rows
    followed by the journal's tail; rows of the HDF5 dataset past ``main`` are not part
    of it (written after the last flush).
    """

    def __init__(
        self, ds: h5py.h5d.DatasetID, name: str, main: int | None = None, tail: Any = None
    ) -> None:
        shape = tuple(int(x) for x in ds.shape)
        n = shape[0] if shape else 0
        if main is not None and main > n:
            raise SessionFileError(f"{name}: the journal commits {main} rows, the file has {n}")
        self._ds = ds
        self._file_rows = n
        self._hl: h5py.Dataset | None = None
        self._main = n if main is None else main
        row_shape = shape[1:]
        self.dtype: np.dtype[Any] = ds.dtype
        self._tail: npt.NDArray[Any] = (
            np.zeros((0, *row_shape), dtype=self.dtype) if tail is None else tail
        )
        self.shape: tuple[int, ...] = (self._main + int(self._tail.shape[0]), *row_shape)
        self.name: str = name
        self._chunk_rows: int | None = None

    @property
    def chunk_rows(self) -> int:
        """Rows per chunk along the first axis (1 if not chunked)."""
        if self._chunk_rows is None:
            plist = self._ds.get_create_plist()
            chunked = plist.get_layout() == h5py.h5d.CHUNKED
            self._chunk_rows = int(plist.get_chunk()[0]) if chunked else 1
        return self._chunk_rows

    def storage_bytes(self) -> int:
        """Bytes the dataset takes in the file."""
        return int(self._ds.get_storage_size())

    def _high_level(self) -> h5py.Dataset:
        """h5py's dataset object, made on first use (fancy selections only)."""
        if self._hl is None:
            self._hl = h5py.Dataset(self._ds)
        return self._hl

    @property
    def rows(self) -> int:
        """Rows along the first axis."""
        return self.shape[0] if self.shape else 0

    def read(self, lo: int = 0, hi: int | None = None, cols: Sequence[int] | None = None) -> Any:
        """Rows ``lo`` to ``hi`` (exclusive) as an array; ``cols``: only those columns."""
        n, main = self.rows, self._main
        hi = n if hi is None else min(hi, n)
        lo = max(0, min(lo, hi))
        rest: tuple[Any, ...] = () if cols is None else (list(cols),)
        parts = []
        if lo < main:
            top = min(hi, main)
            if cols is None:
                parts.append(self._read_rows(lo, top))
            else:
                parts.append(np.asarray(self._high_level()[(slice(lo, top), *rest)]))
        if hi > main:
            tail = self._tail[max(lo - main, 0) : hi - main]
            parts.append(tail if cols is None else tail[:, list(cols)])
        if not parts:
            empty = self._tail[:0]
            return empty if cols is None else empty[:, list(cols)]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _read_rows(self, lo: int, hi: int) -> npt.NDArray[Any]:
        """File rows ``lo`` to ``hi`` through HDF5's low-level read (a tenth of the
        overhead of h5py's slicing, which counts with thousands of small streams)."""
        row_shape = self.shape[1:]
        out = np.empty((hi - lo, *row_shape), dtype=self.dtype)
        if lo == 0 and hi == self._file_rows and out.size:  # all: no selection to build
            self._ds.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
        elif hi > lo and out.size:
            fspace = self._ds.get_space()
            fspace.select_hyperslab((lo, *(0,) * len(row_shape)), out.shape)
            self._ds.read(h5py.h5s.create_simple(out.shape), fspace, out)
        return out

    def row(self, i: int) -> Any:
        """One row (negative ``i`` counts from the end)."""
        n = self.rows
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError(f"row {i} out of range for {n} rows")
        return self.read(j, j + 1)[0]

    def read_part(self, row: int, lo: int, hi: int) -> Any:
        """Rows ``lo`` to ``hi`` of the second axis of one row (a block of a weight matrix)."""
        if not 0 <= row < self.rows:
            raise IndexError(f"row {row} out of range for {self.rows} rows")
        if row < self._main:
            return np.asarray(self._high_level()[row, lo:hi])
        return self._tail[row - self._main, lo:hi]

    def read_all(self) -> Any:
        """Every committed row (a non-appendable dataset whole)."""
        if not self.shape:
            return np.asarray(self._high_level()[()])
        return self.read()


class StreamView:
    """One stream group: its attributes and its datasets as committed.

    Everything is read when first asked for, through HDF5's low-level API: a summary of
    thousands of streams reads a few attributes and datasets of each, and h5py's
    high-level objects cost tens of microseconds per attribute or dataset opened.
    """

    def __init__(self, group: h5py.h5g.GroupID, path: str, journal: Replay | None) -> None:
        self._group = group
        self._journal = journal
        self.path: str = path
        self._attrs: dict[str, Any] | None = None
        self._raw: dict[str, Any] = {}  # attributes read one by one
        self._names: dict[str, bool] = {}
        self._datasets: dict[str, DatasetView] = {}

    @property
    def attrs(self) -> dict[str, Any]:
        """The group's attributes as plain Python values (all of them, read once)."""
        if self._attrs is None:
            self._attrs = {k: plain(v) for k, v in h5py.Group(self._group).attrs.items()}
        return self._attrs

    def attr(self, name: str, default: Any = None) -> Any:
        """One attribute as a plain Python value (``default`` if absent)."""
        if self._attrs is not None:
            return self._attrs.get(name, default)
        value = self.raw_attr(name)
        return default if value is None else plain(value)

    def storage_bytes(self) -> int:
        """Bytes the stream's datasets take in the file (those open and the others)."""
        total = 0
        for raw in self._group:
            view = self._datasets.get(raw.decode())
            if view is not None:
                total += view.storage_bytes()
                continue
            obj = h5py.h5o.open(self._group, raw)
            if isinstance(obj, h5py.h5d.DatasetID):
                total += obj.get_storage_size()
            elif isinstance(obj, h5py.h5g.GroupID):
                total += _storage_under(obj)
        return total

    def __contains__(self, name: str) -> bool:
        found = self._names.get(name)
        if found is None:  # one link lookup, not a listing of the group
            found = self._names[name] = name.encode() in self._group
        return found

    def dataset(self, name: str) -> DatasetView:
        """A dataset of the stream, as committed (opened once per view)."""
        view = self._datasets.get(name)
        if view is None:
            view = self._datasets[name] = self._open(name)
        return view

    def _open(self, name: str) -> DatasetView:
        try:
            ds = h5py.h5d.open(self._group, name.encode())
        except KeyError:
            raise KeyError(f"{self.path}: no dataset {name!r}") from None
        path = f"{self.path}/{name}"
        if self._journal is None or not _appendable(ds):
            return DatasetView(ds, path)
        tail = self._journal.tails.get(path)
        if tail is None:  # created after the last journal record: nothing committed
            return DatasetView(ds, path, 0)
        return DatasetView(ds, path, tail.main, self._journal.tail(path))

    def raw_attr(self, name: str) -> Any:
        """An attribute as HDF5 stores it (for enum attributes such as ``sorting``)."""
        if name not in self._raw:
            key = name.encode()
            exists = h5py.h5a.exists(self._group, key)
            self._raw[name] = _read_attr(self._group, key) if exists else None
        return self._raw[name]


def _read_attr(oid: h5py.h5g.GroupID, key: bytes) -> Any:
    """An attribute's value as h5py's ``attrs[name]`` gives it; numbers read directly."""
    aid = h5py.h5a.open(oid, key)
    dtype = aid.dtype
    space = aid.get_space()
    if dtype.kind not in "biuf" or space.get_simple_extent_type() == h5py.h5s.NULL:
        return h5py.Group(oid).attrs[key.decode()]  # strings, compounds, empty: h5py's rules
    out = np.empty(space.shape, dtype=dtype)
    aid.read(out)
    return out[()] if out.ndim == 0 else out


def _storage_under(group: h5py.h5g.GroupID) -> int:
    """Bytes of every dataset below a group."""
    total = 0

    def visit(name: bytes, info: Any) -> None:
        nonlocal total
        if info.type == h5py.h5o.TYPE_DATASET:
            total += h5py.h5d.open(group, name).get_storage_size()

    h5py.h5o.visit(group, visit, info=True)
    return total


def _bound_metadata_cache(h5: h5py.File) -> None:
    """Cap the file's metadata cache at :data:`METADATA_CACHE_BYTES`."""
    config = h5.id.get_mdc_config()
    config.max_size = METADATA_CACHE_BYTES
    config.min_size = min(config.min_size, METADATA_CACHE_BYTES)
    config.initial_size = min(config.initial_size, METADATA_CACHE_BYTES)
    config.set_initial_size = True
    h5.id.set_mdc_config(config)


def _appendable(ds: h5py.h5d.DatasetID) -> bool:
    """Whether a dataset grows along axis 0 (unlimited first dimension)."""
    maxshape = ds.get_space().get_simple_extent_dims(True)
    return bool(maxshape) and maxshape[0] == h5py.h5s.UNLIMITED


class SessionFile:
    """``simulation_data.h5`` of a session folder, open for reading (see module docstring)."""

    def __init__(self, session_dir: Path, *, recover: bool = True) -> None:
        self.path = session_dir
        data = session_dir / L.DATA_FILE
        #: ``clean``, ``recovered`` (a crashed recording, repaired on opening), ``live``
        #: (being recorded) or ``read-only`` (crashed, not repaired: read through the
        #: journal, the file left as it is).
        self.state: SessionState = "clean"
        self._journal: Replay | None = None
        self._streams: dict[tuple[str, str, str], StreamView] = {}
        self._tops: dict[str, h5py.h5g.GroupID | None] = {}
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
        """Recover a crashed session, or replay a journal to read through it."""
        deadline = time.monotonic() + JOURNAL_WAIT_S
        while True:
            self.state = recover_if_idle(self.path, may_recover=recover)
            if self.state not in ("live", "read-only"):
                return
            try:
                self._journal = replay(self.path / L.JOURNAL_FILE)
                return
            except FileNotFoundError:
                # A writer that is closing (journal just deleted) or opening (journal
                # not yet written), or flags without a journal: look again shortly.
                if time.monotonic() > deadline:
                    if self.state == "live":
                        log.warning("%s: no journal; reading whole chunks only", self.path)
                    return
                time.sleep(0.05)
            except JournalError as exc:
                log.warning("%s: reading whole chunks only: %s", self.path, exc)
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
        return 0 if top is None else _storage_under(top)
