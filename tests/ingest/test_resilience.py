"""Ingest as a process against real mosquitto and PostgreSQL: killed, starved of its database.

Every test publishes telemetry from one source with consecutive sequence numbers and counts
what arrived by seq: each message once in message_log, each of its readings once in telemetry.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt
import psycopg
import pytest
from databases import own_server
from ingest_child import IngestChild, wait_until

from contracts import BrokerUrl, MessageKind, Reading, TelemetryBatch, Topic, encode

pytestmark = [pytest.mark.infra, pytest.mark.slow]

_SUBSCRIBED = b"subscribed to"


@dataclass(frozen=True, slots=True)
class _Stream:
    """One source's telemetry: `messages` batches of `readings` readings, seq 1..messages."""

    site: str
    machine: str
    source: str
    messages: int
    readings: int

    @classmethod
    def new(cls, prefix: str, messages: int, readings: int) -> _Stream:
        tag = uuid.uuid4().hex[:8]
        return cls(f"{prefix}-{tag}", f"imm-{tag}", f"src-{prefix}-{tag}", messages, readings)

    @property
    def topic(self) -> str:
        return str(Topic(self.site, "hall", "l1", self.machine, MessageKind.TELEMETRY))

    def payload(self, seq: int) -> bytes:
        # Each reading carries its message's seq, so telemetry rows can be counted by seq.
        readings = [
            Reading(signal="CounterShots", offset_ms=i * 50, value=float(seq))
            for i in range(self.readings)
        ]
        msg = TelemetryBatch(
            machine_id=self.machine, ts=datetime.now(UTC), source=self.source, seq=seq,
            readings=readings,
        )  # fmt: skip
        return encode(msg)


async def _publish(
    mqtt_url: str, stream: _Stream, seqs: Iterable[int], rate_hz: float = 0.0
) -> None:
    """Publish `seqs` in order at QoS 1, at a steady rate (as fast as possible if 0)."""
    async with aiomqtt.Client(**BrokerUrl.parse(mqtt_url).client_options()) as client:
        started = time.monotonic()
        for n, seq in enumerate(seqs, 1):
            if rate_hz > 0:
                await asyncio.sleep(max(0.0, started + n / rate_hz - time.monotonic()))
            await client.publish(stream.topic, stream.payload(seq), qos=1)


async def _drop_session(mqtt_url: str, client_id: str) -> None:
    """Discard a persistent session and its queued messages on the broker."""
    options = BrokerUrl.parse(mqtt_url).client_options()
    async with aiomqtt.Client(**options, identifier=client_id, clean_session=True):
        pass


class _Ingest(IngestChild):
    """Ingest for one stream, its database connections named for pg_stat_activity."""

    def __init__(self, database_url: str, mqtt_url: str, stream: _Stream, log_path: Path) -> None:
        self.client_id = f"ingest-{stream.site}"
        # Named, so that the test can see in pg_stat_activity when it is mid-transaction.
        self.application_name = self.client_id
        url = urlsplit(database_url)
        query = "&".join(filter(None, [url.query, f"application_name={self.application_name}"]))
        env = {
            **os.environ,
            "MOLDLAB_DATABASE_URL": url._replace(query=query).geturl(),
            "MOLDLAB_MQTT_URL": mqtt_url,
            "MOLDLAB_INGEST_CLIENT_ID": self.client_id,
            "MOLDLAB_INGEST_SITE": stream.site,
        }
        super().__init__(env, log_path)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for pid {self.pid}")


@pytest.fixture
async def ingest_factory(
    scratch_dir: Path, mqtt_url: str
) -> AsyncIterator[Callable[[str, _Stream], _Ingest]]:
    made: list[_Ingest] = []

    def make(database_url: str, stream: _Stream) -> _Ingest:
        ingest = _Ingest(database_url, mqtt_url, stream, scratch_dir / f"ingest-{stream.site}.log")
        made.append(ingest)
        return ingest

    yield make
    for ingest in made:
        await ingest.stop()
        await _drop_session(mqtt_url, ingest.client_id)


def _committed(database_url: str, stream: _Stream) -> int:
    """How many of the stream's messages are in message_log; 0 while the database is down."""
    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT count(*) FROM message_log WHERE source = %s", (stream.source,)
            ).fetchone()
    except psycopg.OperationalError:
        return 0
    assert row is not None
    return int(row[0])


