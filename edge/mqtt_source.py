"""An MQTT-native machine: its own messages, re-stamped as the gateway's, acked once durable."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

import aiomqtt
from pydantic import TypeAdapter, ValidationError

from contracts import DecodeError, EdgeStatus, MachineState, StateChange, decode
from contracts.codec import AnyMessage
from contracts.messages import SourceId
from edge.backoff import backoff
from edge.config import MachineConfig
from edge.errors import ConfigError

_log = logging.getLogger(__name__)

_SOURCE_ID: TypeAdapter[str] = TypeAdapter(SourceId)
_BATCH_MAX = 1000  # messages made durable by one flush (the broker's in-flight window is less)
# Messages remembered to drop their redeliveries: far more than the broker has in flight.
_RECENT_MAX = 1_000

# A machine message as its publisher stamped it: its redelivery has the same key.
_Key = tuple[str, int, datetime]


class MqttSource:
    """Forwards one MQTT-native machine's messages to the outbox as the gateway's own.

    It subscribes in a persistent session (QoS 1) to the machine's broker and acknowledges
    each message only after `flush()` made what it became durable, so a crash or a failing
    outbox loses nothing: the broker sends the unacknowledged again to the next session of
    the same client id. Telemetry, cycles and states are forwarded with the configured
    machine id, the source `<gateway_id>:<machine_id>` and that source's `next_seq`; the
    machine's own EdgeStatus is not forwarded, but going offline becomes one OFFLINE
    StateChange. A payload that is not a contracts message is logged, counted and dropped.
    Redeliveries (a retained state again after each subscribe, a message whose ack was lost)
    are dropped too: re-stamped, they would reach ingest as new messages.

    An exception from `emit` or `flush` ends `run()`; what was not acked stays with the broker.
    """

    def __init__(
        self,
        machine: MachineConfig,
        gateway_id: str,
        emit: Callable[[AnyMessage], None],
        flush: Callable[[], None],
        next_seq: Callable[[str], int],
        *,
        rng: random.Random | None = None,
    ) -> None:
        if machine.mqtt is None:
            raise ConfigError(f"machine {machine.machine_id} has no `mqtt` source")
        self.machine_id = machine.machine_id
        self.topic = machine.mqtt.topic
        self.broker = machine.mqtt.endpoint()
        self.client_id = machine.mqtt.client_id or f"moldlab-edge-{gateway_id}-{self.machine_id}"
        self.source = f"{gateway_id}:{self.machine_id}"
        self._own_prefix = f"{gateway_id}:"
        try:
            _SOURCE_ID.validate_python(self.source)
        except ValidationError:
            raise ConfigError(
                f"machine {self.machine_id}: source id {self.source!r} is too long "
                "(gateway and machine ids together: at most 127 characters)"
            ) from None
        # For the agent's metrics. forwarded: messages made durable (an OFFLINE state included).
        self.connected = False
        self.received = 0
        self.forwarded = 0
        self.rejected = 0
        self.duplicates = 0
        self._emit = emit
        self._flush = flush
        self._next_seq = next_seq
        self._rng = rng
        self._offline = False  # the machine said it is offline, and not yet that it is back
        self._last_ts: datetime | None = None  # of the newest message forwarded
        self._recent: OrderedDict[_Key, None] = OrderedDict()
        # The last message per topic: a retained one comes again with every subscription,
        # however long ago it was sent.
        self._latest: dict[str, _Key] = {}

    async def run(self) -> None:
        """Forward until cancelled, reconnecting with backoff when the broker is away."""
        delays = backoff(rng=self._rng)
        reported = False  # an outage is logged once, not at every attempt
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe(self.topic, qos=1)
                    self.connected, reported = True, False
                    delays = backoff(rng=self._rng)
                    _log.info(
                        "machine %s: connected to %s as %s, subscribed to %s",
                        self.machine_id, self.broker, self.client_id, self.topic,
                    )  # fmt: skip
                    await self._pump(client)
            except aiomqtt.MqttError as exc:
                if self.connected:
                    _log.warning("machine %s: lost %s: %s", self.machine_id, self.broker, exc)
                elif not reported:
                    _log.warning(
                        "machine %s: cannot reach %s: %s; retrying",
                        self.machine_id,
                        self.broker,
                        exc,
                    )
                reported = True
            finally:
                self.connected = False
            await asyncio.sleep(next(delays))

    def _client(self) -> aiomqtt.Client:
        client = aiomqtt.Client(
            **self.broker.client_options(), identifier=self.client_id, clean_session=False
        )
        # aiomqtt has no public switch for manual acks, so paho's is used; before connecting,
        # or the messages the session kept would be acked before they are durable.
        client._client.manual_ack_set(True)
        return client

    async def _pump(self, client: aiomqtt.Client) -> None:
        messages = client.messages
        async for first in messages:
            batch = [first]
            while len(messages) and len(batch) < _BATCH_MAX:
                batch.append(await anext(messages))
            self._forward(batch)
            for message in batch:  # in order, each after its flush
                client._client.ack(message.mid, message.qos)

    def _forward(self, batch: list[aiomqtt.Message]) -> None:
        """Emit what `batch` becomes and flush; what it changes is kept only once durable."""
        out: list[AnyMessage] = []
        keys: dict[_Key, None] = {}
        latest: dict[str, _Key] = {}
        offline, last_ts = self._offline, self._last_ts
        for raw in batch:
            self.received += 1
            try:
                message = decode(raw.payload)
            except DecodeError as exc:
                self.rejected += 1
                _log.warning(
                    "machine %s: dropped a message on %s: %s", self.machine_id, raw.topic, exc
                )
                continue
            if message.source.startswith(self._own_prefix):
                # What a gateway forwarded: seen again when the machine's broker is the plant's
                # and the topic filter matches the gateway's own output. Never a loop.
                self.duplicates += 1
                continue
            key, topic = (message.source, message.seq, message.ts), str(raw.topic)
            if key in keys or key in self._recent or self._latest.get(topic) == key:
                self.duplicates += 1
                continue
            keys[key], latest[topic] = None, key
            if isinstance(message, EdgeStatus):
                if message.online:
                    offline = False
                elif not offline:
                    offline = True
                    # A will's ts is when its session began, not when the machine went away:
                    # the machine was there at least until its last message.
                    ts = max(message.ts, last_ts) if last_ts else message.ts
                    out.append(self._offline_state(ts))
                continue
            last_ts = max(message.ts, last_ts) if last_ts else message.ts
            out.append(
                message.model_copy(
                    update={
                        "machine_id": self.machine_id,
                        "source": self.source,
                        "seq": self._next_seq(self.source),
                    }
                )
            )
        if out:
            for message in out:
                self._emit(message)
            self._flush()
        self.forwarded += len(out)
        self._offline, self._last_ts = offline, last_ts
        self._recent.update(keys)
        self._latest.update(latest)
        while len(self._recent) > _RECENT_MAX:
            self._recent.popitem(last=False)

    def _offline_state(self, ts: datetime) -> StateChange:
        return StateChange(
            machine_id=self.machine_id,
            ts=ts,
            source=self.source,
            seq=self._next_seq(self.source),
            state=MachineState.OFFLINE,
        )
