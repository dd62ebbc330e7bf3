"""Part quality end to end: simulated machines -> mosquitto -> ingest -> the cycle table.

A bad cycle's defect cause and the quality-control samples (test parts), over MQTT (a machine
that publishes its own cycles) and over Modbus (a machine that shows its last cycle in
registers, read by the edge agent). Quarter-hour stops spoil the melt, so start-up scrap
follows each; a sample is taken every 3 running minutes.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from gateway_config import gateway_config
from ingest_task import site_ingest
from watch import eventually

from contracts import DEFECT_CAUSES, BrokerUrl, MachineState
from edge import run_edge
from simulators import CycleDone, MachineModel, MachineSpec, ShiftCalendar, run_simulation
from simulators.floor import ModbusFloor
from simulators.modbus import load_register_map
from simulators.specs import StopCause

pytestmark = [pytest.mark.infra, pytest.mark.slow]

SEED = 5  # its first start-up scrap comes 15 simulated minutes in, its first sample at 3


def _spec(site: str) -> MachineSpec:
    """No shifts (nothing depends on the wall clock), a stop long enough to spoil the melt
    every few running minutes, no micro-stops, a sample every 3 running minutes."""
    return MachineSpec(
        "imm-01",
        site=site,
        calendar=ShiftCalendar("UTC", ()),
        stops=(StopCause(MachineState.UNPLANNED_STOP, "material_shortage", 0.1, 11.0, 0.0),),
        micro_stops_per_h=0.0,
        test_sample_interval_h=0.05,
    )


class _Cycles:
    """The machine's cycles as ingest wrote them: (shot, quality, defect)."""

    def __init__(self, database_url: str, site: str) -> None:
        self.url = database_url
        self.place = f"{site}/hall-a/line-1/imm-01"
        self.rows: list[tuple[int, str, str | None]] = []

    async def read(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.url) as conn:
            cur = await conn.execute(
                "SELECT c.shot, c.quality, c.defect FROM cycle c"
                " JOIN machine m ON m.id = c.machine_id WHERE m.place = %s ORDER BY c.shot",
                (self.place,),
            )
            self.rows = await cur.fetchall()

    async def scrap_and_a_sample(self) -> bool:
        await self.read()
        qualities = {quality for _, quality, _ in self.rows}
        return {"bad", "test"} <= qualities


async def test_an_mqtt_native_machines_defects_and_samples_reach_the_cycle_table(
    database_url: str, mqtt_url: str
) -> None:
    site = f"quality-mqtt-{uuid.uuid4().hex[:6]}"
    cycles = _Cycles(database_url, site)
    stop = asyncio.Event()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    async with site_ingest(database_url, mqtt_url, site), asyncio.TaskGroup() as tasks:
        # From 20 simulated minutes ago at 120x: caught up in 10 s, never ahead of the clock.
        simulation = run_simulation(
            [_spec(site)], BrokerUrl.parse(mqtt_url), stop, seed=SEED, speed=120.0,
            start=start, telemetry_interval_s=30.0,
        )  # fmt: skip
        tasks.create_task(simulation)
        try:
            await eventually(
                cycles.scrap_and_a_sample, "scrap and a sample", timeout_s=60, poll_s=0.2
            )
        finally:
            stop.set()
    # Each cycle as the machine's own model drew it: its quality and its defect cause.
    model = MachineModel(_spec(site), random.Random(SEED * 1000), start)
    events = model.advance(datetime.now(UTC))
    truth = {e.shot: (e.quality.value, e.defect) for e in events if isinstance(e, CycleDone)}
    assert cycles.rows
    for shot, quality, defect in cycles.rows:
        assert (quality, defect) == truth[shot]
    # Start-up scrap after stops; now and then a cause a healthy process still has.
    causes = {defect for _, quality, defect in cycles.rows if quality == "bad"}
    assert "startup_scrap" in causes
    assert causes <= set(DEFECT_CAUSES)


async def test_a_modbus_machines_defects_and_samples_reach_the_cycle_table_through_the_edge(
    database_url: str, mqtt_url: str, tmp_path: Path
) -> None:
    site = f"quality-modbus-{uuid.uuid4().hex[:6]}"
    cycles = _Cycles(database_url, site)
    stop = asyncio.Event()
    # At 60x a cycle takes a quarter of a second: the edge, polling every 0.1 s, sees each.
    floor = ModbusFloor(
        [_spec(site)], load_register_map(), base_port=0, seed=SEED, speed=60.0,
        update_interval_s=0.05,
    )  # fmt: skip
    async with site_ingest(database_url, mqtt_url, site), floor, asyncio.TaskGroup() as tasks:
        config = gateway_config(
            mqtt_url, floor.servers[0].port, tmp_path,
            gateway_id="pi-quality", site=site, telemetry_interval_s=5.0,
        )  # fmt: skip
        tasks.create_task(floor.run(stop))
        tasks.create_task(run_edge(config, stop))
        try:
            await eventually(
                cycles.scrap_and_a_sample, "scrap and a sample", timeout_s=90, poll_s=0.2
            )
        finally:
            stop.set()
    bad = [row for row in cycles.rows if row[1] == "bad"]
    assert bad
    causes = {defect for _, _, defect in bad}  # read from DefectCause
    assert "startup_scrap" in causes
    assert causes <= set(DEFECT_CAUSES)
    assert all(defect is None for _, quality, defect in cycles.rows if quality != "bad")
