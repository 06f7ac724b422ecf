"""The recording core on real HDF5 files: what goes in is what the reader gets back."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import h5py
import numpy as np
import pytest

from analysis.reader import SessionReader
from recorderd import wire as P
from recorderd.core.recorder import Recorder
from recorderd.daemon import pipeline as pipeline_module
from recorderd.daemon.pipeline import BATCH_MESSAGES, GATHER_S, Pipeline
from recorderd.daemon.settings import RecorderSettings
from recorderd.session import layout as L
from recorderd.session.errors import SessionBusyError
from tests.helpers import feed, spike_message

MakeSettings = Callable[..., RecorderSettings]
KEY = "brain/pfc-0/spikes/output"


@pytest.mark.parametrize("compression", ["gzip", "lzf", "none"])
@pytest.mark.parametrize("buffer_size", [1, 7, 1000])
def test_spikes_round_trip(make_settings: MakeSettings, compression: str, buffer_size: int) -> None:
    rng = np.random.default_rng(1)
    sent = [np.flatnonzero(rng.random(100) < 0.1) for _ in range(50)]
    settings = make_settings(compression=compression, buffer_size=buffer_size)
    rec = feed(settings, [(KEY, spike_message(i, ids)) for i, ids in enumerate(sent)])
    with SessionReader(settings.session_dir) as r:
        assert r.nodes() == ["pfc-0"]
        assert r.layers("pfc-0") == ["output"]
        tr = r.spikes("pfc-0", "output")
        assert np.array_equal(tr.neuron_ids, np.concatenate(sent))
        assert np.array_equal(tr.steps, np.repeat(np.arange(50), [len(s) for s in sent]))
        assert np.array_equal(tr.times_ms, tr.steps.astype(float))
        fr = r.frames("pfc-0", "output")
        assert fr.seq.tolist() == list(range(50))
        assert fr.count.tolist() == [len(s) for s in sent]
        stats = r.statistics()
    total = sum(len(s) for s in sent)
    assert (
        stats["totals"]["total_spikes_recorded"]
        == total
        == rec.statistics.totals()["spikes_written"]
    )
    assert stats["streams"]["pfc-0/spikes/output"]["written"] == 50


def test_sonata_attributes(make_settings: MakeSettings) -> None:
    settings = make_settings()
    feed(settings, [(KEY, spike_message(i, [i % 100])) for i in range(10)])
    with h5py.File(settings.session_dir / L.DATA_FILE, "r") as f:
        pop = f["spikes/pfc-0.output"]
        assert pop["timestamps"].attrs["units"] == "ms"
        assert pop["timestamps"].dtype == np.float64 and pop["node_ids"].dtype == np.uint32
        sorting = pop.attrs["sorting"]
        assert h5py.check_enum_dtype(pop.attrs.get_id("sorting").dtype) == L.SORTING_ENUM
        assert sorting == L.SORTING_ENUM["by_time"]
        assert (pop.attrs["node_id"], pop.attrs["layer"]) == ("pfc-0", "output")
        assert f.attrs["format_version"] == L.FORMAT_VERSION


def test_sequence_accounting(make_settings: MakeSettings) -> None:
    seqs = [0, 1, 2, 5, 6, 6, 4, 7]  # gap of 2 (3, 4), a duplicate 6, a late 4
    msgs = [(KEY, spike_message(s, [s])) for s in seqs]
    msgs += [(KEY, spike_message(s, [s], incarnation=2)) for s in (1, 2)]  # restart, seq 0 lost
    rec = feed(make_settings(), msgs)
    st = rec.statistics.streams["pfc-0/spikes/output"]
    assert (st.received, st.written, st.missing, st.duplicates, st.restarts) == (8, 8, 3, 2, 1)
    assert st.spikes_written == 8


def test_rejections_are_counted_and_valid_messages_still_recorded(
    make_settings: MakeSettings,
) -> None:
    msgs = [
        (KEY, spike_message(0, [1, 2])),
        (KEY, b"junk"),
        ("brain/../spikes/output", spike_message(0, [1])),
        (KEY, spike_message(1, [200])),  # index >= layer size
        ("brain/pfc-0/spikes/output", spike_message(2, [3], layer_size=50)),  # shape changed
        ("brain/pfc-0/control", b"{not json"),
        (KEY, spike_message(3, [3])),
    ]
    settings = make_settings()
    rec = feed(settings, msgs)
    assert dict(rec.statistics.rejected) == {
        "short_payload": 1,
        "bad_key": 1,
        "bad_index": 1,
        "shape_changed": 1,
        "bad_control": 1,
    }
    # Each message is counted once: the rejected ones (junk, seq 1, seq 2) are not missing.
    st = rec.statistics.streams["pfc-0/spikes/output"]
    assert (st.received, st.rejected, st.missing) == (2, 3, 0)
    with SessionReader(settings.session_dir) as r:
        assert r.spikes("pfc-0", "output").neuron_ids.tolist() == [1, 2, 3]
    assert not any(p.name.startswith("..") for p in settings.recording_dir.rglob("*"))


def test_subsampling_keeps_whole_trains_and_is_stored(make_settings: MakeSettings) -> None:
    rng = np.random.default_rng(3)
    sent = [np.flatnonzero(rng.random(100) < 0.3) for _ in range(40)]
    settings = make_settings(spike_subsample_rate=0.25, subsample_seed=9)
    rec = feed(settings, [(KEY, spike_message(i, s)) for i, s in enumerate(sent)])
    with SessionReader(settings.session_dir) as r:
        chosen = r.recorded_neurons("pfc-0", "output")
        tr = r.spikes("pfc-0", "output")
        attrs = r.stream_attrs("pfc-0", "output")
        meta = r.metadata()
    assert chosen.size == 25 and attrs["subsample_rate"] == 0.25
    expected = np.concatenate([s[np.isin(s, chosen)] for s in sent])
    assert np.array_equal(tr.neuron_ids, expected)  # every spike of the chosen neurons
    assert meta["subsample_seed"] == 9 and "blake2b" in meta["subsampling"]
    st = rec.statistics.streams["pfc-0/spikes/output"]
    assert st.spikes_received == sum(map(len, sent)) and st.spikes_written == expected.size
    # deterministic: the same seed picks the same neurons in another session
    again = make_settings(session="again", spike_subsample_rate=0.25, subsample_seed=9)
    feed(again, [(KEY, spike_message(0, [0]))])
    with SessionReader(again.session_dir) as r:
        assert np.array_equal(r.recorded_neurons("pfc-0", "output"), chosen)


def test_membrane_weights_and_control(make_settings: MakeSettings) -> None:
    v = np.linspace(-70, -50, 20, dtype=np.float32)
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    msgs = [
        (
            "brain/n/membrane/l",
            P.encode(
                P.Kind.MEMBRANE,
                incarnation=1,
                seq=i,
                step=i,
                time_ms=i * 0.5,
                dt_ms=0.5,
                layer_size=20,
                data=v + i,
            ),
        )
        for i in range(5)
    ]
    msgs.append(
        (
            "brain/n/weights/w_a_b",
            P.encode(
                P.Kind.WEIGHTS,
                incarnation=1,
                seq=0,
                step=0,
                time_ms=0,
                dt_ms=0.5,
                layer_size=4,
                data=w,
            ),
        )
    )
    state = P.ControlState(
        node_id="n",
        module_type="pfc",
        status="Idle",
        step_count=0,
        step=0,
        time_ms=0.0,
        incarnation=1,
        seq=0,
        metadata={"pfc_entropy": 0.5},
    )
    msgs.append(("brain/n/control", P.encode_control(state)))
    settings = make_settings(membrane_subsample_rate=0.5)
    feed(settings, msgs)
    with SessionReader(settings.session_dir) as r:
        steps, data = r.membrane("n", "l")
        chosen = r.recorded_neurons("n", "l", L.MEMBRANE)
        assert steps.tolist() == [0, 1, 2, 3, 4] and data.shape == (5, 10)
        assert np.array_equal(data[2], (v + 2)[chosen])
        wsteps, wdata = r.weights("n", "w_a_b")
        assert wsteps.tolist() == [0] and np.array_equal(wdata[0], w)
        assert r.node_info("n")["module_type"] == "pfc"
        (record,) = r.control_states()
    assert record["metadata"] == {"pfc_entropy": 0.5} and record["status"] == "Idle"


def test_gap_between_recorder_runs_is_counted(make_settings: MakeSettings) -> None:
    settings = make_settings()
    feed(settings, [(KEY, spike_message(i, [i])) for i in range(5)])
    rec = feed(settings, [(KEY, spike_message(i, [i])) for i in range(8, 10)])  # 5, 6, 7 lost
    st = rec.statistics.streams["pfc-0/spikes/output"]
    assert (st.received, st.missing, st.duplicates) == (2, 3, 0)
    rec = feed(settings, [(KEY, spike_message(i, [i])) for i in range(9, 11)])  # 9 again
    st = rec.statistics.streams["pfc-0/spikes/output"]
    assert (st.received, st.missing, st.duplicates) == (1, 0, 1)


def test_restarted_recorder_appends_to_the_same_session(make_settings: MakeSettings) -> None:
    settings = make_settings()
    feed(settings, [(KEY, spike_message(i, [i])) for i in range(5)])
    feed(settings, [(KEY, spike_message(i, [i], incarnation=2)) for i in range(3)])
    with SessionReader(settings.session_dir) as r:
        assert r.spikes("pfc-0", "output").neuron_ids.tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
        assert r.metadata()["recorder_runs"] == 2
        stats = r.statistics()
        assert stats["totals"]["written"] == 3
        assert [run["totals"]["written"] for run in stats["previous_runs"]] == [5]
        with h5py.File(settings.session_dir / L.DATA_FILE, "r", locking=False) as f:
            assert f["spikes/pfc-0.output"].attrs["sorting"] == L.SORTING_ENUM["none"]


def test_one_writer_per_session(make_settings: MakeSettings) -> None:
    settings = make_settings()
    first = Recorder(settings.core())
    first.start()
    try:
        with pytest.raises(SessionBusyError):
            Recorder(settings.core()).start()
    finally:
        first.finish()
    second = Recorder(settings.core())
    second.start()  # free again once the first one finished
    second.finish()


def test_statistics_file_is_written_at_each_flush(make_settings: MakeSettings) -> None:
    settings = make_settings()
    recorder = Recorder(settings.core())
    recorder.start()
    pipe = Pipeline(recorder, prefix="brain", capacity=100, flush_interval=1.0)
    pipe.handle(KEY, spike_message(0, [1, 2, 3]), time.time())
    recorder.flush()
    stats = json.loads((settings.session_dir / L.STATISTICS_FILE).read_text())
    assert stats["totals"]["spikes_written"] == 3
    with SessionReader(settings.session_dir) as r:  # readable while the writer is open
        assert r.spikes("pfc-0", "output").neuron_ids.tolist() == [1, 2, 3]
    recorder.finish()
    recorder.finish()  # idempotent


def test_intake_overflow_is_counted_not_blocking(make_settings: MakeSettings) -> None:
    settings = make_settings()
    recorder = Recorder(settings.core())
    recorder.start()
    pipe = Pipeline(recorder, prefix="brain", capacity=100, flush_interval=0.05)
    for i in range(150):
        pipe.submit(KEY, spike_message(i, [1]))
    pipe.stop()
    pipe.run()
    st = recorder.statistics
    stream = st.streams["pfc-0/spikes/output"]
    assert st.intake_dropped == 50 and (stream.written, stream.dropped) == (100, 50)


@contextmanager
def writing(settings: RecorderSettings, capacity: int) -> Iterator[tuple[Recorder, Pipeline]]:
    """A recorder and its pipeline, the writer thread running until the block ends."""
    recorder = Recorder(settings.core())
    recorder.start()
    pipe = Pipeline(recorder, prefix="brain", capacity=capacity, flush_interval=1.0)
    writer = threading.Thread(target=pipe.run)
    writer.start()
    try:
        yield recorder, pipe
    finally:
        pipe.stop()
        writer.join(60)


def test_a_steady_trickle_is_taken_in_gathered_batches(make_settings: MakeSettings) -> None:
    # At a steady rate the writer gathers samples for up to GATHER_S instead of taking
    # what arrived during one idle sleep (a batch per message or two here): a batch's
    # fixed costs per stream are then paid once per many messages. Nothing is lost.
    settings = make_settings()
    n = 300
    with writing(settings, 100_000) as (recorder, pipe):
        t0 = time.monotonic()
        for i in range(n):  # one message every ~2 ms, the writer's idle sleep
            pipe.submit(KEY, spike_message(i, [1, 2]))
            time.sleep(0.002)
        elapsed = time.monotonic() - t0
    assert pipe.error is None
    stream = recorder.statistics.streams["pfc-0/spikes/output"]
    assert (stream.received, stream.written, stream.missing) == (n, n, 0)
    # At most one batch per GATHER_S, plus the first, one at the flush and the last.
    assert 1 <= pipe.batches <= elapsed / GATHER_S + 3
    with SessionReader(settings.session_dir) as r:
        assert r.spikes("pfc-0", "output").neuron_ids.size == 2 * n


def test_gathering_never_makes_a_small_intake_drop(make_settings: MakeSettings) -> None:
    # An intake of 100 messages, fed 20 every ~5 ms: the writer takes it when a quarter
    # full, instead of letting it fill while it gathers for up to GATHER_S.
    n = 0
    with writing(make_settings(), 100) as (recorder, pipe):
        for _ in range(60):
            for _ in range(20):
                pipe.submit(KEY, spike_message(n, [1]))
                n += 1
            time.sleep(0.005)
    stream = recorder.statistics.streams["pfc-0/spikes/output"]
    assert (pipe.intake.dropped, stream.written) == (0, n)


def test_control_sequence_continues_across_recorder_runs(make_settings: MakeSettings) -> None:
    def control(seq: int) -> tuple[str, bytes]:
        state = P.ControlState(
            node_id="pfc-0",
            module_type="pfc",
            status="Idle",
            step_count=seq,
            step=seq,
            time_ms=float(seq),
            incarnation=7,
            seq=seq,
        )
        return ("brain/pfc-0/control", P.encode_control(state))

    settings = make_settings()
    feed(settings, [control(i) for i in range(3)])
    rec = feed(settings, [control(2), control(5)])  # 2 again, then 3 and 4 lost
    st = rec.statistics.streams["pfc-0/control"]
    assert (st.received, st.duplicates, st.missing) == (1, 1, 2)


def test_queued_messages_dropped_at_low_disk_are_counted(make_settings: MakeSettings) -> None:
    settings = make_settings()
    recorder = Recorder(settings.core())
    recorder.start()
    # a guard no disk can satisfy: the first flush stops the pipeline
    pipe = Pipeline(
        recorder, prefix="brain", capacity=30_000, flush_interval=0.0, min_free_disk_mb=1e12
    )
    for i in range(20_000):  # the writer takes one batch per round: the rest is still queued
        pipe.submit(KEY, spike_message(i, [1]))
    pipe.run()
    st = recorder.statistics
    assert pipe.stop_reason == "disk_low"
    taken = BATCH_MESSAGES
    assert (st.streams["pfc-0/spikes/output"].received, st.intake_dropped) == (
        taken,
        20_000 - taken,
    )


def test_a_defect_of_the_batch_decoder_loses_no_message(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """If the vectorised decoder raises (a defect, such as an overflow once was), its
    batch is decoded message by message by ``decode``, the reference decoder: every valid
    message is recorded, every invalid one counted by its reason, the failure logged, and
    the writer thread goes on."""

    def broken(payloads: list[bytes], kind: P.Kind) -> None:
        raise RuntimeError("a defect of the batch decoder")

    monkeypatch.setattr(pipeline_module, "decode_batch", broken)
    settings = make_settings()
    recorder = Recorder(settings.core())
    recorder.start()
    pipe = Pipeline(recorder, prefix="brain", capacity=10_000, flush_interval=1.0)
    sent = [[i % 50, 99] for i in range(20)]
    for i, ids in enumerate(sent):
        pipe.submit(KEY, spike_message(i, ids))
    pipe.submit(KEY, spike_message(20, [5, 3]))  # unsorted: rejected as bad_index
    pipe.stop()
    pipe.run()
    assert pipe.error is None and pipe.decoder_fallbacks >= 1
    assert dict(recorder.statistics.rejected) == {"bad_index": 1}
    with SessionReader(settings.session_dir) as r:
        assert r.spikes("pfc-0", "output").neuron_ids.tolist() == [i for s in sent for i in s]
    assert "decoding a batch on brain/pfc-0/spikes/output failed" in caplog.text


def test_a_seq_that_wraps_is_refused_in_a_batch_as_one_by_one(make_settings: MakeSettings) -> None:
    """seq never wraps (docs/wire-protocol.md): 2^64 - 2, 2^64 - 1, 0, 1 on one stream.
    Message by message the last two are implausible; the batch path took all four (numpy's
    uint64 difference wraps: 0 - (2^64 - 1) == 1) and then expected a seq past 2^64."""
    seqs = [2**64 - 2, 2**64 - 1, 0, 1]
    msgs = [spike_message(s, [1], step=i) for i, s in enumerate(seqs)]
    one_by_one = feed(make_settings(session="one"), [(KEY, m) for m in msgs]).statistics
    settings = make_settings(session="batch")
    recorder = Recorder(settings.core())
    recorder.start()
    pipe = Pipeline(recorder, prefix="brain", capacity=1_000, flush_interval=1.0)
    pipe.submit(KEY, msgs[0])  # the stream's first message: its key is parsed
    pipe._drain()
    for m in msgs[1:]:
        pipe.submit(KEY, m)
    pipe.stop()
    pipe.run()
    batched = recorder.statistics
    for st in (one_by_one, batched):
        assert st.totals()["received"] == 2
        assert dict(st.rejected) == {"implausible_seq": 2}


def test_a_delete_after_data_of_its_key_in_one_batch_counts_as_one_by_one(
    make_settings: MakeSettings,
) -> None:
    """DELETE, data, DELETE on one key: the writer holds a batch's data per key, so the
    second DELETE was handled before the data and missed the stream's own count."""
    samples: list[bytes | None] = [None, spike_message(0, [1]), None]
    counts = []
    for mode in ("one", "batch"):
        settings = make_settings(session=mode)
        recorder = Recorder(settings.core())
        recorder.start()
        pipe = Pipeline(recorder, prefix="brain", capacity=1_000, flush_interval=1.0)
        for payload in samples:
            pipe.submit(KEY, payload)
            if mode == "one":
                pipe._drain()
        pipe.stop()
        pipe.run()
        st = recorder.statistics
        counts.append((st.streams["pfc-0/spikes/output"].rejected, dict(st.rejected)))
    assert counts == [(1, {"delete_sample": 2})] * 2
