"""Unit tests of the storage rooms: superblock, safe files, lock, tails, chunks, recovery."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import weakref
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from analysis.reader import SessionReader
from recorderd.session import chunks
from recorderd.session import layout as L
from recorderd.session.appendable import Appendable
from recorderd.session.chunks import PROBE_EVERY, RLE_SLACK, Codec, shuffle
from recorderd.session.chunkwriter import ChunkWriter
from recorderd.session.controllog import ControlLog, read_records
from recorderd.session.lock import SessionLock
from recorderd.session.recovery import recover_if_idle
from recorderd.session.safefs import (
    UnsafePathError,
    create_exclusive,
    ensure_session_dir,
    open_fd,
    write_atomic,
)
from recorderd.session.superblock import clear_status_flags, status_flags
from recorderd.wire import Kind

KILLED_WRITER = """
import os, sys
from pathlib import Path
import numpy as np
from recorderd import wire as P
from recorderd.core.recorder import Recorder
from recorderd.daemon.settings import load_settings
rec = Recorder(load_settings(None, session="s", recording_dir=Path(sys.argv[1])).core())
rec.start()
for seq in range(3000):
    msg = P.encode(P.Kind.SPIKES, incarnation=1, seq=seq, step=seq, time_ms=float(seq),
                   dt_ms=1.0, layer_size=100, data=np.arange(seq % 50, 100, 7, dtype=np.uint32))
    rec.add("n0", "l", P.decode(msg, P.Kind.SPIKES))
