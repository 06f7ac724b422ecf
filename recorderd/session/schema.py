"""Groups, datasets and attributes of a session file, as ``docs/recording-format.md`` says.

The one place that creates the HDF5 structure of a session (the names come from
:mod:`recorderd.session.layout`): a new session file, a stream group with its datasets, the
SONATA ``sorting`` attribute (also used by the export), and what a reopened file says
about an existing stream.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import h5py
import numpy as np
import numpy.typing as npt

from recorderd.session import layout as L
from recorderd.session.safefs import fsync_path, remove_entry
from recorderd.wire import Kind

#: HDF5 format bounds: SWMR needs v110 at least; v114 (not "latest", which HDF5 2.0
#: maps to object versions that libsonata's HDF5 1.14 cannot read) at most.
LIBVER: Final[tuple[str, str]] = ("v110", "v114")

Compression = Literal["gzip", "lzf", "none"]
#: The compression choices, in the order the CLI lists them.
COMPRESSIONS: Final[tuple[Compression, ...]] = ("gzip", "lzf", "none")

TOP_GROUPS: Final = {Kind.SPIKES: L.SPIKES, Kind.MEMBRANE: L.MEMBRANE, Kind.WEIGHTS: L.WEIGHTS}


def group_of(kind: Kind | str) -> str:
    """The top-level group of a stream kind, given as a :class:`Kind` or as its group name."""
    if isinstance(kind, Kind):
        return TOP_GROUPS[kind]
    if kind in TOP_GROUPS.values():
        return kind
    raise ValueError(f"unknown stream kind {kind!r}: one of {sorted(TOP_GROUPS.values())}")


def filters(compression: Compression, level: int) -> dict[str, Any]:
    """h5py ``create_dataset`` keywords of a compression choice (shuffle with gzip and lzf)."""
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": level, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    return {}


def utc_now() -> str:
    """The current time as the format writes it: ISO 8601 UTC with milliseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def create_session_file(
    path: Path, *, session: str, subsample_seed: int, subsampling_rule: str
) -> None:
    """A new, empty session file, built under a temporary name and renamed into place."""
    tmp = path.with_name(path.name + ".creating")
    remove_entry(tmp)
    # "w-" creates exclusively (O_EXCL): a symlink planted at the name is refused.
    with h5py.File(tmp, "w-", libver=LIBVER, locking=False) as root:
        root.attrs[L.ATTR_FORMAT] = L.FORMAT_NAME
        root.attrs[L.ATTR_FORMAT_VERSION] = L.FORMAT_VERSION
        for name in TOP_GROUPS.values():
            # Links kept in creation order: streams list in the order they first came,
            # which is the order a node publishes (declares) its layers.
            root.create_group(name, track_order=True)
        meta = root.create_group(L.METADATA)
        meta.create_group(L.NODES)
        meta.attrs[L.ATTR_SESSION] = session
        meta.attrs[L.ATTR_START_TIME] = utc_now()
        meta.attrs[L.ATTR_RECORDER_RUNS] = 0
        meta.attrs[L.ATTR_SUBSAMPLE_SEED] = subsample_seed
        meta.attrs[L.ATTR_SUBSAMPLING] = subsampling_rule
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


def stream_path(kind: Kind, node_id: str, name: str) -> str:
    """HDF5 path of a stream's group, e.g. ``/spikes/pfc-0.output``."""
    return f"/{TOP_GROUPS[kind]}/{L.population(node_id, name)}"


@dataclass(frozen=True)
class StreamSpec:
    """What a new stream group holds, decided by the recorder from its first message."""

    kind: Kind
    node_id: str
    name: str
    shape: tuple[int, ...]  # (layer_size,) or (rows, cols) for weights
    dt_ms: float
    subsample_rate: float
    #: Sorted recorded neurons of a subsampled layer; None: every neuron (or weights).
    recorded: npt.NDArray[np.uint32] | None

    @property
    def path(self) -> str:
        return stream_path(self.kind, self.node_id, self.name)

    @property
    def width(self) -> int:
        """Values per membrane row: the recorded neurons."""
        return self.shape[0] if self.recorded is None else int(self.recorded.size)


@dataclass(frozen=True)
class Series:
    """One appendable dataset of a stream group: its name, dtype, chunk rows and row shape."""

    name: str
    dtype: np.dtype[Any]
    chunk_rows: int
    row_shape: tuple[int, ...] = ()
    #: Whether one chunk spans whole rows (all but weights matrices split along rows).
    whole_rows: bool = True


FRAME_DATASETS: Final = (
    (L.FRAME_STEP, L.STEP_DTYPE),
    (L.FRAME_TIME, L.TIME_DTYPE),
    (L.FRAME_SEQ, L.SEQ_DTYPE),
    (L.FRAME_INCARNATION, L.SEQ_DTYPE),
    (L.FRAME_COUNT, L.COUNT_DTYPE),
)


