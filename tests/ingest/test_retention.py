"""message_log keeps what redeliveries need and forgets the rest."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import psycopg
import pytest

from ingest.retention import prune_message_log, run_pruning

pytestmark = pytest.mark.infra


async def test_entries_older_than_the_window_are_pruned_the_rest_kept(database_url: str) -> None:
    source = f"src-{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO message_log (source, seq, received_at)"
            " SELECT %s, n, now() - n * interval '1 hour' FROM generate_series(1, 300) n",
            (source,),
        )
        pruned = await prune_message_log(conn, timedelta(days=7))
        cur = await conn.execute(
            "SELECT min(seq), max(seq) FROM message_log WHERE source = %s", (source,)
        )
        assert await cur.fetchone() == (1, 167)  # 168 hours and more ago: gone
    assert pruned >= 300 - 167


async def test_the_pruning_loop_logs_and_stops(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="ingest.retention")
    source = f"src-{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO message_log (source, seq, received_at)"
            " VALUES (%s, 1, now() - interval '9 days')",
            (source,),
        )
    stop = asyncio.Event()
    task = asyncio.create_task(run_pruning(database_url, timedelta(days=7), stop, every_s=60))
    while not any("pruned" in r.getMessage() for r in caplog.records):
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_database_that_is_away_is_tried_later(caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_pruning("postgresql://nobody@127.0.0.1:1/none", timedelta(days=7), stop, every_s=60)
    )
    while not any("cannot prune" in r.getMessage() for r in caplog.records):
        await asyncio.sleep(0.05)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 5)