rec.flush()
os.kill(os.getpid(), 9)
"""


@pytest.fixture
def killed_session(tmp_path: Path) -> Path:
    """A session whose recorder was killed (-9) after a flush: flags set, journal present."""
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], timeout=120)
    assert done.returncode == -9
    return tmp_path / "s"


# -- superblock ------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("h5clear") is None, reason="h5clear (Debian hdf5-tools) absent")
def test_clearing_the_flags_writes_what_h5clear_writes(
    killed_session: Path, tmp_path: Path
) -> None:
    ours, theirs = tmp_path / "ours.h5", tmp_path / "theirs.h5"
    shutil.copy(killed_session / L.DATA_FILE, ours)
    shutil.copy(killed_session / L.DATA_FILE, theirs)
    assert status_flags(ours) != 0
    assert clear_status_flags(ours) != 0
    subprocess.run(["h5clear", "-s", "--increment=0", str(theirs)], check=True, timeout=60)
    assert ours.read_bytes() == theirs.read_bytes()
    assert clear_status_flags(ours) == 0  # nothing left to do: nothing written


@pytest.mark.parametrize("libver", ["earliest", "v108"])
def test_superblock_versions_other_than_2_and_3_are_refused(tmp_path: Path, libver: str) -> None:
    path = tmp_path / "old.h5"
    with h5py.File(path, "w", libver=(libver, libver if libver != "earliest" else "v108")):
        pass
    with open(path, "rb") as fh:
        version = fh.read(9)[8]
    assert version in (0, 1, 2)
    if version in (2, 3):
        assert clear_status_flags(path) == 0
    else:
        with pytest.raises(ValueError, match="only versions 2 and 3"):
            clear_status_flags(path)


def test_a_damaged_superblock_checksum_is_refused(killed_session: Path) -> None:
    path = killed_session / L.DATA_FILE
    with open(path, "r+b") as fh:
        fh.seek(44)
        byte = fh.read(1)
        fh.seek(44)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ValueError, match="checksum"):
        clear_status_flags(path)


# -- recovery and the reader's choice --------------------------------------------------


def test_a_reader_may_read_a_crashed_session_without_changing_it(killed_session: Path) -> None:
    before = (killed_session / L.DATA_FILE).read_bytes()
    assert recover_if_idle(killed_session, may_recover=False) == "read-only"
    with SessionReader(killed_session, recover=False) as r:
        assert r.state == "read-only"
        assert r.frames("n0", "l").seq.tolist() == list(range(3000))
    assert (killed_session / L.DATA_FILE).read_bytes() == before
    assert (killed_session / L.JOURNAL_FILE).exists()
    with SessionReader(killed_session) as r:  # the default repairs it in place
        assert r.state == "recovered"
        assert r.frames("n0", "l").seq.tolist() == list(range(3000))
        # A stream kind is the wire's Kind or its group name, alike.
        assert r.layers("n0", Kind.SPIKES) == r.layers("n0", "spikes") == ["l"]
        assert r.row_count(Kind.SPIKES, "n0", "l", L.FRAME_SEQ) == 3000
        with pytest.raises(ValueError, match="unknown stream kind"):
            r.layers("n0", "spike")
    assert not (killed_session / L.JOURNAL_FILE).exists()
    with h5py.File(killed_session / L.DATA_FILE, "r") as f:  # any HDF5 tool opens it now
        assert f[f"spikes/{L.population('n0', 'l')}/frame_seq"].shape == (3000,)


# -- files in the session folder -------------------------------------------------------


def test_safe_files_never_follow_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        open_fd(link, os.O_WRONLY)
    write_atomic(link, b"new")  # replaces the link itself
    assert target.read_text() == "keep" and link.read_bytes() == b"new" and not link.is_symlink()
    tmp = tmp_path / "x.tmp"
    tmp.symlink_to(target)
    os.close(create_exclusive(tmp))
    assert target.read_text() == "keep" and not tmp.is_symlink()
    folder = tmp_path / "session"
    folder.symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        ensure_session_dir(folder)


def test_the_session_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    first = SessionLock.try_acquire(tmp_path)
    assert first is not None and first.held
    assert SessionLock.try_acquire(tmp_path) is None
    first.release()
    first.release()  # idempotent
    second = SessionLock.try_acquire(tmp_path)
    assert second is not None
    assert (tmp_path / L.LOCK_FILE).read_text().strip() == str(os.getpid())
    second.release()


def test_control_log_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / L.CONTROL_FILE
    log = ControlLog(path)
    for i in range(3):
        log.write({"seq": i})
    log.close()
    with open(path, "a") as fh:
        fh.write('{"seq": 3, "tor')
    assert [r["seq"] for r in read_records(path)] == [0, 1, 2]
    # The last 30 bytes start mid-line: that partial first line is skipped too.
    assert [r["seq"] for r in read_records(path, tail_bytes=30)] == [2]


# -- tails and chunks ------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "lzf", None])
def test_tails_hold_less_than_a_chunk_and_close_writes_every_row(
    tmp_path: Path, compression: str | None
) -> None:
    opts = {"compression": compression, "shuffle": compression is not None}
    with h5py.File(tmp_path / "t.h5", "w", libver=("v110", "v114")) as f:
        ds = f.create_dataset("d", (0,), maxshape=(None,), dtype="<f8", chunks=(100,), **opts)
        a = Appendable.load(ds)
        assert a.codec == (Codec.of(ds) if compression != "lzf" else None)
        rows = np.arange(1234, dtype="<f8") * 0.5
        for part in np.array_split(rows, 17):
            a.push(part)
            if a.full:
                a.write_whole_chunks(ds)
            assert a.rows < a.chunk_rows and ds.shape[0] % 100 == 0
        assert a.entry() is not None and a.entry() is None  # nothing new since
        a.write_all(f)
        assert ds.shape == (1234,) and np.array_equal(ds[()], rows)


def test_our_chunks_are_what_hdf5_stores(tmp_path: Path) -> None:
    data = (np.arange(4096, dtype="<u4") * 2654435761) % 100_000
    with h5py.File(tmp_path / "c.h5", "w") as f:
        ds = f.create_dataset(
            "d", data=data, chunks=(4096,), compression="gzip", compression_opts=4, shuffle=True
        )
        mask, stored = ds.id.read_direct_chunk((0,))
        codec = Codec.of(ds)
    assert mask == 0
    assert codec == Codec(4, True)
    assert zlib.decompress(stored) == shuffle(data)
    assert zlib.decompress(codec.encode(data, 4096)) == zlib.decompress(stored)
    # A padded, partly filled chunk written directly reads back as its rows.
    with h5py.File(tmp_path / "p.h5", "w") as f:
        ds = f.create_dataset(
            "d",
            (0,),
            maxshape=(None,),
            dtype="<u4",
            chunks=(4096,),
            compression="gzip",
            shuffle=True,
        )
        ds.resize((10,))
        ds.id.write_direct_chunk((0,), codec.encode_tail(data[:10], 4096))
    with h5py.File(tmp_path / "p.h5", "r") as f:
        assert f["d"][()].tolist() == data[:10].tolist()


@pytest.mark.parametrize("isal", [True, False], ids=["isal", "zlib"])
def test_a_padded_last_chunk_reads_back_and_isal_makes_it_smaller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isal: bool
) -> None:
    """The last, partly filled chunk of each dataset (written at close) is deflated by
    ISA-L, or by zlib where isal (and zlib-ng) are missing: HDF5 reads either back."""
    if isal:
        assert chunks._isal is not None  # a dependency: installed with the project
    else:
        monkeypatch.setattr(chunks, "_isal", None)
        monkeypatch.setattr(chunks, "_zng", None)
    rows = {
        "frame_step": (np.arange(10, dtype="<i8") + 10**6, 16384),
        "frame_time": (np.arange(10, dtype="<f8") * 0.5, 16384),
        "node_ids": (np.sort(np.random.default_rng(1).choice(1000, 500)).astype("<u2"), 32768),
    }
    codec = Codec(4, True)
    sizes = {}
    with h5py.File(tmp_path / "t.h5", "w") as f:
        for name, (data, chunk) in rows.items():
            ds = f.create_dataset(
                name, (0,), maxshape=(None,), dtype=data.dtype, chunks=(chunk,),
                compression="gzip", compression_opts=4, shuffle=True,
            )  # fmt: skip
            ds.resize((data.size,))
            stored = codec.encode_tail(data, chunk)
            ds.id.write_direct_chunk((0,), stored)
            sizes[name] = len(stored)
            assert zlib.decompress(stored) == codec._filtered(data, chunk)
    with h5py.File(tmp_path / "t.h5", "r") as f:
        for name, (data, _) in rows.items():
            assert np.array_equal(f[name][()], data)
    level1 = {n: len(zlib.compress(codec._filtered(d, c), 1)) for n, (d, c) in rows.items()}
    if isal:  # zlib's fastest level encodes the long zero runs poorly (measured: 2-4x)
        assert all(sizes[n] < level1[n] for n in rows), (sizes, level1)
    else:
        assert sizes == level1


@pytest.mark.parametrize("deflater", ["zlib-ng", "zlib"])
def test_a_probe_keeps_the_faster_strategy_unless_it_is_larger_and_hdf5_reads_either(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deflater: str
) -> None:
    """Whole chunks are deflated by zlib-ng (a dependency), or by zlib where it is missing;
    the run-length strategy wins a probe unless the default is more than RLE_SLACK smaller."""
    if deflater == "zlib-ng":
        assert chunks._zng is not None  # a dependency: installed with the project
    else:
        monkeypatch.setattr(chunks, "_zng", None)
    rng = np.random.default_rng(3)
    # Spike indices of a 1,000-neuron layer at ~5%: run-length deflate is about as small.
    ids = np.concatenate([np.flatnonzero(rng.random(1000) < 0.05) for _ in range(400)])
    ids = ids[:16384].astype("<u4")
    steps = np.arange(10**6, 10**6 + 4096, dtype="<i8")  # a regular sequence: it is not
    codec = Codec(4, True)
    rle_chunk, rle = codec.encode_probe(ids, 16384)
    assert rle and len(rle_chunk) <= len(codec.encode(ids, 16384)) * (1 + RLE_SLACK)
    plain_chunk, rle = codec.encode_probe(steps, 4096)
    assert not rle and len(plain_chunk) < len(codec.encode(steps, 4096, rle=True))
    # A run-length stream a little larger than the default one still wins, a much larger
    # one does not: the probe's choice, on two made-up pairs of streams.
    for factor, wins in ((1 + RLE_SLACK / 2, True), (1 + 2 * RLE_SLACK, False)):
        sizes = {False: 10_000, True: int(10_000 * factor)}
        with monkeypatch.context() as m:
            m.setattr(chunks, "_deflate", lambda data, level, r, sizes=sizes: b"x" * sizes[r])
            assert codec.encode_probe(ids, 16384)[1] is wins
    with h5py.File(tmp_path / "s.h5", "w") as f:
        for name, data, chunk in (("ids", ids, rle_chunk), ("steps", steps, plain_chunk)):
            ds = f.create_dataset(
                name,
                (data.size,),
                dtype=data.dtype,
                chunks=(data.size,),
                compression="gzip",
                compression_opts=4,
                shuffle=True,
            )
            ds.id.write_direct_chunk((0,), chunk)
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert np.array_equal(f["ids"][()], ids) and np.array_equal(f["steps"][()], steps)


def _growing_gzip_u4(f: h5py.File, chunk_rows: int) -> None:
    """An empty uint32 dataset ``d`` growing along axis 0, gzip level 4 + shuffle."""
    f.create_dataset(
        "d", (0,), maxshape=(None,), dtype="<u4", chunks=(chunk_rows,),
        compression="gzip", compression_opts=4, shuffle=True,
    )  # fmt: skip


def test_the_writer_probes_each_dataset_again_every_so_many_chunks(tmp_path: Path) -> None:
    a = Appendable("/d", 16384, np.dtype("<u4"), (), 0, codec=Codec(4, True))
    writer = ChunkWriter(workers=1)
    rng = np.random.default_rng(4)  # spike indices of a 1,000-neuron layer at ~5%
    n = 16384 * (PROBE_EVERY + 2)
    ids = np.concatenate([np.flatnonzero(rng.random(1000) < 0.05) for _ in range(n // 40)])
    ids = ids[:n].astype("<u4")
    with h5py.File(tmp_path / "w.h5", "w") as f:
        _growing_gzip_u4(f, 16384)
        probes = 0
        for k in range(PROBE_EVERY + 2):
            probes += a.strategy.until_probe == 0
            writer.submit(f, a, k * 16384, ids[k * 16384 : (k + 1) * 16384])
        writer.drain(f)
        writer.close()
    assert probes == 2  # the first chunk, then one after PROBE_EVERY more
    assert a.strategy.rle  # these indices deflate smaller run-length
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert np.array_equal(f["d"][()], ids)
        assert a.stored == f["d"].id.get_storage_size()


def test_a_written_chunk_is_freed_at_once_not_by_the_cyclic_collector(tmp_path: Path) -> None:
    """The rows of each chunk handed to the writer are freed once the chunk is written: a
    reference cycle (chunk -> job -> its chunks) kept them, 30 MB at 40,000 msg/s, until
    Python's cyclic garbage collector ran."""
    a = Appendable("/d", 4096, np.dtype("<u4"), (), 0, codec=Codec(4, True))
    writer = ChunkWriter(workers=2)
    alive = []
    gc.disable()
    try:
        with h5py.File(tmp_path / "w.h5", "w") as f:
            _growing_gzip_u4(f, 4096)
            for k in range(40):
                rows = np.arange(k * 4096, (k + 1) * 4096, dtype="<u4")
                alive.append(weakref.ref(rows))
                writer.submit(f, a, k * 4096, rows)
                del rows
            writer.drain(f)
            assert [r() is None for r in alive] == [True] * 40
            # The pool's threads carry their role in the OS (`top -H`): rd-gzip-N.
            names = {p.read_text().strip() for p in Path("/proc/self/task").glob("*/comm")}
            assert {"rd-gzip-0", "rd-gzip-1"} <= names
        writer.close()
    finally:
        gc.enable()
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert np.array_equal(f["d"][()], np.arange(40 * 4096, dtype="<u4"))


