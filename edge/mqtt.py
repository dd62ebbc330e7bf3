"""The gateway's MQTT session: birth and death, the outbox sent at QoS 1, reconnection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import UTC, datetime

import aiomqtt

from contracts import EdgeStatus, MessageKind, Place, Topic, encode
from edge.backoff import backoff
from edge.config import GatewayConfig
from edge.outbox import Outbox, Queued

_log = logging.getLogger(__name__)

_WINDOW = 20  # publishes awaiting their PUBACK at once (mosquitto's default in-flight limit)
_READ = 100  # messages read from the outbox at a time
_PUBLISH_TIMEOUT_S = 10.0


class MqttPublisher:
    """Sends the outbox to the plant broker, one broker session at a time, until stopped.

    Each session begins with a retained EdgeStatus(online=True) (birth), which lists the
    machines the gateway serves and whose detail tells the outbox's backlog and drops, and
    leaves a retained EdgeStatus(online=False) as its
    MQTT last will; a clean end publishes that death itself. Birth and death take the
    gateway's own sequence numbers, reserved before connecting.

    Two lanes share the session: live messages (made since it began) go at once; the
    backlog (what waited when it began) goes oldest first at `drain_rate_per_s`. Each lane
    keeps the order the messages were made in; a message leaves the outbox on its PUBACK.
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
        self.shutdown_timeout_s = shutdown_timeout_s
        self.connected = False
        self._outbox = outbox
        self._rng = rng
        self._window = asyncio.Semaphore(_WINDOW)

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; then send what is left for up to shutdown_timeout_s."""
        reserved: list[int] | None = None  # kept until a session uses it
        reported_unreachable = False
        delays = backoff(rng=self._rng)
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
                    delays = backoff(rng=self._rng)
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
        try:
            async with asyncio.timeout(None) as deadline, asyncio.TaskGroup() as tasks:
                tasks.create_task(
                    self._lane(client, tasks, 0, boundary, self.drain_rate_per_s, stop)
                )
                tasks.create_task(self._lane(client, tasks, boundary, None, None, stop))
                # The grace counts from the stop, whatever the lanes are waiting for then.
                await stop.wait()
                deadline.reschedule(asyncio.get_running_loop().time() + self.shutdown_timeout_s)
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
                if rate_per_s:
                    # The first at once, then one per 1/rate s.
                    await asyncio.sleep(
                        max(0.0, began + (sent - 1) / rate_per_s - time.monotonic())
                    )
                await self._window.acquire()
                tasks.create_task(self._publish(client, row))
                last = row.id

    async def _publish(self, client: aiomqtt.Client, row: Queued) -> None:
        try:
            # Retained: a machine's newest job, so that the broker holds its current one.
            await client.publish(
                row.topic, row.payload, qos=1, retain=row.retain, timeout=_PUBLISH_TIMEOUT_S
            )
        finally:
            self._window.release()
        self._outbox.ack(row)

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