async def _wait_for_all(
    database_url: str, stream: _Stream, timeout_s: float, messages: int | None = None
) -> None:
    """Wait until `messages` (all the stream's by default) are in message_log."""
    want = stream.messages if messages is None else messages

    async def complete() -> bool:
        return await asyncio.to_thread(_committed, database_url, stream) >= want

    try:
        await wait_until(complete, timeout_s, f"{want} messages committed")
    except AssertionError as exc:
        missing = sorted(set(range(1, want + 1)) - set(_logged_seqs(database_url, stream)))
        raise AssertionError(f"{exc}; {len(missing)} missing, first {missing[:20]}") from None


def _logged_seqs(database_url: str, stream: _Stream) -> list[int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT seq FROM message_log WHERE source = %s ORDER BY seq", (stream.source,)
        ).fetchall()
    return [int(seq) for (seq,) in rows]


def _assert_exactly_once(database_url: str, stream: _Stream) -> None:
    """Every seq 1..messages once in message_log and `readings` times in telemetry."""
    with psycopg.connect(database_url) as conn:
        per_seq = conn.execute(
            "SELECT t.value::bigint, count(*) FROM telemetry t"
            " JOIN machine m ON m.id = t.machine_id WHERE m.machine_key = %s"
            " GROUP BY 1 ORDER BY 1",
            (stream.machine,),
        ).fetchall()
    expected = list(range(1, stream.messages + 1))
    seqs = _logged_seqs(database_url, stream)
    assert seqs == expected, f"message_log: missing {sorted(set(expected) - set(seqs))[:20]}"
    counts = {int(seq): int(n) for seq, n in per_seq}
    assert sorted(counts) == expected, f"telemetry lacks seqs {sorted(set(expected) - set(counts))}"
    wrong = {seq: n for seq, n in counts.items() if n != stream.readings}
    assert not wrong, f"seq -> row count, expected {stream.readings} each: {wrong}"
    assert sum(counts.values()) == stream.messages * stream.readings


async def _committed_at_least(
    database_url: str, stream: _Stream, count: int, what: str, timeout_s: float = 10
) -> None:
    await wait_until(
        lambda: asyncio.to_thread(lambda: _committed(database_url, stream) >= count),
        timeout_s=timeout_s, what=what,
    )  # fmt: skip


