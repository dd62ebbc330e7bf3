"""The ingest service: MQTT (persistent session, QoS 1) -> batches -> PostgreSQL, then ack.

A message is acknowledged to the broker only after its rows are committed, so a crash at
any moment loses nothing: the broker redelivers, and message_log drops what was written.
With a shared group, several workers split the messages between them (an MQTT v5 shared
subscription, `$share/<group>/...`), each with a persistent session of its own; message_log
keeps every message exactly once across them.

Exceptions::

    RuntimeError
     └── IngestError      ingest cannot do what it is configured to; the text says why
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiomqtt
import psycopg
from aiomqtt.exceptions import MqttCodeError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from contracts import BrokerUrl, Topic
from ingest.metrics import IngestMetrics, serve_metrics
from ingest.retention import run_pruning
from ingest.settings import IngestSettings
from ingest.validation import Inbound, Limits
from ingest.writer import BatchResult, Prepared, Writer, prepare

log = logging.getLogger(__name__)

_REPORT_EVERY_S = 60.0
# MQTT v5 ends a session at disconnection unless told otherwise; this one outlives any
# disconnection, as a 3.1.1 session without clean_session does.
_SESSION_NEVER_EXPIRES = 0xFFFFFFFF
_UNSUPPORTED_PROTOCOL = 0x84  # CONNACK reason code
_SESSION_TAKEN_OVER = 0x8E  # DISCONNECT reason code (EMQX sends it; mosquitto 2.0 just closes)
# Sessions dropped this soon after connecting, this many times in a row: another process is
# most likely connecting with the same client id, each taking the session from the other.
_FLAP_S = 5.0
_FLAPS = 3
# Leaving a group: the broker sends what the session holds at once; this long without a
# message, and with everything acknowledged, the session is empty.
_LEAVE_IDLE_S = 2.0


class IngestError(RuntimeError):
    """Ingest cannot do what it is configured to (the broker refuses its subscription)."""


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

    def __init__(self, url: str, limits: Limits, metrics: IngestMetrics | None = None) -> None:
        self._url = url
        self._limits = limits
        self._metrics = metrics or IngestMetrics()
        self._conn: psycopg.AsyncConnection | None = None
        self._writer: Writer | None = None
        self._backoff = Backoff()
        self._down_since: float | None = None  # monotonic; logged once per outage

    def prepare(self, batch: list[Inbound]) -> Prepared:
        # With the ids the writer knows, telemetry is packed here too, beside the write.
        known = self._writer.dimensions if self._writer is not None else None
        return prepare(batch, self._limits, known)

    async def write(
        self, batch: list[Inbound], stop: asyncio.Event, prepared: Prepared | None = None
    ) -> BatchResult | None:
        """Write `batch` (validated already if `prepared`), retrying through outages; None if
        `stop` came first."""
        while not stop.is_set():
            try:
                writer = await self._connect()
                started = time.perf_counter()
                try:
                    result = await writer.write(prepared or batch)
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    log.error(
                        "the database refused a batch (%s); writing it message by message", exc
                    )
                    result = await _write_singly(writer, batch)
                self._metrics.commit_seconds.observe(time.perf_counter() - started)
            except psycopg.OperationalError as exc:
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning("database unavailable (%s); retrying", str(exc).strip())
                else:
                    log.debug("database still unavailable (%s)", str(exc).strip())
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
            self._metrics.database_connected.set(1)
            if self._down_since is None:
                log.info("connected to the database")
            else:
                away_s = time.monotonic() - self._down_since
                log.info("connected to the database again after %.0f s", away_s)
                self._down_since = None
        return self._writer

    async def close(self) -> None:
        self._metrics.database_connected.set(0)
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


async def run_ingest(settings: IngestSettings, stop: asyncio.Event, *, leave: bool = False) -> None:
    """Consume the broker into the database until `stop` is set.

    With `leave`, retire this worker's session instead: unsubscribe (the broker routes it
    nothing more), write and acknowledge what the session still holds, end the session.
    """
    broker = BrokerUrl.parse(settings.mqtt_url)
    metrics = IngestMetrics()
    limits = Limits(max_payload_bytes=settings.ingest_max_payload_bytes)
    database = Database(settings.database_url, limits, metrics)
    subscription = _subscription(settings)
    metrics.info.info(
        {"client_id": settings.mqtt_client_id, "subscription": subscription, "broker": str(broker)}
    )
    port = 0 if leave else settings.ingest_metrics_port
    async with serve_metrics(metrics, settings.ingest_metrics_host, port):
        keep = timedelta(days=settings.ingest_dedup_window_days)
        pruning = (
            None if leave else asyncio.create_task(run_pruning(settings.database_url, keep, stop))
        )
        try:
            drained = await _consume(settings, broker, subscription, database, metrics, stop, leave)
        finally:
            metrics.broker_connected.set(0)
            await database.close()
            if pruning is not None:
                pruning.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pruning
    if drained:
        await _end_session(settings, broker)
        log.info(
            "left: wrote the %d messages the session still held; session %s ended",
            metrics.acknowledged, settings.mqtt_client_id,
        )  # fmt: skip
    elif leave:
        log.warning("stopped before the session was empty: it is kept; leave again to finish")
    log.info("ingest stopped")


def _subscription(settings: IngestSettings) -> str:
    plain = Topic.subscription(settings.ingest_site)
    if settings.ingest_shared_group is None:
        return plain
    return f"$share/{settings.ingest_shared_group}/{plain}"


def _client(settings: IngestSettings, broker: BrokerUrl, *, clean: bool = False) -> aiomqtt.Client:
    """A client for this worker's session: persistent unless `clean` (then it ends it)."""
    if settings.ingest_shared_group is None:
        return aiomqtt.Client(
            **broker.client_options(), identifier=settings.mqtt_client_id, clean_session=clean
        )
    # aiomqtt's default clean_start (clean on each Client's first connection) and v5's
    # default expiry (none) would each throw the session away at every restart.
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho's is unannotated
    if not clean:
        properties.SessionExpiryInterval = _SESSION_NEVER_EXPIRES
    return aiomqtt.Client(
        **broker.client_options(),
        identifier=settings.mqtt_client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=clean,
        properties=properties,
    )


