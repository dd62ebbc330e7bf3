"""Two sites with a machine of the same id are two machines: in the tables, the API, the socket.

Messages for demo-a/.../imm-01 and demo-b/.../imm-01 go through a real mosquitto and a real
ingest into the database, and out through the API and its live socket.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import aiomqtt
import httpx
import psycopg
import pytest
from places import all_machines, live_frames, serve_api
from watch import eventually

from contracts import (
    BrokerUrl,
    MachineState,
    Place,
    Reading,
    StateChange,
    TelemetryBatch,
    Topic,
    encode,
)
from contracts.codec import AnyMessage
from dashboard_api import ApiSettings
from ingest import IngestSettings, run_ingest

pytestmark = [pytest.mark.infra, pytest.mark.slow]


def _messages(place: Place, nozzle: float, state: MachineState) -> list[AnyMessage]:
    """A few seconds of one machine: telemetry of its nozzle and its state."""
    now = datetime.now(UTC).replace(microsecond=0)
    source = f"sim-{place.site}-{place.machine}"
    messages = [
        StateChange(
            machine_id=place.machine, ts=now - timedelta(seconds=5), source=source, seq=1,
            state=state,
        ),
        *(
            TelemetryBatch(
                machine_id=place.machine, ts=now - timedelta(seconds=4 - i), source=source,
                seq=2 + i, readings=[Reading(signal="TempNozzle", offset_ms=0, value=nozzle + i)],
            )
            for i in range(3)
        ),
    ]  # fmt: skip
    return messages


async def _publish(mqtt_url: str, place: Place, messages: list[AnyMessage]) -> None:
    """Publish `messages` of the machine at `place`: again, they are written once."""
    broker = BrokerUrl.parse(mqtt_url)
    async with aiomqtt.Client(**broker.client_options()) as client:
        for message in messages:
            topic = Topic(place.site, place.area, place.line, place.machine, message.kind)
            await client.publish(str(topic), encode(message), qos=1)


async def test_the_same_machine_id_on_two_sites_is_two_machines_end_to_end(
    database_url: str,
    mqtt_url: str,
    engineer_headers: dict[str, str],
) -> None:
    tag = uuid.uuid4().hex[:6]
    a = Place(f"demo-a-{tag}", "hall-a", "line-1", "imm-01")
    b = Place(f"demo-b-{tag}", "hall-a", "line-1", "imm-01")
    settings = IngestSettings(
        database_url=database_url, mqtt_url=mqtt_url, ingest_client_id=f"ingest-place-{tag}"
    )
    stop = asyncio.Event()
    # The socket follows every machine of the suite's database, ours among them.
    api = ApiSettings(database_url=database_url, live_interval_s=0.2, live_max_machines=10_000)
    async with (
        asyncio.TaskGroup() as tg,
        serve_api(api) as api_url,
        httpx.AsyncClient(base_url=api_url, timeout=10, headers=engineer_headers) as http,
    ):
        tg.create_task(run_ingest(settings, stop))
        try:
            async with live_frames(api_url, engineer_headers) as updates:
                sent = {
                    a: _messages(a, 210.0, MachineState.RUNNING),
                    b: _messages(b, 250.0, MachineState.FAULT),
                }

                async def both_listed() -> bool:
                    # Until ingest has subscribed, what is published is lost: sent again, the
                    # same messages are written once (source, seq).
                    for place, messages in sent.items():
                        await _publish(mqtt_url, place, messages)
                    ours = {m["place"]: m for m in await all_machines(http)}
                    return all(
                        str(p) in ours and ours[str(p)]["signals"].get("TempNozzle")
                        and ours[str(p)]["state"]
                        for p in (a, b)
                    )  # fmt: skip

                await eventually(both_listed, what="both machines in the API", poll_s=0.5)
                machines = {m["place"]: m for m in await all_machines(http)}
                one, two = machines[str(a)], machines[str(b)]
                assert one["machine_id"] == two["machine_id"] == "imm-01"
                assert (one["site"], two["site"]) == (a.site, b.site)
                assert (one["state"], two["state"]) == ("running", "fault")
                assert one["signals"]["TempNozzle"]["value"] == 212.0
                assert two["signals"]["TempNozzle"]["value"] == 252.0

                # Each history answers its own machine's data.
                for place, values in ((a, [210.0, 211.0, 212.0]), (b, [250.0, 251.0, 252.0])):
                    url = f"/api/v1/machines/{place}/signals/TempNozzle/history"
                    response = await http.get(url, params={"minutes": 5})
                    assert response.status_code == 200, response.text
                    body = response.json()
                    assert body["place"] == str(place)
                    assert sum(p["samples"] for p in body["points"]) == 3
                    assert min(p["min"] for p in body["points"]) == values[0]
                    assert max(p["max"] for p in body["points"]) == values[-1]

                # The live socket: two entries, each with its own place and values.
                async def both_live() -> bool:
                    places = {u["place"] for u in updates if "TempNozzle" in u.get("signals", {})}
                    return {str(a), str(b)} <= places

                await eventually(both_live, what="both machines on the live socket")
                nozzle = {
                    u["place"]: u["signals"]["TempNozzle"]["value"]
                    for u in updates
                    if u["place"] in {str(a), str(b)} and "TempNozzle" in u.get("signals", {})
                }
                assert nozzle == {str(a): 212.0, str(b): 252.0}
        finally:
            stop.set()

    # In the tables: two machine rows of one id, each with its own telemetry.
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT m.site, count(t.*), min(t.value) FROM machine m"
            " JOIN telemetry t ON t.machine_id = m.id WHERE m.machine_key = 'imm-01'"
            " AND m.site = ANY(%s) GROUP BY m.site ORDER BY m.site",
            ([a.site, b.site],),
        )
        assert await cur.fetchall() == [(a.site, 3, 210.0), (b.site, 3, 250.0)]
    # This test's ingest session is not needed again.
    broker = BrokerUrl.parse(mqtt_url)
    async with aiomqtt.Client(
        **broker.client_options(), identifier=settings.mqtt_client_id, clean_session=True
    ):
        pass
