"""After PostgreSQL restarts, the API's next requests are answered: its pool hands out no
connection the restart killed (issue 16: the first answered 500 AdminShutdown, or 503)."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import httpx
import pytest
from places import serve_api

from dashboard_api import ApiSettings
from moldlab.servers import LocalPostgres, create_database
from store import upgrade

pytestmark = pytest.mark.infra


async def test_the_first_requests_after_a_database_restart_are_answered(
    scratch_dir: Path,
) -> None:
    if os.environ.get("MOLDLAB_TEST_DATABASE_URL"):
        pytest.skip("MOLDLAB_TEST_DATABASE_URL names an external server this test cannot restart")
    home = scratch_dir / f"api-restart-{uuid.uuid4().hex[:8]}"
    home.mkdir(mode=0o755)
    with LocalPostgres(home / "data") as server:
        database_url = create_database(server.url, "moldlab")
        upgrade(database_url)
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