class _FailingCodec(Codec):
    """Encodes like gzip+shuffle, but its chunk starting at row 16,384 cannot be encoded."""

    def encode(self, rows: Any, chunk_rows: int, rle: bool = False) -> bytes:
        if rows[0] == 16384:
            raise zlib.error("no memory")
        return super().encode(rows, chunk_rows, rle)


def test_after_a_chunk_fails_no_later_chunk_is_written(tmp_path: Path) -> None:
    a = Appendable("/d", 16384, np.dtype("<u4"), (), 0, codec=_FailingCodec(4, True))
    a.strategy.until_probe = 10**9  # no probe: encode() every time
    writer = ChunkWriter(workers=1)
    data = np.arange(16384 * 3, dtype="<u4")
    with h5py.File(tmp_path / "f.h5", "w") as f:
        _growing_gzip_u4(f, 16384)
        for k in range(2):
            writer.submit(f, a, k * 16384, data[k * 16384 : (k + 1) * 16384])
        with pytest.raises(zlib.error):
            writer.drain(f)
        with pytest.raises(RuntimeError, match="could not be written") as raised:
            # A later chunk (a close that goes on) must not land after the hole.
            writer.submit(f, a, 2 * 16384, data[2 * 16384 :])
            writer.drain(f)
        assert isinstance(raised.value.__cause__, zlib.error)
        writer.close()
        # Nothing at or after the failed chunk (the first one may or may not be written:
        # the chunks went to the pool as one job); what is there is right.
        n = f["d"].shape[0]
        assert n in (0, 16384) and np.array_equal(f["d"][()], data[:n])


