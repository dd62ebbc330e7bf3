"""The ingest service: MQTT (persistent session, QoS 1) -> batches -> PostgreSQL, then ack.

A message is acknowledged to the broker only after its rows are committed, so a crash at
any moment loses nothing: the broker redelivers, and message_log drops what was written.
Then its gateway is told (contracts.commits) and deletes it from its outbox: what a broker
loses after acknowledging it (a restart without shared subscriptions, a lost disk) the
gateway still has and sends again, when ingest says it has subscribed and on a timer.
With a shared group, several workers split the messages between them (an MQTT v5 shared
subscription, `$share/<group>/...`), each with a persistent session of its own; message_log
keeps every message exactly once across them. The broker side of the session is in
ingest.session, the database side in ingest.database; errors in ingest.errors.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiomqtt

from contracts import BrokerUrl
from contracts.commits import SUBSCRIBED_TOPIC
from ingest import session
from ingest.commits import confirmations
from ingest.database import Database
from ingest.errors import IngestError
from ingest.gaps import GapWatch, run_gap_watch
from ingest.latest import LatestValues
from ingest.metrics import IngestMetrics, serve_metrics
from ingest.retention import run_pruning
from ingest.settings import IngestSettings
from ingest.validation import Inbound, Limits
from ingest.writer import BatchResult, Prepared
from store.backoff import Backoff

log = logging.getLogger(__name__)

_REPORT_EVERY_S = 60.0
_RECONNECT_MAX_S = 4.0  # the longest wait between two attempts to reach the broker
# Sessions dropped this soon after connecting, this many times in a row: another process is
# most likely connecting with the same client id, each taking the session from the other.
_FLAP_S = 5.0
_FLAPS = 3
# Leaving a group: the broker sends what the session holds at once; this long without a
# message, and with everything acknowledged, the session is empty.
_LEAVE_IDLE_S = 2.0
# Arrivals are validated and packed this many messages at a time (in a thread), so that the
# end of a write is noticed, and the next batch sent, within a few milliseconds.
_CHUNK_MESSAGES = 50
# At shutdown, latest_value's last write gets this long (the database may be away).
_LATEST_LAST_WRITE_S = 10.0


async def run_ingest(settings: IngestSettings, stop: asyncio.Event, *, leave: bool = False) -> None:
    """Consume the broker into the database until `stop` is set.

    With `leave`, retire this worker's session instead: unsubscribe (the broker routes it
    nothing more), write and acknowledge what the session still holds, end the session.
    """
    broker = BrokerUrl.parse(settings.mqtt_url)
    metrics = IngestMetrics(max_clock_skew_s=settings.ingest_max_clock_skew_s)
    limits = Limits(
        max_payload_bytes=settings.ingest_max_payload_bytes,
        max_machines=settings.ingest_max_machines,
        max_machines_per_site=settings.ingest_max_machines_per_site,
        max_signals=settings.ingest_max_signals,
        max_signals_per_machine=settings.ingest_max_signals_per_machine,
    )
    latest = LatestValues(settings.database_url, on_written=metrics.latest_written.inc)
    database = Database(
        settings.database_url, limits, metrics, latest,
        connections=settings.ingest_write_connections,
    )  # fmt: skip
    subscription = session.subscription(settings)
    metrics.info.info(
        {"client_id": settings.mqtt_client_id, "subscription": subscription, "broker": str(broker)}
    )
    port = 0 if leave else settings.ingest_metrics_port
    consumed = asyncio.Event()  # no batch commits after it: latest_value's last write follows
    async with serve_metrics(metrics, settings.ingest_metrics_host, port):
        keep = timedelta(days=settings.ingest_dedup_window_days)
        keep_rejected = timedelta(days=settings.ingest_rejected_keep_days)
        pruning = (
            None
            if leave
            else asyncio.create_task(
                run_pruning(settings.database_url, keep, stop, keep_rejected=keep_rejected),
                name="ingest-prune",
            )
        )
        watching_gaps = (
            None
            if leave
            else asyncio.create_task(
                run_gap_watch(settings.database_url, GapWatch(metrics.sequence_gaps), stop),
                name="ingest-gaps",
            )
        )
        writing_latest = asyncio.create_task(latest.run(consumed), name="ingest-latest")
        try:
            drained = await _consume(settings, broker, subscription, database, metrics, stop, leave)
        finally:
            consumed.set()
            metrics.broker_connected.set(0)
            await database.close()
            for task in (pruning, watching_gaps):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            try:
                await asyncio.wait_for(writing_latest, _LATEST_LAST_WRITE_S)
            except TimeoutError:
                log.warning(
                    "latest_value: the last write took over %.0f s and was given up; ingest "
                    "takes its values from telemetry when it starts again", _LATEST_LAST_WRITE_S,
                )  # fmt: skip
    if drained:
        await session.end_session(settings, broker)
        log.info(
            "left: wrote the %d messages the session still held; session %s ended",
            metrics.acknowledged, settings.mqtt_client_id,
        )  # fmt: skip
    elif leave:
        log.warning("stopped before the session was empty: it is kept; leave again to finish")
    log.info("ingest stopped")


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
    # A broker back from an outage is tried again within seconds, whatever its length.
    backoff = Backoff(max_s=_RECONNECT_MAX_S)
    lost_since: float | None = None  # monotonic; the broker's outages are logged once each
    shared = settings.ingest_shared_group is not None
    connected_at = 0.0
    flaps = 0  # connections in a row that the broker dropped within _FLAP_S
    while not stop.is_set():
        connected = False
        try:
            client = session.client(settings, broker)
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
                        "still holds%s", subscription, broker, session.describe(settings), away,
                    )  # fmt: skip
                else:
                    session.check_granted(await client.subscribe(subscription, qos=1), subscription)
                    # Gateways send again what the broker took while nobody was subscribed.
                    await client.publish(SUBSCRIBED_TOPIC, session.hello(settings), qos=1)
                    log.info(
                        "subscribed to %s on %s (%s)%s",
                        subscription, broker, session.describe(settings), away,
                    )  # fmt: skip
                metrics.broker_connected.set(1)
                backoff.reset()
                lost_since = None
                idle_exit_s = _LEAVE_IDLE_S if leave else None
                if await _pump(client, database, metrics, settings, stop, idle_exit_s):
                    return True
        except* aiomqtt.MqttError as group:
            metrics.broker_connected.set(0)
            exc = session.leaf(group)
            if shared and not connected and session.reason(exc) == session.UNSUPPORTED_PROTOCOL:
                raise IngestError(
                    f"{broker} does not speak MQTT v5, which a shared group needs "
                    "(mosquitto 2 and EMQX do; amqtt does not)"
                ) from exc
            flaps = flaps + 1 if connected and _since(connected_at) < _FLAP_S else 0
            if session.taken_over(exc) or flaps == _FLAPS:
                log.error(
                    "the broker %s: is another process connected as %s? Every ingest process "
                    "needs a client id of its own (in a shared group, a --worker name of its own)",
                    "gave this session to another client" if session.taken_over(exc) else
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


def _since(monotonic: float) -> float:
    return time.monotonic() - monotonic


_Written = tuple[BatchResult, datetime]  # a batch's result and when it was committed


@dataclass(slots=True)
class _Batch:
    """Messages validated and packed as they arrive; acknowledged once committed."""

    messages: list[aiomqtt.Message] = field(default_factory=list)
    inbound: list[Inbound] = field(default_factory=list)
    prepared: Prepared = field(default_factory=Prepared)
    opened: float = 0.0  # monotonic, when its first message came

    async def add(self, messages: list[aiomqtt.Message], database: Database) -> None:
        """Validate and pack `messages` into this batch, in a thread: the writes in flight go
        on meanwhile (their statements and results need the event loop)."""
        now = datetime.now(UTC)
        inbound = [Inbound(str(m.topic), _payload(m), now) for m in messages]
        await asyncio.to_thread(database.prepare, inbound, self.prepared)
        if not self.messages:
            self.opened = time.monotonic()
        self.messages += messages
        self.inbound += inbound

    def acknowledge(
        self,
        client: aiomqtt.Client,
        metrics: IngestMetrics,
        result: BatchResult,
        committed_at: datetime,
    ) -> None:
        """Acknowledge this batch's messages to the broker and confirm them to their gateways
        (their rows are committed); count it."""
        for m in self.messages:
            client._client.ack(m.mid, m.qos)
        # Then the gateways may let these go: not lost if the broker drops it (they send again).
        for topic, payload in confirmations(self.prepared):
            client._client.publish(topic, payload, qos=1)
        topics = [i.topic for i in self.inbound]
        metrics.batch_committed(topics, self.prepared, result, committed_at)

    def wait_s(self, settings: IngestSettings) -> float | None:
        """How long it may still wait for more messages (0: it goes now); None if empty."""
        if not self.messages:
            return None
        if len(self.messages) >= settings.ingest_batch_max_messages:
            return 0.0
        return max(0.0, self.opened + settings.ingest_batch_max_wait_s - time.monotonic())


class _Throughput:
    """What committed batches wrote, logged in one line every _REPORT_EVERY_S."""

    def __init__(self) -> None:
        self._window = BatchResult()
        self._started = time.monotonic()

    def add(self, result: BatchResult) -> None:
        self._window += result
        elapsed_s = time.monotonic() - self._started
        if elapsed_s >= _REPORT_EVERY_S:
            w = self._window
            log.info(
                "last %.0f s: %d messages, %d readings (%.0f/s), %d duplicates, %d rejected",
                elapsed_s, w.messages, w.readings, w.readings / elapsed_s, w.duplicates,
                w.rejected,
            )  # fmt: skip
            self._window, self._started = BatchResult(), time.monotonic()


async def _pump(
    client: aiomqtt.Client,
    database: Database,
    metrics: IngestMetrics,
    settings: IngestSettings,
    stop: asyncio.Event,
    idle_exit_s: float | None = None,
) -> bool:
    """Batch, write and acknowledge until `stop` is set or the broker goes away; with
    `idle_exit_s`, also return True once that long has passed with nothing to do.

    Batches are written while the next one grows: each message is validated and packed as
    it arrives, and the growing batch goes when a connection is free and it has waited
    batch_max_wait_s for more (0 by default: at once), or when it is full
    (batch_max_messages). Under load, batches grow while the previous ones are written; at
    a light load, a message waits for no timer. Acks go out in order, each after its
    batch's commit.
    """
    inbox: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
    wake = asyncio.Event()  # a message arrived, or the write in flight ended
    # The last message received or acknowledged: a broker with a full in-flight window
    # sends more only after an ack, so quiet is counted from whichever came later.
    last_active = time.monotonic()

    async def receive() -> None:
        nonlocal last_active
        # Bounded by the broker: it sends no more than its in-flight window of unacked messages.
        async for message in client.messages:
            inbox.put_nowait(message)
            last_active = time.monotonic()
            wake.set()

    async def write(batch: _Batch) -> _Written | None:
        result = await database.write(batch.inbound, stop, batch.prepared)
        return None if result is None else (result, datetime.now(UTC))

    limit = settings.ingest_batch_max_messages
    throughput = _Throughput()
    writing: collections.deque[tuple[asyncio.Task[_Written | None], _Batch]] = collections.deque()
    growing = _Batch()
    drained = False
    try:
        async with asyncio.TaskGroup() as tg:
            receiver = tg.create_task(receive(), name="ingest-receive")
            while True:
                # Acknowledge written batches in the order they came (MQTT's order for acks).
                while writing and (writing[0][0].done() or stop.is_set()):
                    task, written = writing.popleft()
                    outcome = await task
                    metrics.inflight_batches.dec()
                    if outcome is None:
                        break  # stopping before commit: the broker keeps these for the next run
                    written.acknowledge(client, metrics, *outcome)
                    last_active = time.monotonic()
                    throughput.add(outcome[0])
                if stop.is_set():
                    break
                free = len(writing) < database.connections
                if free and growing.wait_s(settings) == 0.0:
                    task = tg.create_task(write(growing), name="ingest-write")
                    task.add_done_callback(lambda _: wake.set())
                    writing.append((task, growing))
                    growing = _Batch()
                    metrics.inflight_batches.inc()
                    continue
                room = min(limit - len(growing.messages), _CHUNK_MESSAGES)
                if room > 0 and not inbox.empty():
                    taken = [inbox.get_nowait() for _ in range(min(room, inbox.qsize()))]
                    await growing.add(taken, database)
                if (
                    idle_exit_s is not None
                    and not writing
                    and not growing.messages
                    and inbox.empty()
                    and time.monotonic() - last_active >= idle_exit_s
                ):
                    drained = True
                    break
                wake.clear()
                if (inbox.empty() or len(growing.messages) >= limit) and not (
                    writing and writing[0][0].done()
                ):
                    # In short steps, so that `stop` is seen promptly.
                    wait_s = growing.wait_s(settings) if free else None
                    timeout_s = 0.5 if wait_s is None else min(wait_s, 0.5)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout_s)
            receiver.cancel()
    finally:
        metrics.inflight_batches.set(0)
    return drained


def _payload(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode()
