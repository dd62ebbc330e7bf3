"""The gateway's MQTT session: birth and death, the outbox sent at QoS 1, confirmations of
what the database committed, what stays unconfirmed sent again, reconnection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import UTC, datetime

import aiomqtt

from contracts import EdgeStatus, MessageKind, Place, Topic, encode
from contracts.commits import SUBSCRIBED_TOPIC, CommitError, commit_topic, decode_commits
from edge.backoff import backoff
from edge.config import GatewayConfig
from edge.outbox import Outbox, Queued

_log = logging.getLogger(__name__)

_WINDOW = 20  # publishes awaiting their PUBACK at once (mosquitto's default in-flight limit)
_READ = 100  # messages read from the outbox at a time
_PUBLISH_TIMEOUT_S = 10.0
_RECONNECT_MAX_S = 4.0  # the longest wait between two attempts to reach the broker
_RESEND_MAX_S = 600.0  # while nothing is confirmed, resending backs off up to this


class MqttPublisher:
    """Sends the outbox to the plant broker, one broker session at a time, until stopped.

    Each session begins with a retained EdgeStatus(online=True) (birth), which lists the
    machines the gateway serves and whose detail tells the outbox's backlog and drops, and
    leaves a retained EdgeStatus(online=False) as its
    MQTT last will; a clean end publishes that death itself. Birth and death take the
    gateway's own sequence numbers, reserved before connecting.

    Two lanes share the session: live messages (made since it began) go at once; the
    backlog (what waited when it began) goes oldest first at `drain_rate_per_s`. Each lane
    keeps the order the messages were made in.

    A message leaves the outbox when ingest confirms that the database committed it
    (contracts.commits), or on its PUBACK with keep_until="acknowledged". What the broker
    acknowledged but nobody confirmed is sent again, at the backlog's rate, when an ingest
    worker says it has (re)subscribed and after `resend_after_s`, backing off while nothing
    is confirmed.
    """

    def __init__(
        self,
        config: GatewayConfig,
        outbox: Outbox,
        *,
        shutdown_timeout_s: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.gateway_id = config.gateway_id
        self.broker_config = config.broker
        self.broker = config.broker.endpoint()
        self.client_id = config.broker.client_id or f"moldlab-edge-{config.gateway_id}"
        self.topic = str(
            Topic(config.site, config.area, config.line, config.gateway_id, MessageKind.STATUS)
        )
        # Every machine it serves, polled or forwarded: its death takes them offline.
        self.machines = [
            str(Place(config.site, config.area, config.line, m.machine_id)) for m in config.machines
        ]
        self.drain_rate_per_s = config.outbox.drain_rate_per_s
        self.resend_after_s = config.outbox.resend_after_s
        self.commit_topic = commit_topic(config.site, config.area, config.line, config.gateway_id)
        self._own_sources = (config.gateway_id, f"{config.gateway_id}:")
        self.resent = 0  # messages sent again because they were not confirmed
        self.shutdown_timeout_s = shutdown_timeout_s
        self.connected = False
        self._outbox = outbox
        self._rng = rng
        self._window = asyncio.Semaphore(_WINDOW)
        self._inflight: set[asyncio.Task[None]] = set()
        self._ingest_back = asyncio.Event()  # an ingest worker said it has subscribed
        self._bad_commit_told = False

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; then send what is left for up to shutdown_timeout_s."""
        reserved: list[int] | None = None  # kept until a session uses it
        reported_unreachable = False
        delays = backoff(max_s=_RECONNECT_MAX_S, rng=self._rng)
        while True:
            reserved = reserved or self._outbox.reserve(self.gateway_id, 2)
            birth_seq, death_seq = reserved
            will = self._status(death_seq, online=False, detail="connection lost")
            in_session = False
            try:
                async with self._client(will) as client:
                    reserved = None
                    birth = self._status(birth_seq, online=True, detail=self._outbox_state())
                    await client.publish(self.topic, birth, qos=1, retain=True)
                    in_session, reported_unreachable, self.connected = True, False, True
                    _log.info("connected to broker %s as %s", self.broker, self.client_id)
                    delays = backoff(max_s=_RECONNECT_MAX_S, rng=self._rng)
                    await self._send(client, stop)
                    death = self._status(death_seq, online=False, detail="shut down")
                    await client.publish(self.topic, death, qos=1, retain=True)
                self.connected = False
                _log.info("disconnected from broker %s: shut down", self.broker)
                return
            except aiomqtt.MqttError as exc:
                self.connected = False
                if in_session:
                    _log.warning("disconnected from broker %s: %s", self.broker, exc)
                    reported_unreachable = True  # the reconnection attempts are this event
                elif not reported_unreachable:
                    _log.warning("cannot reach broker %s: %s; retrying", self.broker, exc)
                    reported_unreachable = True
            if stop.is_set():
                _log.warning(
                    "shutting down without the broker: %d messages stay in the outbox",
                    len(self._outbox),
                )
                return
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can drop a cancellation.
            with contextlib.suppress(TimeoutError):  # wait, but not past a shutdown
                async with asyncio.timeout(next(delays)):
                    await stop.wait()

    async def _send(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Send both lanes until stopped and drained (or out of time); MqttError if cut."""
        self._outbox.flush()  # acknowledgements of the last session, lest they go again
        boundary = self._outbox.last_id
        if backlog := len(self._outbox):
            _log.info(
                "sending a backlog of %d messages at %g/s besides live data",
                backlog,
                self.drain_rate_per_s,
            )
        confirming = self._outbox.keep_until == "committed"
        if confirming:
            await self._subscribe_commits(client)
        try:
            async with asyncio.timeout(None) as deadline, asyncio.TaskGroup() as tasks:
                draining = tasks.create_task(
                    self._lane(client, tasks, 0, boundary, self.drain_rate_per_s, stop)
                )
                lanes = [
                    draining,
                    tasks.create_task(self._lane(client, tasks, boundary, None, None, stop)),
                ]
                helpers: list[asyncio.Task[None]] = []
                if confirming:
                    helpers = [
                        tasks.create_task(self._confirmations(client)),
                        tasks.create_task(self._resend(client, tasks, draining)),
                    ]
                # The grace counts from the stop, whatever the lanes are waiting for then.
                await stop.wait()
                deadline.reschedule(asyncio.get_running_loop().time() + self.shutdown_timeout_s)
                await asyncio.wait(lanes)
                while self._inflight:  # the PUBACKs of what was published
                    await asyncio.wait(self._inflight)
                for helper in helpers:
                    helper.cancel()
        except TimeoutError:
            _log.warning(
                "shutting down: %d messages not sent in %g s stay in the outbox",
                len(self._outbox),
                self.shutdown_timeout_s,
            )
        except ExceptionGroup as group:
            cut = group.subgroup(aiomqtt.MqttError)
            if cut is None:
                raise
            raise cut.exceptions[0] from None

    async def _lane(
        self,
        client: aiomqtt.Client,
        tasks: asyncio.TaskGroup,
        after: int,
        upto: int | None,
        rate_per_s: float | None,
        stop: asyncio.Event,
    ) -> None:
        """Publish the outbox's messages after `after` (up to `upto`, or on and on) in order."""
        last, sent, began = after, 0, time.monotonic()
        while True:
            rows = self._outbox.after(last, _READ, upto)
            if not rows:
                if upto is not None and sent:
                    _log.info(
                        "backlog of %d messages sent in %.1f s", sent, time.monotonic() - began
                    )
                if upto is not None or stop.is_set():
                    return
                with contextlib.suppress(TimeoutError):  # a look at `stop` twice a second
                    async with asyncio.timeout(0.5):
                        await self._outbox.wait_beyond(last)
                continue
            for row in rows:
                sent += 1
                # The first at once, then one per 1/rate s.
                not_before = began + (sent - 1) / rate_per_s if rate_per_s else None
                await self._put(client, tasks, row, not_before)
                last = row.id

    async def _put(
        self,
        client: aiomqtt.Client,
        tasks: asyncio.TaskGroup,
        row: Queued,
        not_before: float | None = None,
    ) -> None:
        """Publish `row`, not before `not_before` (monotonic), once the window has room; its
        PUBACK is awaited in a task of `tasks`."""
        if not_before is not None:
            await asyncio.sleep(max(0.0, not_before - time.monotonic()))
        await self._window.acquire()
        task = tasks.create_task(self._publish(client, row))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _publish(self, client: aiomqtt.Client, row: Queued) -> None:
        try:
            # Retained: a machine's newest job, so that the broker holds its current one.
            await client.publish(
                row.topic, row.payload, qos=1, retain=row.retain, timeout=_PUBLISH_TIMEOUT_S
            )
        finally:
            self._window.release()
        self._outbox.ack(row)

    async def _subscribe_commits(self, client: aiomqtt.Client) -> None:
        """Subscribe to this gateway's commit confirmations and to ingest's hellos."""
        for topic in (self.commit_topic, SUBSCRIBED_TOPIC):
            codes = await client.subscribe(topic, qos=1)
            if any(getattr(code, "value", code) >= 0x80 for code in codes):
                _log.error(
                    "the broker refused the subscription %s: nothing will be confirmed, and "
                    "the outbox keeps every message until it is full (check the broker's ACL)",
                    topic,
                )

    async def _confirmations(self, client: aiomqtt.Client) -> None:
        """Let go of what ingest confirms; note when an ingest worker (re)subscribes."""
        async for message in client.messages:
            if str(message.topic) == SUBSCRIBED_TOPIC:
                self._ingest_back.set()
                continue
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                committed = decode_commits(payload)
            except CommitError as exc:
                if not self._bad_commit_told:  # once per run: a broken publisher repeats
                    _log.warning("ignoring a commit message on %s: %s", message.topic, exc)
                    self._bad_commit_told = True
                continue
            # Only this gateway's sources: a confirmation cannot delete another's messages.
            mine = {s: r for s, r in committed.items() if s.startswith(self._own_sources)}
            self._outbox.confirm(mine)

    async def _resend(
        self, client: aiomqtt.Client, tasks: asyncio.TaskGroup, backlog: asyncio.Task[None]
    ) -> None:
        """Send again, in order, what the broker acknowledged but nobody confirmed: all of
        it when ingest says it has (re)subscribed, else what waited `resend_after_s`."""
        await asyncio.wait([backlog])  # the backlog lane sends what waited from before
        wait_s, seen = self.resend_after_s, self._outbox.confirmed
        while True:
            hello = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._ingest_back.wait()
                    hello = True
            self._ingest_back.clear()
            now = time.time()
            acked_by = now if hello else now - self.resend_after_s
            count = await self._resend_round(client, tasks, acked_by)
            if count:
                _log.info(
                    "sent again %d messages the database had not confirmed (%s)",
                    count,
                    "an ingest worker subscribed" if hello else f"after {wait_s:.0f} s",
                )
            nothing_confirmed = self._outbox.confirmed == seen
            seen = self._outbox.confirmed
            backing_off = count and nothing_confirmed and not hello
            wait_s = min(wait_s * 2, _RESEND_MAX_S) if backing_off else self.resend_after_s

    async def _resend_round(
        self, client: aiomqtt.Client, tasks: asyncio.TaskGroup, acked_by: float
    ) -> int:
        last, sent, began = 0, 0, time.monotonic()
        upto = self._outbox.last_id
        while rows := self._outbox.after(last, _READ, upto, acked_by=acked_by):
            for row in rows:
                sent += 1
                await self._put(client, tasks, row, began + (sent - 1) / self.drain_rate_per_s)
                last = row.id
        self.resent += sent
        return sent

    def _outbox_state(self) -> str:
        waiting = len(self._outbox)
        oldest = self._outbox.oldest_made()
        age = f", the oldest {time.time() - oldest:.0f} s old" if oldest else ""
        return f"outbox: {waiting} messages waiting{age}; {self._outbox.dropped} dropped when full"

    def _client(self, will: bytes) -> aiomqtt.Client:
        return aiomqtt.Client(
            **self.broker_config.client_options(),
            identifier=self.client_id,
            will=aiomqtt.Will(self.topic, will, qos=1, retain=True),
            keepalive=self.broker_config.keepalive_s,
            timeout=_PUBLISH_TIMEOUT_S,
        )

    def _status(self, seq: int, *, online: bool, detail: str | None = None) -> bytes:
        gateway = self.gateway_id
        now = datetime.now(UTC)
        return encode(
            EdgeStatus(
                machine_id=gateway, ts=now, source=gateway, seq=seq, online=online, detail=detail,
                machines=self.machines if online else None,
            )
        )  # fmt: skip
