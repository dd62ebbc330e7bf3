"""The writer against a real PostgreSQL: rows land once, bad input is recorded, never fatal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest

from contracts import (
    CycleRecord,
    MachineState,
    MessageKind,
    PartQuality,
    Reading,
    StateChange,
    TelemetryBatch,
    Topic,
    encode,
)
from ingest import Inbound, Limits, Writer

pytestmark = pytest.mark.infra

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[Writer]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield Writer(conn, Limits(max_payload_bytes=4096))


def _machine() -> str:
    return f"imm-{uuid.uuid4().hex[:8]}"


def _topic(machine: str, kind: MessageKind) -> str:
    return str(Topic("test", "hall", "line-1", machine, kind))


def _telemetry(machine: str, seq: int, values: list[float]) -> Inbound:
    msg = TelemetryBatch(
        machine_id=machine, ts=NOW, source=f"src-{machine}", seq=seq,
        readings=[
            Reading(signal="TempZone2", offset_ms=i * 100, value=v) for i, v in enumerate(values)
        ],
    )  # fmt: skip
    return Inbound(_topic(machine, MessageKind.TELEMETRY), encode(msg), NOW)


def _cycle_and_state(machine: str) -> list[Inbound]:
    cycle = CycleRecord(
        machine_id=machine, ts=NOW, source=f"src-{machine}", seq=100, shot=7,
        quality=PartQuality.BAD, parts=2, parameters={"CycleTime": 15.5, "CushionVolume": 4.1},
    )  # fmt: skip
    state = StateChange(
        machine_id=machine, ts=NOW, source=f"src-{machine}", seq=101,
        state=MachineState.FAULT, reason="heater_band",
    )  # fmt: skip
    return [
        Inbound(_topic(machine, MessageKind.CYCLE), encode(cycle), NOW),
        Inbound(_topic(machine, MessageKind.STATE), encode(state), NOW),
    ]


async def _count(conn: psycopg.AsyncConnection, sql: str, machine: str) -> int:
    cur = await conn.execute(sql, (machine,))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


TELEMETRY_ROWS = (
    "SELECT count(*) FROM telemetry t JOIN machine m ON m.id = t.machine_id"
    " WHERE m.machine_key = %s"
)


async def test_batch_is_written_and_redelivery_adds_no_row(
    writer: Writer, database_url: str
) -> None:
    machine = _machine()
    batch = [_telemetry(machine, 1, [200.0, 201.0, 202.0]), *_cycle_and_state(machine)]
    first = await writer.write(batch)
    assert (first.messages, first.readings, first.duplicates, first.rejected) == (3, 3, 0, 0)
    again = await writer.write([*batch, _telemetry(machine, 1, [200.0, 201.0, 202.0])])
    assert (again.messages, again.readings, again.duplicates) == (0, 0, 4)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        assert await _count(conn, TELEMETRY_ROWS, machine) == 3
        cur = await conn.execute(
            "SELECT c.shot, c.quality, c.parts, c.cycle_time_s, c.parameters->>'CushionVolume'"
            " FROM cycle c JOIN machine m ON m.id = c.machine_id WHERE m.machine_key = %s",
            (machine,),
        )
        assert await cur.fetchall() == [(7, "bad", 2, 15.5, "4.1")]
        cur = await conn.execute(
            "SELECT s.state, s.reason FROM machine_state s JOIN machine m ON m.id = s.machine_id"
            " WHERE m.machine_key = %s",
            (machine,),
        )
        assert await cur.fetchall() == [("fault", "heater_band")]
        cur = await conn.execute(
            "SELECT lv.value, lv.time FROM latest_value lv JOIN machine m ON m.id = lv.machine_id"
            " WHERE m.machine_key = %s",
            (machine,),
        )
        assert await cur.fetchall() == [(202.0, NOW + timedelta(milliseconds=200))]


def _raw(machine: str, **change: object) -> bytes:
    msg = orjson.loads(encode(TelemetryBatch(
        machine_id=machine, ts=NOW, source=f"src-{machine}", seq=50,
        readings=[Reading(signal="TempZone2", offset_ms=0, value=1.0)],
    )))  # fmt: skip
    msg.update(change)
    return orjson.dumps(msg)


async def test_bad_messages_are_recorded_with_a_reason_and_good_ones_still_written(
    writer: Writer, database_url: str
) -> None:
    machine = _machine()
    tele = _topic(machine, MessageKind.TELEMETRY)
    far_future = (NOW + timedelta(days=3)).isoformat()
    long_ago = (NOW - timedelta(days=4000)).isoformat()
    bad = [
        Inbound(tele, b"{not json", NOW),
        Inbound(tele, _raw(machine, schema_version=9), NOW),
        Inbound(_topic(machine, MessageKind.TELEMETRY) + "/extra", _raw(machine), NOW),
        Inbound(tele, _raw(machine, kind="alarm"), NOW),
        Inbound(tele, _raw(machine).replace(b'"value":1.0', b'"value":NaN'), NOW),
        Inbound(tele, _raw(machine, ts=far_future), NOW),
        Inbound(tele, _raw(machine, ts=long_ago), NOW),
        Inbound(tele, b" " * 5000, NOW),
        Inbound(tele, _raw(machine, machine_id="imm-other"), NOW),
        Inbound(_topic(machine, MessageKind.CYCLE), _raw(machine), NOW),
    ]
    good = [_telemetry(machine, 1, [1.0]), _telemetry(machine, 2, [2.0])]
    result = await writer.write([good[0], *bad, good[1]])
    assert (result.messages, result.readings, result.rejected) == (2, 2, len(bad))
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        assert await _count(conn, TELEMETRY_ROWS, machine) == 2
        cur = await conn.execute(
            "SELECT reason FROM rejected_message WHERE topic LIKE %s ORDER BY id",
            (f"%/{machine}/%",),
        )
        reasons = [r[0] for r in await cur.fetchall()]
    expected = [
        "invalid JSON", "schema_version", "is not moldlab/v1", "does not match any of the expected",
        "invalid JSON", "in the future", "older than", "exceeds 4096", "contradicts topic machine",
        "contradicts topic",
    ]  # fmt: skip
    assert len(reasons) == len(expected)
    for reason, fragment in zip(reasons, expected, strict=True):
        assert fragment in reason


async def test_a_redelivered_bad_message_is_one_rejection(
    writer: Writer, database_url: str
) -> None:
    # Ingest died after committing the rejection, before the ack: the broker sends it again.
    machine = _machine()
    tele = _topic(machine, MessageKind.TELEMETRY)
    bad = Inbound(tele, b"{not json", NOW)
    other_topic = Inbound(_topic(machine, MessageKind.STATE), b"{not json", NOW)
    await writer.write([bad, _telemetry(machine, 1, [1.0])])
    result = await writer.write([bad, other_topic, _telemetry(machine, 1, [1.0])])
    await writer.reject(bad, "the database refused it")
    assert (result.messages, result.rejected) == (0, 2)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT topic FROM rejected_message WHERE topic LIKE %s ORDER BY id",
            (f"%/{machine}/%",),
        )
        assert [r[0] for r in await cur.fetchall()] == [tele, other_topic.topic]


async def test_two_connections_writing_the_same_redelivered_messages_write_them_once(
    database_url: str,
) -> None:
    # Ingest writes two batches at once; a redelivery can put messages in both, in another
    # order. Neither may write one twice, and they must not deadlock (claimed in key order).
    machine = _machine()
    messages = [_telemetry(machine, seq, [seq / 10]) for seq in range(1, 2001)]
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as one,
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as two,
    ):
        first = Writer(one, Limits())
        second = Writer(two, Limits(), dimensions=first.dimensions)
        await first.write([_telemetry(machine, 0, [0.0])])  # machine and signal have ids
        results = await asyncio.wait_for(
            asyncio.gather(first.write(messages), second.write(messages[::-1])), 30
        )
    assert sum(r.messages for r in results) == 2000
    assert sum(r.duplicates for r in results) == 2000
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        assert await _count(conn, TELEMETRY_ROWS, machine) == 2001
        cur = await conn.execute(
            "SELECT count(*), count(DISTINCT seq) FROM message_log WHERE source = %s",
            (f"src-{machine}",),
        )
        assert await cur.fetchone() == (2001, 2001)
