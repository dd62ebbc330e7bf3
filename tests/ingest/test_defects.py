"""A bad cycle's defect cause in the database: written with its cycle, refused where none can be."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest

from contracts import CycleRecord, MessageKind, PartQuality, Topic, encode
from ingest import Inbound, Limits, Writer

pytestmark = pytest.mark.infra

NOW = datetime.now(UTC).replace(microsecond=0)
GOLDEN = Path(__file__).parents[1] / "fixtures" / "messages"
CYCLES = (
    "SELECT c.shot, c.quality, c.defect, c.job_name FROM cycle c"
    " JOIN machine m ON m.id = c.machine_id WHERE m.place = %s ORDER BY c.shot"
)


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[Writer]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield Writer(conn, Limits())


def _topic(machine: str) -> str:
    return str(Topic("qc", "hall", "line-1", machine, MessageKind.CYCLE))


def _cycle(machine: str, shot: int, quality: PartQuality, defect: str | None = None) -> Inbound:
    cycle = CycleRecord(
        machine_id=machine, ts=NOW - timedelta(seconds=100 - shot), source=f"pi-1:{machine}",
        seq=shot, shot=shot, quality=quality, parts=4, parameters={"CycleTime": 15.0},
        job="PO-4711/10", defect=defect,
    )  # fmt: skip
    return Inbound(_topic(machine), encode(cycle), NOW)


async def _rows(database_url: str, machine: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(CYCLES, (f"qc/hall/line-1/{machine}",))
        return await cur.fetchall()


async def test_a_bad_cycles_defect_cause_is_stored_with_it(
    writer: Writer, database_url: str
) -> None:
    machine = f"imm-{uuid.uuid4().hex[:8]}"
    # A version 2 publisher's bad cycle: its cause untold.
    old = orjson.loads((GOLDEN / "cycle_v2.json").read_bytes())
    old.update(machine_id=machine, ts=NOW.isoformat(), shot=5, seq=5, quality="bad")
    result = await writer.write(
        [
            _cycle(machine, 1, PartQuality.BAD, "short_shot"),
            _cycle(machine, 2, PartQuality.GOOD),
            _cycle(machine, 3, PartQuality.TEST),
            _cycle(machine, 4, PartQuality.BAD, "burn_marks"),
            Inbound(_topic(machine), orjson.dumps(old), NOW),
        ]
    )
    assert (result.messages, result.rejected) == (5, 0)
    assert await _rows(database_url, machine) == [
        (1, "bad", "short_shot", "PO-4711/10"),
        (2, "good", None, "PO-4711/10"),
        (3, "test", None, "PO-4711/10"),
        (4, "bad", "burn_marks", "PO-4711/10"),
        (5, "bad", None, "PO-4711/10"),
    ]


async def test_a_defect_where_none_can_be_is_rejected_and_the_rest_written(
    writer: Writer, database_url: str
) -> None:
    machine = f"imm-{uuid.uuid4().hex[:8]}"
    golden = orjson.loads((GOLDEN / "cycle.json").read_bytes())
    golden.update(machine_id=machine, ts=NOW.isoformat(), source=f"pi-1:{machine}")
    claims_v2 = {**golden, "schema_version": 2, "shot": 11, "seq": 11}
    good_with_cause = {**golden, "quality": "good", "shot": 12, "seq": 12}
    result = await writer.write(
        [
            Inbound(_topic(machine), orjson.dumps(claims_v2), NOW),
            Inbound(_topic(machine), orjson.dumps(good_with_cause), NOW),
            _cycle(machine, 13, PartQuality.BAD, "flash"),
        ]
    )
    assert (result.messages, result.rejected) == (1, 2)
    assert await _rows(database_url, machine) == [(13, "bad", "flash", "PO-4711/10")]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT reason FROM rejected_message WHERE topic = %s ORDER BY id", (_topic(machine),)
        )
        reasons = [str(r[0]) for r in await cur.fetchall()]
    assert len(reasons) == 2
    assert "a cycle's defect needs schema_version 3" in reasons[0]
    assert "only bad parts have a defect cause, not good ones" in reasons[1]
