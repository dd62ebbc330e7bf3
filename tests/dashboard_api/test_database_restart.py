"""After PostgreSQL restarts, the API's next requests are answered: its pool hands out no
connection the restart killed (issue 16: the first answered 500 AdminShutdown, or 503)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from databases import own_server
from places import serve_api

from dashboard_api import ApiSettings

pytestmark = pytest.mark.infra


async def test_the_first_requests_after_a_database_restart_are_answered(
    scratch_dir: Path,
) -> None:
    with own_server(scratch_dir) as (server, database_url):
        settings = ApiSettings(database_url=database_url, api_performance_refresh_s=0)
        async with (
            serve_api(settings) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as http,
        ):
            # Several at once: the pool opens more than one connection.
            answers = await asyncio.gather(*(http.get("/api/v1/health") for _ in range(6)))
            assert {a.status_code for a in answers} == {200}
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)
            answers = await asyncio.gather(*(http.get("/api/v1/health") for _ in range(6)))
            assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
            kiosk = await http.get("/api/v1/kiosk")
            assert kiosk.status_code == 200, kiosk.text
