"""The job of a Modbus machine through the edge agent: read, sent on change, retained."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from gateway_config import broker_only_config as gateway_config
from watch import until, watch

from contracts import (
    CycleRecord,
    Job,
    JobRecord,
    JobStatus,
    MachineState,
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
    return gateway_config(mqtt_url, port, outbox_dir, gateway_id="pi-jobs")


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
    async with watch(mqtt_url, f"{prefix}/#") as received:
        agent = asyncio.create_task(run_edge(config, stop))
        await until(lambda: len(_jobs(received)) == 1)
        # Producing now: the status changed, and the next cycle is the job's.
        shot = last_cycle.shot + 1
        next_cycle = replace(last_cycle, shot=shot)
        machine.update(
            {**sample, "CounterShots": float(shot)},
            MachineState.RUNNING,
            last_cycle=next_cycle,
            job=PRODUCING,
        )
        await until(lambda: any(isinstance(m, CycleRecord) for _, m in received))
        stop.set()
        await asyncio.wait_for(agent, 10)

    jobs = _jobs(received)
    assert [m.job for m in jobs] == [SETUP, PRODUCING]  # once at start, once on the change
    assert {topic for topic, m in received if isinstance(m, JobRecord)} == {f"{prefix}/imm-01/job"}
    assert {m.source for m in jobs} == {"pi-jobs:imm-01"}
    (cycle,) = [m for _, m in received if isinstance(m, CycleRecord)]
    assert (cycle.shot, cycle.job) == (shot, "PO-4711/10")

    # A subscriber that comes later learns the machine's job from the broker: the newest.
    async with watch(mqtt_url, f"{prefix}/imm-01/job") as late:
        await until(lambda: bool(late))
    assert [m.job for m in _jobs(late)] == [PRODUCING]