# -- schema ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Kind))
def test_a_new_stream_gets_the_datasets_series_of_lists(tmp_path: Path, kind: Kind) -> None:
    from recorderd.session.schema import (
        StreamSpec,
        create_session_file,
        create_stream,
        filters,
        series_of,
        stored_recorded,
        stored_shape,
    )

    path = tmp_path / "s.h5"
    create_session_file(path, session="s", subsample_seed=0, subsampling_rule="")
    shape = (3, 4) if kind is Kind.WEIGHTS else (10,)
    subset = np.array([1, 4], np.uint32) if kind is Kind.SPIKES else None
    spec = StreamSpec(kind, "n", "l", shape, 0.5, 1.0 if subset is None else 0.2, subset)
    with h5py.File(path, "a") as f:
        create_stream(f, spec, filters("gzip", 4))
        group = f[spec.path]
        appendable = {name for name, ds in group.items() if ds.maxshape and ds.maxshape[0] is None}
        assert appendable == {s.name for s in series_of(spec)}
        assert L.STEPS not in group  # format 3: per-spike steps come from the frames
        assert stored_shape(group) == shape
        recorded = stored_recorded(group, kind)
        assert (recorded is None) == (subset is None)
        for s in series_of(spec):
            ds = group[s.name]
            assert ds.chunks[0] == s.chunk_rows and ds.compression == "gzip"
            if s.whole_rows:
                assert ds.chunks[1:] == ds.shape[1:]


