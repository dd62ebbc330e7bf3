"""Jobs and moulds on the wire, end to end: simulated machines -> mosquitto -> ingest -> tables.

Over MQTT (a machine that publishes its own job messages) and over Modbus (a machine that
shows its job in registers, read by the edge agent). Small orders, short set-ups and a
sped-up clock make a job change every few seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import psycopg
import pytest
from gateway_config import gateway_config
from ingest_task import site_ingest
from watch import eventually

from contracts import BrokerUrl, JobRecord, decode
from edge import run_edge
from simulators import MOULDS, MachineSpec, ShiftCalendar, run_simulation
from simulators.floor import ModbusFloor
from simulators.modbus import load_register_map

pytestmark = [pytest.mark.infra, pytest.mark.slow]


def _spec(site: str) -> MachineSpec:
    """A machine that changes job every few simulated minutes: 40-part orders, 2-min set-ups,
    two PP moulds (no barrel heat-up between them), no breaks, no stops."""
    return MachineSpec(
        "imm-01",
        site=site,
        moulds=(MOULDS["bracket-pp-4"], MOULDS["cap-pp-8"]),
        calendar=ShiftCalendar("UTC", ()),
        stops=(),
        micro_stops_per_h=0.0,
        job_parts=(40, 40),
        setup_median_min=2.0,
    )


class _Tables:
    """The machine's job history and its cycles' jobs, as ingest wrote them."""

    def __init__(self, database_url: str, site: str) -> None:
        self.url = database_url
        self.place = f"{site}/hall-a/line-1/imm-01"
        self.jobs: list[tuple[str, str, str, int, int, str | None, int]] = []
        self.cycles: list[str | None] = []

    async def read(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.url) as conn:
            cur = await conn.execute(
                "SELECT j.job_name, j.mould_id, j.job_status, j.active_cavities,"
                " j.nominal_parts, j.material, j.seq FROM machine_job j"
                " JOIN machine m ON m.id = j.machine_id WHERE m.place = %s ORDER BY j.time, j.seq",
                (self.place,),
            )
            self.jobs = await cur.fetchall()
            cur = await conn.execute(
                "SELECT c.job_name FROM cycle c JOIN machine m ON m.id = c.machine_id"
                " WHERE m.place = %s ORDER BY c.time",
                (self.place,),
            )
            self.cycles = [row[0] for row in await cur.fetchall()]

    def statuses(self) -> set[str]:
        return {row[2] for row in self.jobs}

    def names(self) -> set[str]:
        return {row[0] for row in self.jobs}


async def _retained_job(mqtt_url: str, topic: str) -> JobRecord:
    """The job message the broker holds on `topic`, as a subscriber that comes late gets it."""
    options = BrokerUrl.parse(mqtt_url).client_options()
    async with aiomqtt.Client(**options, identifier=f"late-{uuid.uuid4().hex}") as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert message.retain
                assert isinstance(message.payload, bytes)
                job = decode(message.payload)
                assert isinstance(job, JobRecord)
                return job
    raise AssertionError("no message")


async def test_jobs_of_an_mqtt_native_machine_reach_the_job_table_and_cycles_name_them(
    database_url: str, mqtt_url: str
) -> None:
    site = f"jobs-mqtt-{uuid.uuid4().hex[:6]}"
    tables = _Tables(database_url, site)
    stop = asyncio.Event()

    async def a_whole_job_and_the_next() -> bool:
        await tables.read()
        return len(tables.names()) >= 3 and {
            "set_up_active", "start_up_active", "job_in_production", "job_finished"
        } <= tables.statuses()  # fmt: skip

    async with site_ingest(database_url, mqtt_url, site), asyncio.TaskGroup() as tasks:
        # From 30 simulated minutes ago at 120x: a job change every couple of seconds, never
        # ahead of the clock (which ingest would refuse).
        simulation = run_simulation(
            [_spec(site)], BrokerUrl.parse(mqtt_url), stop, seed=5, speed=120.0,
            start=datetime.now(UTC) - timedelta(minutes=30), telemetry_interval_s=30.0,
        )  # fmt: skip
        tasks.create_task(simulation)
        try:
            await eventually(
                a_whole_job_and_the_next, "a whole job and the next", timeout_s=60, poll_s=0.2
            )
        finally:
            stop.set()
        # The broker keeps the machine's newest job for whoever subscribes later.
        topic = f"moldlab/v1/{site}/hall-a/line-1/imm-01/job"
        retained = await _retained_job(mqtt_url, topic)

        async def the_newest_row_is_the_retained_job() -> bool:
            await tables.read()
            return tables.jobs[-1][-1] == retained.seq

        await eventually(
            the_newest_row_is_the_retained_job,
            "the newest row is the retained job",
            timeout_s=60,
            poll_s=0.2,
        )

    assert {row[1] for row in tables.jobs} == {"bracket-pp-4", "cap-pp-8"}
    assert {(row[3], row[4], row[5]) for row in tables.jobs} == {(4, 40, "PP"), (8, 40, "PP")}
    assert len({row[-1] for row in tables.jobs}) == len(tables.jobs)  # each message once
    # Every cycle names its job, one the job table knows.
    assert tables.cycles
    assert set(tables.cycles) <= tables.names()
    assert retained.job_name == tables.jobs[-1][0]


async def test_jobs_of_a_modbus_machine_reach_the_job_table_through_the_edge(
    database_url: str, mqtt_url: str, tmp_path: Path
) -> None:
    site = f"jobs-modbus-{uuid.uuid4().hex[:6]}"
    tables = _Tables(database_url, site)
    stop = asyncio.Event()

    async def a_job_change_seen() -> bool:
        await tables.read()
        named = [job for job in tables.cycles if job is not None]
        return (
            len(tables.names()) >= 2
            and {"set_up_active", "job_in_production"} <= tables.statuses()
            and len(set(named)) >= 2
        )

    # The floor's models run 60x: the edge stamps what it reads with its own clock.
    spec = _spec(site)
    floor = ModbusFloor(
        [spec], load_register_map(), base_port=0, seed=5, speed=60.0, update_interval_s=0.05
    )
    async with site_ingest(database_url, mqtt_url, site), floor, asyncio.TaskGroup() as tasks:
        config = gateway_config(
            mqtt_url, floor.servers[0].port, tmp_path,
            gateway_id="pi-jobs", site=site, telemetry_interval_s=5.0,
        )  # fmt: skip
        tasks.create_task(floor.run(stop))
        tasks.create_task(run_edge(config, stop))
        try:
            await eventually(a_job_change_seen, "a job change seen", timeout_s=60, poll_s=0.2)
        finally:
            stop.set()
        topic = f"moldlab/v1/{site}/hall-a/line-1/imm-01/job"
        retained = await _retained_job(mqtt_url, topic)

    assert {row[1] for row in tables.jobs} == {"bracket-pp-4", "cap-pp-8"}
    assert {row[5] for row in tables.jobs} == {"PP"}
    # Each row is a change: the edge sends a job when something in it changed.
    changes = [row[:6] for row in tables.jobs]
    assert all(a != b for a, b in itertools.pairwise(changes))
    assert {job for job in tables.cycles if job is not None} <= tables.names()
    assert retained.source == "pi-jobs:imm-01"
    assert retained.job_name in tables.names()