def _describe(settings: IngestSettings) -> str:
    if settings.ingest_shared_group is None:
        return f"plain subscription, MQTT 3.1.1, client id {settings.mqtt_client_id}"
    return (
        f"shared group {settings.ingest_shared_group} as worker {settings.ingest_worker}, "
        f"MQTT v5, client id {settings.mqtt_client_id}"
    )


async def _consume(
    settings: IngestSettings,
    broker: BrokerUrl,
    subscription: str,
    database: Database,
    metrics: IngestMetrics,
    stop: asyncio.Event,
    leave: bool,
) -> bool:
    """Run the session, reconnecting with backoff; True once `leave` has emptied it."""
    backoff = Backoff()
    lost_since: float | None = None  # monotonic; the broker's outages are logged once each
    shared = settings.ingest_shared_group is not None
    connected_at = 0.0
    flaps = 0  # connections in a row that the broker dropped within _FLAP_S
    while not stop.is_set():
        connected = False
        try:
            client = _client(settings, broker)
            # aiomqtt has no public switch for manual acknowledgement, so paho's is used;
            # before connecting, or the session's queued messages would be acked unwritten.
            client._client.manual_ack_set(True)
            async with client:
                connected = True
                connected_at = time.monotonic()
                away = "" if lost_since is None else f"; back after {_since(lost_since):.0f} s"
                if leave:
                    await client.unsubscribe(subscription)
                    log.info(
                        "leaving: unsubscribed from %s on %s (%s); writing what the session "
                        "still holds%s", subscription, broker, _describe(settings), away,
                    )  # fmt: skip
                else:
                    _check_granted(await client.subscribe(subscription, qos=1), subscription)
                    log.info(
                        "subscribed to %s on %s (%s)%s",
                        subscription, broker, _describe(settings), away,
                    )  # fmt: skip
                metrics.broker_connected.set(1)
                backoff.reset()
                lost_since = None
                idle_exit_s = _LEAVE_IDLE_S if leave else None
                if await _pump(client, database, metrics, settings, stop, idle_exit_s):
                    return True
        except* aiomqtt.MqttError as group:
            metrics.broker_connected.set(0)
            exc = _leaf(group)
            if shared and not connected and _reason(exc) == _UNSUPPORTED_PROTOCOL:
                raise IngestError(
                    f"{broker} does not speak MQTT v5, which a shared group needs "
                    "(mosquitto 2 and EMQX do; amqtt does not)"
                ) from exc
            flaps = flaps + 1 if connected and _since(connected_at) < _FLAP_S else 0
            if _taken_over(exc) or flaps == _FLAPS:
                log.error(
                    "the broker %s: is another process connected as %s? Every ingest process "
                    "needs a client id of its own (in a shared group, a --worker name of its own)",
                    "gave this session to another client" if _taken_over(exc) else
                    f"dropped this session {flaps} times within seconds of connecting",
                    settings.mqtt_client_id,
                )  # fmt: skip
            if lost_since is None:
                lost_since = time.monotonic()
                if shared and not connected:
                    log.error(
                        "cannot connect to %s with MQTT v5 (%s): a shared group needs an MQTT "
                        "v5 broker with shared subscriptions (mosquitto 2, EMQX; not amqtt); "
                        "retrying", broker, exc,
                    )  # fmt: skip
                else:
                    log.warning("lost the broker %s (%s); reconnecting", broker, exc)
            else:
                log.debug("broker %s still unavailable (%s)", broker, exc)
            await backoff.wait(stop)
    return False


async def _end_session(settings: IngestSettings, broker: BrokerUrl) -> None:
    """Connect with a clean start and go: the broker discards the session."""
    try:
        async with _client(settings, broker, clean=True):
            pass
    except aiomqtt.MqttError as exc:
        raise IngestError(
            f"the session is empty but could not be ended ({exc}); leave again to end it"
        ) from exc


