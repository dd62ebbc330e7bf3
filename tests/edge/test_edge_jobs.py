"""The job of a Modbus machine through the edge agent: read, sent on change, retained."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import aiomqtt
import pytest

from contracts import (
    BrokerUrl,
    CycleRecord,
    Job,
    JobRecord,
    JobStatus,
    MachineState,
    decode,
)
from contracts.codec import AnyMessage
from edge import GatewayConfig, run_edge
from simulators.modbus import ModbusMachineServer
from simulators.model import CycleDone

pytestmark = pytest.mark.infra

SETUP = Job(
    job_name="PO-4711/10",
    mould_id="bracket-pp-4#1",
    job_status=JobStatus.SET_UP_ACTIVE,
    active_cavities=4,
    nominal_parts=40_000,
    material="PP",
)
PRODUCING = SETUP.model_copy(update={"job_status": JobStatus.JOB_IN_PRODUCTION})


def _config(mqtt_url: str, port: int, outbox_dir: Path) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "gateway_id": "pi-jobs",
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
            "outbox": {"path": str(outbox_dir / "outbox.sqlite")},
            "metrics": {"enabled": False},
        }
    )


@contextlib.asynccontextmanager
async def _received(mqtt_url: str, topic: str) -> AsyncIterator[list[tuple[str, AnyMessage]]]:
    """Every message on `topic` (a filter) while the block runs, retained ones first."""
    options = BrokerUrl.parse(mqtt_url).client_options()
    received: list[tuple[str, AnyMessage]] = []
    async with aiomqtt.Client(**options, identifier=f"t-{uuid.uuid4().hex}") as client:
        await client.subscribe(topic, qos=1)

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


def _jobs(received: list[tuple[str, AnyMessage]]) -> list[JobRecord]:
    return [m for _, m in received if isinstance(m, JobRecord)]


async def test_a_job_is_sent_at_start_and_on_change_and_the_broker_keeps_the_newest(
    mqtt_url: str,
    machine: ModbusMachineServer,
    sample: dict[str, float],
    last_cycle: CycleDone,
    tmp_path: Path,
) -> None:
    machine.update(sample, MachineState.SETUP, "mould_change", last_cycle, SETUP)
    config = _config(mqtt_url, machine.port, tmp_path)
    prefix = f"moldlab/v1/{config.site}/hall-a/line-1"
    stop = asyncio.Event()
    async with _received(mqtt_url, f"{prefix}/#") as received:
        agent = asyncio.create_task(run_edge(config, stop))
        await _until(lambda: len(_jobs(received)) == 1)
        # Producing now: the status changed, and the next cycle is the job's.
        shot = last_cycle.shot + 1
        next_cycle = replace(last_cycle, shot=shot)
        machine.update(
            {**sample, "CounterShots": float(shot)},
            MachineState.RUNNING,
            last_cycle=next_cycle,
            job=PRODUCING,
        )
        await _until(lambda: any(isinstance(m, CycleRecord) for _, m in received))
        stop.set()
        await asyncio.wait_for(agent, 10)

    jobs = _jobs(received)
    assert [m.job for m in jobs] == [SETUP, PRODUCING]  # once at start, once on the change
    assert {topic for topic, m in received if isinstance(m, JobRecord)} == {f"{prefix}/imm-01/job"}
    assert {m.source for m in jobs} == {"pi-jobs:imm-01"}
    (cycle,) = [m for _, m in received if isinstance(m, CycleRecord)]
    assert (cycle.shot, cycle.job) == (shot, "PO-4711/10")

    # A subscriber that comes later learns the machine's job from the broker: the newest.
    async with _received(mqtt_url, f"{prefix}/imm-01/job") as late:
        await _until(lambda: bool(late))
    assert [m.job for m in _jobs(late)] == [PRODUCING]
