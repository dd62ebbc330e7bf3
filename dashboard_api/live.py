"""The live hub: one poller of the database, fanned out to every WebSocket client as diffs."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from psycopg_pool import AsyncConnectionPool

from analytics import MachineOverview, machine_overview

log = logging.getLogger(__name__)

Update = dict[str, Any]


def diff(before: dict[str, Update], after: dict[str, Update]) -> list[Update]:
    """Per machine (keyed by its place), the fields and signals that changed; `place` always
    kept, as what identifies the machine."""
    changes = []
    for key, now in after.items():
        was = before.get(key, {})
        changed: Update = {f: v for f, v in now.items() if f != "signals" and was.get(f) != v}
        old_signals = was.get("signals", {})
        signals = {s: v for s, v in now["signals"].items() if old_signals.get(s) != v}
        if changed or signals:
            changed["place"] = key
            if signals:
                changed["signals"] = signals
            changes.append(changed)
    return changes


class LiveHub:
    """Polls the first `max_machines` machines every `interval_s` and broadcasts what changed."""

    def __init__(
        self, pool: AsyncConnectionPool, interval_s: float, *, max_machines: int, max_signals: int
    ) -> None:
        self._pool = pool
        self._interval_s = interval_s
        self._max_machines = max_machines
        self._max_signals = max_signals
        self._clients: set[asyncio.Queue[str]] = set()
        self._last: dict[str, Update] = {}

    def subscribe(self) -> asyncio.Queue[str]:
        """A queue of JSON text frames, each serialised once for every client."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=64)
        self._clients.add(queue)
        return queue

    def clients(self) -> int:
        """Live sockets open."""
        return len(self._clients)

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self._clients.discard(queue)

    def is_subscribed(self, queue: asyncio.Queue[str]) -> bool:
        return queue in self._clients

    async def overview(self) -> list[MachineOverview]:
        """The machines it follows: the first `max_machines` by place, as a page of the API."""
        async with self._pool.connection() as conn:
            return await machine_overview(
                conn, limit=self._max_machines, max_signals=self._max_signals
            )

    async def run(self) -> None:
        failing = False
        while True:
            if not self._clients:
                # Nobody watching: no queries. The next client resyncs from /api/v1/machines.
                await asyncio.sleep(self._interval_s)
                continue
            try:
                machines = await self.overview()
            except Exception as exc:  # the supervisor of the poll: log once, keep going
                if not failing:
                    log.warning("live updates paused: database query failed (%s)", exc)
                failing = True
            else:
                if failing:
                    log.info("live updates resumed")
                failing = False
                now = {m.place: m.model_dump(mode="json") for m in machines}
                changes = diff(self._last, now)
                self._last = now
                if changes:
                    self._broadcast({"type": "update", "machines": changes})
            await asyncio.sleep(self._interval_s)

    def _broadcast(self, update: Update) -> None:
        text = json.dumps(update, separators=(",", ":"))
        for queue in list(self._clients):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                # A client this far behind resyncs from /api/v1/machines when it reconnects.
                log.info("dropping a live client that fell behind")
                self._clients.discard(queue)