def test_layers_are_listed_in_the_order_the_node_declared_them(tmp_path: Path) -> None:
    """Streams keep their creation order (the node's publishing order), not the alphabet;
    a later flush, a second node and an appended run do not reorder them."""
    from analysis.analyzer import SimulationAnalyzer
    from recorderd import RecorderConfig, SimulationRecorder

    declared = ["input", "hidden", "output"]  # alphabetically: hidden, input, output
    config = RecorderConfig(output_dir=tmp_path, session_name="order", record_membrane=True)
    with SimulationRecorder(config) as rec:
        for step in range(3):
            for layer in declared:
                rec.record_spikes("pfc", layer, np.asarray([1, 2]), layer_size=10, step=step)
                rec.record_spikes("b-node", f"z{layer}", np.asarray([1]), layer_size=10, step=step)
            if step == 1:  # a layer first seen after a flush comes last
                rec.flush_all()
                rec.record_spikes("pfc", "aux", np.asarray([0]), layer_size=4, step=step)
        for layer in reversed(declared):
            rec.record_membrane("pfc", layer, np.full(10, -65.0), step=3)
    with SessionReader(tmp_path / "order") as r:
        assert r.layers("pfc") == [*declared, "aux"]
        assert r.layers("b-node") == [f"z{layer}" for layer in declared]
        assert r.layers("pfc", L.MEMBRANE) == list(reversed(declared))
        assert r.nodes() == ["b-node", "pfc"]  # nodes stay sorted by id
    with SimulationAnalyzer(tmp_path / "order") as an:
        assert an.get_recorded_layers("pfc") == [*declared, "aux"]


