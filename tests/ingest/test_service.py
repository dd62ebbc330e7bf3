"""Ingest's database side: a message the database itself refuses takes no other down with it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from contracts import CycleRecord, MessageKind, PartQuality, Topic, encode
from ingest import Inbound, Limits
from ingest.service import Database

pytestmark = pytest.mark.infra

NOW = datetime.now(UTC)


def _cycle(machine: str, seq: int, shot: int) -> Inbound:
    msg = CycleRecord(
        machine_id=machine, ts=NOW, source=f"src-{machine}", seq=seq, shot=shot,
        quality=PartQuality.GOOD, parameters={"CycleTime": 15.0},
    )  # fmt: skip
    return Inbound(str(Topic("test", "hall", "l1", machine, MessageKind.CYCLE)), encode(msg), NOW)


async def test_a_message_the_database_refuses_is_recorded_and_the_rest_written(
    database_url: str,
) -> None:
    machine = f"imm-{uuid.uuid4().hex[:8]}"
    poison_shot = 700_000_000 + uuid.uuid4().int % 1000
    constraint = f"no_shot_{poison_shot}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Stands for any refusal the contract cannot foresee (an operator's constraint, say).
        conn.execute(f"ALTER TABLE cycle ADD CONSTRAINT {constraint} CHECK (shot <> {poison_shot})")
    database = Database(database_url, Limits())
    try:
        batch = [_cycle(machine, 1, 10), _cycle(machine, 2, poison_shot), _cycle(machine, 3, 11)]
        result = await database.write(batch, asyncio.Event())
    finally:
        await database.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE cycle DROP CONSTRAINT {constraint}")
    assert result is not None
    assert (result.messages, result.rejected) == (2, 1)
    with psycopg.connect(database_url) as conn:
        shots = conn.execute(
            "SELECT c.shot FROM cycle c JOIN machine m ON m.id = c.machine_id"
            " WHERE m.machine_key = %s ORDER BY c.shot",
            (machine,),
        ).fetchall()
        reason = conn.execute(
            "SELECT reason FROM rejected_message WHERE topic LIKE %s", (f"%/{machine}/%",)
        ).fetchone()
    assert shots == [(10,), (11,)]
    assert reason is not None
    assert "database refused it" in reason[0]
    assert constraint in reason[0]
