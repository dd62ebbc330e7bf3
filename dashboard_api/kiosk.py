"""The kiosk feed: one task takes the floor's picture, serialises it once, and every visitor's
page (GET /api/v1/kiosk, WebSocket /api/v1/kiosk/live) gets those same bytes.

It works only while someone looks: a page connected, or a GET in the last minute. Each pass
reads the machines' states, today's figures per machine (the site's production day, from the
OEE rollup), the floor's last hours one by one (whole hours are kept, only the running one is
read again), and the breakdowns of the last 30 days beside the alerts that warned of them.
A visitor whose connection is slow gets the newest picture when it can take it, skipping the
ones in between; one that cannot take a picture within SEND_TIMEOUT_S is dropped. Nobody
waits for anybody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from analytics import machine_overview
from analytics.oee import Figures, MicroStops, total
from analytics.report import Bucket, Level, PerformanceSettings, group, read_slices
from dashboard_api.kiosk_model import (
    SHOWN,
    Floor,
    KioskMachine,
    MaintenanceStory,
    TrendPoint,
    WarnedBreakdown,
    factors,
    output,
    part_counts,
    time_shares,
)
from store.maintenance import alerts

log = logging.getLogger("moldlab.api.kiosk")

TREND_HOURS = 8
STORY_DAYS = 30
STORY_RECENT = 6
IDLE_AFTER_S = 60.0  # no page and no GET for this long: the feed stops reading
SEND_TIMEOUT_S = 10.0
PING_S = 15.0  # a frame at least this often, so that proxies keep the connection
PING = '{"type":"ping"}'
_DAY_LOOKBACK = timedelta(hours=48)  # covers the longest production day (25 h) and its start

_BREAKDOWNS = """
SELECT count(*) FROM (
    SELECT state, lag(state) OVER (PARTITION BY machine_id ORDER BY time) AS before, time
    FROM machine_state WHERE time >= %(since)s - interval '1 day'
) s
WHERE state = 'fault' AND before IS DISTINCT FROM 'fault' AND time >= %(since)s
"""


class KioskFeed:
    """The newest `Floor` as JSON text, and the visitors waiting for the next one."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        interval_s: float,
        performance: PerformanceSettings,
        *,
        max_machines: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._interval_s = interval_s
        self._performance = performance
        self._max_machines = max_machines
        self._clock = clock
        self.text: str | None = None  # the newest picture, serialised once
        self._floor_seen: Floor | None = None  # the newest picture itself
        self.version = 0
        self._changed: asyncio.Future[None] | None = None  # see _next
        self._watchers = 0
        self._asked_at = 0.0  # monotonic time of the last GET
        self._wake = asyncio.Event()
        self._taking = asyncio.Lock()
        self._taken_at = -math.inf  # monotonic time of the newest pass
        self._hours: dict[datetime, Figures] = {}  # whole past hours of the trend
        self._failing = False
        self.full = False  # the client limit was met (logged once until a client gets in)

    @property
    def watchers(self) -> int:
        return self._watchers

    def _idle(self) -> bool:
        """Whether the feed has stopped taking pictures: nobody looked for IDLE_AFTER_S."""
        return not self._watchers and time.monotonic() - self._asked_at >= IDLE_AFTER_S

    async def latest(self) -> str:
        """The newest picture; a fresh one first when the feed was idle (or has none yet).
        Answered from the kept picture otherwise: a GET never makes the feed read more."""
        idle = self._idle()
        self._asked_at = time.monotonic()
        if idle or self.text is None:
            async with self._taking:  # concurrent first requests share one picture
                if self._taken_at < self._asked_at - self._interval_s:
                    await self._take()
            self._wake.set()  # and the feed goes on taking them
        assert self.text is not None
        return self.text

    async def run(self) -> None:
        while True:
            if self._watchers or time.monotonic() - self._asked_at < IDLE_AFTER_S:
                try:
                    await self._take()
                except Exception as exc:  # the supervisor of the feed: log once, keep going
                    if not self._failing:
                        log.warning("kiosk paused: reading the floor failed (%.200s)", exc)
                    self._failing = True
            self._wake.clear()
            # While taking: every interval from the start of a pass, however long it took.
            pause_s = self._interval_s
            if self._watchers or time.monotonic() - self._asked_at < IDLE_AFTER_S:
                pause_s = self._taken_at + self._interval_s - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.05, pause_s))

    async def watch(self, send: Any) -> None:
        """Send every new picture to one visitor with `send(text)` until it fails."""
        if self._idle():
            self._wake.set()
        self._watchers += 1
        try:
            seen = -1
            while True:
                if self.version != seen and self.text is not None:
                    seen, text = self.version, self.text
                else:
                    try:  # shielded: one visitor's timeout must not cancel the others' wait
                        await asyncio.wait_for(asyncio.shield(self._next()), PING_S)
                        continue
                    except TimeoutError:
                        text = PING
                await asyncio.wait_for(send(text), SEND_TIMEOUT_S)
        finally:
            self._watchers -= 1

    def _next(self) -> asyncio.Future[None]:
        """Done when the next new picture is there."""
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    async def _take(self) -> None:
        self._taken_at = time.monotonic()
        now = self._clock()
        async with self._pool.connection() as conn:
            floor = await self._floor(conn, now)
        if self._failing:
            log.info("kiosk resumed")
            self._failing = False
        before, self._floor_seen = self._floor_seen, floor
        self.text = floor.model_dump_json()
        if before is not None and before.model_copy(update={"as_of": floor.as_of}) == floor:
            return  # nothing new for the pages; a GET gets the newer as_of
        self.version += 1
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    async def _floor(self, conn: AsyncConnection[Any], now: datetime) -> Floor:
        convention = self._performance.convention
        machines = await machine_overview(conn, limit=self._max_machines + 1, max_signals=1)
        more = max(0, len(machines) - self._max_machines)
        cur = await conn.execute("SELECT count(*) FROM machine")
        row = await cur.fetchone()
        more = max(more, (row[0] if row else 0) - self._max_machines)
        machines = machines[: self._max_machines]
        sites = sorted({m.site for m in machines})
        today: dict[str, Figures] = {}
        day: str | None = None
        for site in sites:
            rows = await read_slices(
                conn, site, now - _DAY_LOOKBACK, now, self._performance, now=now
            )
            groups = group(rows, Bucket.DAY, Level.MACHINE)
            if not groups:
                continue
            latest = max(g.bucket for g in groups)
            day = max(day or latest, latest)
            for g in groups:
                if g.bucket == latest:
                    today[g.place] = g.figures
        everything = total(today.values())
        shown = [
            KioskMachine(
                name=m.machine_id,
                line=f"{m.site} · {m.line}",
                state=SHOWN[m.state],
                state_since=m.state_since,
                **output(today.get(m.place, Figures()), convention).model_dump(),
            )
            for m in machines
        ]
        return Floor(
            as_of=now,
            day=day,
            floor=output(everything, convention),
            time=time_shares(everything, convention),
            parts=part_counts(everything),
            trend=await self._trend(conn, sites, now, convention),
            maintenance=await _story(conn, now),
            machines=shown,
            more_machines=more,
        )

    async def _trend(
        self, conn: AsyncConnection[Any], sites: Sequence[str], now: datetime,
        convention: MicroStops,
    ) -> list[TrendPoint]:  # fmt: skip
        """The floor's factors hour by hour over the last TREND_HOURS, the running one last."""
        this_hour = now.replace(minute=0, second=0, microsecond=0)
        starts = [this_hour - timedelta(hours=h) for h in range(TREND_HOURS, -1, -1)]
        self._hours = {h: f for h, f in self._hours.items() if h >= starts[0]}
        points = []
        for start in starts:
            end = min(start + timedelta(hours=1), now)
            if end <= start:
                continue  # now is on the hour: no running hour yet
            figures = self._hours.get(start)
            if figures is None:
                rows = []
                for site in sites:
                    rows += await read_slices(conn, site, start, end, self._performance, now=now)
                figures = total(r.figures for r in rows)
                if end == start + timedelta(hours=1):
                    self._hours[start] = figures  # a whole hour does not change
            points.append(TrendPoint(start=start, end=end, factors=factors(figures, convention)))
        return points


