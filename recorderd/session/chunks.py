"""Chunks compressed by us and written as they are (HDF5's direct chunk write).

The result is exactly what HDF5's own filters would store for a gzip (+ shuffle) dataset:
the shuffle filter's byte planes, then zlib's deflate stream (as ``H5Z_filter_deflate``
writes it), so any HDF5 reader opens the dataset as usual. Used where HDF5's path costs
most for little: the last, partly filled chunk of each dataset at close, which is mostly
padding and is compressed here at level 1 (a gzip level only changes how hard the
compressor tries; every level decompresses the same way).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt


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

    def encode(self, rows: npt.NDArray[Any], chunk_rows: int, level: int | None = None) -> bytes:
        """One whole chunk holding ``rows`` (padded with zeros), as HDF5 stores it."""
        if rows.shape[0] < chunk_rows:
            padded = np.zeros((chunk_rows, *rows.shape[1:]), dtype=rows.dtype)
            padded[: rows.shape[0]] = rows
            rows = padded
        raw = np.ascontiguousarray(rows)
        if self.gzip_level is None:
            return raw.tobytes()
        data = shuffle(raw) if self.shuffle and raw.dtype.itemsize > 1 else raw.tobytes()
        return zlib.compress(data, self.gzip_level if level is None else level)


def shuffle(arr: npt.NDArray[Any]) -> bytes:
    """HDF5's shuffle filter: byte ``j`` of every element, for ``j`` in ``0..itemsize-1``."""
    size = arr.dtype.itemsize
    planes = np.ascontiguousarray(arr).view(np.uint8).reshape(-1, size).T
    return np.ascontiguousarray(planes).tobytes()
