"""GET /api/v1/machines/{place}/jobs: a machine's job and mould history, newest first."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from databases import migrated_database
from performance import Floor as Machine
from places import serve_api
from psycopg import AsyncConnection

from dashboard_api import ApiSettings

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def database_url(database_server_url: str) -> Iterator[str]:
    with migrated_database(database_server_url, "moldlab_jobs_api") as url:
        yield url


async def test_a_machines_jobs_newest_first_bounded_and_404_for_none(
    database_url: str, engineer_headers: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    async with await AsyncConnection.connect(database_url, autocommit=True) as db:
        press = await Machine.machine(db, "jobs")
        await press.job(now - timedelta(days=3), "J-0", "m0", 1)  # outside a 2-day window
        await press.job(now - timedelta(hours=5), "J-1", "bracket-pp-4", 4)
        await press.job(now - timedelta(hours=1), "J-2", "cap-pp-8", 8)
    async with (
        serve_api(ApiSettings(database_url=database_url)) as url,
        httpx.AsyncClient(base_url=url, headers=engineer_headers, timeout=10) as http,
    ):
        path = f"/api/v1/machines/{press.place}/jobs"
        body = (await http.get(path, params={"days": 2})).json()
        assert body["place"] == press.place
        assert [(j["job_name"], j["mould"], j["active_cavities"]) for j in body["jobs"]] == [
            ("J-2", "cap-pp-8", 8), ("J-1", "bracket-pp-4", 4),
        ]  # fmt: skip
        assert body["jobs"][0]["status"] == "job_in_production"
        assert body["more"] is False
        limited = (await http.get(path, params={"days": 30, "limit": 2})).json()
        assert [j["job_name"] for j in limited["jobs"]] == ["J-2", "J-1"]
        assert limited["more"] is True
        missing = await http.get("/api/v1/machines/jobs/hall/l1/imm-none/jobs")
        assert missing.status_code == 404
        assert "no machine" in missing.json()["detail"]
        assert (await http.get(path, params={"days": 0})).status_code == 422
