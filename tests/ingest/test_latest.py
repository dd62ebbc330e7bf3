"""latest_value and last_seen, written apart from the batches: newest wins, a crash is caught up."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from contracts import MessageKind, Reading, TelemetryBatch, Topic, encode
from ingest import Inbound, Limits, Writer
from ingest.latest import Latest, LatestValues, catch_up

pytestmark = pytest.mark.infra

NOW = datetime.now(UTC).replace(microsecond=0)


def _telemetry(machine: str, seq: int, ts: datetime, values: dict[str, float]) -> Inbound:
    msg = TelemetryBatch(
        machine_id=machine, ts=ts, source=f"src-{machine}", seq=seq,
        readings=[Reading(signal=name, offset_ms=0, value=v) for name, v in values.items()],
    )  # fmt: skip
    topic = Topic("test", "hall", "line-1", machine, MessageKind.TELEMETRY)
    return Inbound(str(topic), encode(msg), datetime.now(UTC))  # received now, however late


async def _latest(conn: psycopg.AsyncConnection, machine: str) -> dict[str, tuple[float, datetime]]:
    cur = await conn.execute(
        "SELECT s.name, lv.value, lv.time FROM latest_value lv"
        " JOIN machine m ON m.id = lv.machine_id JOIN signal s ON s.id = lv.signal_id"
        " WHERE m.machine_key = %s",
        (machine,),
    )
    return {name: (value, ts) for name, value, ts in await cur.fetchall()}


async def _last_seen(conn: psycopg.AsyncConnection, machine: str) -> datetime | None:
    cur = await conn.execute("SELECT last_seen FROM machine WHERE machine_key = %s", (machine,))
    row = await cur.fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]  # a timestamptz column


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
        yield c


async def test_committed_batches_reach_latest_value_within_a_second_newest_first(
    conn: psycopg.AsyncConnection, database_url: str
) -> None:
    machine = f"imm-{uuid.uuid4().hex[:8]}"
    latest = LatestValues(database_url, every_s=0.2)
    writer = Writer(conn, Limits(), latest.offer)
    done = asyncio.Event()
    running = asyncio.create_task(latest.run(done))
    newer = NOW + timedelta(seconds=10)
    await writer.write([_telemetry(machine, 2, newer, {"TempZone1": 231.0, "TempZone2": 240.0})])
    # An older message committed later (a gateway's backlog) changes nothing.
    await writer.write([_telemetry(machine, 1, NOW, {"TempZone1": 200.0, "TempOil": 45.0})])
    expected = {
        "TempZone1": (231.0, newer), "TempZone2": (240.0, newer), "TempOil": (45.0, NOW),
    }  # fmt: skip
    async with asyncio.timeout(5):
        while await _latest(conn, machine) != expected:
            await asyncio.sleep(0.05)
    assert await _last_seen(conn, machine) == newer
    # What is offered after the last round is written when ingest stops.
    await writer.write([_telemetry(machine, 3, newer + timedelta(seconds=1), {"TempOil": 46.0})])
    done.set()
    await asyncio.wait_for(running, 5)
    assert (await _latest(conn, machine))["TempOil"] == (46.0, newer + timedelta(seconds=1))
    assert latest.pending == 0


@pytest.mark.parametrize("age", [timedelta(0), timedelta(hours=3)])
async def test_what_a_crash_left_out_of_latest_value_is_caught_up_at_start(
    conn: psycopg.AsyncConnection,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    age: timedelta,
) -> None:
    # Ingest committed these batches and was killed before its once-a-second write; the
    # messages are new, or a gateway's buffer of 3 h ago, the first the database sees of it.
    machine = f"imm-{uuid.uuid4().hex[:8]}"
    lost: list[tuple[Latest, dict[int, datetime]]] = []
    writer = Writer(conn, Limits(), lambda latest, seen: lost.append((latest, seen)))
    first = datetime.now(UTC).replace(microsecond=0) - age
    later = first + timedelta(seconds=1)
    await writer.write([_telemetry(machine, 1, first, {"TempZone1": 230.0, "TempOil": 44.0})])
    await writer.write([_telemetry(machine, 2, later, {"TempZone1": 232.5})])
    assert len(lost) == 2
    assert await _latest(conn, machine) == {}
    assert await _last_seen(conn, machine) is None

    caplog.set_level(logging.INFO, logger="ingest.latest")
    done = asyncio.Event()
    done.set()  # start, catch up, write nothing more, stop
    await asyncio.wait_for(LatestValues(database_url).run(done), 10)
    assert await _latest(conn, machine) == {"TempZone1": (232.5, later), "TempOil": (44.0, first)}
    assert await _last_seen(conn, machine) == later
    assert any("caught up from" in r.getMessage() for r in caplog.records)
    assert await catch_up(conn) == 0  # nothing left to catch up


async def test_a_database_that_is_away_at_the_last_write_is_said_and_not_waited_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    latest = LatestValues("postgresql://moldlab@127.0.0.1:1/none?connect_timeout=2")
    latest.offer({(1, 1): (0, 1.0)}, {})
    done = asyncio.Event()
    done.set()
    await asyncio.wait_for(latest.run(done), 10)
    assert latest.pending == 1
    assert any(
        "newest 1 values are not written" in r.getMessage() and r.levelno == logging.WARNING
        for r in caplog.records
    )