async def _mid_transaction(database_url: str, application_name: str, timeout_s: float) -> bool:
    """Wait until that client is inside a transaction; False if it was not within timeout_s."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            cur = await conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s"
                " AND state IN ('active', 'idle in transaction')",
                (application_name,),
            )
            if await cur.fetchone():
                return True
            await asyncio.sleep(0.001)
    return False


async def test_ingest_killed_with_sigkill_loses_and_duplicates_nothing(
    database_url: str, mqtt_url: str, ingest_factory: Callable[[str, _Stream], _Ingest]
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    stream = _Stream.new("kill", messages=3000, readings=20)
    ingest = ingest_factory(database_url, stream)
    # The persistent session must exist before the first message, or the broker keeps none.
    await ingest.start()
    last = stream.messages
    publisher = asyncio.create_task(_publish(mqtt_url, stream, range(1, last), rate_hz=300))
    mid_transaction = 0
    try:
        for _ in range(3):
            # A random moment, then the next write: acked-before-commit would lose that batch.
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            mid_transaction += await _mid_transaction(database_url, ingest.application_name, 3)
            assert not publisher.done(), f"publishing ended before every kill (seed {seed})"
            await ingest.kill()
            await ingest.start()
        await publisher
    finally:
        publisher.cancel()
    context = f"seed {seed}, {mid_transaction} of 3 kills mid-transaction"
    try:
        await _wait_for_all(database_url, stream, timeout_s=30, messages=last - 1)
        # What a kill between commit and ack leaves, made certain: messages written before
        # come again. The last seq follows them, so once it is in they have all been handled.
        again = sorted(rng.sample(range(1, last), 100))
        await _publish(mqtt_url, stream, [*again, last])
        await _wait_for_all(database_url, stream, timeout_s=10)
    except AssertionError as exc:
        raise AssertionError(f"{exc} ({context}); ingest log:\n{ingest.tail()}") from None
    _assert_exactly_once(database_url, stream)


async def test_ingest_rides_out_a_database_restart(
    scratch_dir: Path, mqtt_url: str, ingest_factory: Callable[[str, _Stream], _Ingest]
) -> None:
    stream = _Stream.new("dbrestart", messages=2400, readings=20)
    with own_server(scratch_dir) as (server, database_url):
        ingest = ingest_factory(database_url, stream)
        await ingest.start()
        publisher = asyncio.create_task(
            _publish(mqtt_url, stream, range(1, stream.messages + 1), rate_hz=300)
        )
        try:
            await _committed_at_least(database_url, stream, 300, "the first messages committed")
            await asyncio.to_thread(server.stop)
            outage_ends = time.monotonic() + 5  # the publisher goes on meanwhile
            # Ingest holds a batch it cannot commit; killed now, it must have acked none of it.
            await asyncio.sleep(2)
            await ingest.kill()
            await ingest.start()
            await asyncio.sleep(max(0.0, outage_ends - time.monotonic()))
            assert not publisher.done(), "publishing ended during the outage"
            await asyncio.to_thread(server.start)
            await publisher
        finally:
            publisher.cancel()
        try:
            await _wait_for_all(database_url, stream, timeout_s=30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; ingest log:\n{ingest.tail()}") from None
        assert b"database unavailable" in ingest.log_path.read_bytes()
        _assert_exactly_once(database_url, stream)
        await ingest.stop()


async def test_ingest_writes_within_seconds_of_its_database_coming_back(
    scratch_dir: Path, mqtt_url: str, ingest_factory: Callable[[str, _Stream], _Ingest]
) -> None:
    # Issue 16: after 20 s away, a worker took 38 s to write again: its two connections
    # shared one backoff, doubled by each, and the one sleeping was not woken.
    stream = _Stream.new("dbback", messages=1500, readings=5)
    with own_server(scratch_dir) as (server, database_url):
        ingest = ingest_factory(database_url, stream)
        await ingest.start()
        publisher = asyncio.create_task(
            _publish(mqtt_url, stream, range(1, stream.messages + 1), rate_hz=50)
        )
        try:
            await _committed_at_least(database_url, stream, 50, "the first messages committed")
            before = _committed(database_url, stream)
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(20)  # the outage, while messages keep coming
            await asyncio.to_thread(server.start)
            back = time.monotonic()
            await _committed_at_least(
                database_url, stream, before + 100, "the outage's messages committed", 20
            )
            took_s = time.monotonic() - back
            await publisher
        finally:
            publisher.cancel()
        assert took_s < 8, f"{took_s:.1f} s to write after the database came back"
        await _wait_for_all(database_url, stream, timeout_s=30)
        _assert_exactly_once(database_url, stream)
        await ingest.stop()


async def test_ingest_memory_stays_bounded_while_its_database_is_down(
    mqtt_url: str,
    ingest_factory: Callable[[str, _Stream], _Ingest],
) -> None:
    # ~23 kB messages, ~46 MB in all: far more than the broker's in-flight window holds.
    stream = _Stream.new("outage", messages=2000, readings=400)
    ingest = ingest_factory("postgresql://postgres@127.0.0.1:1/nowhere", stream)
    await ingest.start()
    before_kib = ingest.rss_kib()
    publisher = asyncio.create_task(_publish(mqtt_url, stream, range(1, stream.messages + 1)))
    peak_kib = before_kib
    try:
        while not publisher.done():
            peak_kib = max(peak_kib, ingest.rss_kib())
            await asyncio.sleep(0.05)
        await publisher
        for _ in range(20):  # and for a second after the last message
            peak_kib = max(peak_kib, ingest.rss_kib())
            await asyncio.sleep(0.05)
    finally:
        publisher.cancel()
    published_mib = stream.messages * len(stream.payload(1)) / 2**20
    growth_mib = (peak_kib - before_kib) / 1024
    assert published_mib > 30
    assert growth_mib < 15, f"RSS grew {growth_mib:.1f} MiB while {published_mib:.0f} MiB queued"
    assert b"database unavailable" in ingest.log_path.read_bytes()
