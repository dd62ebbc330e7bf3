"""Messages made but not yet published: in memory until the durable SQLite outbox replaces it.

The outbox keeps this shape (put; peek, publish, ack; close) so that neither the pollers
nor the MQTT publisher change, and brings the persisted sequence counter with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import NamedTuple

_log = logging.getLogger(__name__)


class Outgoing(NamedTuple):
    topic: str
    payload: bytes


class PendingMessages:
    """Encoded messages waiting for the broker, oldest first; when full, the oldest go."""

    def __init__(self, max_messages: int = 10_000) -> None:
        self._items: deque[Outgoing] = deque(maxlen=max_messages)
        self._changed = asyncio.Event()
        self.closed = asyncio.Event()
        self._dropping = False  # log once per episode, not once per message

    def __len__(self) -> int:
        return len(self._items)

    def put(self, topic: str, payload: bytes) -> None:
        if len(self._items) == self._items.maxlen and not self._dropping:
            _log.warning("%d messages wait for the broker: dropping the oldest", len(self))
            self._dropping = True
        self._items.append(Outgoing(topic, payload))
        self._changed.set()

    async def peek(self) -> Outgoing | None:
        """The oldest message, once there is one; None when closed and empty."""
        while not self._items:
            if self.closed.is_set():
                return None
            self._changed.clear()
            await self._changed.wait()
        return self._items[0]

    def ack(self, item: Outgoing) -> None:
        """`item` reached the broker: forget it (unless it was dropped meanwhile)."""
        if self._items and self._items[0] is item:
            self._items.popleft()
            self._dropping = False

    def close(self) -> None:
        """No more messages will come: `peek` returns None once the rest are published."""
        self.closed.set()
        self._changed.set()
