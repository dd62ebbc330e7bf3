"""A database that is down or too slow answers 503 with a JSON detail, soon, never a 500."""

from __future__ import annotations

import time

import httpx
import pytest
from places import serve_api
from psycopg import AsyncConnection

from dashboard_api import ApiSettings
from moldlab.servers.process import free_port

_PATHS = ["/api/v1/machines", "/api/v1/machines/test/hall/line-1/imm-01/signals/TempNozzle/history"]


async def test_a_database_that_is_down_answers_503_within_the_timeout() -> None:
    nowhere = f"postgresql://moldlab@127.0.0.1:{free_port()}/moldlab?connect_timeout=1"
    settings = ApiSettings(database_url=nowhere, api_statement_timeout_s=0.5)
    # With a session cookie: an engineer's request (the history) must ask the database too.
    cookie = {"Cookie": "moldlab_session=some-token"}
    async with (
        serve_api(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers=cookie) as http,
    ):
        for path in _PATHS:
            started = time.monotonic()
            response = await http.get(path)
            assert response.status_code == 503, response.text
            assert response.json() == {"detail": "the database cannot be reached; try again"}
            assert response.headers["retry-after"] == "5"
            assert time.monotonic() - started < 3


@pytest.mark.infra
async def test_a_query_longer_than_the_statement_timeout_answers_503(
    database_url: str,
    db: AsyncConnection,
    engineer_headers: dict[str, str],
) -> None:
    settings = ApiSettings(database_url=database_url, api_statement_timeout_s=0.5)
    async with (
        serve_api(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers=engineer_headers) as http,
    ):
        # The API's queries wait on a lock that is held for longer than the timeout.
        async with db.transaction():
            await db.execute("LOCK TABLE machine IN ACCESS EXCLUSIVE MODE")
            for path in _PATHS:
                started = time.monotonic()
                response = await http.get(path)
                assert response.status_code == 503, response.text
                assert response.json() == {
                    "detail": "the database did not answer within 0.5 s; try again"
                }
                assert time.monotonic() - started < 3
        # And the connections it used are fine afterwards.
        assert (await http.get("/api/v1/machines?limit=1")).status_code == 200
