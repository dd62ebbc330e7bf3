"""Real servers for the edge tests: a broker of their own and a simulated Modbus machine."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from contracts import MachineState
from moldlab.servers import LocalMosquitto
from simulators.modbus import ModbusMachineServer, load_register_map

SAMPLE = {
    "TempZone1": 45.2,
    "TempZone2": 200.4,
    "TempZone3": 215.1,
    "TempNozzle": 229.8,
    "TempMould": 45.5,
    "TempOil": 42.1,
    "PressureHydraulic": 140.3,
    "MotorPower": 18.2,
    "CounterShots": 1200.0,
    "CounterGood": 1180.0,
    "CounterBad": 20.0,
}


@pytest.fixture
def own_broker(scratch_dir: Path) -> Iterator[LocalMosquitto]:
    """A mosquitto for this test alone, which the test stops and starts."""
    broker = LocalMosquitto(Path(tempfile.mkdtemp(dir=scratch_dir)) / "mosquitto")
    yield broker
    broker.stop()


@pytest.fixture
def sample() -> dict[str, float]:
    """The values the `machine` fixture serves."""
    return dict(SAMPLE)


@pytest.fixture
async def machine(sample: dict[str, float]) -> AsyncIterator[ModbusMachineServer]:
    """A running simulated machine on a free port, serving `sample` and the running state."""
    async with ModbusMachineServer(load_register_map(), port=0) as server:
        server.update(sample, MachineState.RUNNING)
        yield server
