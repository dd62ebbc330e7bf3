"""Polling a machine over Modbus TCP: snapshots per register group, cycles, DeviceError."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from datetime import UTC, datetime, timedelta

import pytest

from contracts import CYCLE_PARAMETERS, SIGNALS, Job, JobStatus, MachineState, PartQuality
from contracts.registers import RegisterMap
from edge import DeviceError, ModbusConfig, ModbusPoller, Snapshot, load_register_map
from edge.modbus import CycleSeen
from simulators.modbus import ModbusMachineServer
from simulators.model import CycleDone, MachineModel
from simulators.specs import MachineSpec

pytestmark = pytest.mark.infra

START = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
# One cycle's parameters: distinct values that float32 registers hold exactly.
PARAMETERS = {name: 1.0 + 0.5 * i for i, name in enumerate(CYCLE_PARAMETERS)}
LAST = dict.fromkeys(CYCLE_PARAMETERS, 1.5)  # the parameters of the `machine` fixture's cycle


def _poller(
    port: int,
    register_map: RegisterMap | None = None,
    unit_id: int = 1,
    *,
    last_shot: int | None = None,
    **config: object,
) -> ModbusPoller:
    modbus = ModbusConfig.model_validate(
        {"host": "127.0.0.1", "port": port, "unit_id": unit_id, "timeout_s": 1, **config}
    )
    return ModbusPoller("imm-01", modbus, register_map or load_register_map(), last_shot=last_shot)


def _show(
    machine: ModbusMachineServer,
    sample: dict[str, float],
    shots: int,
    good: int,
    bad: int,
    quality: PartQuality | None = PartQuality.GOOD,
    defect: str | None = None,
) -> None:
    """Let the machine show these counters, and a cycle of `quality` with PARAMETERS."""
    counters = {"CounterShots": shots, "CounterGood": good, "CounterBad": bad}
    last = None
    if quality is not None:
        last = CycleDone(START, shots, quality, 4, PARAMETERS, "bracket-pp-4", defect)
    machine.update({**sample, **counters}, MachineState.RUNNING, last_cycle=last)


async def test_read_gives_a_typed_snapshot(
    machine: ModbusMachineServer, sample: dict[str, float], last_cycle: CycleDone
) -> None:
    machine.update(sample, MachineState.UNPLANNED_STOP, "material_shortage", last_cycle)
    poller = _poller(machine.port)
    snapshot = await poller.read()
    await poller.read()  # the connection is kept
    poller.close()
    assert snapshot.values == sample
    assert (snapshot.state, snapshot.reason) == (MachineState.UNPLANNED_STOP, "material_shortage")
    assert snapshot.ts.tzinfo is not None


async def test_only_signals_are_telemetry(machine: ModbusMachineServer) -> None:
    poller = _poller(machine.port)
    snapshot = await poller.read()
    poller.close()
    mapped = {r.name for r in poller.register_map.registers}
    assert mapped >= {*CYCLE_PARAMETERS, "State", "StandstillReason", "CycleQuality"}
    assert set(snapshot.values) == {s.name for s in SIGNALS}


async def test_the_job_group_gives_the_machines_job_and_never_telemetry(
    machine: ModbusMachineServer, sample: dict[str, float], last_cycle: CycleDone
) -> None:
    job = Job(
        job_name="PO-4711/10",
        mould_id="bracket-pp-4#1",
        job_status=JobStatus.START_UP_ACTIVE,
        active_cavities=4,
        nominal_parts=70_000,  # past 16 bits
    )
    poller = _poller(machine.port)
    none_yet = await poller.read("job")
    machine.update(sample, MachineState.RUNNING, last_cycle=last_cycle, job=job)
    read = await poller.read("job")
    status = await poller.read("status")
    every = await poller.read()
    poller.close()
    assert (none_yet.job_read, none_yet.job) == (True, None)  # an empty JobName: no job
    assert (read.job_read, read.job, read.values) == (True, job, {})
    assert (status.job_read, status.job) == (False, None)  # not read: not "no job"
    assert (every.job_read, every.job) == (True, job)
    assert set(every.values) == {s.name for s in SIGNALS}


async def test_job_registers_that_make_no_job_are_a_device_error(
    machine: ModbusMachineServer, sample: dict[str, float]
) -> None:
    # A job that makes no parts (unchecked: as a PLC, not a contracts Job, would have it).
    job = Job.model_construct(
        job_name="PO-1", mould_id="m", job_status=JobStatus.OTHER, active_cavities=0,
        nominal_parts=0, material=None,
    )  # fmt: skip
    machine.update(sample, MachineState.RUNNING, job=job)
    poller = _poller(machine.port)
    with pytest.raises(DeviceError, match="the job registers make no job: active_cavities"):
        await poller.read("job")
    machine._words[200] = 0x41FF  # a stray byte in JobName, which no encoder would write
    with pytest.raises(DeviceError, match="JobName is not printable ASCII"):
        await poller.read("job")
    poller.close()
    assert poller.errors == 2


async def test_an_error_response_is_a_device_error(machine: ModbusMachineServer) -> None:
    data = load_register_map().model_dump()
    moved = {"name": "TempOil", "address": 300, "type": "float32", "unit": "degC"}
    data["registers"] = [r for r in data["registers"] if r["name"] != "TempOil"] + [moved]
    poller = _poller(machine.port, RegisterMap.model_validate(data))
    with pytest.raises(DeviceError, match="exception code 2 reading 2 registers at 300"):
        await poller.read()
    poller.close()


async def test_no_machine_is_a_device_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    with pytest.raises(DeviceError, match=f"127.0.0.1:{port} unit 1: cannot connect"):
        await _poller(port).read()


async def test_a_group_is_read_alone(
    machine: ModbusMachineServer, sample: dict[str, float]
) -> None:
    poller = _poller(machine.port)
    status = await poller.read("status")
    process = await poller.read("process")
    poller.close()
    assert poller.groups == ["status", "process", "job"]
    assert (status.group, status.state, process.group, process.state) == (
        "status",
        MachineState.RUNNING,
        "process",
        None,
    )
    status_names = {"CounterShots", "CounterGood", "CounterBad", "CounterMould", "AlarmWord"}
    assert status.values == {k: v for k, v in sample.items() if k in status_names}
    assert process.values == {k: v for k, v in sample.items() if k not in status_names}
    assert (poller.polls, poller.errors) == (2, 0)
    with pytest.raises(ValueError, match="no register group 'fast'"):
        await poller.read("fast")


async def _run_for(poller: ModbusPoller, seconds: float) -> list[Snapshot]:
    snapshots: list[Snapshot] = []
    task = asyncio.create_task(poller.run(snapshots.append))
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return snapshots


async def test_a_cancellation_that_comes_with_an_answer_stops_it(
    machine: ModbusMachineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pymodbus awaits each answer with asyncio.wait_for, which on Python 3.11 returns the
    # answer and drops a cancellation that comes in the loop turn the answer does (CPython
    # gh-86296): the poller of a stopping agent polled on, and the agent waited for ever.
    poller = _poller(machine.port, poll_interval_s=0.1)
    task = asyncio.create_task(poller.run(lambda snapshot: None))
    protocol = poller._client.ctx
    answer = protocol.callback_data
    answers = 0

    def cancel_with_the_third_answer(data: bytes, addr: tuple[str, int] | None = None) -> int:
        nonlocal answers
        used = answer(data, addr)
        answers += 1
        if answers == 3:
            assert protocol.response_future.done()
            task.cancel()
        return used

    monkeypatch.setattr(protocol, "callback_data", cancel_with_the_third_answer)
    done, _ = await asyncio.wait([task], timeout=5)
    task.cancel()  # should it have polled on, lest it poll into the next tests
    assert done, "the poller polled on after it was cancelled"
    assert task.cancelled()
    assert answers == 3
    assert not poller._client.connected


async def test_each_group_is_polled_at_its_own_interval(machine: ModbusMachineServer) -> None:
    poller = _poller(machine.port, poll_interval_s=0.5, poll_intervals_s={"status": 0.1})
    assert poller.intervals_s == {"status": 0.1, "process": 0.5, "job": 0.5}
    snapshots = await _run_for(poller, 1.45)
    # A round every 0.1 s reads the status group; every 0.5 s it reads process too, and the
    # groups read in one round make one snapshot.
    assert 10 <= len(snapshots) <= 15  # at 0, 0.1 ... 1.4 s
    with_process = [s for s in snapshots if "TempOil" in s.values]
    assert len(with_process) == 3  # at 0, 0.5 and 1 s
    assert all(s.group is None and "CounterShots" in s.values for s in with_process)
    assert {s.group for s in snapshots if s not in with_process} == {"status"}
    assert (poller.polls, poller.errors) == (len(snapshots) + 6, 0)  # process and job: 3 each
    assert all(s.state is MachineState.RUNNING for s in snapshots)


async def test_a_failed_read_of_any_group_is_the_machine_offline(
    machine: ModbusMachineServer,
) -> None:
    data = load_register_map().model_dump()
    moved = {"name": "TempOil", "address": 300, "type": "float32", "unit": "degC"}
    data["registers"] = [r for r in data["registers"] if r["name"] != "TempOil"] + [
        {**moved, "group": "process"}
    ]
    poller = _poller(machine.port, RegisterMap.model_validate(data))
    with pytest.raises(DeviceError, match="exception code 2 reading 2 registers at 300"):
        await poller.read("process")
    assert (poller.polls, poller.errors) == (1, 1)

    snapshots = await _run_for(poller, 0.3)  # the first retry comes after 0.5 s at least
    # The first round read status, then failed on process: the round is lost, offline once.
    assert [(s.group, s.state) for s in snapshots] == [(None, MachineState.OFFLINE)]
    assert (poller.polls, poller.errors) == (3, 2)


async def test_a_cycle_is_seen_when_the_shot_counter_moves(
    machine: ModbusMachineServer, sample: dict[str, float]
) -> None:
    poller = _poller(machine.port)
    first = await poller.read("status")
    assert first.cycle is None  # without last_shot the first read only learns the counter
    _show(machine, sample, 1201, 4724, 80)
    seen = await poller.read("status")
    again = await poller.read("status")
    process = await poller.read("process")
    poller.close()
    assert seen.cycle == CycleSeen(1201, PartQuality.GOOD, 4, PARAMETERS, missed=0)
    assert "CycleTime" not in seen.values  # cycle parameters are not telemetry
    assert (again.cycle, process.cycle) == (None, None)
    assert poller.cycles_missed == 0


async def test_cycles_between_two_polls_are_counted_and_logged(
    machine: ModbusMachineServer, sample: dict[str, float], caplog: pytest.LogCaptureFixture
) -> None:
    poller = _poller(machine.port)
    await poller.read("status")
    _show(machine, sample, 1203, 4728, 84, PartQuality.BAD)  # 3 shots, 12 parts
    with caplog.at_level(logging.INFO, logger="edge.modbus"):
        seen = await poller.read("status")
    poller.close()
    assert seen.cycle == CycleSeen(1203, PartQuality.BAD, 4, PARAMETERS, missed=2)
    assert poller.cycles_missed == 2
    assert [r.getMessage() for r in caplog.records] == [
        "machine imm-01: 2 cycles between two polls not recorded"
    ]


@pytest.mark.parametrize(
    ("last_shot", "expected"),
    [
        (None, None),  # a first start: no cycle is known to be missing
        (1200, None),  # the last cycle was sent before the restart
        (1199, CycleSeen(1200, PartQuality.BAD, 1, LAST, defect="short_shot")),
        (1190, CycleSeen(1200, PartQuality.BAD, 1, LAST, 9, "short_shot")),
        (5000, CycleSeen(1200, PartQuality.BAD, 1, LAST, defect="short_shot")),
    ],
)
async def test_the_last_shot_sent_decides_the_first_cycle(
    machine: ModbusMachineServer, last_shot: int | None, expected: CycleSeen | None
) -> None:
    poller = _poller(machine.port, last_shot=last_shot)
    snapshot = await poller.read()
    poller.close()
    assert snapshot.cycle == expected  # parts per shot unknown before two reads: 1
    assert poller.cycles_missed == (expected.missed if expected else 0)


async def test_a_counter_reset_misses_nothing(
    machine: ModbusMachineServer, sample: dict[str, float]
) -> None:
    poller = _poller(machine.port)
    await poller.read("status")
    _show(machine, sample, 1201, 4724, 80)
    assert (await poller.read("status")).cycle is not None  # 4 parts a shot, learnt
    _show(machine, sample, 0, 0, 0, quality=None)  # a new job: counters and cycle cleared
    assert (await poller.read("status")).cycle is None
    _show(machine, sample, 1, 4, 0)
    assert (await poller.read("status")).cycle == CycleSeen(1, PartQuality.GOOD, 4, PARAMETERS)
    _show(machine, sample, 2, 8, 0)
    assert (await poller.read("status")).cycle == CycleSeen(2, PartQuality.GOOD, 4, PARAMETERS)
    _show(machine, sample, 1, 0, 4, PartQuality.BAD)  # reset, and a first cycle, between polls
    reset = await poller.read("status")
    poller.close()
    assert reset.cycle == CycleSeen(1, PartQuality.BAD, 4, PARAMETERS)  # the last known rate
    assert poller.cycles_missed == 0


async def test_a_bad_cycle_comes_with_its_defect_cause_and_only_a_bad_one(
    machine: ModbusMachineServer, sample: dict[str, float]
) -> None:
    poller = _poller(machine.port)
    await poller.read("status")
    _show(machine, sample, 1201, 4720, 84, PartQuality.BAD, "sink_marks")
    bad = await poller.read("status")
    # A machine may leave the last scrap's code in the word: a good cycle has no cause.
    _show(machine, sample, 1202, 4724, 84, PartQuality.GOOD, "sink_marks")
    good = await poller.read("status")
    _show(machine, sample, 1203, 4724, 88, PartQuality.BAD, "code_57")  # a code not listed
    unlisted = await poller.read("status")
    poller.close()
    assert bad.cycle == CycleSeen(1201, PartQuality.BAD, 4, PARAMETERS, defect="sink_marks")
    assert good.cycle == CycleSeen(1202, PartQuality.GOOD, 4, PARAMETERS)
    assert unlisted.cycle == CycleSeen(1203, PartQuality.BAD, 4, PARAMETERS, defect="code_57")
    assert "DefectCause" not in bad.values  # a code, not telemetry


async def test_a_test_samples_parts_leave_the_parts_per_shot_as_they_were(
    machine: ModbusMachineServer, sample: dict[str, float]
) -> None:
    poller = _poller(machine.port)
    await poller.read("status")
    _show(machine, sample, 1201, 4724, 80)
    assert (await poller.read("status")).cycle == CycleSeen(1201, PartQuality.GOOD, 4, PARAMETERS)
    # The good and bad counters do not count a sample's parts: they stand still over it.
    _show(machine, sample, 1202, 4724, 80, PartQuality.TEST)
    sampled = await poller.read("status")
    _show(machine, sample, 1203, 4728, 80)
    after = await poller.read("status")
    poller.close()
    assert sampled.cycle == CycleSeen(1202, PartQuality.TEST, 4, PARAMETERS)
    assert after.cycle == CycleSeen(1203, PartQuality.GOOD, 4, PARAMETERS)


async def test_cycles_as_the_simulator_makes_them(machine: ModbusMachineServer) -> None:
    model = MachineModel(MachineSpec("imm-01"), random.Random(7), START)
    poller = _poller(machine.port)
    now, cycles, seen = START, 0, []
    while cycles < 4:
        now += timedelta(seconds=10)
        for event in model.advance(now):
            if isinstance(event, CycleDone):
                cycles += 1
                machine.update(model.sample(), model.state, model.reason, event)
                if cycle := (await poller.read("status")).cycle:
                    seen.append((cycle, event))
    poller.close()
    assert len(seen) == 3  # the first read learnt the counter
    for cycle, event in seen:
        assert (cycle.shot, cycle.quality, cycle.parts, cycle.missed) == (
            event.shot,
            event.quality,
            event.parts,  # the mould's cavities: the part counters move by them
            0,
        )
        assert cycle.parameters == pytest.approx(event.parameters, rel=1e-6)
