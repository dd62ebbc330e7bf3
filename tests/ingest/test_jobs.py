"""Job messages and the cycles' jobs in the database: written once, version 1 still read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest

from contracts import (
    CycleRecord,
    JobRecord,
    JobStatus,
    MessageKind,
    PartQuality,
    Topic,
    encode,
)
from ingest import Inbound, Limits, Writer

pytestmark = pytest.mark.infra

NOW = datetime.now(UTC).replace(microsecond=0)
GOLDEN = Path(__file__).parents[1] / "fixtures" / "messages"


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[Writer]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield Writer(conn, Limits())


def _topic(machine: str, kind: MessageKind) -> str:
    return str(Topic("jobs", "hall", "line-1", machine, kind))


def _place(machine: str) -> str:
    return f"jobs/hall/line-1/{machine}"


def _job(machine: str, seq: int, status: JobStatus, ts: datetime = NOW) -> Inbound:
    job = JobRecord(
        machine_id=machine, ts=ts, source=f"pi-1:{machine}", seq=seq, job_name="PO-4711/10",
        mould_id="bracket-pp-4#1", job_status=status, active_cavities=4, nominal_parts=40_000,
        material="PP",
    )  # fmt: skip
    return Inbound(_topic(machine, MessageKind.JOB), encode(job), NOW)


def _cycle(machine: str, seq: int, job: str | None) -> Inbound:
    cycle = CycleRecord(
        machine_id=machine, ts=NOW - timedelta(seconds=seq), source=f"pi-1:{machine}", seq=seq,
        shot=seq, quality=PartQuality.GOOD, parts=4, parameters={"CycleTime": 15.0}, job=job,
    )  # fmt: skip
    return Inbound(_topic(machine, MessageKind.CYCLE), encode(cycle), NOW)


async def _rows(database_url: str, sql: str, machine: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(sql, (_place(machine),))
        return await cur.fetchall()


JOBS = (
    "SELECT j.job_name, j.mould_id, j.job_status, j.active_cavities, j.nominal_parts,"
    " j.material, j.seq FROM machine_job j JOIN machine m ON m.id = j.machine_id"
    " WHERE m.place = %s ORDER BY j.time, j.seq"
)
CYCLES = (
    "SELECT c.shot, c.job_name FROM cycle c JOIN machine m ON m.id = c.machine_id"
    " WHERE m.place = %s ORDER BY c.shot"
)


async def test_job_history_is_written_once_and_cycles_name_their_job(
    writer: Writer, database_url: str
) -> None:
    machine = f"imm-{uuid.uuid4().hex[:8]}"
    setup = _job(machine, 1, JobStatus.SET_UP_ACTIVE, NOW - timedelta(minutes=40))
    producing = _job(machine, 2, JobStatus.JOB_IN_PRODUCTION)
    result = await writer.write([setup, producing, _cycle(machine, 3, "PO-4711/10")])
    assert (result.messages, result.rejected) == (3, 0)
    # Redelivered by the broker: the same (source, seq), nothing written.
    again = await writer.write([producing])
    assert (again.messages, again.duplicates) == (0, 1)
    # Forwarded again under a new number (a retained job after a gateway's restart): the
    # same job at the same time, one row.
    restamped = await writer.write(
        [_job(machine, 4, JobStatus.SET_UP_ACTIVE, NOW - timedelta(minutes=40))]
    )
    assert restamped.rejected == 0
    assert await _rows(database_url, JOBS, machine) == [
        ("PO-4711/10", "bracket-pp-4#1", "set_up_active", 4, 40_000, "PP", 1),
        ("PO-4711/10", "bracket-pp-4#1", "job_in_production", 4, 40_000, "PP", 2),
    ]
    assert await _rows(database_url, CYCLES, machine) == [(3, "PO-4711/10")]


async def test_a_version_1_cycle_is_written_without_a_job_and_a_version_1_job_is_refused(
    writer: Writer, database_url: str
) -> None:
    machine = f"imm-{uuid.uuid4().hex[:8]}"
    old = orjson.loads((GOLDEN / "cycle_v1.json").read_bytes())
    old.update(machine_id=machine, ts=NOW.isoformat(), source=f"old-{machine}")
    job = orjson.loads((GOLDEN / "job.json").read_bytes())
    job.update(machine_id=machine, ts=NOW.isoformat(), schema_version=1)
    result = await writer.write(
        [
            Inbound(_topic(machine, MessageKind.CYCLE), orjson.dumps(old), NOW),
            Inbound(_topic(machine, MessageKind.JOB), orjson.dumps(job), NOW),
        ]
    )
    assert (result.messages, result.rejected) == (1, 1)
    assert await _rows(database_url, CYCLES, machine) == [(old["shot"], None)]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT reason FROM rejected_message WHERE topic = %s",
            (_topic(machine, MessageKind.JOB),),
        )
        (reason,) = await cur.fetchone() or ("",)
    assert "schema_version" in str(reason)
