"""Ingest's database side: a message the database itself refuses takes no other down with it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime

import aiomqtt
import psycopg
import pytest
from ingest_task import running_ingest

from contracts import BrokerUrl, CycleRecord, MessageKind, PartQuality, Topic, encode
from ingest import Inbound, IngestSettings, Limits, run_ingest
from ingest.database import Database

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
    shots, reasons = _shots_and_rejections(database_url, machine)
    assert shots == [10, 11]
    [reason] = reasons
    assert "database refused it" in reason
    assert constraint in reason


def _shots_and_rejections(database_url: str, machine: str) -> tuple[list[int], list[str]]:
    """The shots of `machine`'s cycles in the database, and the reasons of its rejections."""
    with psycopg.connect(database_url) as conn:
        shots = conn.execute(
            "SELECT c.shot FROM cycle c JOIN machine m ON m.id = c.machine_id"
            " WHERE m.machine_key = %s ORDER BY c.shot",
            (machine,),
        ).fetchall()
        reasons = conn.execute(
            "SELECT reason FROM rejected_message WHERE topic LIKE %s", (f"%/{machine}/%",)
        ).fetchall()
    return [int(shot) for (shot,) in shots], [str(reason) for (reason,) in reasons]


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
    async with running_ingest(settings):
        pass
    async with aiomqtt.Client(**BrokerUrl.parse(mqtt_url).client_options()) as publisher:
        for seq in range(1, 21):
            inbound = _cycle(machine, seq, seq)
            topic = str(Topic(site, "hall", "l1", machine, MessageKind.CYCLE))
            await publisher.publish(topic, inbound.payload, qos=1)
    # 2. Ingest comes back but cannot reach its database: it must acknowledge nothing.
    unreachable = settings.model_copy(
        update={"database_url": "postgresql://postgres@127.0.0.1:1/nowhere"}
    )
    async with running_ingest(unreachable):
        await asyncio.sleep(1.5)  # the messages come, and nothing may acknowledge them
    # 3. With the database back, the broker redelivers every one of them.

    def seqs() -> list[int]:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT c.seq FROM cycle c JOIN machine m ON m.id = c.machine_id"
                " WHERE m.machine_key = %s AND m.site = %s ORDER BY c.seq",
                (machine, site),
            ).fetchall()
        return [s for (s,) in rows]

    async with running_ingest(settings):
        deadline = time.monotonic() + 20
        while len(seqs()) < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    assert seqs() == list(range(1, 21))


@pytest.mark.parametrize(("wait_s", "one_batch"), [(0.0, False), (1.5, True)])
async def test_a_batch_goes_when_a_connection_is_free_or_after_its_wait(
    database_url: str, mqtt_url: str, wait_s: float, one_batch: bool
) -> None:
    # A burst of 20 messages over 0.4 s. By default the first goes at once and the rest follow
    # in the batches that grow meanwhile; with a wait, they make one batch.
    site = f"wait-{uuid.uuid4().hex[:6]}"
    machine = f"imm-{uuid.uuid4().hex[:8]}"
    settings = IngestSettings(
        database_url=database_url, mqtt_url=mqtt_url, ingest_site=site,
        ingest_client_id=f"ingest-{site}", ingest_batch_max_wait_s=wait_s,
        ingest_metrics_port=0,
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(run_ingest(settings, stop))
    await asyncio.sleep(1.0)  # subscribed
    topic = str(Topic(site, "hall", "l1", machine, MessageKind.CYCLE))
    async with aiomqtt.Client(**BrokerUrl.parse(mqtt_url).client_options()) as publisher:
        for seq in range(1, 21):
            await publisher.publish(topic, _cycle(machine, seq, seq).payload, qos=1)
            await asyncio.sleep(0.02)
    await asyncio.sleep(wait_s + 1.5)
    stop.set()
    await asyncio.wait_for(task, 10)
    with psycopg.connect(database_url) as conn:
        # A batch is one transaction, and received_at is its start time.
        row = conn.execute(
            "SELECT count(*), count(DISTINCT received_at) FROM message_log WHERE source = %s",
            (f"src-{machine}",),
        ).fetchone()
    assert row is not None
    written, batches = row
    assert written == 20
    assert (batches == 1) is one_batch


async def test_a_write_cancelled_half_way_leaves_no_connection_that_rejects_good_data(
    database_url: str,
) -> None:
    # The broker goes away while a batch is written: the write is cancelled wherever it is.
    # The next batch must be written on a sound connection, not refused message by message.
    machine = f"imm-{uuid.uuid4().hex[:8]}"
    big = [_cycle(machine, seq, seq) for seq in range(1, 3001)]
    database = Database(database_url, Limits())
    stop = asyncio.Event()
    try:
        for delay_s in (0.0, 0.005, 0.02, 0.05):
            cancelled = asyncio.create_task(database.write(big, stop))
            await asyncio.sleep(delay_s)
            cancelled.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cancelled
            result = await asyncio.wait_for(database.write(big, stop), 30)
            assert result is not None
            assert result.rejected == 0
    finally:
        await database.close()
    # _cycle gives shot = seq: each seq written once, none refused.
    assert _shots_and_rejections(database_url, machine) == (list(range(1, 3001)), [])
