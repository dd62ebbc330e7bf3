"""Who may call what: every route of the OpenAPI document, called as an anonymous visitor, an
engineer and an admin. A route that is not in the map below fails the test until someone
decides who may call it."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
import websockets
from logins import login_headers
from places import serve_api

from dashboard_api import ApiSettings, create_app

pytestmark = pytest.mark.infra

PUBLIC, ENGINEER, ANYONE_LOGGED_IN = "public", "engineer", "logged in"
ACCESS = {
    ("GET", "/api/v1/health"): PUBLIC,
    ("GET", "/api/v1/kiosk"): PUBLIC,
    ("GET", "/api/v1/machines"): ENGINEER,
    ("GET", "/api/v1/machines/{site}/{area}/{line}/{machine}/signals/{signal}/history"): ENGINEER,
    ("GET", "/api/v1/machines/{site}/{area}/{line}/{machine}/jobs"): ENGINEER,
    ("GET", "/api/v1/machines/{site}/{area}/{line}/{machine}/spc/{parameter}"): ENGINEER,
    ("GET", "/api/v1/machines/{site}/{area}/{line}/{machine}/capability/{parameter}"): ENGINEER,
    ("GET", "/api/v1/performance/{place}/oee"): ENGINEER,
    ("GET", "/api/v1/performance/{place}/losses"): ENGINEER,
    ("GET", "/api/v1/performance/{place}/downtime"): ENGINEER,
    ("GET", "/api/v1/performance/{place}/reliability"): ENGINEER,
    ("GET", "/api/v1/maintenance/predictions"): ENGINEER,
    ("GET", "/api/v1/maintenance/alerts"): ENGINEER,
    ("GET", "/api/v1/maintenance/model"): ENGINEER,
    ("POST", "/api/v1/maintenance/alerts/{alert_id}/acknowledge"): ENGINEER,
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("GET", "/api/v1/auth/session"): ANYONE_LOGGED_IN,
    ("POST", "/api/v1/auth/logout"): ANYONE_LOGGED_IN,
}
_VALUES = {"site": "demo", "area": "hall-a", "line": "line-1", "machine": "imm-01",
           "signal": "TempNozzle", "parameter": "CushionStroke", "place": "demo",
           "alert_id": "999999999"}  # fmt: skip


def _routes() -> list[tuple[str, str]]:
    spec = create_app(ApiSettings(database_url="postgresql://unused@127.0.0.1:1/none")).openapi()
    return [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops]


def test_every_route_has_a_decided_access() -> None:
    assert sorted(_routes()) == sorted(ACCESS)


@pytest.mark.parametrize(("method", "path"), sorted(ACCESS))
async def test_anonymous_engineer_and_admin_get_what_the_map_says(
    api_url: str, database_url: str, method: str, path: str
) -> None:
    url = re.sub(r"\{(\w+)\}", lambda m: _VALUES[m.group(1)], path)
    body = {"name": "nobody", "password": "not a password"} if path.endswith("/login") else None
    kind = ACCESS[(method, path)]
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        anonymous = await http.request(method, url, json=body)
        as_role = {
            role: await http.request(
                method, url, json=body, headers=login_headers(database_url, role, csrf=True)
            )
            for role in ("engineer", "admin")
        }
    if kind == PUBLIC:
        assert anonymous.status_code not in (403,), anonymous.text
        if not path.endswith("/login"):  # a failed login is 401 for anyone
            assert anonymous.status_code != 401, anonymous.text
    else:
        assert anonymous.status_code == 401, anonymous.text
    for role, answer in as_role.items():
        if path.endswith("/login"):
            assert answer.status_code == 401, (role, answer.text)  # a wrong password
        else:
            assert answer.status_code not in (401, 403), (role, answer.status_code, answer.text)
            assert answer.status_code < 500, (role, answer.text)


async def test_health_tells_a_visitor_only_whether_it_is_up(
    api_url: str, engineer_headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        visitor = (await http.get("/api/v1/health")).json()
        engineer = (await http.get("/api/v1/health", headers=engineer_headers)).json()
    assert visitor == {"status": "ok", "database": "ok", "storage_backend": None, "version": None}
    assert engineer["storage_backend"] in ("postgresql", "timescaledb")
    assert engineer["version"]


async def test_the_live_socket_of_every_signal_is_for_engineers_only(
    api_url: str, engineer_headers: dict[str, str]
) -> None:
    url = api_url.replace("http://", "ws://") + "/api/v1/live"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url):
            pass
    assert refused.value.response.status_code == 403
    # A page of another site, even in a logged-in engineer's browser: refused too.
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(
            url,
            additional_headers=engineer_headers,
            origin=websockets.Origin("http://evil.example"),
        ):
            pass
    origin = websockets.Origin(api_url)
    async with websockets.connect(url, additional_headers=engineer_headers, origin=origin) as ws:
        await ws.ping()


async def test_the_kiosk_socket_is_public(api_url: str) -> None:
    async with websockets.connect(api_url.replace("http://", "ws://") + "/api/v1/kiosk/live") as ws:
        frame = json.loads(await ws.recv(decode=True))
    assert {"as_of", "floor", "machines", "maintenance"} <= set(frame)


async def test_kiosk_clients_beyond_the_limit_are_refused_until_one_leaves(
    database_url: str,
) -> None:
    async with serve_api(ApiSettings(database_url=database_url, kiosk_max_clients=2)) as api:
        url = api.replace("http://", "ws://") + "/api/v1/kiosk/live"
        async with websockets.connect(url) as one, websockets.connect(url) as two:
            await one.recv()
            await two.recv()  # both watching
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(url):
                    pass
            assert refused.value.response.status_code == 403
        deadline = asyncio.get_running_loop().time() + 10
        while True:  # the two have gone: room again
            try:
                async with websockets.connect(url) as three:
                    assert json.loads(await three.recv())["as_of"]
                    break
            except websockets.InvalidStatus:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.1)
