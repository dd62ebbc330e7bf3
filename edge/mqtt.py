"""The gateway's MQTT session: birth and death, QoS 1 publishing, reconnection with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime

import aiomqtt

from contracts import EdgeStatus, MessageKind, Topic, encode
from edge.backoff import backoff
from edge.config import GatewayConfig
from edge.pending import PendingMessages

_log = logging.getLogger(__name__)


class MqttPublisher:
    """Publishes the pending messages, one broker session at a time, until they are closed.

    Each session begins with a retained EdgeStatus(online=True) (birth) and leaves the
    retained EdgeStatus(online=False) as its MQTT last will; a clean end publishes that
    death itself. The death's sequence number is reserved right after the birth's, so
    whichever of will and death reaches the broker, no number is missing or used twice.
    (A will's ts is when its session began: it cannot know when the broker sends it.)
    """

    def __init__(
        self,
        config: GatewayConfig,
        pending: PendingMessages,
        next_seq: Callable[[], int],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.gateway_id = config.gateway_id
        self.broker = config.broker.endpoint()
        self.client_id = config.broker.client_id or f"moldlab-edge-{config.gateway_id}"
        self.topic = str(
            Topic(config.site, config.area, config.line, config.gateway_id, MessageKind.STATUS)
        )
        self._pending = pending
        self._next_seq = next_seq
        self._rng = rng

    async def run(self) -> None:
        """Publish until `pending` is closed and empty (or closed while the broker is away)."""
        reserved: tuple[int, int] | None = None  # kept until a session uses it: no gaps
        reported_unreachable = False
        delays = backoff(rng=self._rng)
        while True:
            birth_seq, death_seq = reserved or (self._next_seq(), self._next_seq())
            reserved = (birth_seq, death_seq)
            will = self._status(death_seq, online=False, detail="connection lost")
            in_session = False
            try:
                async with self._client(will) as client:
                    reserved = None
                    birth = self._status(birth_seq, online=True)
                    await client.publish(self.topic, birth, qos=1, retain=True)
                    in_session, reported_unreachable = True, False
                    _log.info("connected to broker %s as %s", self.broker, self.client_id)
                    delays = backoff(rng=self._rng)
                    while (item := await self._pending.peek()) is not None:
                        await client.publish(item.topic, item.payload, qos=1)
                        self._pending.ack(item)
                    death = self._status(death_seq, online=False, detail="shut down")
                    await client.publish(self.topic, death, qos=1, retain=True)
                _log.info("disconnected from broker %s: shut down", self.broker)
                return
            except aiomqtt.MqttError as exc:
                if in_session:
                    _log.warning("disconnected from broker %s: %s", self.broker, exc)
                    reported_unreachable = True  # the reconnection attempts are this event
                elif not reported_unreachable:
                    _log.warning("cannot reach broker %s: %s; retrying", self.broker, exc)
                    reported_unreachable = True
            if self._pending.closed.is_set():
                _log.warning("shutting down: %d messages not published", len(self._pending))
                return
            with contextlib.suppress(TimeoutError):  # wait, but not past a shutdown
                await asyncio.wait_for(self._pending.closed.wait(), next(delays))

    def _client(self, will: bytes) -> aiomqtt.Client:
        return aiomqtt.Client(
            **self.broker.client_options(),
            identifier=self.client_id,
            will=aiomqtt.Will(self.topic, will, qos=1, retain=True),
        )

    def _status(self, seq: int, *, online: bool, detail: str | None = None) -> bytes:
        gateway = self.gateway_id
        now = datetime.now(UTC)
        return encode(
            EdgeStatus(
                machine_id=gateway, ts=now, source=gateway, seq=seq, online=online, detail=detail
            )
        )
