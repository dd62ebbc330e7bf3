"""The visitor kiosk in a real headless Chromium: every view with live values and charts, in
English and Spanish, rotating by itself, nothing fetched from outside moldlab, and the
engineers' pages out of a visitor's reach. Screenshots go to test-screenshots/TEST_NAME.

The floor, in a database of its own, as the clock runs: press A has moulded for the last
three hours but one, when its check ring broke (an alert warned 10 h before); press B has
waited, and is setting up since 30 minutes ago.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from databases import migrated_database
from lab_floor import seed_lab
from performance import Floor as Machine
from places import serve_api
from psycopg import AsyncConnection

from dashboard_api import ApiSettings

from .conftest import Browser, Page

pytestmark = pytest.mark.infra

VIEWS = ("floor", "time", "parts", "trend", "energy", "maintenance")
SITE = "lab"


@pytest.fixture(scope="module")
def database_url(database_server_url: str) -> Iterator[str]:
    with migrated_database(database_server_url, "moldlab_kiosk_page") as url:
        yield url


@pytest.fixture(scope="module")
async def presses(database_url: str) -> tuple[Machine, Machine]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as db:
        return await seed_lab(db, SITE)


def _name(machine: Machine) -> str:
    return machine.place.rsplit("/", 1)[1]


_STATE = """JSON.stringify({
  view: document.body.dataset.showing,
  lang: document.documentElement.lang,
  conn: document.getElementById("conn").className,
  tab: document.querySelector(".tab.on") && document.querySelector(".tab.on").textContent,
  visible: [...document.querySelectorAll("[data-view]")].filter(s => !s.hidden)
    .map(s => s.dataset.view),
  oee: document.getElementById("floor-oee").textContent,
  caption: document.getElementById("floor-caption").textContent,
  tiles: [...document.querySelectorAll("[data-machine]")].map(t => ({
    name: t.dataset.machine, state: t.dataset.state, text: t.textContent})),
  time: [...document.querySelectorAll("#time-legend [data-where]")].map(l => l.textContent),
  parts: [...document.querySelectorAll("#parts-bars .bar")].map(l => l.textContent),
  chart: [...document.querySelectorAll("#trend-chart canvas")].map(c => [c.width, c.height]),
  energy: document.getElementById("energy-floor").textContent,
  story: document.getElementById("story-caption").textContent,
  leads: [...document.querySelectorAll("#story-list .bar")].map(l => l.textContent),
})"""


def _until(page: Page, ok: Any, timeout_s: float = 20) -> dict[str, Any]:
    """The page's state (`_STATE`) once `ok(state)`."""
    state: dict[str, Any] = json.loads(
        page.until(_STATE, lambda text: ok(json.loads(text)), timeout_s)
    )
    return state


def _show(page: Page, view: str) -> dict[str, Any]:
    page.evaluate(f"document.querySelector('[data-tab=\"{view}\"]').click()")
    return _until(page, lambda s: s["visible"] == [view])


def _every_view(page: Page, screenshots: Path, lang: str) -> dict[str, dict[str, Any]]:
    seen = {}
    for view in VIEWS:
        seen[view] = _show(page, view)
        if view == "trend":  # uPlot has drawn on its canvas
            seen[view] = _until(page, lambda s: any(w > 100 and h > 100 for w, h in s["chart"]))
        page.screenshot(screenshots / f"{view}-{lang}.png")
    return seen


def _outside(page: Page, api_url: str) -> list[str]:
    ws_url = api_url.replace("http://", "ws://")
    return [u for u in page.requests() if not u.startswith((api_url + "/", ws_url + "/"))]


