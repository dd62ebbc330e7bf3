"""Ingest's database side: a message the database itself refuses takes no other down with it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import aiomqtt
import psycopg
import pytest

from contracts import BrokerUrl, CycleRecord, MessageKind, PartQuality, Topic, encode
from ingest import Inbound, IngestSettings, Limits, run_ingest
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


async def _run_ingest_for(settings: IngestSettings, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_ingest(settings, stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_messages_are_acknowledged_only_after_they_are_committed(
    database_url: str, mqtt_url: str
) -> None:
    site = f"ack-{uuid.uuid4().hex[:6]}"
    machine = "imm-01"
    settings = IngestSettings(
        database_url=database_url, mqtt_url=mqtt_url, ingest_site=site,
        ingest_client_id=f"ingest-{site}",
    )  # fmt: skip
    # 1. The persistent session exists; ingest is then down while a machine publishes.
    await _run_ingest_for(settings, 0.5)
    async with aiomqtt.Client(**BrokerUrl.parse(mqtt_url).client_options()) as publisher:
        for seq in range(1, 21):
            inbound = _cycle(machine, seq, seq)
            topic = str(Topic(site, "hall", "l1", machine, MessageKind.CYCLE))
            await publisher.publish(topic, inbound.payload, qos=1)
    # 2. Ingest comes back but cannot reach its database: it must acknowledge nothing.
    unreachable = settings.model_copy(
        update={"database_url": "postgresql://postgres@127.0.0.1:1/nowhere"}
    )
    await _run_ingest_for(unreachable, 1.5)
    # 3. With the database back, the broker redelivers every one of them.
    await _run_ingest_for(settings, 2.0)
    with psycopg.connect(database_url) as conn:
        seqs = conn.execute(
            "SELECT c.seq FROM cycle c JOIN machine m ON m.id = c.machine_id"
            " WHERE m.machine_key = %s AND m.site = %s ORDER BY c.seq",
            (machine, site),
        ).fetchall()
    assert [s for (s,) in seqs] == list(range(1, 21))
