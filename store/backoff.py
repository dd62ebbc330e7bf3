"""Jittered exponential backoff between attempts to reach the broker or the database."""

from __future__ import annotations

import asyncio
import random


class Backoff:
    """Jittered exponential backoff: 0.5 s doubling to `max_s` (30 s)."""

    def __init__(self, first_s: float = 0.5, max_s: float = 30.0) -> None:
        self._first_s = first_s
        self._max_s = max_s
        self._next_s = first_s

    def reset(self) -> None:
        self._next_s = self._first_s

    async def wait(self, stop: asyncio.Event, wake: asyncio.Event | None = None) -> None:
        """Sleep the next delay, or less if `stop` (or `wake`) is set meanwhile."""
        delay = self._next_s * random.uniform(0.5, 1.5)
        self._next_s = min(self._next_s * 2, self._max_s)
        events = [stop] if wake is None else [stop, wake]
        waiters = [asyncio.create_task(e.wait()) for e in events]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
