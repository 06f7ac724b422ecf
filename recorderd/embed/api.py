"""The recording guide's in-process API: ``RecorderConfig`` and ``SimulationRecorder``.

The second front end of the recording core: the same :class:`~recorderd.core.recorder.Recorder`
and writer as the daemon, fed directly with arrays instead of bus messages, so a
session written here is the same format, read by the same analysis.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, field_validator

from recorderd.core.recorder import Recorder
from recorderd.core.settings import (
    DEFAULT_BUFFER_SIZE,
    DEFAULT_COMPRESSION,
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_FLUSH_INTERVAL,
    BufferSize,
    CompressionLevel,
    CoreSettings,
    Duration,
    FlushInterval,
    Rate,
    Seed,
    default_session_name,
)
from recorderd.session.closing import ClosesOnExit
from recorderd.session.schema import Compression
from recorderd.wire import (
    ControlState,
    Kind,
    check_name,
    decode,
    encode,
)

log = logging.getLogger(__name__)


class RecorderConfig(BaseModel):
    """Recording settings with the recording guide's field names."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enable_recording: bool = True
    record_spikes: bool = True
    record_membrane: bool = False
    record_weights: bool = False
    record_control: bool = True
    output_dir: Path = Path("./sim_recordings")
    session_name: str | None = None
    spike_subsample_rate: Rate = 1.0
    membrane_subsample_rate: Rate = 1.0
    subsample_seed: Seed = 0
    max_recording_duration: Duration | None = None
    buffer_size: BufferSize = DEFAULT_BUFFER_SIZE
    compression: Compression | None = DEFAULT_COMPRESSION  # None: the guide's "no compression"
    compression_level: CompressionLevel = DEFAULT_COMPRESSION_LEVEL
    auto_flush: bool = True
    flush_interval: FlushInterval = DEFAULT_FLUSH_INTERVAL  # with auto_flush

    @field_validator("session_name")
    @classmethod
    def _safe_session(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "session name")

    def to_core(self) -> CoreSettings:
        """The recorder core's settings for this configuration (a new session name if none)."""
        session = self.session_name or default_session_name()
        return CoreSettings(
            session=session,
            session_dir=self.output_dir / session,
            buffer_size=self.buffer_size,
            spike_subsample_rate=self.spike_subsample_rate,
            membrane_subsample_rate=self.membrane_subsample_rate,
            subsample_seed=self.subsample_seed,
            compression=self.compression or "none",
            compression_level=self.compression_level,
            recorder_config=self.model_dump(mode="json") | {"session_name": session},
        )