async def test_the_kiosk_shows_every_view_live_in_english_and_spanish(
    database_url: str, presses: tuple[Machine, Machine], browser: Browser, screenshots: Path
) -> None:
    a, b = presses
    settings = ApiSettings(database_url=database_url, kiosk_refresh_s=0.5)
    async with serve_api(settings) as api_url:
        page = await asyncio.to_thread(browser.open, f"{api_url}/?rotate=0&lang=en")
        floor = await asyncio.to_thread(
            _until, page, lambda s: "conn-live" in s["conn"] and len(s["tiles"]) == 2
        )
        tiles = {t["name"]: t for t in floor["tiles"]}
        assert tiles[_name(a)]["state"] == "moulding"
        assert "Moulding" in tiles[_name(a)]["text"]
        assert "OEE" in tiles[_name(a)]["text"]
        assert tiles[_name(b)]["state"] == "setting_up"
        assert "for 30 min" in tiles[_name(b)]["text"] or "for 29 min" in tiles[_name(b)]["text"]
        assert floor["oee"].endswith("%")
        assert floor["caption"].startswith("Of every 100 minutes the machines could have been")
        english = await asyncio.to_thread(_every_view, page, screenshots, "en")
        assert any("breakdowns" in line for line in english["time"]["time"])
        assert any("good parts" in line for line in english["parts"]["parts"])
        assert english["energy"]["energy"].endswith("kWh")
        assert "broke down once" in english["maintenance"]["story"]
        assert "10.0 hours ahead" in english["maintenance"]["story"]
        assert english["maintenance"]["leads"], "the warned breakdown is listed"

        # Spanish: every word of the page follows.
        await asyncio.to_thread(
            page.evaluate, "document.querySelector('[data-lang=\"es\"]').click()"
        )
        spanish = await asyncio.to_thread(_every_view, page, screenshots, "es")
        assert spanish["floor"]["lang"] == "es"
        assert spanish["floor"]["tab"] == "Planta"
        assert spanish["floor"]["caption"].startswith("De cada 100 minutos")
        assert any("averías" in line for line in spanish["time"]["time"])
        assert "se averiaron una vez" in spanish["maintenance"]["story"]
        tiles = {t["name"]: t for t in spanish["maintenance"]["tiles"]}
        assert "Inyectando" in tiles[_name(a)]["text"]

        # Live: B breaks down; its tile says so without a reload.
        await asyncio.to_thread(_show, page, "floor")
        await asyncio.to_thread(page.evaluate, "window.__kept = 'yes'")
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO machine_state (time, machine_id, state, reason, source, seq)"
                " VALUES (now(), %s, 'fault', 'heater_burnout', 'test', 1000000)",
                (b.id,),
            )
        broken = await asyncio.to_thread(
            _until, page,
            lambda s: {t["name"]: t["state"] for t in s["tiles"]}.get(_name(b)) == "breakdown",
        )  # fmt: skip
        assert "Avería" in {t["name"]: t["text"] for t in broken["tiles"]}[_name(b)]
        assert await asyncio.to_thread(page.evaluate, "window.__kept") == "yes"
        await asyncio.to_thread(page.screenshot, screenshots / "phone-es.png", 390, 844)
        assert await asyncio.to_thread(_outside, page, api_url) == []


async def test_the_kiosk_rotates_by_itself_and_a_visitor_cannot_reach_the_engineer_pages(
    database_url: str, presses: tuple[Machine, Machine], browser: Browser, screenshots: Path
) -> None:
    settings = ApiSettings(database_url=database_url, kiosk_refresh_s=0.5)
    async with serve_api(settings) as api_url:
        page = await asyncio.to_thread(browser.open, f"{api_url}/?rotate=2&lang=en")
        views = []
        deadline = time.monotonic() + 20
        while len(set(views)) < 3:
            assert time.monotonic() < deadline, views
            views.append((await asyncio.to_thread(_until, page, lambda s: "view" in s))["view"])
            await asyncio.sleep(0.5)
        assert views[0] == "floor"
        assert {"time", "parts"} <= set(views)
        # The engineers' pages: without a session, the login page instead.
        engineer = await asyncio.to_thread(browser.open, f"{api_url}/engineer")
        await asyncio.to_thread(engineer.until, "location.pathname", lambda p: p == "/login")
        await asyncio.to_thread(engineer.screenshot, screenshots / "login.png")
        assert await asyncio.to_thread(_outside, engineer, api_url) == []
        with psycopg.connect(database_url) as conn:  # and nothing a visitor did made a user
            assert conn.execute("SELECT count(*) FROM app_session").fetchone() == (0,)