async def _story(conn: AsyncConnection[Any], now: datetime) -> MaintenanceStory:
    """Breakdowns of the last STORY_DAYS, and the alerts that closed when one came."""
    since = now - timedelta(days=STORY_DAYS)
    cur = await conn.execute(_BREAKDOWNS, {"since": since})
    row = await cur.fetchone()
    breakdowns = int(row[0]) if row else 0
    failed: dict[tuple[str, datetime], float] = {}
    for a in await alerts(conn, statuses=("closed",), limit=2000):
        if a.close_reason != "failed" or a.closed_at is None or a.closed_at < since:
            continue
        key = (a.place, a.closed_at)
        lead = (a.closed_at - a.opened_at).total_seconds() / 3600
        failed[key] = max(failed.get(key, 0.0), lead)
    recent = sorted(failed.items(), key=lambda kv: kv[0][1], reverse=True)
    return MaintenanceStory(
        days=STORY_DAYS,
        breakdowns=max(breakdowns, len(failed)),
        warned=len(failed),
        median_lead_h=statistics.median(failed.values()) if failed else None,
        recent=[
            WarnedBreakdown(machine=place.rsplit("/", 1)[-1], failed_at=at, lead_h=lead)
            for (place, at), lead in recent[:STORY_RECENT]
        ],
    )
