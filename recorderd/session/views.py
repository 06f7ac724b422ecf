"""Streams and datasets of a session file as committed: HDF5 rows plus the journal's tail.

:class:`StreamView` and :class:`DatasetView` give a stream's datasets as row ranges of
numpy arrays (``docs/recording-format.md``, "Reading"). No h5py object leaves this
package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from recorderd.session.journal import Replay


class SessionFileError(Exception):
    """A file cannot be opened or read as a session file (the message says why)."""


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
                total += storage_under(obj)
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


def storage_under(group: h5py.h5g.GroupID) -> int:
    """Bytes of every dataset below a group."""
    total = 0

    def visit(name: bytes, info: Any) -> None:
        nonlocal total
        if info.type == h5py.h5o.TYPE_DATASET:
            total += h5py.h5d.open(group, name).get_storage_size()

    h5py.h5o.visit(group, visit, info=True)
    return total


def _appendable(ds: h5py.h5d.DatasetID) -> bool:
    """Whether a dataset grows along axis 0 (unlimited first dimension)."""
    maxshape = ds.get_space().get_simple_extent_dims(True)
    return bool(maxshape) and maxshape[0] == h5py.h5s.UNLIMITED