def test_files_without_creation_order_list_layers_alphabetically(tmp_path: Path) -> None:
    from recorderd import RecorderConfig, SimulationRecorder

    with SimulationRecorder(RecorderConfig(output_dir=tmp_path, session_name="old")) as rec:
        for layer in ["input", "hidden", "output"]:
            rec.record_spikes("pfc", layer, np.asarray([1]), layer_size=10, step=0)
    path = tmp_path / "old" / L.DATA_FILE
    with h5py.File(path, "a") as f:  # rebuild /spikes as an older recorder made it
        f.move(L.SPIKES, "old-spikes")
        f.create_group(L.SPIKES)  # no creation-order index
        for name in ["pfc.output", "pfc.input", "pfc.hidden"]:
            f.move(f"old-spikes/{name}", f"{L.SPIKES}/{name}")
        del f["old-spikes"]
    with SessionReader(tmp_path / "old") as r:
        assert r.layers("pfc") == ["hidden", "input", "output"]


def _create_stream_with_h5py(root: h5py.File, spec: Any, f: dict[str, Any]) -> None:
    """The reference: a stream group made with h5py's high-level calls only (what
    ``create_stream`` did before it reused HDF5 ids)."""
    from recorderd.session.schema import TOP_GROUPS, _weight_chunk_rows, series_of, set_sorting

    group = root[TOP_GROUPS[spec.kind]].create_group(L.population(spec.node_id, spec.name))
    group.attrs[L.ATTR_NODE_ID] = spec.node_id
    group.attrs[L.ATTR_LAYER] = spec.name
    group.attrs[L.ATTR_LAYER_SIZE] = np.asarray(spec.shape, dtype=np.int64)
    group.attrs[L.ATTR_DT_MS] = spec.dt_ms
    group.attrs[L.ATTR_SUBSAMPLE_RATE] = spec.subsample_rate
    if spec.recorded is not None:
        group.create_dataset(L.RECORDED_NEURONS, data=spec.recorded, dtype=L.NEURON_DTYPE)
    for s in series_of(spec):
        chunks = (s.chunk_rows, *s.row_shape)
        if spec.kind is Kind.WEIGHTS and s.name == L.DATA:
            chunks = (1, _weight_chunk_rows(*spec.shape), max(1, spec.shape[1]))
        group.create_dataset(
            s.name, shape=(0, *s.row_shape), maxshape=(None, *s.row_shape), dtype=s.dtype,
            chunks=chunks, **f,
        )  # fmt: skip
    group[L.FRAME_TIME].attrs[L.ATTR_UNITS] = L.UNITS_TIME
    if spec.kind is Kind.SPIKES:
        group[L.TIMESTAMPS].attrs[L.ATTR_UNITS] = L.UNITS_TIME
        set_sorting(group, "by_time")
    elif spec.kind is Kind.MEMBRANE:
        group[L.DATA].attrs[L.ATTR_UNITS] = L.UNITS_MEMBRANE
    else:
        group[L.DATA].attrs[L.ATTR_UNITS] = L.UNITS_WEIGHTS


def _described(obj: Any) -> dict[str, Any]:
    """What a reader can see of an HDF5 object: for a dataset its type, shape, maximum
    shape, creation properties (layout, chunk, filters, fill value and time, allocation
    time, time tracking); for every object its attributes (HDF5 type, shape, value)."""
    out: dict[str, Any] = {}
    for name in sorted(obj.attrs):
        attr = h5py.h5a.open(obj.id, name.encode())
        t = attr.get_type()
        value = obj.attrs[name]
        out[f"@{name}"] = (
            t.get_class(), t.get_size(), attr.dtype.str, h5py.check_string_dtype(attr.dtype),
            t.get_cset() if t.get_class() == h5py.h5t.STRING else None,
            attr.get_space().get_simple_extent_type(), attr.get_space().get_simple_extent_dims(),
            value.tolist() if isinstance(value, np.ndarray) else value,
        )  # fmt: skip
    if isinstance(obj, h5py.Dataset):
        p = obj.id.get_create_plist()
        out["dataset"] = (
            obj.dtype.str, obj.shape, obj.maxshape, p.get_layout(),
            p.get_chunk() if p.get_layout() == h5py.h5d.CHUNKED else None,
            [p.get_filter(i) for i in range(p.get_nfilters())],
            obj.fillvalue.tolist() if hasattr(obj.fillvalue, "tolist") else obj.fillvalue,
            p.get_fill_time(), p.get_alloc_time(), p.get_obj_track_times(),
        )  # fmt: skip
    return out


