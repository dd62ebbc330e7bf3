"""latest_value and machine.last_seen: written apart from the batches, once a second.

A batch commits its telemetry and claims its messages in one transaction, and is then
acknowledged. The newest value of each (machine, signal) it held, and the newest time of
each machine, are handed to LatestValues, which keeps only the newest per key and writes
them all at most once a second, in one transaction on a connection of its own. So their
cost is bounded by the number of signals, not by the rate of readings; PostgreSQL pays it
in a backend of its own while the batches are written, not between a batch and its
acknowledgement; and concurrent batches never wait for each other's row locks.

Both therefore trail telemetry by up to a second (`every_s`). What a crash of ingest leaves
out of them, the newest values of its last second, is taken from the rows written when
ingest starts again (`catch_up`). Every write keeps the newer time, so the order of
writes, from one worker or several, never matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

import psycopg

from store.backoff import Backoff

log = logging.getLogger(__name__)

# (machine id, signal id) -> (time in microseconds since 2000-01-01 UTC, value)
Latest = dict[tuple[int, int], tuple[int, float]]

# A crash loses at most the last second's newest values; telemetry this far behind a
# machine's newest reading is searched for them, by the (machine, signal, time) index.
CATCH_UP_WINDOW: Final = timedelta(minutes=10)

_UPSERT = (
    "INSERT INTO latest_value (machine_id, signal_id, time, value)"
    " SELECT m, s, timestamptz '2000-01-01Z' + t * interval '1 microsecond', v"
    " FROM unnest(%s::int4[], %s::int4[], %s::int8[], %s::float8[]) AS u(m, s, t, v)"
    " ON CONFLICT (machine_id, signal_id) DO UPDATE"
    " SET time = EXCLUDED.time, value = EXCLUDED.value"
    " WHERE latest_value.time <= EXCLUDED.time"
)

# For each signal of each machine (the pairs machine_signal holds: what exists, not every
# machine with every signal name), the newest reading near the machine's last_seen (any, for a
# machine with none yet: a gateway's first messages may be a buffer hours old), where it
# is newer than latest_value's; in key order, as the upserts go, so that two workers never
# deadlock. Then last_seen from the newest row of each kind.
_CATCH_UP = """
INSERT INTO latest_value (machine_id, signal_id, time, value)
SELECT m.id, ms.signal_id, t.time, t.value
FROM machine_signal ms
JOIN machine m ON m.id = ms.machine_id
CROSS JOIN LATERAL (
    SELECT time, value FROM telemetry
    WHERE machine_id = ms.machine_id AND signal_id = ms.signal_id
      AND time >= coalesce(m.last_seen - %(window)s, '-infinity')
    ORDER BY time DESC LIMIT 1
) t
ORDER BY m.id, ms.signal_id
ON CONFLICT (machine_id, signal_id) DO UPDATE
SET time = EXCLUDED.time, value = EXCLUDED.value
WHERE latest_value.time < EXCLUDED.time
"""
_CATCH_UP_LAST_SEEN = """
UPDATE machine m SET last_seen = newest
FROM machine m2
CROSS JOIN LATERAL (SELECT greatest(
    (SELECT max(time) FROM latest_value WHERE machine_id = m2.id),
    (SELECT max(time) FROM cycle WHERE machine_id = m2.id),
    (SELECT max(time) FROM machine_state WHERE machine_id = m2.id)) AS newest) n
WHERE m.id = m2.id AND newest > coalesce(m.last_seen, '-infinity')
"""


async def upsert_latest(cur: psycopg.AsyncCursor[object], latest: Latest) -> None:
    """Write `latest` where it is newer, in one statement, in key order (no deadlock between
    concurrent writers)."""
    ordered = sorted(latest.items())
    await cur.execute(
        _UPSERT,
        (
            [m for (m, _), _ in ordered],
            [s for (_, s), _ in ordered],
            [t for _, (t, _) in ordered],
            [v for _, (_, v) in ordered],
        ),
    )


async def update_last_seen(
    cur: psycopg.AsyncCursor[object], last_seen: dict[int, datetime]
) -> None:
    """Move each machine's last_seen forward to its time in `last_seen`, in id order."""
    await cur.executemany(
        "UPDATE machine SET last_seen = GREATEST(last_seen, %s) WHERE id = %s",
        [(t, m) for m, t in sorted(last_seen.items())],
    )


