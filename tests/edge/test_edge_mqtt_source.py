"""MQTT-native machines through the edge: re-stamped, acked once durable, against mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Protocol

import aiomqtt
import orjson
import pytest
from watch import until

from contracts import (
    CYCLE_PARAMETERS,
    BrokerUrl,
    CycleRecord,
    EdgeStatus,
    JobRecord,
    MachineState,
    PartQuality,
    StateChange,
    TelemetryBatch,
    decode,
    encode,
)
from contracts.codec import AnyMessage
from edge import mqtt_source
from edge.config import MachineConfig
from edge.mqtt_source import MqttSource
from simulators import MachineSpec, SimulatedMachine
from simulators.clock import SimClock
from simulators.mqtt import run_machine

pytestmark = pytest.mark.infra

T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)


class Broker(Protocol):  # the own_broker fixture
    url: str

    def start(self) -> None: ...
    def stop(self) -> None: ...


class Outbox:
    """The durable outbox, in memory: emitted messages count once flushed."""

    def __init__(self) -> None:
        self.pending: list[AnyMessage] = []
        self.committed: list[AnyMessage] = []
        self.fail = False
        self._seqs: defaultdict[str, Iterator[int]] = defaultdict(lambda: itertools.count(1))

    def emit(self, message: AnyMessage) -> None:
        self.pending.append(message)

    def flush(self) -> None:
        if self.fail:
            self.pending.clear()  # rolled back
            raise OSError("disk full")
        self.committed += self.pending
        self.pending.clear()

    def next_seq(self, source: str) -> int:
        return next(self._seqs[source])


class Machine:
    """An MQTT-native machine publishing hand-made contracts messages."""

    def __init__(self, client: aiomqtt.Client, site: str) -> None:
        self.client = client
        self.prefix = f"moldlab/v1/{site}/hall-b/line-3/press-7"
        self._seq = itertools.count(5000)

    async def publish(self, message: AnyMessage | bytes, *, retain: bool = False) -> None:
        if isinstance(message, bytes):
            topic, payload = f"{self.prefix}/cycle", message
        else:
            topic, payload = f"{self.prefix}/{message.kind.value}", encode(message)
        await self.client.publish(topic, payload, qos=1, retain=retain)

    def state(self, ts: datetime, state: MachineState = MachineState.RUNNING) -> StateChange:
        return StateChange(
            machine_id="press-7", ts=ts, source="plc-7", seq=self._next(), state=state
        )

    def cycle(self, ts: datetime, shot: int) -> CycleRecord:
        return CycleRecord(
            machine_id="press-7",
            ts=ts,
            source="plc-7",
            seq=self._next(),
            shot=shot,
            quality=PartQuality.GOOD,
            parameters=dict.fromkeys(CYCLE_PARAMETERS, 2.5),
        )

    def status(self, ts: datetime, *, online: bool) -> EdgeStatus:
        return EdgeStatus(
            machine_id="press-7", ts=ts, source="plc-7", seq=self._next(), online=online
        )

    def _next(self) -> int:
        return next(self._seq)


def _site() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"  # a site of its own: no retained leftovers


def _source(url: str, site: str, outbox: Outbox, gateway_id: str) -> MqttSource:
    machine = MachineConfig.model_validate(
        {"machine_id": "imm-07", "mqtt": {"url": url, "topic": f"moldlab/v1/{site}/#"}}
    )
    return MqttSource(
        machine,
        gateway_id,
        outbox.emit,
        outbox.flush,
        outbox.next_seq,
        rng=random.Random(7),
    )


def _gateway() -> str:
    return f"pi-{uuid.uuid4().hex[:6]}"  # and so a client id, a persistent session, of its own


@contextlib.asynccontextmanager
async def _running(source: MqttSource) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(source.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def _machine(url: str, site: str) -> AsyncIterator[Machine]:
    options = BrokerUrl.parse(url).client_options()
    async with aiomqtt.Client(**options, identifier=f"machine-{uuid.uuid4().hex}") as client:
        yield Machine(client, site)


def _states(outbox: Outbox) -> list[MachineState]:
    return [m.state for m in outbox.committed if isinstance(m, StateChange)]


async def test_a_simulated_machine_comes_out_as_the_gateways(mqtt_url: str) -> None:
    site, gateway = _site(), _gateway()
    broker = BrokerUrl.parse(mqtt_url)
    outbox = Outbox()
    source = _source(mqtt_url, site, outbox, gateway)
    spec = MachineSpec(machine_id="sim-press", site=site)
    machine = SimulatedMachine(spec, random.Random(3), T0)
    originals: list[AnyMessage] = []
    stop = asyncio.Event()
    async with (
        _running(source),
        aiomqtt.Client(**broker.client_options(), identifier=f"t-{uuid.uuid4()}") as spy,
    ):
        await spy.subscribe(f"moldlab/v1/{site}/#", qos=1)

        async def watch() -> None:
            async for message in spy.messages:
                originals.append(decode(message.payload))

        watcher = asyncio.create_task(watch())
        await until(lambda: source.connected)
        clock = SimClock(T0, speed=300.0)  # a few cycles a second
        sim = asyncio.create_task(run_machine(machine, broker, stop, clock=clock))
        await until(lambda: sum(isinstance(m, CycleRecord) for m in outbox.committed) >= 3)
        stop.set()
        await asyncio.wait_for(sim, 10)
        await until(lambda: MachineState.OFFLINE in _states(outbox))  # its last word
        await until(lambda: any(isinstance(m, EdgeStatus) and not m.online for m in originals))
        watcher.cancel()

    *forwarded, offline = outbox.committed
    data = [m for m in originals if not isinstance(m, EdgeStatus)]
    # The machine's job too (sent when it comes up), and each cycle names it.
    assert {type(m) for m in data} == {TelemetryBatch, CycleRecord, StateChange, JobRecord}
    assert {m.source for m in data} == {"sim-sim-press"}
    jobs = [m for m in forwarded if isinstance(m, JobRecord)]
    assert jobs[0].job_name == "sim-press-250303-0600"
    assert jobs[0].mould_id == "bracket-pp-4"
    assert {m.job for m in forwarded if isinstance(m, CycleRecord)} == {jobs[0].job_name}
    assert len(forwarded) == len(data)
    for got, sent in zip(forwarded, data, strict=True):
        assert type(got) is type(sent)
        assert got.machine_id == "imm-07"
        assert got.source == f"{gateway}:imm-07"
        changed = {"machine_id", "source", "seq"}
        assert got.model_dump(exclude=changed) == sent.model_dump(exclude=changed)
    assert [m.seq for m in outbox.committed] == list(range(1, len(outbox.committed) + 1))
    assert isinstance(offline, StateChange)
    assert offline.source == f"{gateway}:imm-07"
    assert offline.ts >= max(m.ts for m in data)  # not before the machine's last word
    received = len(originals)
    assert (source.received, source.forwarded, source.rejected) == (received, received - 1, 0)
    assert source.client_id == f"moldlab-edge-{gateway}-imm-07"


async def test_a_malformed_payload_is_logged_once_and_dropped(
    mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    site, gateway = _site(), _gateway()
    outbox = Outbox()
    source = _source(mqtt_url, site, outbox, gateway)
    async with _machine(mqtt_url, site) as machine:
        async with _running(source):
            await until(lambda: source.connected)
            await machine.publish(b"{not json")
            await machine.publish(b'{"kind": "cycle", "machine_id": "press-7"}')
            await machine.publish(machine.cycle(T0, shot=1))
            await until(lambda: len(outbox.committed) == 1)
        assert (source.received, source.forwarded, source.rejected) == (3, 1, 2)

        # Dropped means acknowledged: the next session of the same client id gets only new ones.
        again = _source(mqtt_url, site, outbox, gateway)
        async with _running(again):
            await until(lambda: again.connected)
            await machine.publish(machine.cycle(T0 + timedelta(seconds=15), shot=2))
            await until(lambda: len(outbox.committed) == 2)
        assert (again.received, again.rejected) == (1, 0)

    assert [m.shot for m in outbox.committed if isinstance(m, CycleRecord)] == [1, 2]
    dropped = [
        r for r in caplog.records if r.name == "edge.mqtt_source" and "dropped" in r.getMessage()
    ]
    assert len(dropped) == 2
    assert all(r.levelno == logging.WARNING for r in dropped)
    assert all(f"{machine.prefix}/cycle" in r.getMessage() for r in dropped)
    assert "invalid JSON" in dropped[0].getMessage()
    assert "shot" in dropped[1].getMessage()  # what is wrong with it


async def test_a_message_is_acked_only_once_flushed(mqtt_url: str) -> None:
    site, gateway = _site(), _gateway()
    outbox = Outbox()
    source = _source(mqtt_url, site, outbox, gateway)
    async with _machine(mqtt_url, site) as machine:
        task = asyncio.create_task(source.run())
        await until(lambda: source.connected)
        await machine.publish(machine.cycle(T0, shot=1))
        await until(lambda: len(outbox.committed) == 1)
        outbox.fail = True
        await machine.publish(machine.cycle(T0 + timedelta(seconds=15), shot=2))
        with pytest.raises(OSError, match="disk full"):  # the outbox's error ends the source
            await asyncio.wait_for(task, 10)
        assert (source.received, source.forwarded) == (2, 1)

        # Not acked, the broker keeps it for the session and sends it to the next connection.
        outbox.fail = False
        again = _source(mqtt_url, site, outbox, gateway)
        async with _running(again):
            await until(lambda: len(outbox.committed) == 2)
            await machine.publish(machine.cycle(T0 + timedelta(seconds=30), shot=3))
            await until(lambda: len(outbox.committed) == 3)

    assert [m.shot for m in outbox.committed if isinstance(m, CycleRecord)] == [1, 2, 3]
    assert (again.received, again.forwarded) == (2, 2)


async def test_a_machine_broker_that_goes_away_is_reported_once_and_back_once(
    own_broker: Broker, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    monkeypatch.setattr(mqtt_source, "_RECENT_MAX", 1)  # the retained state is long gone from it
    site, gateway = _site(), _gateway()
    outbox = Outbox()
    source = _source(own_broker.url, site, outbox, gateway)
    async with _running(source):
        await asyncio.sleep(2.0)  # not there yet: several attempts
        own_broker.start()
        await until(lambda: source.connected)
        async with _machine(own_broker.url, site) as machine:
            await machine.publish(machine.state(T0), retain=True)
            await machine.publish(machine.cycle(T0, shot=1))
            await until(lambda: len(outbox.committed) == 2)
        own_broker.stop()
        await until(lambda: not source.connected)
        await asyncio.sleep(2.0)  # gone a while: several attempts
        own_broker.start()
        async with _machine(own_broker.url, site) as machine:
            # Published before the gateway is back: the session keeps it for the gateway.
            await machine.publish(machine.cycle(T0 + timedelta(seconds=15), shot=2))
            await until(lambda: source.connected)
            await machine.publish(machine.cycle(T0 + timedelta(seconds=30), shot=3))
            await until(lambda: len(outbox.committed) == 4)

    assert [m.shot for m in outbox.committed if isinstance(m, CycleRecord)] == [1, 2, 3]
    # The retained state comes again with the new subscription, and the last cycle too if
    # the broker stopped before its ack arrived; each is forwarded once all the same.
    assert _states(outbox) == [MachineState.RUNNING]
    assert source.duplicates in (1, 2)
    assert [m.seq for m in outbox.committed] == [1, 2, 3, 4]
    logged = [r.getMessage() for r in caplog.records if r.name == "edge.mqtt_source"]
    assert sum("cannot reach" in line for line in logged) == 1
    assert sum("connected to" in line for line in logged) == 2
    assert sum(" lost " in line for line in logged) == 1


async def test_an_offline_machine_becomes_one_offline_state(mqtt_url: str) -> None:
    site, gateway = _site(), _gateway()
    outbox = Outbox()
    source = _source(mqtt_url, site, outbox, gateway)
    async with _machine(mqtt_url, site) as machine, _running(source):
        await until(lambda: source.connected)
        await machine.publish(machine.status(T0, online=True))
        await machine.publish(machine.state(T0 + timedelta(seconds=1)))
        await machine.publish(machine.cycle(T0 + timedelta(minutes=5), shot=1))
        # Its will, sent for a session that began at T0, then a retained copy of it.
        will = machine.status(T0, online=False)
        await machine.publish(will)
        await machine.publish(will, retain=True)
        await machine.publish(machine.status(T0 + timedelta(minutes=6), online=False))
        await machine.publish(machine.status(T0 + timedelta(minutes=9), online=True))
        await machine.publish(machine.state(T0 + timedelta(minutes=9)))
        await machine.publish(machine.status(T0 + timedelta(minutes=12), online=False))
        await until(lambda: len(outbox.committed) == 5)
        await asyncio.sleep(0.3)  # nothing more comes

    assert source.received == 9
    offline = [
        m
        for m in outbox.committed
        if isinstance(m, StateChange) and m.state is MachineState.OFFLINE
    ]
    assert [m.ts for m in offline] == [T0 + timedelta(minutes=5), T0 + timedelta(minutes=12)]
    assert _states(outbox) == [MachineState.RUNNING, MachineState.OFFLINE] * 2
    assert not any(isinstance(m, EdgeStatus) for m in outbox.committed)
    assert {m.source for m in outbox.committed} == {f"{gateway}:imm-07"}
    assert {m.machine_id for m in outbox.committed} == {"imm-07"}


async def test_a_timestamp_that_overflowed_utc_is_dropped_and_the_source_runs_on(
    mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # It raised OverflowError out of decode: the source died, and died again at each restart
    # on the same unacknowledged message.
    caplog.set_level(logging.INFO, logger="edge")
    site, gateway = _site(), _gateway()
    outbox = Outbox()
    source = _source(mqtt_url, site, outbox, gateway)
    async with _machine(mqtt_url, site) as machine:
        good = orjson.loads(encode(machine.cycle(T0, shot=1)))
        async with _running(source):
            await until(lambda: source.connected)
            for ts in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
                await machine.publish(orjson.dumps({**good, "ts": ts, "shot": 9}))
            await machine.publish(machine.cycle(T0, shot=1))
            await until(lambda: len(outbox.committed) == 1)
        assert (source.received, source.forwarded, source.rejected) == (3, 1, 2)
    dropped = [r.getMessage() for r in caplog.records if "dropped a message" in r.getMessage()]
    assert len(dropped) == 2
    assert all("must lie between" in text for text in dropped)
