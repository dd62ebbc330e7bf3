"""The visitor kiosk's API: today's figures as the engineers' API computes them, a picture
that holds only what a visitor may see, and one serialisation for any number of visitors.

The floor: a site no plant file names (planned 24 h a day, UTC), seen at 10:00 on
24 November 2026. Press A moulds from midnight, breaks down (check ring) 06:00-07:00 and
moulds again: 10 h planned, 9 h moulding, availability 0.9 exactly. Press B waits from
midnight and has been setting up since 09:00; then its source died: no data. An alert on
A opened at 20:00 the evening before and closed when the check ring failed: 10 h ahead.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from databases import migrated_database
from performance import Floor as Machine
from performance import every
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from analytics.report import PerformanceSettings
from dashboard_api import kiosk as kiosk_module
from dashboard_api.kiosk import KioskFeed
from dashboard_api.kiosk_model import Floor

pytestmark = pytest.mark.infra

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 11, 24, tzinfo=UTC)
SITE = "kiosk"


def at(hours: float) -> datetime:
    return MIDNIGHT + timedelta(hours=hours)


@pytest.fixture(scope="module")
def database_url(database_server_url: str) -> Iterator[str]:
    with migrated_database(database_server_url, "moldlab_kiosk") as url:
        yield url


@pytest.fixture(scope="module")
async def presses(database_url: str) -> tuple[Machine, Machine]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as db:
        a = await Machine.machine(db, SITE)
        b = await Machine.machine(db, SITE)
        await a.states([(at(0), "running", None), (at(6), "fault", "check_ring_failure"),
                        (at(7), "running", None)])  # fmt: skip
        good = every(at(0), at(6), 60, 60) + every(at(7), NOW, 60, 60)
        await a.cycles(good[20:], parts=1, job=None, cycle_s=60, kwh=0.1)
        await a.cycles(good[:20], parts=1, job=None, cycle_s=60, kwh=0.1, quality="bad",
                       defect="short_shot")  # fmt: skip
        await b.states([(at(0), "idle", None), (at(9), "setup", "mould_change")])
        await db.execute(
            "INSERT INTO edge_status (time, edge_key, online, detail, source, seq, received_at)"
            " VALUES (%s, %s, false, 'lost 10.0.0.7', 'test', 1, %s)",
            (at(9.5), b.place, at(9.5)),
        )
        await db.execute("INSERT INTO signal (name, unit) VALUES ('TempNozzle', 'degC')"
                         " ON CONFLICT DO NOTHING")  # fmt: skip
        await db.execute(
            "INSERT INTO latest_value (machine_id, signal_id, time, value)"
            " SELECT %s, id, %s, 231.25 FROM signal WHERE name = 'TempNozzle'",
            (a.id, at(9.9)),
        )
        await db.execute(
            "INSERT INTO pdm_alert (machine_id, component, opened_at, status, closed_at,"
            " close_reason, last_alarm_at, p_8h, p_24h, rul_h, evidence, model)"
            " VALUES (%s, 'check_ring', %s, 'closed', %s, 'failed', %s, 0.7, 0.9, 9.5,"
            " '[]', 'm')",
            (a.id, at(-4), at(6), at(5.9)),
        )
        return a, b


def _feed(pool: AsyncConnectionPool, interval_s: float = 60.0) -> KioskFeed:
    return KioskFeed(pool, interval_s, PerformanceSettings(), max_machines=200, clock=lambda: NOW)


async def _picture(database_url: str) -> dict[str, Any]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2) as pool:
        text = await _feed(pool).latest()
    picture: dict[str, Any] = json.loads(text)
    return picture


async def test_todays_figures_are_those_of_the_engineers_report(
    database_url: str, presses: tuple[Machine, Machine], engineer_headers: dict[str, str]
) -> None:
    a, b = presses
    picture = await _picture(database_url)
    machines = {m["name"]: m for m in picture["machines"]}
    shown_a, shown_b = machines[a.place.rsplit("/", 1)[1]], machines[b.place.rsplit("/", 1)[1]]
    assert picture["day"] == "2026-11-24"
    assert shown_a["availability"] == pytest.approx(0.9, abs=1e-9)
    assert shown_a["state"] == "moulding"
    assert shown_a["state_since"].startswith("2026-11-24T07:00:00")
    assert shown_b["state"] == "no_data"  # its source died at 09:30
    assert shown_a["good_parts"] + shown_a["scrap_parts"] == 538
    assert shown_a["scrap_parts"] == 20
    # The engineers' API over the same day and machines gives the same figures.
    from places import serve_api

    from dashboard_api import ApiSettings

    async with (
        serve_api(ApiSettings(database_url=database_url)) as url,
        httpx.AsyncClient(base_url=url, headers=engineer_headers, timeout=30) as http,
    ):
        day = {"from": MIDNIGHT.isoformat(), "to": NOW.isoformat(), "bucket": "range"}
        oee = f"/api/v1/performance/{SITE}/oee"
        rows = (await http.get(oee, params={**day, "level": "machine"})).json()
        site = (await http.get(oee, params=day)).json()[0]
    by_place = {r["place"]: r for r in rows}
    for press in (a, b):
        kpis = by_place[press.place]["kpis"]
        shown = machines[press.place.rsplit("/", 1)[1]]
        assert shown["oee"] == kpis["oee"]
        assert shown["performance"] == kpis["effectiveness"]
        assert shown["quality"] == kpis["quality"]
        assert shown["kwh_per_good_part"] == kpis["kwh_per_good_part"]
    assert picture["floor"]["oee"] == pytest.approx(site["kpis"]["oee"], rel=1e-12)
    assert picture["floor"]["good_parts"] == site["counts"]["good"] == 518
    # Where the time went adds up to the planned time, and the breakdown hour is there.
    times = {t["where"]: t["seconds"] for t in picture["time"]}
    assert sum(times.values()) == pytest.approx(site["times"]["planned_busy_s"], rel=1e-9)
    assert times["breakdowns"] == pytest.approx(3600)
    assert times["waiting"] == pytest.approx(9 * 3600)  # B idle 00:00-09:00
    parts = {p["what"]: p["parts"] for p in picture["parts"]}
    assert parts == {"good": 518, "short_shot": 20}


async def test_the_trend_holds_the_last_hours_and_the_running_one(
    database_url: str, presses: tuple[Machine, Machine]
) -> None:
    trend = (await _picture(database_url))["trend"]
    assert [p["start"][11:16] for p in trend] == [f"{h:02d}:00" for h in range(2, 10)]
    by_hour = {p["start"][11:13]: p["factors"] for p in trend}
    # 06:00-07:00: A broke down, B waited: nothing moulded.
    assert by_hour["06"]["availability"] == 0
    # 03:00-04:00: A moulded the whole hour, B waited: availability 1/2.
    assert by_hour["03"]["availability"] == pytest.approx(0.5)


async def test_the_maintenance_story_tells_how_long_before_the_breakdown_it_warned(
    database_url: str, presses: tuple[Machine, Machine]
) -> None:
    story = (await _picture(database_url))["maintenance"]
    assert story["breakdowns"] == 1
    assert story["warned"] == 1
    assert story["median_lead_h"] == pytest.approx(10.0)
    assert story["recent"][0]["lead_h"] == pytest.approx(10.0)


def _keys(value: Any, path: str = "") -> set[str]:
    if isinstance(value, dict):
        return {f"{path}.{k}" for k in value} | {
            key for k, v in value.items() for key in _keys(v, f"{path}.{k}")
        }
    if isinstance(value, list):
        return {key for item in value for key in _keys(item, f"{path}[]")}
    return set()


def _model_keys(model: type[BaseModel], path: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(f"{path}.{name}")
        for inner in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                keys |= _model_keys(inner, f"{path}.{name}")
            for arg in getattr(inner, "__args__", ()):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    keys |= _model_keys(arg, f"{path}.{name}[]")
    return keys


async def test_a_visitor_sees_no_signal_reason_address_or_id(
    database_url: str, presses: tuple[Machine, Machine]
) -> None:
    a, b = presses
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2) as pool:
        text = await _feed(pool).latest()
    for secret in ("TempNozzle", "231.25", "check_ring", "mould_change", "source offline",
                   "10.0.0.7", "gateway", f'"{a.id}"', a.place, b.place, "evidence"):  # fmt: skip
        assert secret not in text, secret
    # Only the fields of the kiosk's own models: nothing copied through from elsewhere.
    assert _keys(json.loads(text)) <= _model_keys(Floor)


async def test_one_serialisation_per_picture_and_a_stuck_visitor_holds_up_nobody(
    database_url: str, presses: tuple[Machine, Machine], monkeypatch: pytest.MonkeyPatch
) -> None:
    dumps = 0
    original = Floor.model_dump_json

    def counted(self: Floor, **kwargs: Any) -> str:
        nonlocal dumps
        dumps += 1
        return original(self, **kwargs)

    monkeypatch.setattr(Floor, "model_dump_json", counted)
    monkeypatch.setattr(kiosk_module, "SEND_TIMEOUT_S", 0.2)
    clock = iter(NOW + timedelta(seconds=s) for s in range(10_000))
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2) as pool:
        feed = KioskFeed(pool, 0.05, PerformanceSettings(), max_machines=200,
                         clock=lambda: next(clock))  # fmt: skip
        received: list[list[str]] = [[] for _ in range(200)]

        def sender(box: list[str]) -> Any:
            async def send(text: str) -> None:
                box.append(text)

            return send

        async def stuck(text: str) -> None:
            await asyncio.Event().wait()  # a visitor whose connection takes nothing

        runner = asyncio.create_task(feed.run())
        watchers = [asyncio.create_task(feed.watch(sender(box))) for box in received]
        stuck_one = asyncio.create_task(feed.watch(stuck))
        try:
            # The trend's running hour changes with the clock: a new picture every pass.
            async with asyncio.timeout(30):
                while min(len(box) for box in received) < 3:
                    await asyncio.sleep(0.05)
            done, _ = await asyncio.wait({stuck_one}, timeout=5)
            assert stuck_one in done  # dropped after SEND_TIMEOUT_S, while the others go on
            assert isinstance(stuck_one.exception(), TimeoutError)
        finally:
            for task in (runner, *watchers, stuck_one):
                task.cancel()
            await asyncio.gather(runner, *watchers, stuck_one, return_exceptions=True)
    versions = feed.version
    assert versions >= 3
    assert dumps <= versions + 2  # one per pass, never one per visitor (200 of them here)
    assert all(box[:2] == received[0][:2] for box in received)  # the same bytes for all
