"""The ingest service: MQTT (persistent session, QoS 1) -> batches -> PostgreSQL, then ack.

A message is acknowledged to the broker only after its rows are committed, so a crash at
any moment loses nothing: the broker redelivers, and message_log drops what was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import UTC, datetime

import aiomqtt
import psycopg

from contracts import BrokerUrl, Topic
from ingest.settings import IngestSettings
from ingest.validation import Inbound, Limits
from ingest.writer import BatchResult, Prepared, Writer, prepare

log = logging.getLogger(__name__)

_REPORT_EVERY_S = 60.0


class Backoff:
    """Jittered exponential backoff: 0.5 s doubling to 30 s."""

    def __init__(self, first_s: float = 0.5, max_s: float = 30.0) -> None:
        self._first_s = first_s
        self._max_s = max_s
        self._next_s = first_s

    def reset(self) -> None:
        self._next_s = self._first_s

    async def wait(self, stop: asyncio.Event) -> None:
        delay = self._next_s * random.uniform(0.5, 1.5)
        self._next_s = min(self._next_s * 2, self._max_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


class Database:
    """One connection with its Writer, reconnected with backoff when it breaks."""

    def __init__(self, url: str, limits: Limits) -> None:
        self._url = url
        self._limits = limits
        self._conn: psycopg.AsyncConnection | None = None
        self._writer: Writer | None = None
        self._backoff = Backoff()

    def prepare(self, batch: list[Inbound]) -> Prepared:
        return prepare(batch, self._limits)

    async def write(
        self, batch: list[Inbound], stop: asyncio.Event, prepared: Prepared | None = None
    ) -> BatchResult | None:
        """Write `batch` (validated already if `prepared`), retrying through outages; None if
        `stop` came first."""
        while not stop.is_set():
            try:
                writer = await self._connect()
                try:
                    result = await writer.write(prepared or batch)
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    log.error(
                        "the database refused a batch (%s); writing it message by message", exc
                    )
                    result = await _write_singly(writer, batch)
            except psycopg.OperationalError as exc:
                log.warning("database unavailable (%s); retrying", str(exc).strip())
                await self.close()
                await self._backoff.wait(stop)
                continue
            self._backoff.reset()
            return result
        return None

    async def _connect(self) -> Writer:
        if self._conn is None or self._conn.closed or self._writer is None:
            self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
            self._writer = Writer(self._conn, self._limits)
            log.info("connected to the database")
        return self._writer

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
        self._conn = None
        self._writer = None


async def _write_singly(writer: Writer, batch: list[Inbound]) -> BatchResult:
    """Write each message alone, so one the database refuses takes no other down with it."""
    total = BatchResult()
    for inbound in batch:
        try:
            total += await writer.write([inbound])
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            total += await writer.reject(inbound, f"database refused it: {exc}")
    return total


async def run_ingest(settings: IngestSettings, stop: asyncio.Event) -> None:
    """Consume the broker into the database until `stop` is set."""
    broker = BrokerUrl.parse(settings.mqtt_url)
    limits = Limits(max_payload_bytes=settings.ingest_max_payload_bytes)
    database = Database(settings.database_url, limits)
    backoff = Backoff()
    subscription = Topic.subscription(settings.ingest_site)
    try:
        while not stop.is_set():
            try:
                client = aiomqtt.Client(
                    **broker.client_options(),
                    identifier=settings.ingest_client_id,
                    clean_session=False,
                )
                # aiomqtt has no public switch for manual acknowledgement, so paho's is used;
                # before connecting, or the session's queued messages would be acked unwritten.
                client._client.manual_ack_set(True)
                async with client:
                    await client.subscribe(subscription, qos=1)
                    log.info("subscribed to %s on %s", subscription, broker)
                    backoff.reset()
                    await _pump(client, database, settings, stop)
            except* aiomqtt.MqttError as group:
                log.warning("lost the broker %s (%s); reconnecting", broker, group.exceptions[0])
                await backoff.wait(stop)
    finally:
        await database.close()
    log.info("ingest stopped")


async def _pump(
    client: aiomqtt.Client, database: Database, settings: IngestSettings, stop: asyncio.Event
) -> None:
    """Batch, write and acknowledge until `stop` is set or the broker goes away."""
    inbox: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()

    async def receive() -> None:
        # Bounded by the broker: it sends no more than its in-flight window of unacked messages.
        async for message in client.messages:
            inbox.put_nowait(message)

    window = BatchResult()
    window_started = time.monotonic()
    # Two batches in flight: while one is written and committed, the next is collected and
    # validated. Acks go out in order, each after its batch's commit.
    writing: asyncio.Task[BatchResult | None] | None = None
    written: list[aiomqtt.Message] = []
    async with asyncio.TaskGroup() as tg:
        receiver = tg.create_task(receive(), name="ingest-receive")
        while True:
            batch = [] if stop.is_set() else await _collect(inbox, settings, stop, writing)
            if batch:
                now = datetime.now(UTC)
                inbound = [Inbound(str(m.topic), _payload(m), now) for m in batch]
                prepared = database.prepare(inbound)
            if writing is not None:
                result = await writing
                writing = None
                if result is None:
                    break  # stopping before commit: the broker keeps these for the next run
                for m in written:
                    client._client.ack(m.mid, m.qos)
                window += result
                if (elapsed_s := time.monotonic() - window_started) >= _REPORT_EVERY_S:
                    log.info(
                        "last %.0f s: %d messages, %d readings (%.0f/s), %d duplicates, "
                        "%d rejected",
                        elapsed_s, window.messages, window.readings, window.readings / elapsed_s,
                        window.duplicates, window.rejected,
                    )  # fmt: skip
                    window, window_started = BatchResult(), time.monotonic()
            if stop.is_set():
                break
            if batch:
                writing = tg.create_task(
                    database.write(inbound, stop, prepared), name="ingest-write"
                )
                written = batch
        receiver.cancel()


async def _collect(
    inbox: asyncio.Queue[aiomqtt.Message],
    settings: IngestSettings,
    stop: asyncio.Event,
    writing: asyncio.Task[BatchResult | None] | None = None,
) -> list[aiomqtt.Message]:
    """Up to batch_max_messages, waiting at most batch_max_wait_s after the first one.

    With nothing arriving it returns empty once `writing` is done: the broker may be holding
    back further messages until that batch is acknowledged (its in-flight window is full).
    """
    batch: list[aiomqtt.Message] = []
    deadline = time.monotonic() + settings.ingest_batch_max_wait_s
    while len(batch) < settings.ingest_batch_max_messages and not stop.is_set():
        if batch:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                break
        elif writing is not None:
            if writing.done():
                break
            timeout = 0.02  # check again soon: the ack of that batch must not wait
        else:
            timeout = 0.5  # in short steps, so that `stop` is seen promptly
        try:
            batch.append(await asyncio.wait_for(inbox.get(), timeout))
        except TimeoutError:
            if not batch:
                deadline = time.monotonic() + settings.ingest_batch_max_wait_s
    return batch


def _payload(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode()
