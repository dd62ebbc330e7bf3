"""WebSocket /api/v1/live: pushes what changed, machine by machine, as it is written."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from dashboard_api.live import LiveHub

router = APIRouter(tags=["live"])
log = logging.getLogger(__name__)

_PING_S = 15.0


@router.websocket("/live")
async def live(websocket: WebSocket) -> None:
    """Frames: {"type": "update", "machines": [changed fields per machine]} and pings."""
    hub = cast(LiveHub, websocket.state.hub)
    await websocket.accept()
    queue = hub.subscribe()
    try:
        while hub.is_subscribed(queue):
            try:
                update = await asyncio.wait_for(queue.get(), _PING_S)
            except TimeoutError:
                update = {"type": "ping"}
            await websocket.send_json(update)
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(queue)
