"""Forgetting what only redeliveries need (message_log entries older than the window), and
rejected messages older than their keep (MOLDLAB_INGEST_REJECTED_KEEP_DAYS); and merging the
stale marks of production performance that no rollup pass has taken yet.

message_log holds the (source, seq) of every message written, so that a message delivered
twice is written once. A second delivery comes soon after the first (ingest died before
its ack; an edge gateway died before deleting what the broker had), so entries older than
the redelivery window only take space. They are deleted in chunks, oldest first, which the
BRIN index on received_at finds without reading the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

_CHUNK = 50_000


async def prune_message_log(conn: psycopg.AsyncConnection, keep: timedelta) -> int:
    """Delete the entries received more than `keep` ago; returns how many (autocommit conn)."""
    return await _prune(conn, "message_log", "ctid", keep)


async def prune_rejected(conn: psycopg.AsyncConnection, keep: timedelta) -> int:
    """Delete the rejected messages received more than `keep` ago; how many (autocommit)."""
    return await _prune(conn, "rejected_message", "id", keep)


# Each write of cycles, states or jobs marks its machines' performance stale from its time
# on (store migration 0008); the rollup pass (analytics.rollup, run by the API) takes them.
# Without one running, they are merged into one mark per machine here, so they stay few.
_COMPACT_MARKS = """
WITH gone AS (
    DELETE FROM performance_dirty WHERE id = ANY(ARRAY(SELECT id FROM performance_dirty))
    RETURNING machine_id, start_at, end_at
)
INSERT INTO performance_dirty (machine_id, start_at, end_at)
SELECT machine_id, min(start_at), max(end_at) FROM gone GROUP BY machine_id
"""


async def compact_performance_marks(conn: psycopg.AsyncConnection) -> int:
    """Merge the stale marks into one per machine; how many fewer there are (autocommit)."""
    async with conn.transaction():
        cur = await conn.execute("SELECT count(*) FROM performance_dirty")
        row = await cur.fetchone()
        before = row[0] if row else 0
        cur = await conn.execute(_COMPACT_MARKS)
        return before - max(cur.rowcount, 0)


async def _prune(conn: psycopg.AsyncConnection, table: str, key: str, keep: timedelta) -> int:
    """Delete `table`'s rows received more than `keep` ago, oldest first in chunks."""
    statement = sql.SQL(
        "DELETE FROM {table} WHERE {key} = ANY(ARRAY("
        " SELECT {key} FROM {table} WHERE received_at < now() - %s LIMIT %s))"
    ).format(table=sql.Identifier(table), key=sql.Identifier(key))
    total = 0
    while True:
        cur = await conn.execute(statement, (keep, _CHUNK))
        total += cur.rowcount
        if cur.rowcount < _CHUNK:
            return total


async def run_pruning(
    database_url: str,
    keep: timedelta,
    stop: asyncio.Event,
    *,
    keep_rejected: timedelta = timedelta(days=30),
    every_s: float = 3600.0,
) -> None:
    """Prune now and every `every_s` until `stop`; a database that is away is tried later."""
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
                pruned = await prune_message_log(conn, keep)
                rejects = await prune_rejected(conn, keep_rejected)
                merged = await compact_performance_marks(conn)
            if pruned:
                log.info("pruned %d message_log entries older than %s", pruned, keep)
            if rejects:
                log.info("pruned %d rejected messages older than %s", rejects, keep_rejected)
            if merged > 0:
                log.info("merged %d stale performance marks (no rollup pass took them)", merged)
        except psycopg.Error as exc:
            log.warning("cannot prune message_log now: %s", str(exc).strip())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
