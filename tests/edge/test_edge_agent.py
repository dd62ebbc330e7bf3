"""The edge agent end to end: a simulated Modbus machine, the agent, a real mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import aiomqtt
import pytest

from contracts import BrokerUrl, EdgeStatus, MachineState, StateChange, TelemetryBatch, decode
from contracts.codec import AnyMessage
from edge import GatewayConfig, run_edge
from simulators.modbus import ModbusMachineServer

pytestmark = pytest.mark.infra

T = TypeVar("T")


class Broker(Protocol):  # the own_broker fixture
    url: str

    def start(self) -> None: ...
    def stop(self) -> None: ...


def _config(mqtt_url: str, port: int, **overrides: object) -> GatewayConfig:
    data = {
        "gateway_id": "pi-test",
        "site": f"test-{uuid.uuid4().hex[:8]}",  # a site of its own: no retained leftovers
        "area": "hall-a",
        "line": "line-1",
        "broker": {"url": mqtt_url},
        "machines": [
            {
                "machine_id": "imm-01",
                "modbus": {"host": "127.0.0.1", "port": port, "poll_interval_s": 0.1},
            }
        ],
        "telemetry_interval_s": 0.5,
        **overrides,
    }
    return GatewayConfig.model_validate(data)


@contextlib.asynccontextmanager
async def _received(mqtt_url: str, site: str) -> AsyncIterator[list[tuple[str, AnyMessage]]]:
    """Every message published under `site` while the block runs, decoded."""
    broker = BrokerUrl.parse(mqtt_url)
    received: list[tuple[str, AnyMessage]] = []
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(f"moldlab/v1/{site}/#", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                received.append((str(message.topic), decode(message.payload)))

        task = asyncio.create_task(collect())
        try:
            yield received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _of(kind: type[T], received: list[tuple[str, AnyMessage]]) -> list[T]:
    return [m for _, m in received if isinstance(m, kind)]


async def test_telemetry_and_state_reach_the_broker(
    mqtt_url: str, machine: ModbusMachineServer, sample: dict[str, float]
) -> None:
    config = _config(mqtt_url, machine.port)
    stop = asyncio.Event()
    async with _received(mqtt_url, config.site) as received:
        agent = asyncio.create_task(run_edge(config, stop))
        await _until(lambda: len(_of(TelemetryBatch, received)) >= 3)
        stop.set()
        await asyncio.wait_for(agent, 10)
        await _until(lambda: any(not s.online for s in _of(EdgeStatus, received)))

    prefix = f"moldlab/v1/{config.site}/hall-a/line-1"
    topics = {type(m).__name__: topic for topic, m in received}
    assert topics == {
        "EdgeStatus": f"{prefix}/pi-test/status",
        "StateChange": f"{prefix}/imm-01/state",
        "TelemetryBatch": f"{prefix}/imm-01/telemetry",
    }
    assert [s.online for s in _of(EdgeStatus, received)] == [True, False]
    assert [s.state for s in _of(StateChange, received)] == [MachineState.RUNNING]
    batch = _of(TelemetryBatch, received)[0]
    assert {r.signal: r.value for r in batch.readings} == sample
    assert len({r.offset_ms for r in batch.readings}) > 1  # several polls per batch
    assert {m.source for _, m in received} == {"pi-test"}
    seqs = sorted(m.seq for _, m in received)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap, no duplicate

    async with _received(mqtt_url, config.site) as retained:
        await _until(lambda: bool(retained))
    assert [(type(m), getattr(m, "online", None)) for _, m in retained] == [(EdgeStatus, False)]


async def test_a_machine_that_goes_away_is_reported_once_and_back_once(
    mqtt_url: str, machine: ModbusMachineServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    config = _config(mqtt_url, machine.port)
    stop = asyncio.Event()
    async with _received(mqtt_url, config.site) as received:
        agent = asyncio.create_task(run_edge(config, stop))
        await _until(lambda: len(_of(TelemetryBatch, received)) >= 1)
        await machine.stop()
        await _until(lambda: len(_of(StateChange, received)) == 2)
        await asyncio.sleep(2.0)  # several failed polls meanwhile
        await machine.start()
        await _until(lambda: len(_of(StateChange, received)) == 3)
        stop.set()
        await asyncio.wait_for(agent, 10)

    states = [s.state for s in _of(StateChange, received)]
    assert states == [MachineState.RUNNING, MachineState.OFFLINE, MachineState.RUNNING]
    logged = [r.getMessage() for r in caplog.records if r.name == "edge.modbus"]
    assert sum("offline" in line for line in logged) == 1
    assert sum(" back " in line for line in logged) == 1


async def test_the_agent_rides_out_a_broker_restart(
    own_broker: Broker, machine: ModbusMachineServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    config = _config(own_broker.url, machine.port)
    stop = asyncio.Event()
    own_broker.start()
    async with _received(own_broker.url, config.site) as before:
        agent = asyncio.create_task(run_edge(config, stop))
        await _until(lambda: len(_of(TelemetryBatch, before)) >= 2)
    own_broker.stop()
    went_down = datetime.now(UTC)
    await asyncio.sleep(1.5)
    came_back = datetime.now(UTC)
    own_broker.start()
    async with _received(own_broker.url, config.site) as after:
        await _until(lambda: any(s.online for s in _of(EdgeStatus, after)))
        await _until(lambda: any(b.ts > came_back for b in _of(TelemetryBatch, after)))
        stop.set()
        await asyncio.wait_for(agent, 10)

    # What was polled while the broker was away is published once it is back.
    assert any(went_down < b.ts < came_back for b in _of(TelemetryBatch, after))
    logged = [r.getMessage() for r in caplog.records if r.name == "edge.mqtt"]
    assert sum(line.startswith("connected to broker") for line in logged) == 2
    assert sum(line.startswith("disconnected from broker") for line in logged) == 2
