"""The simulated machine's Modbus TCP server, read by a real pymodbus client."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from pymodbus.client import AsyncModbusTcpClient

from contracts import CYCLE_PARAMETERS, MachineState, PartQuality
from contracts.registers import RegisterMap
from simulators import ShiftCalendar, demo_floor
from simulators.floor import ModbusFloor
from simulators.modbus import ModbusMachineServer, load_register_map
from simulators.model import CycleDone, MachineModel
from simulators.specs import MachineSpec

pytestmark = pytest.mark.infra

START = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
FLOAT32_REL = 1e-6  # float32 carries 7 significant digits


async def _read_all(port: int, register_map: RegisterMap, unit_id: int = 1) -> dict[str, float]:
    return (await _read_with_texts(port, register_map, unit_id))[0]


async def _read_with_texts(
    port: int, register_map: RegisterMap, unit_id: int = 1
) -> tuple[dict[str, float], dict[str, str]]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, reconnect_delay=0)
    try:
        assert await client.connect()
        values: dict[str, float] = {}
        texts: dict[str, str] = {}
        for block in register_map.blocks():
            response = await client.read_holding_registers(
                block.start, count=block.count, device_id=unit_id
            )
            assert not response.isError(), response
            values.update(register_map.decode(block.start, response.registers))
            texts.update(register_map.decode_texts(block.start, response.registers))
        return values, texts
    finally:
        client.close()


def _run_until(
    condition: Callable[[MachineModel], bool], spec: MachineSpec | None = None
) -> tuple[MachineModel, CycleDone]:
    """A model advanced in 10 s steps until `condition` holds after at least one cycle."""
    model = MachineModel(spec or MachineSpec("imm-01"), random.Random(7), START)
    last: CycleDone | None = None
    now = START
    while last is None or not condition(model):
        assert now < START + timedelta(days=2), "the condition never held"
        now += timedelta(seconds=10)
        for event in model.advance(now):
            if isinstance(event, CycleDone):
                last = event
    return model, last


def _running(model: MachineModel) -> bool:
    return model.state is MachineState.RUNNING


def _standing_still(model: MachineModel) -> bool:
    return model.reason is not None


@pytest.mark.parametrize("condition", [_running, _standing_still])
async def test_a_client_reads_the_models_values(condition: Callable[[MachineModel], bool]) -> None:
    register_map = load_register_map()
    model, last_cycle = _run_until(condition)
    sample = model.sample()
    async with ModbusMachineServer(register_map, port=0, unit_id=3) as server:
        server.update(sample, model.state, model.reason, last_cycle, model.job)
        values, texts = await _read_with_texts(server.port, register_map, unit_id=3)

    job = model.job
    expected = {
        **sample,
        **last_cycle.parameters,
        "State": register_map.state_code(model.state),
        "StandstillReason": register_map.reason_code(model.reason),
        "CycleQuality": register_map.quality_code(last_cycle.quality),
        "DefectCause": register_map.defect_code(last_cycle.defect),
        "JobStatus": register_map.job_status_code(job.job_status),
        "ActiveCavities": job.active_cavities,
        "NominalParts": job.nominal_parts,
    }
    assert set(values) == {r.name for r in register_map.registers} == set(expected)
    assert values == pytest.approx(expected, rel=FLOAT32_REL)
    assert register_map.state_from(values) == (model.state, model.reason)
    assert register_map.quality_from(values) is last_cycle.quality
    assert register_map.job_from(values, texts) == job  # the job, its mould and status
    assert texts == {"JobName": job.job_name, "MouldId": "bracket-pp-4", "Material": "PP"}
    # The status block shows the counters of the very cycle whose parameters it shows.
    assert values["CounterShots"] == last_cycle.shot == model.shots


async def test_a_bad_cycle_shows_its_defect_cause_and_the_next_good_one_none() -> None:
    register_map = load_register_map()
    model = MachineModel(MachineSpec("imm-01"), random.Random(7), START)
    cycles = [e for e in model.advance(START + timedelta(days=1)) if isinstance(e, CycleDone)]
    # Start-up scrap after each long stop, and the model's other process causes.
    k, bad = next((k, c) for k, c in enumerate(cycles) if c.quality is PartQuality.BAD)
    good = next(c for c in cycles[k:] if c.quality is PartQuality.GOOD)
    assert bad.defect is not None
    async with ModbusMachineServer(register_map, port=0) as server:
        server.update(model.sample(), model.state, model.reason, bad)
        at_bad = await _read_all(server.port, register_map)
        server.update(model.sample(), model.state, model.reason, good)
        at_good = await _read_all(server.port, register_map)
    assert register_map.quality_from(at_bad) is PartQuality.BAD
    assert register_map.defect_from(at_bad) == bad.defect
    assert at_bad["DefectCause"] == register_map.defect_code(bad.defect) > 0
    assert register_map.quality_from(at_good) is PartQuality.GOOD
    assert register_map.defect_from(at_good) is None


async def test_before_the_first_cycle_the_cycle_registers_read_no_cycle() -> None:
    register_map = load_register_map()
    model = MachineModel(MachineSpec("imm-01"), random.Random(7), START)
    async with ModbusMachineServer(register_map, port=0) as server:
        server.update(model.sample(), model.state, model.reason)
        values = await _read_all(server.port, register_map)
    assert register_map.quality_from(values) is None
    assert register_map.defect_from(values) is None
    assert {name: values[name] for name in CYCLE_PARAMETERS} == dict.fromkeys(CYCLE_PARAMETERS, 0)
    assert register_map.state_from(values) == (model.state, model.reason)


async def test_registers_read_offline_until_the_first_update() -> None:
    register_map = load_register_map()
    async with ModbusMachineServer(register_map, port=0) as server:
        values, texts = await _read_with_texts(server.port, register_map)
    assert register_map.state_from(values) == (MachineState.OFFLINE, None)
    assert register_map.quality_from(values) is None
    assert register_map.job_from(values, texts) is None  # no job: an empty JobName


async def test_a_name_longer_than_its_registers_is_cut_short_as_a_panel_would() -> None:
    register_map = load_register_map()
    model = MachineModel(MachineSpec("imm-01"), random.Random(7), START)
    job = model.job.model_copy(update={"job_name": "PO-" + "9" * 40})
    async with ModbusMachineServer(register_map, port=0) as server:
        server.update(model.sample(), model.state, model.reason, job=job)
        values, texts = await _read_with_texts(server.port, register_map)
    shown = register_map.job_from(values, texts)
    assert shown == job.model_copy(update={"job_name": ("PO-" + "9" * 40)[:32]})


async def test_one_read_never_mixes_two_cycles() -> None:
    register_map = load_register_map()
    block = register_map.blocks()[0]
    assert block.start == 0  # status, counters and the last cycle

    def cycle(shot: int) -> CycleDone:
        parameters = dict.fromkeys(CYCLE_PARAMETERS, shot / 2)
        return CycleDone(START, shot, PartQuality.GOOD, 1, parameters, "m", None)

    async with ModbusMachineServer(register_map, port=0) as server:
        server.update({"CounterShots": 0}, MachineState.RUNNING, last_cycle=cycle(0))
        done = asyncio.Event()

        async def produce() -> None:
            for shot in range(1, 400):
                server.update({"CounterShots": shot}, MachineState.RUNNING, last_cycle=cycle(shot))
                await asyncio.sleep(0)
            done.set()

        client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, reconnect_delay=0)
        assert await client.connect()
        reads: list[dict[str, float]] = []
        async with asyncio.TaskGroup() as tg:
            tg.create_task(produce())
            while not done.is_set():
                response = await client.read_holding_registers(block.start, count=block.count)
                assert not response.isError(), response
                reads.append(register_map.decode(block.start, response.registers))
        client.close()

    assert len({r["CounterShots"] for r in reads}) > 1  # reads fell between updates
    for values in reads:
        shot = values["CounterShots"]
        assert {values[name] for name in CYCLE_PARAMETERS} == {shot / 2}


async def test_clients_cannot_write() -> None:
    async with ModbusMachineServer(load_register_map(), port=0) as server:
        client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, reconnect_delay=0)
        assert await client.connect()
        response = await client.write_register(0, 1, device_id=1)
        client.close()
    assert response.isError()


async def test_restart_serves_on_the_same_port() -> None:
    register_map = load_register_map()
    model, last_cycle = _run_until(_running)
    server = ModbusMachineServer(register_map, port=0)
    await server.start()
    port = server.port
    server.update(model.sample(), model.state, model.reason, last_cycle)
    await server.stop()
    await server.start()
    try:
        assert server.port == port
        assert (await _read_all(port, register_map))["State"] == 1
    finally:
        await server.stop()


async def test_floor_serves_each_machine_on_its_own_port_with_moving_values() -> None:
    register_map = load_register_map()
    # No breaks and no stops: the machines must run through the test.
    specs = [
        dataclasses.replace(spec, calendar=ShiftCalendar(), stops=()) for spec in demo_floor(2)
    ]
    stop = asyncio.Event()
    floor = ModbusFloor(specs, register_map, base_port=0, speed=50.0, update_interval_s=0.05)
    async with floor, asyncio.TaskGroup() as tg:
        tg.create_task(floor.run(stop))
        ports = [server.port for server in floor.servers]
        first = [await _read_all(port, register_map) for port in ports]
        await asyncio.sleep(1.5)  # 75 simulated seconds: several cycles
        second = [await _read_all(port, register_map) for port in ports]
        stop.set()
    assert len(set(ports)) == 2
    for spec, before, after in zip(specs, first, second, strict=True):
        assert 190 < before["TempZone2"] < 210
        assert after["CounterShots"] > before["CounterShots"]
        assert register_map.state_from(after) == (MachineState.RUNNING, None)
        assert register_map.quality_from(after) in (PartQuality.GOOD, PartQuality.BAD)
        assert after["CycleTime"] >= spec.moulds[0].ideal_cycle_s * 0.9
