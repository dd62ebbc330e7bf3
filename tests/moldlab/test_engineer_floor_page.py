"""The engineers' live floor (/engineer) keys its tiles by place: two sites' imm-01 are two
tiles, each kept live."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from logins import login_headers
from places import serve_api

from dashboard_api import ApiSettings
from dashboard_api.auth import COOKIE

from .conftest import Browser

pytestmark = pytest.mark.infra

_TILES = """JSON.stringify([...document.querySelectorAll("[data-place]")].map(t => ({
  place: t.dataset.place,
  id: t.querySelector(".mid").textContent,
  loc: t.querySelector(".loc").textContent,
  state: t.dataset.state,
  nozzle: (t.querySelector('[data-signal="TempNozzle"]') || {}).textContent || null,
})))"""


def _seed(database_url: str, sites: list[str]) -> None:
    """imm-01 on each site, running on the first, in fault on the second, each its nozzle."""
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(
            "INSERT INTO signal (name, unit) VALUES ('TempNozzle', 'degC') ON CONFLICT DO NOTHING"
        )
        for i, (site, state) in enumerate(zip(sites, ("running", "fault"), strict=True)):
            db.execute(
                "WITH m AS (INSERT INTO machine (machine_key, site, area, line, last_seen)"
                " VALUES ('imm-01', %s, 'hall', 'line-1', now()) RETURNING id),"
                " s AS (INSERT INTO machine_state (time, machine_id, state, source, seq)"
                " SELECT now(), id, %s, 'page', %s FROM m)"
                " INSERT INTO latest_value (machine_id, signal_id, time, value)"
                " SELECT m.id, s.id, now(), %s FROM m, signal s WHERE s.name = 'TempNozzle'",
                (site, state, i, 210.0 + 40 * i),
            )


async def _tiles(page: Any, sites: list[str]) -> dict[str, dict[str, Any]]:
    tiles = json.loads(await asyncio.to_thread(page.evaluate, _TILES))
    return {t["place"]: t for t in tiles if t["place"].split("/")[0] in sites}


async def test_two_sites_machines_of_one_id_are_two_tiles(
    database_url: str, browser: Browser, screenshots: Path
) -> None:
    cookie = login_headers(database_url)["Cookie"].split("=", 1)[1]
    tag = uuid.uuid4().hex[:8]
    sites = [f"00-{tag}-a", f"00-{tag}-b"]  # first by place: on the page whatever else is there
    _seed(database_url, sites)
    places = [f"{site}/hall/line-1/imm-01" for site in sites]
    settings = ApiSettings(database_url=database_url, live_interval_s=0.2)
    async with serve_api(settings) as api_url:
        await asyncio.to_thread(browser.set_cookie, api_url, COOKIE, cookie)
        page = await asyncio.to_thread(browser.open, f"{api_url}/engineer")
        deadline = asyncio.get_running_loop().time() + 20
        while len(tiles := await _tiles(page, sites)) < 2 or not all(
            t["nozzle"] for t in tiles.values()
        ):
            assert asyncio.get_running_loop().time() < deadline, tiles
            await asyncio.sleep(0.2)
        one, two = tiles[places[0]], tiles[places[1]]
        assert one["id"] == two["id"] == "imm-01"
        assert (one["loc"], two["loc"]) == (
            f"{sites[0]} / hall / line-1",
            f"{sites[1]} / hall / line-1",
        )
        assert (one["state"], two["state"]) == ("running", "fault")
        assert (float(one["nozzle"]), float(two["nozzle"])) == (210.0, 250.0)

        # A live change of the second reaches its tile, not the first's.
        with psycopg.connect(database_url, autocommit=True) as db:
            db.execute(
                "UPDATE latest_value SET value = 255, time = now() FROM machine m"
                " WHERE m.id = latest_value.machine_id AND m.place = %s",
                (places[1],),
            )
        while (tiles := await _tiles(page, sites))[places[1]]["nozzle"] != "255.0":
            assert asyncio.get_running_loop().time() < deadline + 20, tiles
            await asyncio.sleep(0.2)
        assert tiles[places[0]]["nozzle"] == "210.0"
        assert len(tiles) == 2
        await asyncio.to_thread(page.screenshot, screenshots / "engineer-floor.png")
