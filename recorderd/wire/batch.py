"""Decoding many data messages of one key at once, with numpy instead of a Python loop.

:func:`decode_batch` gives exactly what :func:`recorderd.wire.decode` gives message by
message (the same header fields, the same data, the same rejection reason for an
invalid message, found by the same checks in the same order: ``docs/wire-protocol.md``,
"Rejections"), but parses the headers as one structured array, checks every condition
on whole columns, and gathers all data elements of the batch into one flat array. A bad
message rejects only itself. ``tests/test_wire_batch.py`` compares it with ``decode`` on
arbitrary payloads. A batch of a few valid messages (:data:`SMALL_BATCH`: a stream at a
low rate) is decoded message by message instead, into the same :class:`Batch`.

Where the C module ``_fastbatch`` was built at install, a batch is first checked by it in
one pass, without the GIL: when every message is valid (the common case) it returns the
joined headers, data and offsets, which are exactly what the numpy path gives then; when
any message is not, the numpy path decodes the batch and finds each rejection and its
reason. ``tests/test_wire_batch.py`` compares the two on arbitrary payloads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from recorderd.wire.data import (
    HEADER_SIZE,
    MAGIC,
    MAX_ELEMENTS,
    PROTOCOL_VERSION,
    DataMessage,
    Header,
    Kind,
    decode,
)
from recorderd.wire.errors import ProtocolError, Reason

#: The header as a numpy structured dtype (``docs/wire-protocol.md``, "Header").
HEADER_DTYPE: Final = np.dtype(
    [
        ("magic", "S4"),
        ("version", "u1"),
        ("kind", "u1"),
        ("reserved0", "<u2"),
        ("incarnation", "<u8"),
        ("seq", "<u8"),
        ("step", "<i8"),
        ("time_ms", "<f8"),
        ("dt_ms", "<f8"),
        ("layer_size", "<u4"),
        ("n0", "<u4"),
        ("n1", "<u4"),
        ("reserved1", "<u4"),
    ]
)
assert HEADER_DTYPE.itemsize == HEADER_SIZE
_MAGIC_U32: Final = int(np.frombuffer(MAGIC, "<u4")[0])
_KINDS: Final = np.array([int(k) for k in Kind], dtype=np.uint8)
#: Header words (4 bytes) per message.
_HEADER_WORDS: Final = HEADER_SIZE // 4
#: Batches of at most this many messages are decoded message by message when every one
#: is valid: the whole-column checks cost about 40 numpy calls whatever the batch size,
#: which a stream at a low rate (one or two messages per writer batch) pays per message.
SMALL_BATCH: Final = 4

#: Set to ``0`` to run the Python code alone even where the C modules were built (this
#: module's batch check and the daemon's intake put).
NATIVE_ENV: Final = "RECORDERD_NATIVE"


def native_off(module: ModuleType | None) -> str | None:
    """Why the optional C ``module`` is not to be used (None: it is); the daemon says it
    in its log at start."""
    if module is None:
        return "the C module was not built at install"
    if os.environ.get(NATIVE_ENV, "1") == "0":
        return f"{NATIVE_ENV}=0"
    if not getattr(module, "LITTLE_ENDIAN", 1):
        return "a big-endian host"
    return None


try:  # built at install when a C compiler is there (pyproject.toml: optional)
    from recorderd.wire import _fastbatch
except ImportError:
    _fastbatch = None  # type: ignore[assignment]
#: Why the C batch check is not used (None: it is).
NATIVE_OFF: Final = native_off(_fastbatch)
_decode_valid = None if NATIVE_OFF is not None else _fastbatch.decode_valid


@dataclass
class Batch:
    """The valid messages of a batch, in arrival order, and why the others were rejected.

    ``valid`` indexes the input list. Per valid message: its header fields (arrays) and
    its data, ``data[offsets[i]:offsets[i + 1]]`` of a flat element array (weights:
    ``n0 * n1`` elements in row-major order). ``rejected`` lists ``(index, reason,
    detail, (incarnation, seq) or None)`` for the others.
    """

    valid: npt.NDArray[np.intp]
    header: npt.NDArray[Any]  # structured, HEADER_DTYPE, one row per valid message
    data: npt.NDArray[Any]
    offsets: npt.NDArray[np.int64]
    rejected: list[tuple[int, Reason, str, tuple[int, int] | None]]
    #: Per valid message, its Zenoh timestamp (ns since 1970, 0: none), if the caller has
    #: them (:meth:`with_stamps`); the protocol itself carries none.
    stamps: npt.NDArray[np.uint64] | None = None

    def __len__(self) -> int:
        return int(self.valid.size)

    def rows(self, lo: int, hi: int) -> Batch:
        """Valid messages ``lo`` to ``hi`` (exclusive) as a batch of their own."""
        a, b = int(self.offsets[lo]), int(self.offsets[hi])
        return Batch(
            self.valid[lo:hi],
            self.header[lo:hi],
            self.data[a:b],
            self.offsets[lo : hi + 1] - a,
            [],
            None if self.stamps is None else self.stamps[lo:hi],
        )

    def with_stamps(self, stamps: Sequence[float]) -> Batch:
        """This batch with the Zenoh timestamps of its input messages (one per payload)."""
        self.stamps = np.asarray(stamps, dtype=np.uint64)[self.valid]
        return self

    def stamp(self, j: int) -> int:
        """Valid message ``j``'s Zenoh timestamp (0: none)."""
        return 0 if self.stamps is None else int(self.stamps[j])

    def message(self, j: int, kind: Kind) -> DataMessage:
        """Valid message ``j`` as :func:`recorderd.wire.decode` returns it."""
        h = self.header[j]
        n0, n1 = int(h["n0"]), int(h["n1"])
        data = self.data[self.offsets[j] : self.offsets[j + 1]]
        if kind is Kind.WEIGHTS:
            data = data.reshape(n0, n1)
        header = Header(
            kind,
            int(h["incarnation"]),
            int(h["seq"]),
            int(h["step"]),
            float(h["time_ms"]),
            float(h["dt_ms"]),
            int(h["layer_size"]),
            n0,
            n1,
        )
        return DataMessage(header, data)


