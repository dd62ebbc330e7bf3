"""Snapshots into messages: batches, state changes, cycle records, sequence numbers (pure)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from contracts import (
    CycleRecord,
    Job,
    JobRecord,
    JobStatus,
    MachineState,
    PartQuality,
    StateChange,
    TelemetryBatch,
    decode,
    encode,
)
from contracts.codec import AnyMessage
from edge import Snapshot
from edge.batcher import Batcher
from edge.modbus import CycleSeen

T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)


def _batcher(
    interval_s: float = 1.0, poll_interval_s: float = 0.25
) -> tuple[Batcher, list[AnyMessage]]:
    sent: list[AnyMessage] = []
    seq = itertools.count(100)
    batcher = Batcher(
        "imm-01",
        "pi-1",
        lambda: next(seq),
        sent.append,
        interval_s=interval_s,
        poll_interval_s=poll_interval_s,
    )
    return batcher, sent


def _at(
    seconds: float, state: MachineState | None = MachineState.RUNNING, **values: float
) -> Snapshot:
    return Snapshot(T0 + timedelta(seconds=seconds), values or {"TempOil": 42.0}, state)


def test_one_batch_per_interval_with_offsets() -> None:
    batcher, sent = _batcher()
    for i in range(8):
        batcher.add(_at(i * 0.25, TempOil=40.0 + i))
    assert isinstance(sent[0], StateChange)
    assert sent[0].state is MachineState.RUNNING
    batches = [m for m in sent if isinstance(m, TelemetryBatch)]
    assert [b.ts for b in batches] == [T0, T0 + timedelta(seconds=1)]
    assert [(r.offset_ms, r.value) for r in batches[1].readings] == [
        (0, 44.0),
        (250, 45.0),
        (500, 46.0),
        (750, 47.0),
    ]
    assert [m.seq for m in sent] == [100, 101, 102]
    assert all(m.source == "pi-1" and m.machine_id == "imm-01" for m in sent)


def test_a_state_change_sends_the_readings_before_it_first() -> None:
    batcher, sent = _batcher()
    batcher.add(_at(0.0))
    batcher.add(_at(0.25))
    batcher.add(Snapshot(T0 + timedelta(seconds=0.5), state=MachineState.OFFLINE))
    batcher.add(_at(3.0))
    kinds = [(type(m).__name__, getattr(m, "state", None)) for m in sent]
    assert kinds == [
        ("StateChange", MachineState.RUNNING),
        ("TelemetryBatch", None),
        ("StateChange", MachineState.OFFLINE),
        ("StateChange", MachineState.RUNNING),
    ]
    batcher.flush()
    assert isinstance(sent[-1], TelemetryBatch)
    assert sent[-1].ts == T0 + timedelta(seconds=3)


def test_a_new_standstill_reason_is_a_state_change() -> None:
    batcher, sent = _batcher()
    for i, reason in enumerate(["mould_fault", "mould_fault", "robot_fault"]):
        batcher.add(Snapshot(T0 + timedelta(seconds=i), {}, MachineState.UNPLANNED_STOP, reason))
    assert [m.reason for m in sent if isinstance(m, StateChange)] == ["mould_fault", "robot_fault"]


def test_nan_readings_are_left_out_and_a_late_poll_starts_a_new_batch() -> None:
    batcher, sent = _batcher(interval_s=1.0, poll_interval_s=0.1)
    batcher.add(_at(0.0, None, TempOil=float("nan"), TempMould=45.0))
    batcher.add(_at(5.0, None, TempMould=46.0))  # the clock jumped or the poll stalled
    batcher.add(_at(-60.0, None, TempMould=47.0))  # the clock was set back
    batcher.flush()
    assert [
        [(r.signal, r.value) for r in m.readings] for m in sent if isinstance(m, TelemetryBatch)
    ] == [
        [("TempMould", 45.0)],
        [("TempMould", 46.0)],
        [("TempMould", 47.0)],
    ]


def test_a_cycle_is_a_record_of_its_own_and_the_batch_goes_on() -> None:
    batcher, sent = _batcher()
    batcher.add(_at(0.0, TempOil=40.0))
    cycle = CycleSeen(1201, PartQuality.BAD, 4, {"CycleTime": 15.9, "PartWeight": 12.1}, 2)
    at = T0 + timedelta(seconds=0.25)
    batcher.add(Snapshot(at, {"CounterShots": 1201.0}, MachineState.RUNNING, cycle=cycle))
    batcher.add(_at(0.5, TempOil=41.0))
    batcher.flush()
    assert [type(m) for m in sent] == [StateChange, CycleRecord, TelemetryBatch]
    record = sent[1]
    assert isinstance(record, CycleRecord)
    assert record.model_dump(exclude={"schema_version", "kind"}) == {
        "machine_id": "imm-01",
        "ts": at,
        "source": "pi-1",
        "seq": 101,
        "shot": 1201,
        "quality": PartQuality.BAD,
        "parts": 4,
        "parameters": {"CycleTime": 15.9, "PartWeight": 12.1},
        "job": None,  # no job read yet
        "defect": None,  # none read
    }
    batch = sent[2]
    assert isinstance(batch, TelemetryBatch)
    assert batch.seq == 102
    assert [(r.signal, r.offset_ms) for r in batch.readings] == [
        ("TempOil", 0),
        ("CounterShots", 250),
        ("TempOil", 500),
    ]


def test_a_bad_cycle_is_sent_with_its_defect_cause_in_schema_version_3() -> None:
    batcher, sent = _batcher()
    cycle = CycleSeen(1201, PartQuality.BAD, 4, {"CycleTime": 15.9}, defect="short_shot")
    batcher.add(Snapshot(T0, {}, MachineState.RUNNING, cycle=cycle))
    (record,) = [m for m in sent if isinstance(m, CycleRecord)]
    assert (record.quality, record.defect, record.schema_version) == (
        PartQuality.BAD, "short_shot", 3,
    )  # fmt: skip
    assert decode(encode(record)) == record


def test_a_cycle_comes_after_the_state_it_was_made_in() -> None:
    batcher, sent = _batcher()
    cycle = CycleSeen(7, PartQuality.GOOD, 1, {"CycleTime": 15.0})
    batcher.add(Snapshot(T0, {}, MachineState.RUNNING, cycle=cycle))
    batcher.add(Snapshot(T0 + timedelta(seconds=1), {}, MachineState.RUNNING))
    assert [(type(m), m.seq) for m in sent] == [(StateChange, 100), (CycleRecord, 101)]


JOB = Job(
    job_name="PO-4711/10",
    mould_id="bracket-pp-4#1",
    job_status=JobStatus.SET_UP_ACTIVE,
    active_cavities=4,
    nominal_parts=40_000,
    material="PP",
)


def _job_read(seconds: float, job: Job | None) -> Snapshot:
    return Snapshot(
        T0 + timedelta(seconds=seconds), {}, MachineState.RUNNING, job_read=True, job=job
    )


def test_a_job_is_sent_once_at_start_and_again_when_anything_in_it_changes() -> None:
    batcher, sent = _batcher()
    producing = JOB.model_copy(update={"job_status": JobStatus.JOB_IN_PRODUCTION})
    next_job = producing.model_copy(update={"job_name": "PO-4712/10", "mould_id": "cap-pp-8#1"})
    for i, job in enumerate([JOB, JOB, producing, producing, next_job, None, next_job]):
        batcher.add(_job_read(i, job))
        batcher.add(_at(i + 0.5))  # a read of other groups: the job is not forgotten
    jobs = [m for m in sent if isinstance(m, JobRecord)]
    assert [m.job for m in jobs] == [JOB, producing, next_job, next_job]
    assert [m.ts for m in jobs] == [T0 + timedelta(seconds=s) for s in (0, 2, 4, 6)]
    assert all(m.source == "pi-1" and m.machine_id == "imm-01" for m in jobs)
    seqs = [m.seq for m in sent]
    assert seqs == list(range(100, 100 + len(sent)))  # one numbering with the rest


def test_a_cycle_names_the_job_last_read() -> None:
    batcher, sent = _batcher()
    cycle = CycleSeen(1201, PartQuality.GOOD, 4, {"CycleTime": 15.9})
    batcher.add(_job_read(0.0, JOB))
    batcher.add(Snapshot(T0 + timedelta(seconds=1), {}, MachineState.RUNNING, cycle=cycle))
    batcher.add(_job_read(2.0, None))
    batcher.add(Snapshot(T0 + timedelta(seconds=3), {}, MachineState.RUNNING, cycle=cycle))
    assert [m.job for m in sent if isinstance(m, CycleRecord)] == ["PO-4711/10", None]
