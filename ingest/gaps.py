"""Gaps in a gateway machine's sequence numbers: reported when they last, and when filled.

A gateway numbers each machine's messages without gaps (`<gateway>:<machine>` sources), so
a number missing from message_log between two that arrived is a message on its way (the
backlog and live lanes interleave), one a broker lost (the gateway sends it again: it is
still in its outbox, unconfirmed), or one the gateway dropped when its outbox was full.
Every minute one worker (the holder of an advisory lock) looks at the last minutes of
message_log; a gap whose later message arrived over `grace` ago is logged once, and once
more when it is filled or leaves the window unfilled. The gauge
`moldlab_ingest_sequence_gap_messages` counts what is missing in the open gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
from prometheus_client import Gauge

log = logging.getLogger(__name__)

_LOCK = 0x6D6F6C64_67617073  # pg_try_advisory_lock key: "moldgaps"
_MAX_GAPS = 1_000  # looked at per check
_MAX_LINES = 10  # logged per check; the rest in one line

_GAPS = """
SELECT source, seq + 1, next - 1 FROM (
    SELECT source, seq, received_at,
           lead(seq) OVER w AS next, lead(received_at) OVER w AS next_received
    FROM message_log
    WHERE received_at > now() - %(window)s AND source LIKE '%%:%%'
    WINDOW w AS (PARTITION BY source ORDER BY seq)
) s
WHERE next > seq + 1 AND next_received < now() - %(grace)s
ORDER BY source, seq
LIMIT %(limit)s
"""
_PRESENT = "SELECT count(*) FROM message_log WHERE source = %s AND seq BETWEEN %s AND %s"

Gap = tuple[str, int, int]  # source, first and last missing seq


@dataclass
class GapWatch:
    """What one check found, and what it told, kept from check to check."""

    gauge: Gauge | None = None
    window: timedelta = timedelta(minutes=5)
    grace: timedelta = timedelta(minutes=1)
    told: set[Gap] = field(default_factory=set)

    async def check(self, conn: psycopg.AsyncConnection) -> list[Gap]:
        """Look once (autocommit `conn`); log what is new, filled or gone; the open gaps."""
        cur = await conn.execute(
            _GAPS, {"window": self.window, "grace": self.grace, "limit": _MAX_GAPS}
        )
        gaps: list[Gap] = [(s, int(a), int(b)) for s, a, b in await cur.fetchall()]
        new = [g for g in gaps if g not in self.told]
        for source, first, last in new[:_MAX_LINES]:
            log.warning(
                "source %s: seq %d-%d (%d messages) missing for over %.0f s; its gateway sends "
                "them again while they are in its outbox",
                source, first, last, last - first + 1, self.grace.total_seconds(),
            )  # fmt: skip
        if len(new) > _MAX_LINES:
            log.warning("and %d more gaps in other sources or seqs", len(new) - _MAX_LINES)
        for gap in sorted(self.told - set(gaps))[:_MAX_LINES]:
            await self._gone(conn, gap)
        self.told = set(gaps)
        if self.gauge is not None:
            self.gauge.set(sum(last - first + 1 for _, first, last in gaps))
        return gaps

    async def _gone(self, conn: psycopg.AsyncConnection, gap: Gap) -> None:
        source, first, last = gap
        cur = await conn.execute(_PRESENT, gap)
        row = await cur.fetchone()
        present = int(row[0]) if row else 0
        if present == last - first + 1:
            log.info("source %s: seq %d-%d arrived; the gap is filled", source, first, last)
        else:
            log.warning(
                "source %s: seq %d-%d left the %.0f-minute window with %d still missing (lost "
                "before the outbox: dropped when full? see the gateway's birth status)",
                source, first, last, self.window.total_seconds() / 60, last - first + 1 - present,
            )  # fmt: skip


async def run_gap_watch(
    database_url: str, watch: GapWatch, stop: asyncio.Event, *, every_s: float = 60.0
) -> None:
    """Check every `every_s` until `stop`, while this worker holds the lock (one per plant)."""
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK,))
                row = await cur.fetchone()
                while row and row[0] and not stop.is_set():  # held with the connection
                    await watch.check(conn)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), every_s)
        except psycopg.Error as exc:
            log.debug("gap watch: %s", str(exc).strip())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
