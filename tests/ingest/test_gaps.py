"""Gaps in a gateway machine's sequence: told once when they last, once when filled or gone."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

import psycopg
import pytest
from prometheus_client import CollectorRegistry, Gauge

from ingest.gaps import GapWatch, run_gap_watch

pytestmark = pytest.mark.infra


async def _log(conn: psycopg.AsyncConnection, source: str, seqs: range, ago_s: float) -> None:
    await conn.execute(
        "INSERT INTO message_log (source, seq, received_at)"
        " SELECT %s, s, now() - make_interval(secs => %s) FROM unnest(%s::bigint[]) s",
        (source, ago_s, list(seqs)),
    )


async def test_a_lasting_gap_is_told_once_and_once_more_when_filled(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest.gaps")
    source, dropped = f"pi-{uuid.uuid4().hex[:6]}:imm-01", f"pi-{uuid.uuid4().hex[:6]}:imm-02"
    gauge = Gauge("gaps", "test", registry=CollectorRegistry())
    watch = GapWatch(gauge, window=timedelta(minutes=5), grace=timedelta(seconds=60))
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await _log(conn, source, range(1, 11), ago_s=120)
        await _log(conn, source, range(14, 21), ago_s=90)  # 11-13 missing for 90 s
        await _log(conn, source, range(30, 31), ago_s=5)  # 21-29: on their way, 5 s only
        await _log(conn, dropped, range(1, 5), ago_s=280)
        await _log(conn, dropped, range(9, 12), ago_s=280)  # 5-8 dropped at the gateway
        await _log(conn, "pi-own-status", range(1, 2), ago_s=200)  # a gateway's own: skips
        await _log(conn, "pi-own-status", range(5, 6), ago_s=200)
        gaps = await watch.check(conn)
        assert sorted(gaps) == sorted([(source, 11, 13), (dropped, 5, 8)])  # not 21-29
        assert gauge._value.get() == 7
        assert await watch.check(conn) == gaps  # told once
        await _log(conn, source, range(11, 14), ago_s=0)  # sent again and written
        watch.window = timedelta(seconds=250)  # the dropped ones' neighbours leave the window
        assert await watch.check(conn) == []
        assert gauge._value.get() == 0
    said = [r.getMessage() for r in caplog.records]
    assert sorted(said[:2]) == sorted(
        [
            f"source {dropped}: seq 5-8 (4 messages) missing for over 60 s; its gateway sends "
            "them again while they are in its outbox",
            f"source {source}: seq 11-13 (3 messages) missing for over 60 s; its gateway sends "
            "them again while they are in its outbox",
        ]
    )
    assert sorted(said[2:]) == sorted(
        [
            f"source {dropped}: seq 5-8 left the 4-minute window with 4 still missing (lost "
            "before the outbox: dropped when full? see the gateway's birth status)",
            f"source {source}: seq 11-13 arrived; the gap is filled",
        ]
    )


async def test_one_worker_watches_at_a_time(database_url: str) -> None:
    checks: list[str] = []

    class Counting(GapWatch):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        async def check(self, conn: psycopg.AsyncConnection) -> list[tuple[str, int, int]]:
            checks.append(self.name)
            return []

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not condition():
                await asyncio.sleep(0.01)

    stop = asyncio.Event()
    first = asyncio.create_task(run_gap_watch(database_url, Counting("a"), stop, every_s=0.05))
    await until(lambda: "a" in checks)
    second = asyncio.create_task(run_gap_watch(database_url, Counting("b"), stop, every_s=0.05))
    began = len(checks)
    await until(lambda: checks[began:].count("a") >= 5)  # b has tried the lock meanwhile
    first.cancel()  # its connection closes: the lock is free
    await until(lambda: "b" in checks)
    stop.set()
    await second
    b_from = checks.index("b")
    assert set(checks[:b_from]) == {"a"}
    assert set(checks[b_from:]) == {"b"}
