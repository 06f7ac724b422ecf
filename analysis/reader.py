"""Read a recorded session: the analysis side of ``docs/recording-format.md``.

Opens sessions that are finished, still being written, or left by a crashed writer
(files are opened read-only with HDF5 file locking off, so a live writer does not
block readers). All names come from :mod:`recorderd.layout`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from recorderd import layout as L


class AnalysisError(Exception):
    """Base error of the analysis package."""


class NotASessionError(AnalysisError):
    """The folder holds no recorded session."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} is not a recorded session (no {L.DATA_FILE} of {L.FORMAT_NAME})")


class UnsupportedFormatError(AnalysisError):
    """The session was written in a format version this reader does not know."""

    def __init__(self, path: Path, version: int) -> None:
        super().__init__(
            f"{path} has format version {version}; this reader knows up to {L.FORMAT_VERSION}: "
            "upgrade the analysis package"
        )


@dataclass(frozen=True)
class SpikeTrains:
    """Flat spikes of one population, in recording order."""

    steps: npt.NDArray[np.int64]
    times_ms: npt.NDArray[np.float64]
    neuron_ids: npt.NDArray[np.uint32]


@dataclass(frozen=True)
class Frames:
    """Per-message index of one stream: one row per recorded message."""

    steps: npt.NDArray[np.int64]
    times_ms: npt.NDArray[np.float64]
    seq: npt.NDArray[np.uint64]
    incarnation: npt.NDArray[np.uint64]
    count: npt.NDArray[np.uint32]


class SessionReader:
    """Read-only view of one session folder."""

    def __init__(self, session_dir: str | Path) -> None:
        self.path = Path(session_dir)
        data = self.path / L.DATA_FILE
        if not data.is_file():
            raise NotASessionError(self.path)
        try:
            self._h5 = h5py.File(data, "r", locking=False)
        except OSError as exc:
            raise AnalysisError(f"cannot open {data}: {exc}") from exc
        if self._h5.attrs.get(L.ATTR_FORMAT) != L.FORMAT_NAME:
            self._h5.close()
            raise NotASessionError(self.path)
        version = int(self._h5.attrs.get(L.ATTR_FORMAT_VERSION, 0))
        if version > L.FORMAT_VERSION:
            self._h5.close()
            raise UnsupportedFormatError(self.path, version)

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._h5.close()

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what is there ---------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """Session metadata attributes (recorder config and statistics parsed from JSON)."""
        attrs = dict(self._h5[L.METADATA].attrs)
        for key in (L.ATTR_RECORDER_CONFIG, L.ATTR_STATISTICS):
            if key in attrs:
                attrs[key] = json.loads(attrs[key])
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in attrs.items()}

    def nodes(self) -> list[str]:
        """Node ids with any recorded stream or control state, sorted."""
        names = set(self._h5[L.METADATA][L.NODES].keys())
        for top in (L.SPIKES, L.MEMBRANE, L.WEIGHTS):
            names.update(L.split_population(p)[0] for p in self._h5[top])
        return sorted(names)

    def node_info(self, node_id: str) -> dict[str, Any]:
        """Per-node metadata: module type, dt, incarnations."""
        nodes = self._h5[L.METADATA][L.NODES]
        if node_id not in nodes:
            return {}
        return {
            k: (v.tolist() if isinstance(v, np.ndarray) else v)
            for k, v in nodes[node_id].attrs.items()
        }

    def layers(self, node_id: str, kind: str = L.SPIKES) -> list[str]:
        """Layer (or weight) names of a node under ``spikes``, ``membrane`` or ``weights``."""
        out = []
        for pop in self._h5[kind]:
            node, layer = L.split_population(pop)
            if node == node_id:
                out.append(layer)
        return sorted(out)

    def stream_attrs(self, node_id: str, layer: str, kind: str = L.SPIKES) -> dict[str, Any]:
        """Attributes of a stream group (layer size, dt, subsample rate, ...)."""
        group = self._group(kind, node_id, layer)
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in group.attrs.items()}

    def recorded_neurons(
        self, node_id: str, layer: str, kind: str = L.SPIKES
    ) -> npt.NDArray[np.uint32]:
        """Indices of the neurons that were recorded (after subsampling)."""
        return np.asarray(
            self._group(kind, node_id, layer)[L.RECORDED_NEURONS][()], dtype=np.uint32
        )

    def storage_bytes(self, kind: str = L.SPIKES) -> int:
        """Bytes the datasets under ``spikes``, ``membrane`` or ``weights`` take in the file."""
        total = 0

        def visit(_name: str, obj: object) -> None:
            nonlocal total
            if isinstance(obj, h5py.Dataset):
                total += obj.id.get_storage_size()

        self._h5[kind].visititems(visit)
        return total

    # -- data ------------------------------------------------------------------------

    def spikes(self, node_id: str, layer: str) -> SpikeTrains:
        """All spikes of a layer as flat arrays."""
        g = self._group(L.SPIKES, node_id, layer)
        return SpikeTrains(g[L.STEPS][()], g[L.TIMESTAMPS][()], g[L.NODE_IDS][()])

    def frames(self, node_id: str, layer: str, kind: str = L.SPIKES) -> Frames:
        """The per-message index of a stream."""
        g = self._group(kind, node_id, layer)
        return Frames(
            g[L.FRAME_STEP][()],
            g[L.FRAME_TIME][()],
            g[L.FRAME_SEQ][()],
            g[L.FRAME_INCARNATION][()],
            g[L.FRAME_COUNT][()],
        )

    def membrane(
        self, node_id: str, layer: str
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Steps and membrane potentials (frames x recorded neurons, mV)."""
        g = self._group(L.MEMBRANE, node_id, layer)
        return g[L.FRAME_STEP][()], g[L.DATA][()]

    def weights(
        self, node_id: str, name: str
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Steps and weight snapshots (snapshots x rows x cols)."""
        g = self._group(L.WEIGHTS, node_id, name)
        return g[L.FRAME_STEP][()], g[L.DATA][()]

    def control_states(self) -> list[dict[str, Any]]:
        """Every record of ``control_states.jsonl``; a torn last line (crash) is skipped."""
        path = self.path / L.CONTROL_FILE
        if not path.exists():
            return []
        records = []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def statistics(self) -> dict[str, Any]:
        """``recording_statistics.json``, or the copy inside the HDF5 file."""
        path = self.path / L.STATISTICS_FILE
        if path.exists():
            parsed: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return parsed
        stats = self.metadata().get(L.ATTR_STATISTICS, {})
        return dict(stats)

    def _group(self, kind: str, node_id: str, layer: str) -> h5py.Group:
        pop = L.population(node_id, layer)
        try:
            return self._h5[kind][pop]
        except KeyError:
            raise KeyError(f"no {kind} stream for node {node_id!r} layer {layer!r}") from None
