"""Simulator -> mosquitto -> ingest -> PostgreSQL -> API and live WebSocket, all real."""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from watch import eventually

from contracts import BrokerUrl
from dashboard_api import ApiSettings, create_app
from ingest import IngestSettings, run_ingest
from moldlab.servers import LocalPythonBroker
from moldlab.servers.process import free_port
from plant import ShiftCalendar
from simulators import demo_floor, run_simulation

pytestmark = [pytest.mark.infra, pytest.mark.slow]


@pytest.fixture
async def api_url(database_url: str) -> AsyncIterator[str]:
    port = free_port()
    # The socket follows every machine of the suite's database, this test's among them.
    settings = ApiSettings(
        database_url=database_url, api_port=port, live_interval_s=0.2, live_max_machines=10_000
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), port=port, log_config=None, ws="websockets-sansio")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # pytest owns signals
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture(params=["mosquitto", "python-broker"])
def broker_url(request: pytest.FixtureRequest, scratch_dir: Path) -> Iterator[str]:
    """The test broker, and the in-process Python broker the demo falls back to."""
    if request.param == "mosquitto":
        yield request.getfixturevalue("mqtt_url")
        return
    with LocalPythonBroker(Path(tempfile.mkdtemp(dir=scratch_dir)) / "amqtt") as broker:
        yield broker.url


async def test_simulated_machines_reach_the_api_and_the_live_socket(
    database_url: str,
    broker_url: str,
    api_url: str,
    engineer_headers: dict[str, str],
) -> None:
    mqtt_url = broker_url
    site = f"e2e-{uuid.uuid4().hex[:6]}"
    # No shift breaks: whatever the time of day, the machines produce while the test looks.
    specs = [replace(s, calendar=ShiftCalendar("UTC", ())) for s in demo_floor(2, site=site)]
    stop = asyncio.Event()
    ingest_settings = IngestSettings(
        database_url=database_url, mqtt_url=mqtt_url, ingest_site=site,
        ingest_client_id=f"ingest-{site}",
    )  # fmt: skip
    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_ingest(ingest_settings, stop))
        await asyncio.sleep(0.5)  # the ingest session subscribes before machines publish
        tg.create_task(
            run_simulation(
                specs,
                BrokerUrl.parse(mqtt_url),
                stop,
                speed=20.0,
                telemetry_interval_s=1.0,
                # From 5 min ago, so that at 20x it catches up with the clock in 16 s and then
                # goes on in real time: never ahead of the clock, which ingest would refuse.
                start=datetime.now(UTC) - timedelta(minutes=5),
            )
        )
        try:
            async with (
                websockets.connect(
                    f"ws://{api_url}/api/v1/live", additional_headers=engineer_headers
                ) as ws,
                httpx.AsyncClient(base_url=f"http://{api_url}", headers=engineer_headers) as http,
            ):

                async def every_machine_live() -> bool:
                    ours = [m for m in await _machines(http) if m["site"] == site]
                    return len(ours) == 2 and all(
                        m["signals"].get("TempNozzle") and m["state"] and m["last_cycle"]
                        for m in ours
                    )

                await eventually(every_machine_live, "every machine live", poll_s=0.2)
                # Other tests' sites have an imm-01 too: another machine each.
                machine = next(
                    m
                    for m in await _machines(http)
                    if m["site"] == site and m["machine_id"] == "imm-01"
                )
                places = {m["place"] for m in await _machines(http) if m["site"] == site}
                assert len(places) == 2
                assert 200 < machine["signals"]["TempNozzle"]["value"] < 260
                assert machine["signals"]["TempNozzle"]["unit"] == "degC"
                # Any state of a machine that is there: the shift may be on a break.
                assert machine["state"] in {"running", "unplanned_stop", "planned_stop", "idle"}
                assert machine["last_cycle"]["cycle_time_s"] > 10

                # The socket pushes new values as they are written, without a reload.
                seen: dict[str, float] = {}
                while len(seen) < 2:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    for update in frame.get("machines", []):
                        ours = update["place"] in places
                        if ours and "TempNozzle" in update.get("signals", {}):
                            seen[update["place"]] = update["signals"]["TempNozzle"]["value"]
                assert set(seen) == places

                health = (await http.get("/api/v1/health")).json()  # as an engineer
                assert health["status"] == "ok"
                assert health["storage_backend"] in {"postgresql", "timescaledb"}
                anonymous = {"Cookie": ""}  # the client's engineer cookie, left out
                visitor = (await http.get("/api/v1/health", headers=anonymous)).json()
                assert visitor == {"status": "ok", "database": "ok", "storage_backend": None,
                                   "version": None}  # fmt: skip
                history = await http.get(
                    f"/api/v1/machines/{machine['place']}/signals/TempNozzle/history",
                    params={"minutes": 10},
                )
                assert history.status_code == 200, history.text
                assert history.json()["points"][0]["samples"] >= 1
        finally:
            stop.set()


async def _machines(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every machine, page after page (the suite's database holds other tests' too)."""
    machines: list[dict[str, Any]] = []
    after = None
    while True:
        params = {"limit": 200} if after is None else {"limit": 200, "after": after}
        body = (await http.get("/api/v1/machines", params=params)).json()
        machines += body["machines"]
        after = body["next"]
        if after is None:
            return machines