class SimulationRecorder(ClosesOnExit):
    """Record spikes, membranes, weights and control states from inside a simulation.

    With ``enable_recording=False`` every method is a cheap no-op. Thread-safe: calls
    from several threads are serialised. Use as a context manager, or call
    :meth:`close` (idempotent).
    """

    def __init__(self, config: RecorderConfig | None = None) -> None:
        self.config = config or RecorderConfig()
        self._lock = threading.Lock()
        self._recorder: Recorder | None = None
        self._started = time.monotonic()
        self._last_flush = self._started
        self._incarnation = int.from_bytes(os.urandom(8), "little")
        self._next: dict[tuple[str, Kind, str], tuple[int, int]] = {}  # -> (seq, next step)
        self._control_seq: dict[str, int] = {}
        self._stopped_reason: str | None = None
        if self.config.enable_recording:
            self.settings = self.config.to_core()
            self._recorder = Recorder(self.settings)
            self._recorder.start()
            log.info(
                "recording session %s into %s", self.settings.session, self.settings.session_dir
            )

    # -- the guide's calls -------------------------------------------------------------

    def record_spikes(
        self,
        node_id: str,
        layer_name: str,
        spikes: npt.ArrayLike,
        *,
        step: int | None = None,
        time_ms: float | None = None,
        dt_ms: float = 1.0,
        layer_size: int | None = None,
    ) -> None:
        """Record one step of a layer's spikes.

        ``spikes`` is either a dense per-neuron array (bool, or numbers where non-zero
        means a spike; its length is the layer size) or, when ``layer_size`` is given,
        the indices of the neurons that fired. ``step`` defaults to the stream's next step.
        """
        if not self.config.record_spikes:
            return
        arr = np.asarray(spikes)
        if layer_size is None:
            arr = arr.reshape(-1)
            layer_size, indices = arr.size, np.flatnonzero(arr)
        else:
            indices = np.unique(arr.astype(np.int64, copy=False))
        self._record(Kind.SPIKES, node_id, layer_name, indices, layer_size, step, time_ms, dt_ms)

    def record_membrane(
        self,
        node_id: str,
        layer_name: str,
        potentials: npt.ArrayLike,
        *,
        step: int | None = None,
        time_ms: float | None = None,
        dt_ms: float = 1.0,
    ) -> None:
        """Record one step of a layer's membrane potentials (mV, one value per neuron)."""
        if not self.config.record_membrane:
            return
        arr = np.asarray(potentials, dtype=np.float32).reshape(-1)
        self._record(Kind.MEMBRANE, node_id, layer_name, arr, arr.size, step, time_ms, dt_ms)

    def record_weights(
        self,
        node_id: str,
        name: str,
        weights: npt.ArrayLike,
        *,
        step: int | None = None,
        time_ms: float | None = None,
        dt_ms: float = 1.0,
    ) -> None:
        """Record a snapshot of a 2-D weight matrix."""
        if not self.config.record_weights:
            return
        arr = np.asarray(weights, dtype=np.float32)
        if arr.ndim != 2:
            raise ValueError(f"weights must be a 2-D matrix, got shape {arr.shape}")
        self._record(Kind.WEIGHTS, node_id, name, arr, arr.shape[1], step, time_ms, dt_ms)

    def record_control_state(
        self,
        node_id: str,
        module_type: str,
        status: str,
        active_task: str | None = None,
        step_count: int = 0,
        metadata: dict[str, Any] | None = None,
        *,
        step: int | None = None,
        time_ms: float | None = None,
        dt_ms: float = 1.0,
    ) -> None:
        """Record a node's control state (status, active task, step count, metadata)."""
        if not self.config.record_control:
            return
        with self._lock:
            recorder = self._active()
            if recorder is None:
                return
            seq = self._control_seq.get(node_id, 0)
            at = step_count if step is None else step
            state = ControlState(
                node_id=node_id,
                module_type=module_type,
                status=status,
                active_task=active_task,
                step_count=step_count,
                step=at,
                time_ms=at * dt_ms if time_ms is None else time_ms,
                incarnation=self._incarnation,
                seq=seq,
                metadata=metadata or {},
            )
            self._control_seq[node_id] = seq + 1
            recorder.add_control(state, time.time())
            self._auto_flush(recorder)

    def flush_all(self) -> None:
        """Write everything buffered and make it durable."""
        with self._lock:
            if self._recorder is not None and self._stopped_reason is None:
                self._recorder.flush()
                self._last_flush = time.monotonic()

    def get_statistics(self) -> dict[str, Any]:
        """Counts so far: ``total_spikes_recorded`` and the other totals, plus per stream."""
        with self._lock:
            if self._recorder is None:
                return {"recording": False, "total_spikes_recorded": 0}
            doc = self._recorder.statistics_document()
            totals = doc.pop("totals")
            return {
                **totals,
                **doc,
                "recording": self._stopped_reason is None,
                "stopped_reason": self._stopped_reason,
                "elapsed_s": time.monotonic() - self._started,
            }

    def close(self) -> None:
        """Write everything and close the session (idempotent)."""
        with self._lock:
            self._stop("closed")

    # -- internals ---------------------------------------------------------------------

    def _record(
        self,
        kind: Kind,
        node_id: str,
        name: str,
        data: npt.NDArray[Any],
        layer_size: int,
        step: int | None,
        time_ms: float | None,
        dt_ms: float,
    ) -> None:
        with self._lock:
            recorder = self._active()
            if recorder is None:
                return
            check_name(node_id, "node id")
            check_name(name, "layer name")
            key = (node_id, kind, name)
            seq, next_step = self._next.get(key, (0, 0))
            at = next_step if step is None else step
            # Through the wire encoding and its validation: exactly what the daemon records.
            msg = decode(
                encode(
                    kind,
                    incarnation=self._incarnation,
                    seq=seq,
                    step=at,
                    time_ms=at * dt_ms if time_ms is None else time_ms,
                    dt_ms=dt_ms,
                    layer_size=layer_size,
                    data=data,
                ),
                kind,
            )
            self._next[key] = (seq + 1, at + 1)
            recorder.add(node_id, name, msg)
            self._auto_flush(recorder)

    def _active(self) -> Recorder | None:
        if self._recorder is None or self._stopped_reason is not None:
            return None
        limit = self.config.max_recording_duration
        if limit is not None and time.monotonic() - self._started >= limit:
            log.warning("max_recording_duration of %.1f s reached: recording stopped", limit)
            self._stop("max_recording_duration")
            return None
        return self._recorder

    def _auto_flush(self, recorder: Recorder) -> None:
        now = time.monotonic()
        if self.config.auto_flush and now - self._last_flush >= self.config.flush_interval:
            recorder.flush()
            self._last_flush = now

    def _stop(self, reason: str) -> None:
        if self._recorder is not None and self._stopped_reason is None:
            self._stopped_reason = reason
            self._recorder.finish()


_global_recorder: SimulationRecorder | None = None


def set_global_recorder(recorder: SimulationRecorder | None) -> None:
    """Make ``recorder`` the process-wide recorder (``None`` clears it)."""
    global _global_recorder
    _global_recorder = recorder


def get_global_recorder() -> SimulationRecorder | None:
    """The process-wide recorder set by :func:`set_global_recorder`, if any."""
    return _global_recorder