def _fast_and_h5py_alike(tmp_path: Path, compression: str, tag: str = "") -> None:
    """Streams made by create_stream and by h5py's high-level calls look the same, to
    h5py (object by object) and to h5dump (if installed)."""
    from recorderd.session.schema import StreamSpec, create_session_file, create_stream, filters

    specs = []
    for i in range(3):  # the first of each signature fills the caches, the others use them
        specs += [
            StreamSpec(Kind.SPIKES, f"n{i}", "out", (1000,), 0.5, 1.0, None),
            StreamSpec(Kind.SPIKES, f"n{i}", "sub", (1000,), 0.1, 0.2,
                       np.arange(0, 1000, 5, dtype=np.uint32)),
            StreamSpec(Kind.MEMBRANE, f"n{i}", "v", (64,), 1.0, 1.0, None),
            StreamSpec(Kind.WEIGHTS, f"n{i}", "w", (30, 40), 1.0, 1.0, None),
        ]  # fmt: skip
    f = filters(compression, 4)  # type: ignore[arg-type]
    files = {}
    for name, make in (("fast", create_stream), ("h5py", _create_stream_with_h5py)):
        path = tmp_path / f"{name}{tag}.h5"
        create_session_file(path, session="s", subsample_seed=0, subsampling_rule="")
        with h5py.File(path, "a") as root:
            for spec in specs:
                make(root, spec, f)
        files[name] = path
    with h5py.File(files["fast"], "r") as a, h5py.File(files["h5py"], "r") as b:
        for spec in specs:
            ga, gb = a[spec.path], b[spec.path]
            assert list(ga) == list(gb)
            assert _described(ga) == _described(gb)
            for name in ga:
                assert _described(ga[name]) == _described(gb[name]), (spec.path, name)
                p = ga[name].id.get_create_plist(), gb[name].id.get_create_plist()
                assert p[0].get_attr_creation_order() == p[1].get_attr_creation_order()
    if shutil.which("h5dump"):
        dumps = [
            subprocess.run(
                ["h5dump", "-p", "-H", "-g", "/spikes", "-g", "/membrane", "-g", "/weights",
                 str(p)],
                capture_output=True, text=True, check=True,
            ).stdout.split("\n", 1)[1]  # the first line names the file
            for p in (files["fast"], files["h5py"])
        ]  # fmt: skip
        assert dumps[0] == dumps[1]


@pytest.mark.parametrize("compression", ["gzip", "lzf", "none"])
def test_streams_are_created_as_h5py_creates_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: str
) -> None:
    """create_stream reuses HDF5 ids from one stream to the next: every stream it creates
    (the first, which h5py makes, and the later ones, made from its property lists, in
    a file opened after the one they came from is closed) looks exactly like one made by
    h5py's high-level calls."""
    from recorderd.session import schema

    monkeypatch.setattr(schema, "_IDS", schema._Ids())  # empty caches: h5py makes the first
    _fast_and_h5py_alike(tmp_path, compression, "1")
    _fast_and_h5py_alike(tmp_path, compression, "2")  # property lists of a closed file


def test_a_change_of_h5pys_track_order_is_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """h5py's global track_order goes into a dataset's creation properties: a process
    that changes it (an embedding program) gets what h5py would make under each."""
    from recorderd.session import schema

    monkeypatch.setattr(schema, "_IDS", schema._Ids())
    config = h5py.get_config()
    saved = config.track_order
    try:
        for order in (True, False):
            config.track_order = order
            _fast_and_h5py_alike(tmp_path, "gzip", str(order))
    finally:
        config.track_order = saved
