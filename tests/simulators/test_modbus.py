"""The simulated machine's Modbus TCP server, read by a real pymodbus client."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest
from pymodbus.client import AsyncModbusTcpClient

from contracts import MachineState
from contracts.registers import RegisterMap
from simulators import demo_floor
from simulators.floor import ModbusFloor
from simulators.modbus import ModbusMachineServer, load_register_map
from simulators.model import MachineModel, MachineSpec

pytestmark = pytest.mark.infra


async def _read_all(port: int, register_map: RegisterMap, unit_id: int = 1) -> dict[str, float]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, reconnect_delay=0)
    try:
        assert await client.connect()
        values: dict[str, float] = {}
        for block in register_map.blocks():
            response = await client.read_holding_registers(
                block.start, count=block.count, device_id=unit_id
            )
            assert not response.isError(), response
            values.update(register_map.decode(block.start, response.registers))
        return values
    finally:
        client.close()


def _model() -> MachineModel:
    start = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
    model = MachineModel(MachineSpec("imm-01"), random.Random(7), start)
    model.advance(start + timedelta(minutes=5))
    return model


async def test_a_client_reads_the_models_values() -> None:
    register_map = load_register_map()
    model = _model()
    sample = model.sample()
    async with ModbusMachineServer(register_map, port=0, unit_id=3) as server:
        server.update(sample, MachineState.UNPLANNED_STOP, "robot_fault")
        values = await _read_all(server.port, register_map, unit_id=3)
    assert values.pop("State") == register_map.state_code(MachineState.UNPLANNED_STOP)
    assert register_map.reasons[int(values.pop("StandstillReason"))] == "robot_fault"
    assert values == sample
    assert values["CounterShots"] == model.shots > 0


async def test_registers_read_offline_until_the_first_update() -> None:
    register_map = load_register_map()
    async with ModbusMachineServer(register_map, port=0) as server:
        values = await _read_all(server.port, register_map)
    assert register_map.state_from(values) == (MachineState.OFFLINE, None)


async def test_clients_cannot_write() -> None:
    async with ModbusMachineServer(load_register_map(), port=0) as server:
        client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, reconnect_delay=0)
        assert await client.connect()
        response = await client.write_register(0, 1, device_id=1)
        client.close()
    assert response.isError()


async def test_restart_serves_on_the_same_port() -> None:
    register_map = load_register_map()
    server = ModbusMachineServer(register_map, port=0)
    await server.start()
    port = server.port
    server.update(_model().sample(), MachineState.RUNNING)
    await server.stop()
    await server.start()
    try:
        assert server.port == port
        assert (await _read_all(port, register_map))["State"] == 1
    finally:
        await server.stop()


async def test_floor_serves_each_machine_on_its_own_port_with_moving_values() -> None:
    register_map = load_register_map()
    stop = asyncio.Event()
    floor = ModbusFloor(
        demo_floor(2), register_map, base_port=0, speed=50.0, update_interval_s=0.05
    )
    async with floor, asyncio.TaskGroup() as tg:
        tg.create_task(floor.run(stop))
        ports = [server.port for server in floor.servers]
        first = [await _read_all(port, register_map) for port in ports]
        await asyncio.sleep(1.5)  # 75 simulated seconds: several cycles
        second = [await _read_all(port, register_map) for port in ports]
        stop.set()
    assert len(set(ports)) == 2
    for before, after in zip(first, second, strict=True):
        assert 190 < before["TempZone2"] < 210
        assert after["CounterShots"] > before["CounterShots"]
