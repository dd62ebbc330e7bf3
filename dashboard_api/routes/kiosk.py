"""The visitor kiosk's API: public, and only what a visitor may see (dashboard_api.kiosk_model)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import Response

from dashboard_api.kiosk import KioskFeed
from dashboard_api.kiosk_model import Floor
from dashboard_api.problems import UNAVAILABLE
from dashboard_api.settings import ApiSettings

router = APIRouter(tags=["kiosk"])
log = logging.getLogger("moldlab.api.kiosk")


def _feed(request: Request | WebSocket) -> KioskFeed:
    return cast(KioskFeed, request.state.kiosk)


@router.get(
    "/kiosk",
    summary="The floor as the visitor kiosk shows it (public)",
    description=(
        "Today's OEE and its factors for the floor and per machine, where the planned time "
        "and the parts went, the floor's OEE hour by hour, energy per good part, each "
        "machine's state in plain words and since when, and the maintenance story (the "
        "breakdowns of the last 30 days and how long before them the system warned). One "
        "picture, taken every `MOLDLAB_KIOSK_REFRESH_S` (default 5 s) while someone looks, "
        "and the same bytes for every visitor. No signal values, reasons, addresses or ids."
    ),
    response_model=Floor,
    responses=UNAVAILABLE,
)
async def kiosk(request: Request) -> Response:
    return Response(await _feed(request).latest(), media_type="application/json")


@router.websocket("/kiosk/live")
async def kiosk_live(websocket: WebSocket) -> None:
    """Text frames: the `GET /api/v1/kiosk` picture whenever it changes, and
    {"type": "ping"} every 15 s when it does not. Beyond MOLDLAB_KIOSK_MAX_CLIENTS clients
    the handshake is refused (HTTP 403) until one leaves: nobody can open enough of them to
    exhaust the API's memory."""
    feed = _feed(websocket)
    settings = cast(ApiSettings, websocket.state.settings)
    if feed.watchers >= settings.kiosk_max_clients:
        if not feed.full:
            log.warning(
                "kiosk clients at the limit (%d): refusing more", settings.kiosk_max_clients
            )
        feed.full = True
        await websocket.close(code=1013, reason="too many kiosks: try again later")
        return
    feed.full = False
    await websocket.accept()

    async def until_closed() -> None:
        while True:  # a visitor has nothing to say: anything it sends is ignored
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    async def send(text: str) -> None:
        await websocket.send_text(text)

    watching = asyncio.create_task(feed.watch(send))
    closed = asyncio.create_task(until_closed())
    try:
        await asyncio.wait({watching, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (watching, closed):
            task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.gather(watching, closed, return_exceptions=True)
        with contextlib.suppress(Exception):
            await websocket.close()
