"""The API served by uvicorn on a free port (places.serve_api), and a database connection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from places import serve_api
from psycopg import AsyncConnection

from dashboard_api import ApiSettings


@pytest.fixture
async def api_url(database_url: str) -> AsyncIterator[str]:
    async with serve_api(ApiSettings(database_url=database_url)) as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncConnection]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield conn
