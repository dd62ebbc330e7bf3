"""The API on a free port, its pages and its live socket, for the tests that run the API."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
import websockets

from dashboard_api import ApiSettings, create_app
from moldlab.servers.process import free_port


@contextlib.asynccontextmanager
async def serve_api(settings: ApiSettings) -> AsyncIterator[str]:
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


async def all_machines(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every machine, page after page (the suite's database holds other tests' too)."""
    machines: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 200} if after is None else {"limit": 200, "after": after}
        response = await http.get("/api/v1/machines", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        machines += body["machines"]
        after = body["next"]
        if after is None:
            return machines


@contextlib.asynccontextmanager
async def live_frames(api_url: str, headers: dict[str, str]) -> AsyncIterator[list[dict[str, Any]]]:
    """Every machine update the live socket sends while the block runs, in order; `headers`:
    an engineer's session cookie (the socket is the workspace's)."""
    updates: list[dict[str, Any]] = []
    url = api_url.replace("http://", "ws://") + "/api/v1/live"
    async with websockets.connect(url, additional_headers=headers) as ws:

        async def read() -> None:
            async for frame in ws:
                updates.extend(json.loads(frame).get("machines", []))

        reader = asyncio.create_task(read())
        try:
            yield updates
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
