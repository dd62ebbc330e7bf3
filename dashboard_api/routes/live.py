"""WebSocket /api/v1/live: pushes what changed, machine by machine, as it is written."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from dashboard_api.auth import session_of
from dashboard_api.live import LiveHub

router = APIRouter(tags=["live"])
log = logging.getLogger(__name__)

_PING_S = 15.0
_PING = '{"type":"ping"}'


@router.websocket("/live")
async def live(websocket: WebSocket) -> None:
    """Frames: {"type": "update", "machines": [changed fields per machine]} and pings.
    Engineers and admins only: without a session the handshake is refused (HTTP 403), as
    it is from a page of another site (its Origin is not this host)."""
    hub = cast(LiveHub, websocket.state.hub)
    if not _same_origin(websocket):
        await websocket.close(code=1008, reason="a page of another site")
        return
    async with websocket.state.pool.connection() as conn:
        session = await session_of(websocket, conn)
    if session is None:
        await websocket.close(code=1008, reason="log in first")
        return
    await websocket.accept()
    queue = hub.subscribe()
    try:
        while hub.is_subscribed(queue):
            try:
                text = await asyncio.wait_for(queue.get(), _PING_S)
            except TimeoutError:
                text = _PING
            await websocket.send_text(text)
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(queue)


def _same_origin(websocket: WebSocket) -> bool:
    """No Origin (not a browser), or the Origin's host is the host asked."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    return origin.split("://", 1)[-1] == websocket.headers.get("host", "")
