"""Reading a machine over Modbus TCP: typed snapshots; failures become DeviceError."""

from __future__ import annotations

import socket

import pytest

from contracts import CYCLE_PARAMETERS, SIGNALS, MachineState
from contracts.registers import RegisterMap
from edge import DeviceError, ModbusConfig, ModbusPoller, load_register_map
from simulators.modbus import ModbusMachineServer
from simulators.model import CycleDone

pytestmark = pytest.mark.infra


def _poller(port: int, register_map: RegisterMap | None = None, unit_id: int = 1) -> ModbusPoller:
    config = ModbusConfig(host="127.0.0.1", port=port, unit_id=unit_id, timeout_s=1)
    return ModbusPoller("imm-01", config, register_map or load_register_map())


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
