"""Real servers for the edge tests: a broker of their own and a simulated Modbus machine."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts import CYCLE_PARAMETERS, MachineState, PartQuality
from moldlab.servers import LocalMosquitto
from simulators.modbus import ModbusMachineServer, load_register_map
from simulators.model import CycleDone

SAMPLE = {  # every signal of contracts.SIGNALS
    "TempZone1": 45.2,
    "TempZone2": 200.4,
    "TempZone3": 215.1,
    "TempZone4": 224.7,
    "TempNozzle": 229.8,
    "HeaterOutputZone2": 41.5,
    "HeaterOutputZone3": 44.2,
    "HeaterOutputZone4": 46.9,
    "HeaterOutputNozzle": 47.3,
    "TempMould": 45.5,
    "TempOil": 42.1,
    "PressureHydraulic": 140.3,
    "ScrewPosition": 38.42,
    "MotorPower": 18.2,
    "CounterShots": 1200.0,
    "CounterGood": 4720.0,
    "CounterBad": 80.0,
    "CounterMould": 183_200.0,
    "AlarmWord": 5.0,
}
LAST_CYCLE = CycleDone(
    ts=datetime(2025, 3, 3, 6, 5, tzinfo=UTC),
    shot=1200,
    quality=PartQuality.BAD,
    parts=4,
    parameters=dict.fromkeys(CYCLE_PARAMETERS, 1.5),
    mould="bracket-pp-4",
    defect="short_shot",
)


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
def last_cycle() -> CycleDone:
    """The last cycle the `machine` fixture shows: its values are not telemetry."""
    return LAST_CYCLE


@pytest.fixture
async def machine(
    sample: dict[str, float], last_cycle: CycleDone
) -> AsyncIterator[ModbusMachineServer]:
    """A running simulated machine on a free port, serving `sample` and `last_cycle`."""
    async with ModbusMachineServer(load_register_map(), port=0) as server:
        server.update(sample, MachineState.RUNNING, last_cycle=last_cycle)
        yield server
