"""The engineer workspace in a real headless Chromium: an engineer logs in through the login
page, drills from the site's OEE down to a machine's losses, exports the table as CSV, and
acknowledges an alert, which records who and when; a visitor is sent to the login page; the
pages ask nothing outside moldlab. Screenshots go to test-screenshots/TEST_NAME.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from databases import migrated_database
from lab_floor import seed_lab
from logins import login_headers
from performance import Floor as Machine
from places import serve_api
from psycopg import AsyncConnection

from dashboard_api import ApiSettings
from dashboard_api.accounts import hash_password
from dashboard_api.auth import COOKIE

from .conftest import Browser, Page

pytestmark = pytest.mark.infra

SITE = "works"


@pytest.fixture(scope="module")
def database_url(database_server_url: str) -> Iterator[str]:
    with migrated_database(database_server_url, "moldlab_workspace") as url:
        yield url


@pytest.fixture(scope="module")
async def presses(database_url: str) -> tuple[Machine, Machine]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as db:
        return await seed_lab(db, SITE)


_BELOW = """JSON.stringify([...document.querySelectorAll('[data-table=below] tbody tr')]
  .map(r => r.textContent))"""
_LOSSES = "JSON.stringify([...document.querySelectorAll('[data-loss]')].map(n => n.dataset.loss))"


def _click_row(page: Page, text: str) -> None:
    page.evaluate(
        "[...document.querySelectorAll('[data-table=below] tbody tr')]"
        f".find(r => r.textContent.includes({json.dumps(text)})).click()"
    )


def _the_engineers_day(
    page: Page, api_url: str, a: Machine, name: str, password: str, screenshots: Path
) -> None:
    # The login page first: the workspace needs a session.
    page.until("location.pathname", lambda p: p == "/login")
    page.until("(document.getElementById('login') || {dataset: {}}).dataset.ready === 'yes'")
    page.evaluate(
        f"document.getElementById('name').value = {json.dumps(name)};"
        f"document.getElementById('password').value = {json.dumps(password)};"
        "document.getElementById('login').requestSubmit()"
    )
    page.until("location.pathname", lambda p: p == "/engineer/performance")
    # The site's OEE, then drill: site -> area -> line -> machine.
    site, area, line, machine = a.place.split("/")
    page.until("document.body.dataset.place", lambda p: p == site)
    for step, into in ((area, f"{site}/{area}"), (line, f"{site}/{area}/{line}"),
                       (machine, a.place)):  # fmt: skip
        page.until(_BELOW, lambda rows, step=step: any(step in r for r in json.loads(rows)))
        _click_row(page, step)
        page.until("document.body.dataset.place", lambda p, into=into: p == into)
        page.until("document.body.dataset.loading", lambda v: v == "no")
    losses = json.loads(page.until(_LOSSES, lambda v: "fault/check_ring_failure" in v))
    assert {"availability loss", "speed loss", "quality loss", "valuable time"} <= set(losses)
    assert "scrap/short_shot" in losses
    assert page.until("document.getElementById('error').hidden")
    csv = page.evaluate("document.querySelector('[data-table=below]')._csv()")
    header, row = csv.splitlines()[:2]
    assert header.startswith("machine,OEE,Availability,Performance,Quality")
    assert row.startswith(f"{machine},")
    assert page.until("document.querySelectorAll('#trend canvas').length") > 0
    page.screenshot(screenshots / "performance-machine.png", 1600, 1400)

    # Maintenance: the open alert, acknowledged from the page.
    page.navigate(f"{api_url}/engineer/maintenance")
    page.until("document.body.dataset.loaded", lambda v: v == "yes")
    assert "hydraulic pressure ripple" in page.evaluate("document.body.textContent")
    page.screenshot(screenshots / "maintenance-before.png", 1600, 1000)
    page.evaluate("document.querySelector('[data-ack]').click()")
    acked = page.until("(document.querySelector('[data-acked-by]') || {}).textContent || ''")
    assert acked.startswith(f"{name}, ")
    page.screenshot(screenshots / "maintenance-acknowledged.png", 1600, 1000)


async def test_an_engineer_logs_in_drills_to_a_machines_losses_and_acknowledges_an_alert(
    database_url: str, presses: tuple[Machine, Machine], browser: Browser, screenshots: Path
) -> None:
    a, _ = presses
    name, password = f"eng-{uuid.uuid4().hex[:6]}", "a long enough passphrase"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO app_user (name, role, password_hash) VALUES (%s, 'engineer', %s)",
            (name, hash_password(password)),
        )
    async with serve_api(ApiSettings(database_url=database_url)) as api_url:
        page = await asyncio.to_thread(browser.open, f"{api_url}/engineer/performance")
        await asyncio.to_thread(_the_engineers_day, page, api_url, a, name, password, screenshots)
        outside = [u for u in await asyncio.to_thread(page.requests)
                   if not u.startswith((api_url + "/", "blob:"))]  # fmt: skip
        assert outside == []
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT acknowledged_by, acknowledged_at IS NOT NULL, status FROM pdm_alert"
            " WHERE component = 'hydraulic_pump'"
        ).fetchone()
    assert row == (name, True, "acknowledged")


def _machine_page(page: Page, a: Machine, screenshots: Path) -> None:
    page.until("document.body.dataset.loaded || document.getElementById('error').textContent",
           lambda v: v == a.place)  # fmt: skip
    body = page.evaluate("JSON.stringify(document.body.dataset)")
    shown = json.loads(body)
    # The mould m1's cushion: ten cycles far below the limits, each breaking rule 1.
    assert int(shown["spcPoints"]) > 100
    assert int(shown["spcViolations"]) >= 10
    assert int(shown["historyPoints"]) >= 100  # two hours of 1-minute buckets, less the newest
    text = page.evaluate("document.body.textContent")
    assert "J-100" in text
    assert "Cpk" in page.evaluate("document.querySelector('[data-table=capability]').textContent")
    assert page.evaluate("document.querySelectorAll('#spc canvas, #history canvas').length") >= 2
    # Zoomed out to a month: hour-wide buckets, from the aggregates on TimescaleDB.
    page.evaluate("const m = document.getElementById('minutes'); m.value = '43200';"
                  "m.dispatchEvent(new Event('change'))")  # fmt: skip
    caption = page.until("document.getElementById('history-caption').textContent",
                     lambda c: c.startswith("60-minute"))  # fmt: skip
    assert "buckets" in caption
    assert int(page.until("document.body.dataset.historyPoints", lambda n: int(n) <= 3)) >= 2
    jobs = page.evaluate("document.querySelector('[data-table=jobs]')._csv()")
    assert jobs.splitlines()[0] == "Time,Job,Mould,Status,Cavities,Order parts,Material"
    page.screenshot(screenshots / "machine.png", 1600, 1500)


async def test_a_machines_spc_capability_signal_history_and_jobs(
    database_url: str, presses: tuple[Machine, Machine], browser: Browser, screenshots: Path
) -> None:
    a, _ = presses
    cookie = login_headers(database_url)["Cookie"].split("=", 1)[1]
    async with serve_api(ApiSettings(database_url=database_url)) as api_url:
        await asyncio.to_thread(browser.set_cookie, api_url, COOKIE, cookie)
        page = await asyncio.to_thread(
            browser.open, f"{api_url}/engineer/machine?place={a.place}&parameter=CushionStroke"
        )
        await asyncio.to_thread(_machine_page, page, a, screenshots)


async def test_a_visitor_cannot_reach_the_workspace(
    database_url: str, presses: tuple[Machine, Machine], browser: Browser
) -> None:
    async with serve_api(ApiSettings(database_url=database_url)) as api_url:
        for path in ("/engineer", "/engineer/performance", "/engineer/machine",
                     "/engineer/maintenance"):  # fmt: skip
            page = await asyncio.to_thread(browser.open, f"{api_url}{path}")
            where = await asyncio.to_thread(
                page.until, "location.pathname + location.search", lambda p: "login" in p
            )
            assert where == f"/login?next={path}"
