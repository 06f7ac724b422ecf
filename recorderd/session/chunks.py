"""Chunks compressed by us and written as they are (HDF5's direct chunk write).

The result is exactly what HDF5's own filters would store for a gzip (+ shuffle) dataset:
the shuffle filter's byte planes, then a zlib deflate stream (as ``H5Z_filter_deflate``
writes it), so any HDF5 reader opens the dataset as usual.

The last, partly filled chunk of each dataset, written at close, is mostly padding
(zeros). It is deflated by ISA-L (``isal``, a dependency of the project; at level 1 by
:func:`_deflate` if it cannot be imported): on such chunks it is ~10x faster than zlib
and its stream 2-4x smaller, since zlib's fastest level encodes long zero runs poorly.
It is the same format, a zlib stream: every deflate stream decompresses the same way,
whoever wrote it.

Whole chunks are deflated by zlib-ng (``zlib-ng``, a dependency of the project; zlib if
it cannot be imported): on the shuffled chunks of spike indices, times, frames and
membrane values it is 1.5-4x faster than zlib at the same level and strategy, and its
streams are as small (spike indices, membrane values: within 1%, or smaller; frame steps
and spike times: within 4% of sizes that are 1-2% of the input;
``bench/deflate.py``, ``bench/results/deflate-zlib-ng.txt``). It releases the GIL as
zlib does.

How hard the compressor tries is also a choice of *strategy*: the run-length strategy
(``Z_RLE``, matches at distance 1 only) is 2-3x faster than the default and, on the
shuffled byte planes of spike indices of layers up to a few thousand neurons and of
membrane values, about as small (within 1%); on regular sequences (steps, times, sequence
numbers) and sparse huge layers it is much larger. So each dataset written here picks
per :class:`Strategy`: every :data:`PROBE_EVERY` chunks one chunk is compressed both
ways, and the run-length stream wins until the next probe unless the default one is
smaller by more than :data:`RLE_SLACK`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Final

import h5py
import numpy as np
import numpy.typing as npt

_isal: Any
try:
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - isal not installed (e.g. --no-deps): zlib instead
    _isal = None
_zng: Any
try:
    from zlib_ng import zlib_ng as _zng
except ImportError:  # pragma: no cover - zlib-ng not installed (e.g. --no-deps): zlib instead
    _zng = None

#: Chunks of a dataset between two probes of the faster strategy (:class:`Strategy`).
PROBE_EVERY: Final = 64
#: How much larger (a fraction) a chunk's run-length stream may be than its default one
#: and still win the probe: it is 2-3x faster to make.
RLE_SLACK: Final = 0.02
#: Compression level of a dataset's last, partly filled chunk (mostly padding): ISA-L's
#: level 1 (or zlib's, without ISA-L).
TAIL_LEVEL: Final = 1


@dataclass(eq=False)
class Strategy:
    """The zlib strategy a dataset's chunks are compressed with, chosen by probing."""

    rle: bool = False
    #: Chunks left until the next probe (0: the next chunk is a probe).
    until_probe: int = 0


@dataclass(frozen=True)
class Codec:
    """How a dataset's chunks are filtered: gzip (with or without shuffle), or nothing."""

    gzip_level: int | None  # None: no filter at all
    shuffle: bool

    @classmethod
    def of(cls, ds: h5py.Dataset) -> Codec | None:
        """The codec of an existing dataset, or None if it uses a filter not handled here."""
        if ds.compression is None and not ds.shuffle and not ds.fletcher32 and not ds.scaleoffset:
            return cls(None, False)
        if ds.compression == "gzip" and not ds.fletcher32 and not ds.scaleoffset:
            return cls(int(ds.compression_opts), bool(ds.shuffle))
        return None

    @classmethod
    def from_filters(cls, filters: dict[str, Any]) -> Codec | None:
        """The codec of ``create_dataset`` keywords from :func:`.schema.filters`."""
        if not filters:
            return cls(None, False)
        if filters.get("compression") == "gzip":
            return cls(int(filters["compression_opts"]), bool(filters.get("shuffle")))
        return None

    def encode(self, rows: npt.NDArray[Any], chunk_rows: int, rle: bool = False) -> bytes:
        """One whole chunk holding ``rows`` (padded with zeros), as HDF5 stores it
        (``rle``: with zlib's run-length strategy)."""
        data = self._filtered(rows, chunk_rows)
        return data if self.gzip_level is None else _deflate(data, self.gzip_level, rle)

    def encode_tail(self, rows: npt.NDArray[Any], chunk_rows: int) -> bytes:
        """A dataset's last chunk, ``rows`` padded with zeros to ``chunk_rows``, as HDF5
        stores it, deflated for speed on its padding (see the module docstring)."""
        data = self._filtered(rows, chunk_rows)
        return data if self.gzip_level is None else deflate_tail(data)

    def encode_probe(self, rows: npt.NDArray[Any], chunk_rows: int) -> tuple[bytes, bool]:
        """One whole chunk compressed both ways: the one that wins (``Z_RLE`` unless the
        default stream is more than :data:`RLE_SLACK` smaller), and whether it is ``Z_RLE``."""
        data = self._filtered(rows, chunk_rows)
        if self.gzip_level is None:
            return data, False
        plain = _deflate(data, self.gzip_level, False)
        rle = _deflate(data, self.gzip_level, True)
        return (rle, True) if len(rle) <= len(plain) * (1 + RLE_SLACK) else (plain, False)

    def _filtered(self, rows: npt.NDArray[Any], chunk_rows: int) -> bytes:
        """The chunk's bytes before deflate: padded to ``chunk_rows``, shuffled if asked."""
        if rows.shape[0] < chunk_rows:
            padded = np.zeros((chunk_rows, *rows.shape[1:]), dtype=rows.dtype)
            padded[: rows.shape[0]] = rows
            rows = padded
        raw = np.ascontiguousarray(rows)
        if self.gzip_level is not None and self.shuffle and raw.dtype.itemsize > 1:
            return shuffle(raw)
        return raw.tobytes()


def _deflate(data: bytes, level: int, rle: bool) -> bytes:
    """A zlib stream of ``data`` (what HDF5's deflate filter stores), by zlib-ng if installed."""
    z = zlib if _zng is None else _zng
    if not rle:
        return bytes(z.compress(data, level))
    c = z.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS, 8, zlib.Z_RLE)
    return bytes(c.compress(data) + c.flush())


def deflate_tail(data: bytes) -> bytes:
    """A zlib stream of a mostly padded chunk: ISA-L if installed, else :func:`_deflate`."""
    if _isal is not None:
        return bytes(_isal.compress(data, TAIL_LEVEL))
    return _deflate(data, TAIL_LEVEL, False)


def shuffle(arr: npt.NDArray[Any]) -> bytes:
    """HDF5's shuffle filter: byte ``j`` of every element, for ``j`` in ``0..itemsize-1``."""
    size = arr.dtype.itemsize
    planes = np.ascontiguousarray(arr).view(np.uint8).reshape(-1, size).T
    return np.ascontiguousarray(planes).tobytes()