def series_of(spec: StreamSpec) -> list[Series]:
    """The appendable datasets a new stream group gets, with their chunking."""
    out = [Series(name, dtype, L.FRAME_CHUNK) for name, dtype in FRAME_DATASETS]
    out.append(Series(L.FRAME_ZENOH_TIME, L.SEQ_DTYPE, L.FRAME_CHUNK))
    if spec.kind is Kind.SPIKES:
        # No per-spike steps (format 3): they are the frames' steps, repeated by count.
        out += [
            Series(L.TIMESTAMPS, L.TIME_DTYPE, L.SPIKE_CHUNK),
            Series(L.NODE_IDS, L.NEURON_DTYPE, L.SPIKE_CHUNK),
        ]
    elif spec.kind is Kind.MEMBRANE:
        n = spec.width
        if n:  # no neuron recorded: data is an empty, fixed dataset
            out.append(Series(L.DATA, L.VALUE_DTYPE, max(1, L.DATA_CHUNK_BYTES // (4 * n)), (n,)))
    else:
        rows, cols = spec.shape
        out.append(
            Series(L.DATA, L.VALUE_DTYPE, 1, spec.shape, _weight_chunk_rows(rows, cols) == rows)
        )
    return out


def _weight_chunk_rows(rows: int, cols: int) -> int:
    """Matrix rows per chunk of a weights dataset: one snapshot, about 512 KiB per chunk."""
    return max(1, min(rows, L.DATA_CHUNK_BYTES // (4 * max(1, cols))))


def create_stream(root: h5py.File, spec: StreamSpec, f: dict[str, Any]) -> None:
    """Create a stream's group and datasets (outside SWMR), as :func:`series_of` lists them.

    Through HDF5's low-level calls with reused type, dataspace and property-list ids
    (:class:`_Ids`): h5py's high-level ``create_dataset`` and ``attrs[...] = ...`` spend
    most of a new stream's cost in Python checks that give the same result every time.
    What is created is what they create (``tests/test_session_storage.py`` compares
    both, object by object and through ``h5dump``).
    """
    top, pop = TOP_GROUPS[spec.kind], L.population(spec.node_id, spec.name)
    group = root[top].create_group(pop)
    gid = group.id
    _IDS.attr(gid, L.ATTR_NODE_ID, spec.node_id)
    _IDS.attr(gid, L.ATTR_LAYER, spec.name)
    _IDS.attr(gid, L.ATTR_LAYER_SIZE, np.asarray(spec.shape, dtype=np.int64))
    _IDS.attr(gid, L.ATTR_DT_MS, float(spec.dt_ms))
    _IDS.attr(gid, L.ATTR_SUBSAMPLE_RATE, float(spec.subsample_rate))
    if spec.recorded is not None:
        group.create_dataset(L.RECORDED_NEURONS, data=spec.recorded, dtype=L.NEURON_DTYPE)
    for s in series_of(spec):
        chunks = (s.chunk_rows, *s.row_shape)
        if spec.kind is Kind.WEIGHTS and s.name == L.DATA:
            rows_, cols = spec.shape
            chunks = (1, _weight_chunk_rows(rows_, cols), max(1, cols))
        _IDS.dataset(group, s.name, s.dtype, s.row_shape, chunks, f)
    _IDS.units(gid, L.FRAME_TIME, L.UNITS_TIME)
    if spec.kind is Kind.SPIKES:
        _IDS.units(gid, L.TIMESTAMPS, L.UNITS_TIME)
        set_sorting(group, "by_time")
    elif spec.kind is Kind.MEMBRANE:
        if L.DATA not in group:
            group.create_dataset(L.DATA, shape=(0, 0), dtype=L.VALUE_DTYPE)
        _IDS.units(gid, L.DATA, L.UNITS_MEMBRANE)
    else:
        _IDS.units(gid, L.DATA, L.UNITS_WEIGHTS)


class _Ids:
    """HDF5 ids :func:`create_stream` reuses from one stream to the next (bounded).

    - The creation property list of a dataset is taken from the first dataset h5py
      creates with the same dtype, chunk shape and filters, so every later one is
      created with exactly its properties (layout, filters, fill value, no times).
    - Attribute types are h5py's for the value's dtype (``py_create``, logical and
      bit-for-bit), so a ``str`` is a variable-length UTF-8 string as with ``attrs[...]``.
    Dataset and attribute names are this module's constants, ASCII as h5py flags them
    (``encode("ascii")`` fails loudly otherwise).
    """

    #: Cached entries of each kind at most: a new key past it clears that cache.
    MAX: Final = 256

    def __init__(self) -> None:
        self._dcpl: dict[tuple[Any, ...], Any] = {}
        self._types: dict[tuple[np.dtype[Any], str], tuple[Any, Any]] = {}
        self._spaces: dict[tuple[tuple[int, ...], tuple[int, ...] | None], Any] = {}

    def dataset(
        self,
        group: h5py.Group,
        name: str,
        dtype: np.dtype[Any],
        row_shape: tuple[int, ...],
        chunks: tuple[int, ...],
        f: dict[str, Any],
    ) -> None:
        """An empty dataset growing along axis 0, as ``group.create_dataset`` makes it."""
        # h5py's global track_order goes into the property list: part of the key.
        order = bool(h5py.get_config().track_order)
        dt = np.dtype(dtype)
        key = (_type_key(dt), chunks, tuple(sorted(f.items())), order)
        dcpl = self._dcpl.get(key)
        if dcpl is None:
            ds = group.create_dataset(
                name,
                shape=(0, *row_shape),
                maxshape=(None, *row_shape),
                dtype=dtype,
                chunks=chunks,
                **f,
            )
            self._put(self._dcpl, key, ds.id.get_create_plist())
            return
        tid = self._type(dt)[0]
        shape = (0, *row_shape)
        space = self._space(shape, (h5py.h5s.UNLIMITED, *row_shape))
        h5py.h5d.create(group.id, name.encode("ascii"), tid, space, dcpl=dcpl).close()

    def attr(self, oid: Any, name: str, value: Any) -> None:
        """``attrs[name] = value`` on a new object (no attribute of that name yet)."""
        data = np.asarray(value, dtype=h5py.string_dtype() if isinstance(value, str) else None)
        htype, mtype = self._type(data.dtype)
        encoded = name.encode("ascii")
        attr = h5py.h5a.create(oid, encoded, htype, self._space(data.shape, None))
        try:
            attr.write(data, mtype=mtype)
        except BaseException:  # as h5py does: no attribute without its value
            attr.close()
            h5py.h5a.delete(oid, encoded)
            raise
        attr.close()

    def units(self, gid: Any, dataset: str, unit: str) -> None:
        """The ``units`` attribute of a dataset of group ``gid``."""
        self.attr(h5py.h5d.open(gid, dataset.encode("ascii")), L.ATTR_UNITS, unit)

    def _type(self, dtype: np.dtype[Any]) -> tuple[Any, Any]:
        key = _type_key(dtype)
        types = self._types.get(key)
        if types is None:
            types = (h5py.h5t.py_create(dtype, logical=True), h5py.h5t.py_create(dtype))
            self._put(self._types, key, types)
        return types

    def _space(self, shape: tuple[int, ...], maxshape: tuple[int, ...] | None) -> Any:
        space = self._spaces.get((shape, maxshape))
        if space is None:
            space = h5py.h5s.create_simple(shape, maxshape)
            self._put(self._spaces, (shape, maxshape), space)
        return space

    @classmethod
    def _put(cls, cache: dict[Any, Any], key: Any, value: Any) -> None:
        if len(cache) >= cls.MAX:
            cache.clear()
        cache[key] = value


def _type_key(dtype: np.dtype[Any]) -> tuple[np.dtype[Any], str]:
    """A dtype as a cache key: numpy compares h5py's string, vlen and enum dtypes equal to
    their base dtype, so the metadata h5py keeps in them is part of the key."""
    return dtype, repr(dtype.metadata)


_IDS: Final = _Ids()


def is_appendable(obj: object) -> bool:
    """Whether ``obj`` is a dataset that grows along axis 0."""
    return isinstance(obj, h5py.Dataset) and bool(obj.maxshape) and obj.maxshape[0] is None


def stream_groups(root: h5py.File) -> Iterator[h5py.Group]:
    """Every stream group of the session, one at a time."""
    for top in TOP_GROUPS.values():
        if top not in root:
            continue
        for name in root[top]:
            group = root[top].get(name)
            if isinstance(group, h5py.Group):
                yield group


def appendable_paths(group: h5py.Group) -> list[str]:
    """Paths of a stream group's appendable datasets."""
    return [ds.name for ds in group.values() if is_appendable(ds)]


def stored_shape(group: h5py.Group) -> tuple[int, ...]:
    """A stream group's shape attribute as a tuple."""
    return tuple(int(x) for x in np.atleast_1d(group.attrs[L.ATTR_LAYER_SIZE]))


def stored_recorded(group: h5py.Group, kind: Kind) -> npt.NDArray[np.uint32] | None:
    """A stream's recorded neurons as stored; None for every neuron (format 3 and 2)."""
    if kind is Kind.WEIGHTS or L.RECORDED_NEURONS not in group:
        return None
    ds = group[L.RECORDED_NEURONS]
    if ds.shape[0] == stored_shape(group)[0]:
        return None  # a format 2 stream that records every neuron lists them all
    return np.asarray(ds[()], dtype=np.uint32)


def is_sorted_by_time(group: h5py.Group) -> bool:
    """Whether a spike group's ``sorting`` attribute is ``by_time`` (or absent)."""
    sorting = group.attrs.get(L.ATTR_SORTING)
    return sorting is None or int(sorting) == L.SORTING_ENUM["by_time"]


def set_sorting(group: h5py.Group, value: str) -> None:
    """Set SONATA's ``sorting`` attribute (an HDF5 enum of base type uint8)."""
    enum = h5py.enum_dtype(L.SORTING_ENUM, basetype="u1")
    group.attrs.create(L.ATTR_SORTING, L.SORTING_ENUM[value], dtype=enum)
