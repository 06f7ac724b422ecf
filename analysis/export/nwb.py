"""NWB files (``pynwb``, optional): units, control-state intervals, membrane series.

``pynwb`` and ``hdmf`` are imported inside the functions that use them; a missing
package raises :class:`MissingDependencyError`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from analysis.export._common import (
    FloatArray,
    MetadataError,
    MissingDependencyError,
    replacing,
    session_start,
)
from analysis.reader import SessionReader, span_of
from recorderd.session import layout as L

#: Subject sexes NWB's best practices allow: male, female, unknown, other.
SEXES: Final = ("M", "F", "U", "O")
#: An ISO 8601 duration (``P90D``, ``P3Y6M``, ``PT12H``), or a range ``P90D/P120D``.
_AGE: Final = re.compile(
    r"P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?"
)
_TOP_KEYS: Final = (
    "session_description",
    "experiment_description",
    "experimenter",
    "institution",
    "lab",
    "keywords",
)
_SUBJECT_KEYS: Final = ("subject_id", "species", "sex", "age", "description")


@dataclass(frozen=True)
class NwbMetadata:
    """What an NWB file says about the experiment, beyond the recording itself.

    From :meth:`from_toml` (a file), :meth:`from_mapping`, or keyword arguments;
    :meth:`merged` lets command-line options override a file. Without a subject,
    nwbinspector reports ``check_subject_exists`` as CRITICAL (DANDI needs one).
    """

    session_description: str | None = None
    experiment_description: str | None = None
    experimenter: tuple[str, ...] = ()
    institution: str | None = None
    lab: str | None = None
    keywords: tuple[str, ...] = ()
    subject_id: str | None = None
    species: str | None = None
    """Latin binomial (``Mus musculus``) or an NCBI taxonomy URL."""
    sex: str | None = None
    """One of :data:`SEXES`."""
    age: str | None = None
    """ISO 8601 duration, e.g. ``P90D``."""
    subject_description: str | None = None

    def __post_init__(self) -> None:
        if self.sex is not None and self.sex not in SEXES:
            raise MetadataError(f"subject sex must be one of {', '.join(SEXES)}, got {self.sex!r}")
        if self.age is not None and not all(_AGE.fullmatch(a) for a in self.age.split("/")):
            raise MetadataError(
                f"subject age must be an ISO 8601 duration such as P90D, got {self.age!r}"
            )

    @property
    def has_subject(self) -> bool:
        """True when any subject field is set."""
        return any(
            v is not None
            for v in (self.subject_id, self.species, self.sex, self.age, self.subject_description)
        )

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> NwbMetadata:
        """From a document shaped like the TOML file (unknown keys raise MetadataError)."""
        unknown = sorted(set(doc) - {*_TOP_KEYS, "subject"})
        subject = doc.get("subject") or {}
        if not isinstance(subject, Mapping):
            raise MetadataError("'subject' must be a table of subject_id, species, sex, age")
        unknown += [f"subject.{k}" for k in sorted(set(subject) - set(_SUBJECT_KEYS))]
        if unknown:
            raise MetadataError(f"unknown NWB metadata key(s): {', '.join(unknown)}")

        def text(value: Any, key: str) -> str | None:
            if value is None:
                return None
            if not isinstance(value, str | int | float):
                raise MetadataError(f"{key} must be a string")
            return str(value)

        def texts(value: Any, key: str) -> tuple[str, ...]:
            if value is None:
                return ()
            if isinstance(value, str):
                return (value,)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise MetadataError(f"{key} must be a string or a list of strings")

        return cls(
            session_description=text(doc.get("session_description"), "session_description"),
            experiment_description=text(
                doc.get("experiment_description"), "experiment_description"
            ),
            experimenter=texts(doc.get("experimenter"), "experimenter"),
            institution=text(doc.get("institution"), "institution"),
            lab=text(doc.get("lab"), "lab"),
            keywords=texts(doc.get("keywords"), "keywords"),
            subject_id=text(subject.get("subject_id"), "subject.subject_id"),
            species=text(subject.get("species"), "subject.species"),
            sex=text(subject.get("sex"), "subject.sex"),
            age=text(subject.get("age"), "subject.age"),
            subject_description=text(subject.get("description"), "subject.description"),
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> NwbMetadata:
        """Read a TOML file (see ``docs/exports.md``); MetadataError if it is unusable."""
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise MetadataError(f"cannot read NWB metadata {path}: {exc}") from exc
        return cls.from_mapping(doc)

    def merged(self, **overrides: Any) -> NwbMetadata:
        """A copy with the given fields replaced where they are not None or empty."""
        changes: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in overrides.items()
            if v not in (None, (), [])
        }
        return replace(self, **changes)


def export_nwb(
    session_dir: str | Path,
    out_path: str | Path,
    *,
    include_weights: bool = False,
    metadata: NwbMetadata | Mapping[str, Any] | None = None,
) -> None:
    """Write the session as an NWB file: units, control-state intervals, membrane series.

    Needs ``pynwb`` (extra ``nwb``). Times are simulation time in seconds; membrane data
    stay float32 mV with ``conversion = 1e-3`` to volts; evenly spaced series are
    written with ``starting_time`` and ``rate``, others with ``timestamps``. The units
    table's ``resolution`` is the smallest step length of the spike streams. Spike times
    are held in memory (8 bytes per spike); membrane and weight data are streamed from
    the session. ``metadata`` (:class:`NwbMetadata` or a mapping shaped like its TOML
    file) adds the subject, experimenters, institution, descriptions and keywords.
    """
    try:
        import pynwb  # type: ignore[import-untyped]
        from hdmf.common import DynamicTable  # type: ignore[import-untyped]
        from pynwb.file import Subject  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingDependencyError("pynwb", "pip install 'recorderd[nwb]'") from exc
    meta = (
        metadata if isinstance(metadata, NwbMetadata) else NwbMetadata.from_mapping(metadata or {})
    )
    with (
        SessionReader(session_dir) as r,
        replacing(Path(out_path)) as partial,
    ):
        start = session_start(r)
        name = str(r.metadata().get(L.ATTR_SESSION, r.path.name))
        extra: dict[str, Any] = {
            k: v
            for k, v in (
                ("experiment_description", meta.experiment_description),
                ("experimenter", list(meta.experimenter) or None),
                ("institution", meta.institution),
                ("lab", meta.lab),
                ("keywords", list(meta.keywords) or None),
            )
            if v is not None
        }
        nwb = pynwb.NWBFile(
            session_description=meta.session_description
            or f"recorderd session {name} (simulation)",
            identifier=f"recorderd/{name}/{start.isoformat()}",
            session_start_time=start,
            notes="Exported by analysis.export.export_nwb; times are simulation time.",
            **extra,
        )
        if meta.has_subject:
            nwb.subject = Subject(
                subject_id=meta.subject_id,
                species=meta.species,
                sex=meta.sex,
                age=meta.age,
                description=meta.subject_description,
            )
        nwb.units = _units(r)
        intervals = _control_intervals(r)
        if intervals is not None:
            nwb.add_time_intervals(intervals)
        columns = DynamicTable(
            name="membrane_neurons", description="neuron of each membrane series column"
        )
        for col, text in (("series", "series name"), ("column", "column"), ("neuron", "index")):
            columns.add_column(col, f"{text} (neuron: index within the layer)")
        kinds = [(L.MEMBRANE, L.UNITS_MEMBRANE, 1e-3, "volts")]
        if include_weights:
            kinds.append((L.WEIGHTS, L.UNITS_WEIGHTS, 1.0, L.UNITS_WEIGHTS))
        for kind, units, conversion, nwb_unit in kinds:
            for node in r.nodes():
                for lay in r.layers(node, kind):
                    pop = L.population(node, lay)
                    times = r.frames(node, lay, kind).times_ms  # complete rows only
                    shape = (times.size, *r.stream_attrs(node, lay, kind)[L.ATTR_LAYER_SIZE])
                    if kind == L.MEMBRANE:
                        shape = (times.size, r.recorded_count(node, lay, kind))
                    if times.size == 0 or 0 in shape:
                        continue  # no neuron selected, or nothing recorded
                    series = f"{kind}_{pop}"

                    def read(
                        sel: tuple[slice, ...], kind: str = kind, node: str = node, lay: str = lay
                    ) -> Any:
                        lo, hi, _ = sel[0].indices(r.row_count(kind, node, lay, L.DATA))
                        rows = r.read_rows(kind, node, lay, L.DATA, lo, hi)
                        return rows[(slice(None), *sel[1:])]

                    nwb.add_acquisition(
                        pynwb.TimeSeries(
                            name=series,
                            data=_slices(read, shape),
                            unit=nwb_unit,
                            conversion=conversion,
                            description=f"{kind} of {pop} in {units}",
                            **_timing(times),
                        )
                    )
                    if kind == L.MEMBRANE:
                        for j, nrn in enumerate(r.recorded_neurons(node, lay, kind)):
                            columns.add_row(series=series, column=j, neuron=int(nrn))
        if len(columns):
            nwb.create_processing_module("recording", "recorderd bookkeeping").add(columns)
        with pynwb.NWBHDF5IO(partial, "w") as io:
            io.write(nwb)


def _timing(times_ms: FloatArray) -> dict[str, Any]:
    """``starting_time`` and ``rate`` (s, Hz) for evenly spaced times, else ``timestamps``."""
    if times_ms.size >= 2:
        d = np.diff(times_ms)
        if d[0] > 0 and np.allclose(d, d[0], rtol=1e-9, atol=0.0):
            return {"starting_time": float(times_ms[0]) / 1000.0, "rate": 1000.0 / float(d[0])}
    return {"timestamps": times_ms / 1000.0}


def _units(r: SessionReader) -> Any:
    """The NWB Units table: one unit per recorded neuron of every spike population."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb.misc import Units  # type: ignore[import-untyped]

    times: list[FloatArray] = []
    ends: list[npt.NDArray[np.int64]] = []
    nodes: list[str] = []
    layers: list[str] = []
    index: list[npt.NDArray[np.uint32]] = []
    spans: list[tuple[float, float]] = []
    total = 0
    for node in r.nodes():
        for lay in r.layers(node):
            tr = r.spikes(node, lay)
            neurons = r.recorded_neurons(node, lay)
            # NWB wants each unit's times ascending, also after a restart.
            order = np.lexsort((tr.times_ms, tr.neuron_ids))
            ids = tr.neuron_ids[order]
            times.append(tr.times_ms[order] / 1000.0)
            ends.append(total + np.searchsorted(ids, neurons, "right").astype(np.int64))
            total += ids.size
            nodes += [node] * neurons.size
            layers += [lay] * neurons.size
            index.append(neurons)
            t0, t1 = span_of(r.runs(node, lay))
            spans += [(t0 / 1000.0, t1 / 1000.0)] * neurons.size
    n = len(nodes)
    st = VectorData(
        name="spike_times",
        description="the spike times for each unit in seconds",
        data=np.concatenate(times) if times else np.zeros(0),
    )
    obs = VectorData(
        name="obs_intervals",
        description="recording span of the unit's stream [first, last message + dt) in s",
        data=np.asarray(spans, dtype=np.float64).reshape(n, 2),
    )
    cols = [
        st,
        VectorIndex(name="spike_times_index", data=_cat(ends, np.int64), target=st),
        obs,
        VectorIndex(name="obs_intervals_index", data=np.arange(1, n + 1), target=obs),
        VectorData(name="node_id", description="publishing node", data=nodes),
        VectorData(name="layer", description="layer name", data=layers),
        VectorData(
            name="neuron_index", description="index within the layer", data=_cat(index, np.uint32)
        ),
    ]
    dts = [r.dt_ms(node, lay) for node in r.nodes() for lay in r.layers(node)]
    return Units(
        name="units",
        description="recorded neurons (recorderd)",
        columns=cols,
        id=list(range(n)),
        # Spike times lie on the simulation's step grid: the finest step is the resolution.
        resolution=min(dts) / 1000.0 if dts else None,
    )


