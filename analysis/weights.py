"""Weight matrices read one row block at a time: norms over snapshots, downsampled images."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from analysis.reader import SessionReader
from recorderd.session import layout as L

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def weight_norms(reader: SessionReader, node_id: str, name: str) -> tuple[IntArray, FloatArray]:
    """Frobenius norm of every weight snapshot, read one row block at a time."""
    steps = reader.frames(node_id, name, L.WEIGHTS).steps
    norms = np.zeros(steps.size)
    for i in range(steps.size):
        sq = sum(
            float(np.square(block, dtype=np.float64).sum())
            for _, block in reader.iter_weight_blocks(node_id, name, i)
        )
        norms[i] = math.sqrt(sq)
    return steps, norms


def weight_image(
    reader: SessionReader, node_id: str, name: str, index: int = -1, max_pixels: int = 512
) -> tuple[FloatArray, int]:
    """A snapshot averaged over blocks to at most ``max_pixels`` per side, and its step.

    Read in row blocks of whole pixel rows, so a huge matrix never sits in memory.
    """
    steps = reader.frames(node_id, name, L.WEIGHTS).steps
    if steps.size == 0:
        raise ValueError(f"no snapshots of weights {node_id}.{name}")
    index %= steps.size
    rows, cols = (int(x) for x in reader.stream_attrs(node_id, name, L.WEIGHTS)[L.ATTR_LAYER_SIZE])
    row_f = max(1, math.ceil(rows / max_pixels))
    col_f = max(1, math.ceil(cols / max_pixels))
    block_rows = row_f * max(1, (1 << 22) // max(1, cols * row_f))
    pieces = []
    for _, block in reader.iter_weight_blocks(node_id, name, index, block_rows):
        pieces.append(_block_mean(_block_mean(block.astype(np.float64), row_f, 0), col_f, 1))
    return np.concatenate(pieces, axis=0), int(steps[index])


def _block_mean(a: FloatArray, factor: int, axis: int) -> FloatArray:
    """Mean over consecutive groups of ``factor`` along ``axis`` (the last group may be short)."""
    if factor == 1:
        return a
    starts = np.arange(0, a.shape[axis], factor)
    sizes = np.diff(np.r_[starts, a.shape[axis]])
    shape = [1, 1]
    shape[axis] = sizes.size
    result: FloatArray = np.add.reduceat(a, starts, axis=axis) / sizes.reshape(shape)
    return result
