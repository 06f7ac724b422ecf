"""SONATA spike files: the session's spikes, sorted by time, copied in bounded slices.

Needs no optional package. The only module of :mod:`analysis.export` that imports h5py
(to write the file; the session is read through :class:`SessionReader`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from analysis.export._common import FloatArray, UnknownPopulationError, replacing
from analysis.reader import SessionReader, SpikeTrains
from recorderd.session import layout as L

#: Root attributes of every SONATA HDF5 file (SONATA developer guide, "Common conventions").
SONATA_MAGIC = 0x0A7A
SONATA_VERSION = (0, 1)
#: Rows per slice when copying spikes: 2 Mi rows (whole source chunks of every format
#: version) keep the working set near 100 MB whatever the session size.
COPY_ROWS = 1 << 21

#: gzip level of ``compress=True`` (with the shuffle filter).
GZIP_LEVEL = 4

#: Reads rows ``lo`` to ``hi`` of one dataset of a stream.
RowReader = Callable[[int, int], npt.NDArray[Any]]


def export_sonata(
    session_dir: str | Path,
    out_path: str | Path,
    *,
    populations: Iterable[str] | None = None,
    chunk_rows: int = COPY_ROWS,
    compress: bool = False,
    rename: Mapping[str, str] | None = None,
    nodes_path: str | Path | None = None,
) -> dict[str, int]:
    """Write the session's spikes as a SONATA spike file sorted by time; spikes per population.

    Populations are named ``<node_id>.<layer>`` as in the session, or as ``rename`` maps
    them (session name -> name in the file, e.g. a node population of an existing
    circuit); ``node_ids`` are the neuron indices within the layer. Datasets are
    contiguous and uncompressed, so tools whose HDF5 lacks the deflate filter (the
    libsonata wheel) read them; ``compress`` writes them chunked with gzip and shuffle
    instead (h5py, bmtk: about a tenth of the size). ``nodes_path`` also writes a SONATA
    node file with one node population of ``layer_size`` nodes per exported population,
    under the same names, so that a circuit config made of both resolves every spike.
    Memory stays bounded by ``chunk_rows``: populations already ``by_time`` are copied
    slice by slice, others are merged from their sorted runs. Returns the spikes per
    population, under the names written.
    """
    counts: dict[str, int] = {}
    with SessionReader(session_dir) as reader:
        names = [L.population(n, layer) for n in reader.nodes() for layer in reader.layers(n)]
        wanted = names if populations is None else list(dict.fromkeys(populations))
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            missing = ", ".join(unknown)
            raise UnknownPopulationError(f"no spike population {missing} in {reader.path}")
        out_names = output_names(wanted, rename or {})
        with (
            replacing(Path(out_path)) as partial,
            h5py.File(partial, "w", libver=("v108", "v110")) as dst,
        ):
            _sonata_root(dst)
            top = dst.create_group(L.SPIKES)
            for name in wanted:
                group = top.create_group(out_names[name])
                counts[out_names[name]] = _copy_population(
                    reader, name, group, max(1, chunk_rows), compress
                )
        if nodes_path is not None:
            sizes = {out_names[n]: reader.layer_size(*L.split_population(n)) for n in wanted}
            sources = {out_names[n]: n for n in wanted}
            write_nodes(Path(nodes_path), sizes, sources)
    return counts


def output_names(wanted: Iterable[str], rename: Mapping[str, str]) -> dict[str, str]:
    """Session population name -> name written; ``ValueError`` for unknown or clashing names."""
    wanted = list(wanted)
    extra = sorted(set(rename) - set(wanted))
    if extra:
        raise UnknownPopulationError(f"rename names no exported population: {', '.join(extra)}")
    out = {n: rename.get(n, n) for n in wanted}
    for new in out.values():
        if not new or "/" in new or new in (".", ".."):
            raise UnknownPopulationError(f"invalid SONATA population name {new!r}")
    if len(set(out.values())) != len(out):
        raise UnknownPopulationError("two populations would get the same name")
    return out


def _sonata_root(f: h5py.File) -> None:
    f.attrs.create("magic", SONATA_MAGIC, dtype=np.uint32)
    f.attrs.create("version", np.asarray(SONATA_VERSION, dtype=np.uint32))


def write_nodes(path: Path, sizes: Mapping[str, int], sources: Mapping[str, str]) -> None:
    """A SONATA node file: one population of ``sizes[name]`` nodes per name.

    Node ``i`` of population ``<node_id>.<layer>`` is neuron ``i`` of that layer; every
    node has ``node_type_id`` 0 and sits in group ``0`` (which holds no attribute: the
    session knows nothing of the neurons but their index). Contiguous and uncompressed,
    like the spike file, so the libsonata wheel reads it. The population group carries
    the session population it came from as an attribute ``recorderd_population``.
    """
    with replacing(path) as partial, h5py.File(partial, "w", libver=("v108", "v110")) as f:
        _sonata_root(f)
        top = f.create_group("nodes")
        for name, size in sizes.items():
            g = top.create_group(name)
            g.attrs["recorderd_population"] = sources.get(name, name)
            g.create_dataset("node_type_id", data=np.zeros(size, np.int64))
            g.create_dataset("node_group_id", data=np.zeros(size, np.uint32))
            g.create_dataset("node_group_index", data=np.arange(size, dtype=np.uint64))
            g.create_group("0")


def _copy_population(
    reader: SessionReader, name: str, dst: h5py.Group, rows: int, compress: bool = False
) -> int:
    node, layer = L.split_population(name)
    # Complete rows only: a live writer may have appended part of a batch.
    n = reader.spike_rows(node, layer)
    packed: dict[str, Any] = {}
    if compress and n:
        packed = {
            "chunks": (min(n, L.SPIKE_CHUNK),),
            "compression": "gzip",
            "compression_opts": GZIP_LEVEL,
            "shuffle": True,
        }
    out_t = dst.create_dataset(L.TIMESTAMPS, shape=(n,), dtype=L.TIME_DTYPE, **packed)
    out_t.attrs[L.ATTR_UNITS] = L.UNITS_TIME
    # SONATA specifies uint64 node ids; libsonata reads uint32 too, but strict is safer.
    out_id = dst.create_dataset(L.NODE_IDS, shape=(n,), dtype=np.uint64, **packed)
    enum = h5py.enum_dtype(L.SORTING_ENUM, basetype="u1")
    dst.attrs.create(L.ATTR_SORTING, L.SORTING_ENUM["by_time"], dtype=enum)
    if rows >= L.SPIKE_CHUNK:  # whole source chunks per slice: none is decompressed twice
        rows -= rows % L.SPIKE_CHUNK

    def chunks() -> Iterator[SpikeTrains]:
        return reader.iter_spike_chunks(node, layer, rows, with_steps=False)

    runs = [(0, n)] if reader.sorting(node, layer) == "by_time" else _sorted_runs(chunks(), n)
    if len(runs) <= 1:
        at = 0
        for c in chunks():
            out_t[at : at + c.times_ms.size] = c.times_ms
            out_id[at : at + c.times_ms.size] = c.neuron_ids
            at += c.times_ms.size
        return n
    at = 0

    # The merge reads each run at its own pace: slices straight from the datasets.
    def read(name: str) -> RowReader:
        return lambda lo, hi: reader.read_rows(L.SPIKES, node, layer, name, lo, hi)

    for t, i in _merge_runs(read(L.TIMESTAMPS), read(L.NODE_IDS), runs, rows):
        out_t[at : at + t.size] = t
        out_id[at : at + t.size] = i
        at += t.size
    return n


def _sorted_runs(chunks: Iterable[SpikeTrains], n: int) -> list[tuple[int, int]]:
    """Row ranges ``[a, b)`` of ``n`` rows that are each non-decreasing in time."""
    starts = [0]
    at, last = 0, -np.inf
    for c in chunks:
        t = c.times_ms
        if t.size and t[0] < last:
            starts.append(at)
        starts.extend((at + 1 + np.flatnonzero(t[1:] < t[:-1])).tolist())
        at, last = at + t.size, (float(t[-1]) if t.size else last)
    return list(zip(starts, [*starts[1:], n], strict=True))


def _merge_runs(
    ts: RowReader, ids: RowReader, runs: list[tuple[int, int]], rows: int
) -> Iterator[tuple[FloatArray, npt.NDArray[Any]]]:
    """Merge time-sorted row runs into time order, about ``rows`` rows per batch.

    Equal times keep their row order (a stable sort), except inside a tie longer than
    a run's share of the batch, where SONATA's ``by_time`` allows any order anyway.
    """
    share = max(1, rows // len(runs))
    pos = [a for a, _ in runs]  # next row to read per run
    buf = [np.zeros(0, np.float64) for _ in runs]  # read, not yet written
    while True:
        for r, (_, end) in enumerate(runs):
            need = share + 1 - buf[r].size
            if need > 0 and pos[r] < end:
                buf[r] = np.concatenate([buf[r], ts(pos[r], min(pos[r] + need, end))])
                pos[r] = min(pos[r] + need, end)
        if not any(b.size for b in buf):
            return
        # Every run holds at most `share` rows below the smallest look-ahead time.
        full = [b[share] for b in buf if b.size > share]
        bound = min(full) if full else np.inf
        take = [int(np.searchsorted(b, bound, "left")) for b in buf]
        if not any(take):
            take = [int(np.searchsorted(b, bound, "right")) for b in buf]
        times, idx = [], []
        for r, k in enumerate(take):
            if k:
                first = pos[r] - buf[r].size
                times.append(buf[r][:k])
                idx.append(ids(first, first + k))
                buf[r] = buf[r][k:]
        t = np.concatenate(times)
        order = np.argsort(t, kind="stable")
        yield t[order], np.concatenate(idx)[order]
