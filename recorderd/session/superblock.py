"""Clear a crashed HDF5 file's consistency flags, in pure Python (what ``h5clear -s`` does).

A file opened for writing with a version 3 superblock (``libver`` low bound v110, as
SWMR needs) carries "open for write" flags in its superblock until it is closed. After
a kill -9 they stay set and HDF5 refuses to open the file again for writing, and for
reading without SWMR. A SWMR writer also never updates the superblock's end-of-file
address, so a reader of the crashed file fails with "addr overflow" on everything
appended after the last non-SWMR flush. :func:`clear_status_flags` clears the flags and
raises the stored end-of-file address to the file's size, with the superblock checksum
(Jenkins' lookup3, as ``H5_checksum_lookup3``) recomputed: byte for byte what
``h5clear -s --increment=0`` writes (``tests/test_session_storage.py`` compares them where
Debian's hdf5-tools is installed). It is kept in Python because h5py exposes no way to do
it and a system ``h5clear`` would drift from h5py's bundled HDF5.

Call it only while holding the session lock: it must never run under a live writer.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, Final

SIGNATURE: Final = b"\x89HDF\r\n\x1a\n"
M: Final = 0xFFFFFFFF
#: Superblock versions whose layout this module knows (1.10+ files; SWMR needs 3).
SUPPORTED_VERSIONS: Final = (2, 3)


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & M


#: lookup3's mix() as six steps ``x[p] -= x[q]; x[p] ^= rot(x[q], k); x[q] += x[r]`` on
#: x = [a, b, c], and final() as seven ``x[t] ^= x[s]; x[t] -= rot(x[s], k)``.
_MIX: Final = tuple(
    ((i % 3, (i + 2) % 3, (i + 1) % 3), k) for i, k in enumerate((4, 6, 8, 16, 19, 4))
)
_FINAL: Final = tuple(
    (((i + 2) % 3, (i + 1) % 3), k) for i, k in enumerate((14, 11, 25, 16, 4, 14, 24))
)


def _add_words(x: list[int], block: bytes) -> None:
    for w in range(3):
        x[w] = (x[w] + int.from_bytes(block[4 * w : 4 * w + 4], "little")) & M


def lookup3_hashlittle(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 hashlittle, as HDF5's H5_checksum_lookup3."""
    x = [(0xDEADBEEF + len(data) + initval) & M] * 3
    i, n = 0, len(data)
    while n > 12:
        _add_words(x, data[i : i + 12])
        for (p, q, r), k in _MIX:
            x[p] = (x[p] - x[q]) & M
            x[p] ^= _rot(x[q], k)
            x[q] = (x[q] + x[r]) & M
        i, n = i + 12, n - 12
    if n == 0:
        return x[2]
    _add_words(x, data[i : i + n] + b"\x00" * (12 - n))
    for (t, s), k in _FINAL:
        x[t] ^= x[s]
        x[t] = (x[t] - _rot(x[s], k)) & M
    return x[2]


def _find_superblock(fh: BinaryIO, size: int) -> int:
    base = 0
    while True:  # the superblock sits at 0, 512, 1024, ... (after a user block)
        fh.seek(base)
        if fh.read(8) == SIGNATURE:
            return base
        base = 512 if base == 0 else base * 2
        if base >= size:
            raise ValueError("not an HDF5 file")


def status_flags(path: str | os.PathLike[str]) -> int:
    """The superblock's status flags (0: closed cleanly, or a v0/v1 superblock)."""
    with open(path, "rb") as fh:
        base = _find_superblock(fh, os.fstat(fh.fileno()).st_size)
        fh.seek(base)
        hdr = fh.read(12)
        if len(hdr) < 12:
            raise ValueError("truncated superblock")
        return hdr[11] if hdr[8] >= 2 else 0


def cleared_superblock(fh: BinaryIO) -> tuple[int, bytes, int] | None:
    """What :func:`clear_status_flags` would write: ``(offset, bytes, old flags)``, or None.

    None when there is nothing to change (flags clear and an end-of-file address that
    covers the file). Raises ``ValueError`` for a superblock version other than 2 or 3
    (the only ones this code knows; SWMR files have version 3) or a bad checksum.
    """
    size = os.fstat(fh.fileno()).st_size
    base = _find_superblock(fh, size)
    fh.seek(base)
    hdr = fh.read(12)
    if len(hdr) < 12:
        raise ValueError("truncated superblock")
    version, so, flags = hdr[8], hdr[9], hdr[11]
    if version not in SUPPORTED_VERSIONS:
        # v0/v1 keep their flags elsewhere; v4+ is a layout this code was not written for.
        raise ValueError(f"superblock version {version}: only versions 2 and 3 are handled")
    if so not in (4, 8):
        raise ValueError(f"superblock with {so}-byte offsets")
    body_len = 12 + 4 * so  # base, extension, EOF and root addresses, then checksum
    fh.seek(base)
    body = bytearray(fh.read(body_len + 4))
    if len(body) < body_len + 4:
        raise ValueError("truncated superblock")
    if lookup3_hashlittle(bytes(body[:body_len])) != struct.unpack("<I", body[body_len:])[0]:
        raise ValueError("superblock checksum mismatch")
    fmt = {4: "<I", 8: "<Q"}[so]
    eoa_at = 12 + 2 * so
    eoa = struct.unpack(fmt, body[eoa_at : eoa_at + so])[0]
    if flags == 0 and eoa >= size - base:
        return None
    body[11] = 0
    body[eoa_at : eoa_at + so] = struct.pack(fmt, max(eoa, size - base))
    body[body_len:] = struct.pack("<I", lookup3_hashlittle(bytes(body[:body_len])))
    return base, bytes(body), flags


def clear_status_flags(path: str | os.PathLike[str]) -> int:
    """Clear the superblock's status flags and raise its end-of-file address; return old flags.

    Compared with HDF5's ``h5clear -s --increment``: ``h5clear -s`` clears the same
    flags (byte 11 of a version 2 or 3 superblock); ``--increment`` sets the stored
    end-of-allocation address to the file's size plus an increment (1 MiB by default),
    where this sets it to the file's size exactly (never lowers it). The checksum is
    recomputed as HDF5 does. Nothing else of the file is read or changed. Writes nothing
    when the flags are clear and the address already covers the file.
    """
    with open(path, "r+b") as fh:
        patch = cleared_superblock(fh)
        if patch is None:
            return 0
        base, body, flags = patch
        fh.seek(base)
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
        return flags