def _check_granted(codes: tuple[int, ...] | list[ReasonCode], subscription: str) -> None:
    """Raise IngestError if the broker refused `subscription` (a SUBACK failure code)."""
    for code in codes:
        value = code.value if isinstance(code, ReasonCode) else code
        if value >= 0x80:
            raise IngestError(
                f"the broker refused the subscription {subscription}: {code} (0x{value:02X})"
            )


def _leaf(group: BaseExceptionGroup[aiomqtt.MqttError]) -> aiomqtt.MqttError:
    exc: aiomqtt.MqttError | BaseExceptionGroup[aiomqtt.MqttError] = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _taken_over(exc: BaseException) -> bool:
    """Whether the broker ended the connection because another client took the session."""
    return _SESSION_TAKEN_OVER in (_reason(exc), _reason(exc.__cause__))


def _reason(exc: BaseException | None) -> int | None:
    """The MQTT reason code an aiomqtt error carries, if any."""
    if not isinstance(exc, MqttCodeError):
        return None
    rc = exc.rc
    return rc.value if isinstance(rc, ReasonCode) else rc


def _since(monotonic: float) -> float:
    return time.monotonic() - monotonic


_Written = tuple[BatchResult, datetime]  # a batch's result and when it was committed


@dataclass(slots=True)
class _Batch:
    """A batch handed to the database: acknowledged and counted once it is committed."""

    messages: list[aiomqtt.Message]
    topics: list[str]
    prepared: Prepared


async def _pump(
    client: aiomqtt.Client,
    database: Database,
    metrics: IngestMetrics,
    settings: IngestSettings,
    stop: asyncio.Event,
    idle_exit_s: float | None = None,
) -> bool:
    """Batch, write and acknowledge until `stop` is set or the broker goes away; with
    `idle_exit_s`, also return True once that long has passed with nothing to do."""
    inbox: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
    last_received = time.monotonic()

    async def receive() -> None:
        nonlocal last_received
        # Bounded by the broker: it sends no more than its in-flight window of unacked messages.
        async for message in client.messages:
            inbox.put_nowait(message)
            last_received = time.monotonic()

    async def write(inbound: list[Inbound], prepared: Prepared) -> _Written | None:
        result = await database.write(inbound, stop, prepared)
        return None if result is None else (result, datetime.now(UTC))

    window = BatchResult()
    window_started = time.monotonic()
    # Two batches in flight: while one is written and committed, the next is collected and
    # validated. Acks go out in order, each after its batch's commit.
    writing: asyncio.Task[_Written | None] | None = None
    written: _Batch | None = None
    drained = False
    try:
        async with asyncio.TaskGroup() as tg:
            receiver = tg.create_task(receive(), name="ingest-receive")
            while True:
                batch = [] if stop.is_set() else await _collect(inbox, settings, stop, writing)
                if batch:
                    now = datetime.now(UTC)
                    inbound = [Inbound(str(m.topic), _payload(m), now) for m in batch]
                    prepared = database.prepare(inbound)
                if writing is not None:
                    outcome = await writing
                    writing = None
                    metrics.inflight_batches.dec()
                    if outcome is None:
                        break  # stopping before commit: the broker keeps these for the next run
                    result, committed_at = outcome
                    assert written is not None
                    for m in written.messages:
                        client._client.ack(m.mid, m.qos)
                    metrics.batch_committed(written.topics, written.prepared, result, committed_at)
                    window += result
                    if (elapsed_s := time.monotonic() - window_started) >= _REPORT_EVERY_S:
                        log.info(
                            "last %.0f s: %d messages, %d readings (%.0f/s), %d duplicates, "
                            "%d rejected",
                            elapsed_s, window.messages, window.readings,
                            window.readings / elapsed_s, window.duplicates, window.rejected,
                        )  # fmt: skip
                        window, window_started = BatchResult(), time.monotonic()
                if stop.is_set():
                    break
                if batch:
                    writing = tg.create_task(write(inbound, prepared), name="ingest-write")
                    written = _Batch(batch, [i.topic for i in inbound], prepared)
                    metrics.inflight_batches.inc()
                elif (
                    idle_exit_s is not None
                    and writing is None
                    and inbox.empty()
                    and time.monotonic() - last_received >= idle_exit_s
                ):
                    drained = True
                    break
            receiver.cancel()
    finally:
        metrics.inflight_batches.set(0)
    return drained


async def _collect(
    inbox: asyncio.Queue[aiomqtt.Message],
    settings: IngestSettings,
    stop: asyncio.Event,
    writing: asyncio.Task[_Written | None] | None = None,
) -> list[aiomqtt.Message]:
    """Up to batch_max_messages, waiting at most batch_max_wait_s after the first one.

    With nothing arriving it returns empty once `writing` is done: the broker may be holding
    back further messages until that batch is acknowledged (its in-flight window is full);
    with nothing arriving and nothing being written, after half a second.
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
                if writing is None:
                    break  # nothing for a while: the caller may have something to check
                deadline = time.monotonic() + settings.ingest_batch_max_wait_s
    return batch


def _payload(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode()