def decode_batch(payloads: list[bytes], expected: Kind) -> Batch:
    """Decode the data messages of one key (kind ``expected``); see the module docstring."""
    n = len(payloads)
    if _decode_valid is not None:  # one pass in C; None unless every message is valid
        joined = _decode_valid(payloads, int(expected), MAX_ELEMENTS)
        if joined is not None:
            return Batch(
                np.arange(n, dtype=np.intp),
                np.frombuffer(joined[0], dtype=HEADER_DTYPE),
                np.frombuffer(joined[1], dtype=expected.dtype),
                np.frombuffer(joined[2], dtype=np.int64),
                [],
            )
    if 0 < n <= SMALL_BATCH:
        small = _decode_small(payloads, expected)
        if small is not None:
            return small
    lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=n)
    rejected: list[tuple[int, Reason, str, tuple[int, int] | None]] = []
    short = lengths < HEADER_SIZE
    for i in np.flatnonzero(short):
        rejected.append((int(i), Reason.SHORT_PAYLOAD, f"{lengths[i]} bytes < {HEADER_SIZE}", None))
    # Every payload that is at least a header, joined: headers then gathered by offset.
    keep = np.flatnonzero(~short)
    whole = b"".join(payloads[i] for i in keep) if keep.size < n else b"".join(payloads)
    lens = lengths[keep]
    starts = np.zeros(keep.size, dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    if keep.size:  # each header: the 64 bytes at its start (a window view, then one take)
        windows = np.ndarray(
            (len(whole) - HEADER_SIZE + 1, HEADER_SIZE), np.uint8, whole, strides=(1, 1)
        )
        header = windows[starts].view(HEADER_DTYPE).reshape(keep.size)
    else:
        header = np.zeros(0, dtype=HEADER_DTYPE)
    h = header
    magic = h["magic"].view("<u4").reshape(-1) if keep.size else np.zeros(0, np.uint32)
    t, dt = h["time_ms"], h["dt_ms"]
    n0 = h["n0"].astype(np.int64)
    n1 = h["n1"].astype(np.int64)
    size = h["layer_size"].astype(np.int64)
    # n0 * n1 of two u32 can pass 2^63 and wrap in int64 (then a short payload would
    # "match" its length): each factor is capped just above the bound first, which keeps
    # every product under 2^53 and over the bound exactly when the true one is.
    cap = MAX_ELEMENTS + 1
    elements = np.minimum(n0, cap) * np.minimum(n1, cap)
    bad_length = (n0 == 0) | (n1 == 0) if expected is Kind.WEIGHTS else n1 != 1
    bad_length |= (elements > MAX_ELEMENTS) | (size > MAX_ELEMENTS)
    bad_length |= lens != HEADER_SIZE + 4 * elements
    if expected is Kind.SPIKES:
        bad_length |= n0 > size
    elif expected is Kind.MEMBRANE:
        bad_length |= n0 != size
    # Each message's first failed check, in _ORDER (decode's order), -1 if none so far:
    # the checks as rows of one array, so that it takes a few numpy calls whatever their number.
    checks = np.stack(
        [
            magic != _MAGIC_U32,
            h["version"] != PROTOCOL_VERSION,
            h["kind"] != int(expected),  # unknown kinds are never the expected one
            ~(np.isfinite(t) & np.isfinite(dt)) | ~(dt > 0.0),
            h["step"] < 0,
            bad_length,
        ]
    )
    reason = np.where(checks.any(axis=0), checks.argmax(axis=0), -1).astype(np.int8)

    def fail(mask: npt.NDArray[np.bool_], code: int) -> None:
        reason[(reason < 0) & mask] = code

    # Data of every message whose lengths are right so far, as one flat element array.
    ok = reason < 0
    counts = np.where(ok, elements, 0)
    offsets = np.zeros(keep.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if offsets[-1]:
        rows = np.flatnonzero(ok)
        if rows.size == keep.size:
            # Every message is a header and exactly its elements (lengths checked), so the
            # join is word-aligned and the data is every word but the headers' (a mask is
            # ~3x cheaper than gathering each element by index).
            words = np.frombuffer(whole, dtype=expected.dtype)
            data_words = np.ones(words.size, dtype=bool)
            data_words[(starts // 4)[:, None] + np.arange(_HEADER_WORDS)] = False
            data = words[data_words]
        else:
            aligned = b"".join(payloads[i] for i in keep[rows])
            first_byte = np.zeros(rows.size, dtype=np.int64)
            np.cumsum(lens[rows][:-1], out=first_byte[1:])
            words = np.frombuffer(aligned, dtype=expected.dtype)
            data = words[_gather(first_byte // 4 + _HEADER_WORDS, counts[rows])]
    else:
        data = np.zeros(0, dtype=expected.dtype)
    if expected is Kind.SPIKES and data.size:
        _check_indices(data, offsets, size, ok, fail)
    bad = np.flatnonzero(reason >= 0)
    for j in bad:
        rejected.append(_rejection(int(keep[j]), int(reason[j]), h[j], int(lens[j]), expected))
    good = reason < 0
    if bad.size:  # keep only the valid messages' data
        data = data[np.repeat(good[ok], counts[ok])]
        offsets = np.zeros(int(good.sum()) + 1, dtype=np.int64)
        np.cumsum(elements[good], out=offsets[1:])
    rejected.sort(key=lambda r: r[0])
    return Batch(keep[good], np.ascontiguousarray(header[good]), data, offsets, rejected)


def _decode_small(payloads: list[bytes], expected: Kind) -> Batch | None:
    """A few messages decoded one by one (:func:`decode`); None if any is invalid (the
    column path then finds its reason, with its detail text)."""
    try:
        datas = [decode(p, expected).data.reshape(-1) for p in payloads]
    except ProtocolError:
        return None
    header = np.frombuffer(b"".join([p[:HEADER_SIZE] for p in payloads]), dtype=HEADER_DTYPE)
    offsets = np.zeros(len(datas) + 1, dtype=np.int64)
    np.cumsum([d.size for d in datas], out=offsets[1:])
    data = datas[0].copy() if len(datas) == 1 else np.concatenate(datas)
    return Batch(np.arange(len(datas), dtype=np.intp), header.copy(), data, offsets, [])


def _gather(first: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Indices ``first[i], first[i] + 1, ..., first[i] + counts[i] - 1`` for every ``i``."""
    total = int(counts.sum())
    starts = np.zeros(counts.size, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return np.repeat(first - starts, counts) + np.arange(total, dtype=np.int64)


def _check_indices(
    data: npt.NDArray[Any],
    offsets: npt.NDArray[np.int64],
    size: npt.NDArray[np.int64],
    ok: npt.NDArray[np.bool_],
    fail: Any,
) -> None:
    """Spike indices strictly increasing within each message and the last one < layer size."""
    ids = data.astype(np.int64)
    rows = np.flatnonzero(ok)  # message of each offsets interval
    ends = offsets[1:][ok]
    nonempty = ends > offsets[:-1][ok]
    bad = np.zeros(ok.size, dtype=bool)
    # The last index of each non-empty message against its layer size.
    last = ids[ends[nonempty] - 1]
    bad[rows[nonempty]] |= last >= size[rows[nonempty]]
    # A step down or a repeat inside a message (not across two messages).
    if ids.size > 1:
        drops = np.flatnonzero(ids[1:] <= ids[:-1]) + 1
        if drops.size:
            starts = offsets[:-1][ok]
            owner = np.searchsorted(ends, drops, side="right")
            inside = drops > starts[owner]
            bad[rows[owner[inside]]] = True
    fail(bad, 6)


_ORDER: Final = (
    Reason.BAD_MAGIC,
    Reason.BAD_VERSION,
    Reason.KIND_MISMATCH,
    Reason.BAD_NUMBER,
    Reason.NEGATIVE_STEP,
    Reason.BAD_LENGTH,
    Reason.BAD_INDEX,
)


def _rejection(
    index: int, code: int, h: Any, length: int, expected: Kind
) -> tuple[int, Reason, str, tuple[int, int] | None]:
    """The rejection of one message, with ``decode``'s detail text (rejected path only)."""
    reason = _ORDER[code]
    sequence = (int(h["incarnation"]), int(h["seq"])) if code >= 3 else None
    if reason is Reason.BAD_MAGIC:
        detail = f"magic {bytes(h['magic'])!r} != {MAGIC!r}"
    elif reason is Reason.BAD_VERSION:
        detail = f"version {int(h['version'])} != {PROTOCOL_VERSION}"
    elif reason is Reason.KIND_MISMATCH:
        kind = int(h["kind"])
        if kind in _KINDS:
            detail = f"{Kind(kind).key_word} payload on a {expected.key_word} key"
        else:
            detail = f"unknown kind byte {kind}"
    elif reason is Reason.BAD_NUMBER:
        detail = f"time_ms={float(h['time_ms'])!r} dt_ms={float(h['dt_ms'])!r}"
    elif reason is Reason.NEGATIVE_STEP:
        detail = f"step {int(h['step'])}"
    elif reason is Reason.BAD_LENGTH:
        detail = (
            f"{int(h['n0'])}x{int(h['n1'])} elements, layer {int(h['layer_size'])}, {length} bytes"
        )
    else:
        detail = f"indices must be strictly increasing and < layer size {int(h['layer_size'])}"
    return index, reason, detail, sequence