async def catch_up(conn: psycopg.AsyncConnection) -> int:
    """Bring latest_value and machine.last_seen up to the rows written (after a crash of
    ingest); how many values changed."""
    async with conn.transaction():
        cur = await conn.execute(_CATCH_UP, {"window": CATCH_UP_WINDOW})
        await conn.execute(_CATCH_UP_LAST_SEEN)
    return cur.rowcount


class LatestValues:
    """The newest values offered by committed batches, written to latest_value every `every_s`.

    latest = LatestValues(database_url)
    task = asyncio.create_task(latest.run(done))  # done: no batch will commit any more
    ...
    latest.offer(newest, last_seen)  # after each commit
    """

    def __init__(
        self,
        database_url: str,
        *,
        every_s: float = 1.0,
        on_written: Callable[[int], object] | None = None,
    ) -> None:
        """`on_written`: told how many values each write wrote (a metrics counter's inc)."""
        self._url = database_url
        self._every_s = every_s
        self._on_written = on_written
        self._pending: Latest = {}
        self._seen: dict[int, datetime] = {}  # machine id -> newest message time

    @property
    def pending(self) -> int:
        """Values offered and not yet written."""
        return len(self._pending)

    def offer(self, latest: Latest, last_seen: dict[int, datetime]) -> None:
        """Keep the newer of each of `latest` and `last_seen` and what is waiting."""
        pending = self._pending
        for key, value in latest.items():
            have = pending.get(key)
            if have is None or have[0] <= value[0]:
                pending[key] = value
        seen = self._seen
        for machine, ts in last_seen.items():
            if machine not in seen or seen[machine] < ts:
                seen[machine] = ts

    async def run(self, done: asyncio.Event) -> None:
        """Catch up from telemetry, then write what is offered every `every_s` until `done`,
        and once more after it. A database that is away is retried with backoff."""
        backoff = Backoff()
        caught_up = False
        down_since: float | None = None
        while True:
            last_round = done.is_set()
            try:
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                async with conn:
                    if down_since is not None:
                        away_s = time.monotonic() - down_since
                        log.info("latest_value: writing again after %.0f s", away_s)
                        down_since = None
                    backoff.reset()
                    if not caught_up:
                        changed = await catch_up(conn)
                        caught_up = True
                        if changed:
                            log.info("latest_value: %d values caught up from telemetry", changed)
                    await self._write_until(conn, done, last_round)
                    return
            except psycopg.Error as exc:
                if last_round:
                    log.warning(
                        "latest_value: the newest %d values are not written (%s); ingest "
                        "takes them from telemetry when it starts again",
                        self.pending, str(exc).strip(),
                    )  # fmt: skip
                    return
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("latest_value: cannot write now (%s); retrying", str(exc).strip())
                await backoff.wait(done)

    async def _write_until(
        self, conn: psycopg.AsyncConnection, done: asyncio.Event, last_round: bool
    ) -> None:
        while True:
            await self._write(conn)
            if last_round:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self._every_s)
            last_round = done.is_set()

    async def _write(self, conn: psycopg.AsyncConnection) -> None:
        if not self._pending and not self._seen:
            return
        latest, self._pending = self._pending, {}
        seen, self._seen = self._seen, {}
        try:
            async with conn.transaction(), conn.cursor() as cur:
                if latest:
                    await upsert_latest(cur, latest)
                if seen:
                    await update_last_seen(cur, seen)
        except BaseException:
            self.offer(latest, seen)  # newer values offered meanwhile win
            raise
        if self._on_written is not None:
            self._on_written(len(latest))