def _cat(parts: list[npt.NDArray[Any]], dtype: type[np.generic]) -> npt.NDArray[Any]:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _control_intervals(r: SessionReader) -> Any:
    """One interval per control state, until the node's next state (same incarnation).

    The last state of an incarnation lasts to the end of that incarnation's recorded
    data (its latest message time + dt), or is empty if no data stream has any.
    """
    from pynwb.epoch import TimeIntervals  # type: ignore[import-untyped]

    records = r.control_states()
    if not records:
        return None
    ends: dict[tuple[str, int], float] = {}
    for node in r.nodes():
        for kind in (L.SPIKES, L.MEMBRANE, L.WEIGHTS):
            for lay in r.layers(node, kind):
                for run in r.runs(node, lay, kind):
                    key = (node, run.incarnation)
                    ends[key] = max(ends.get(key, -np.inf), run.t_stop_ms)
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec["node_id"], int(rec["incarnation"])), []).append(rec)
    rows = []
    for key, recs in groups.items():
        recs.sort(key=lambda x: int(x["seq"]))
        for rec, nxt in zip(recs, [*recs[1:], None], strict=True):
            t0 = float(rec["time_ms"])
            t1 = float(nxt["time_ms"]) if nxt is not None else ends.get(key, t0)
            rows.append((t0, max(t0, t1), rec))
    table = TimeIntervals(name="control_states", description="node control states")
    for col, text in (
        ("node_id", "node"),
        ("module_type", "module type"),
        ("status", "status"),
        ("active_task", "active task ('' if none)"),
        ("step", "step of the state"),
        ("incarnation", "node incarnation"),
    ):
        table.add_column(col, text)
    for t0, t1, rec in sorted(rows, key=lambda x: x[0]):
        table.add_interval(
            start_time=t0 / 1000.0,
            stop_time=t1 / 1000.0,
            node_id=rec["node_id"],
            module_type=rec.get("module_type") or "",
            status=rec["status"],
            active_task=rec.get("active_task") or "",
            step=int(rec["step"]),
            incarnation=np.uint64(rec["incarnation"]),
        )
    return table


def _slices(read: Callable[[tuple[slice, ...]], Any], shape: tuple[int, ...]) -> Any:
    """An hdmf chunk iterator over the float32 rows ``read(selection)`` returns (bounded memory)."""
    from hdmf.data_utils import GenericDataChunkIterator  # type: ignore[import-untyped]

    class Slices(GenericDataChunkIterator):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(buffer_gb=0.1)

        def _get_data(self, selection: tuple[slice, ...]) -> npt.NDArray[Any]:
            return np.asarray(read(selection))

        def _get_maxshape(self) -> tuple[int, ...]:
            return shape

        def _get_dtype(self) -> np.dtype[Any]:
            return np.dtype(L.VALUE_DTYPE)

    return Slices()
