"""The API served by uvicorn on a free port, and a database connection to write rows with."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import uvicorn
from psycopg import AsyncConnection

from dashboard_api import ApiSettings, create_app
from moldlab.servers.process import free_port


@contextlib.asynccontextmanager
async def serve(settings: ApiSettings) -> AsyncIterator[str]:
    """Run the API for `settings` on a free 127.0.0.1 port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), port=port, log_config=None, ws="websockets-sansio")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # pytest owns signals
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the API did not start"
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def api_url(database_url: str) -> AsyncIterator[str]:
    async with serve(ApiSettings(database_url=database_url)) as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncConnection]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield conn
