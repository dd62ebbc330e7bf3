"""The API's background task that keeps the OEE rollup (`performance_slice`) current.

Every `MOLDLAB_API_PERFORMANCE_REFRESH_S` it runs one `analytics.rollup.refresh` pass on a
connection of its own (autocommit, no statement timeout: a first pass over months of data
takes longer than any request may). Nothing it meets stops it or the API: a database that is
away or not migrated is logged once when it goes (and when why changes) and once when it is
back, and waited for quietly in between; a pass that fails otherwise logs one line and the
next pass runs. Passes
of several API processes do not overlap (refresh takes an advisory lock; the others skip).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg
from psycopg import AsyncConnection

from analytics.rollup import refresh

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 10
_DETAIL_MAX = 200  # characters of an error in a log line


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:_DETAIL_MAX]


class PerformanceRollup:
    """One named task running rollup passes until `stop()`; `passes`/`failures` count them."""

    def __init__(self, database_url: str, interval_s: float, micro_stop_s: float) -> None:
        self._url = database_url
        self._interval_s = interval_s
        self._micro_stop_s = micro_stop_s
        self._task: asyncio.Task[None] | None = None
        self._away: str | None = None  # why the database is unusable, while it is
        self.passes = 0  # passes tried
        self.failures = 0  # of which failed (database away included)

    @classmethod
    def start(cls, database_url: str, interval_s: float, micro_stop_s: float) -> PerformanceRollup:
        """Start the task (none when `interval_s` is 0)."""
        rollup = cls(database_url, interval_s, micro_stop_s)
        if interval_s > 0:
            rollup._task = asyncio.create_task(rollup.run(), name="performance-rollup")
        return rollup

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        """Wait, pass, wait, pass, ... until cancelled; the first pass after one interval (an
        API that starts and stops at once, as in tests, does not pay for a pass)."""
        conn: AsyncConnection[Any] | None = None
        try:
            while True:
                await asyncio.sleep(self._interval_s)
                conn = await self.run_pass(conn)
        finally:
            if conn is not None:
                await conn.close()

    async def run_pass(self, conn: AsyncConnection[Any] | None) -> AsyncConnection[Any] | None:
        """One pass on `conn` (a new connection when None or broken); the connection to reuse."""
        self.passes += 1
        try:
            if conn is None or conn.closed or conn.broken:
                if conn is not None:
                    await conn.close()
                conn = None
                conn = await AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
                )
            await refresh(conn, micro_stop_s=self._micro_stop_s)
        except psycopg.OperationalError as exc:
            self.failures += 1
            self._gone("the database is away", _short(exc))
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    await conn.close()
            return None
        except psycopg.errors.UndefinedTable as exc:
            self.failures += 1
            self._gone("the database is not migrated (run `moldlab db upgrade`)", _short(exc))
            return conn
        except Exception as exc:  # a supervisor: one line, and the next pass runs
            self.failures += 1
            log.warning("performance rollup pass failed: %s: %s", type(exc).__name__, _short(exc))
            return conn
        if self._away is not None:
            log.info("performance rollup: the database is back; passes run again")
            self._away = None
        return conn

    def _gone(self, why: str, detail: str) -> None:
        """Log the first failed pass of an outage (and a change of why), not the others."""
        if self._away != why:
            log.warning(
                "performance rollup: %s: %s; retrying every %g s quietly",
                why, detail, self._interval_s,
            )  # fmt: skip
        self._away = why
