"""Simulated MQTT-native machines: each one its own MQTT client publishing contracts messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import datetime, timedelta

import aiomqtt

from contracts import (
    BrokerUrl,
    CycleRecord,
    EdgeStatus,
    JobRecord,
    MessageKind,
    Reading,
    StateChange,
    TelemetryBatch,
    Topic,
    encode,
)
from contracts.codec import AnyMessage
from simulators.clock import SimClock, utc_now
from simulators.model import CycleDone, Event, JobChanged, MachineModel, StateEntered, log_truth
from simulators.specs import MachineSpec

log = logging.getLogger(__name__)


class SimulatedMachine:
    """One MQTT-native machine: its model, its publisher identity and its sequence numbers."""

    def __init__(self, spec: MachineSpec, rng: random.Random, start: datetime) -> None:
        self.spec = spec
        self.model = MachineModel(spec, rng, start)
        self.source = f"sim-{spec.machine_id}"
        # Sequence numbers start at the wall clock in ms, so a restarted simulator never
        # reuses one (it sends far fewer than 1000 messages a second).
        self._seq = time.time_ns() // 1_000_000

    def topic(self, kind: MessageKind) -> str:
        s = self.spec
        return str(Topic(s.site, s.area, s.line, s.machine_id, kind))

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def status(self, online: bool, ts: datetime) -> EdgeStatus:
        return EdgeStatus(
            machine_id=self.spec.machine_id,
            ts=ts,
            source=self.source,
            seq=self.next_seq(),
            online=online,
            detail="simulated MQTT-native machine",
        )

    def messages(self, events: list[Event]) -> list[AnyMessage]:
        """The wire messages of the model's events; ground truth goes to the log only."""
        out: list[AnyMessage] = []
        mid = self.spec.machine_id
        for ev in events:
            if isinstance(ev, StateEntered):
                out.append(
                    StateChange(
                        machine_id=mid,
                        ts=ev.ts,
                        source=self.source,
                        seq=self.next_seq(),
                        state=ev.state,
                        reason=ev.reason,
                    )
                )
            elif isinstance(ev, CycleDone):
                out.append(
                    CycleRecord(
                        machine_id=mid,
                        ts=ev.ts,
                        source=self.source,
                        seq=self.next_seq(),
                        shot=ev.shot,
                        quality=ev.quality,
                        parts=ev.parts,
                        parameters=ev.parameters,
                        job=ev.job,
                        defect=ev.defect,  # what the machine's monitoring would report
                    )
                )
            elif isinstance(ev, JobChanged):
                out.append(
                    JobRecord(
                        machine_id=mid,
                        ts=ev.ts,
                        source=self.source,
                        seq=self.next_seq(),
                        **ev.job.model_dump(),
                    )
                )
            else:
                log_truth(mid, ev)
        return out

    def telemetry(self, samples: list[tuple[datetime, dict[str, float]]]) -> TelemetryBatch:
        """One batch of the samples (time, values), timed by their offsets from the first.

        A reading of a sensor that dropped out (NaN) is not sent: a gap, as on a real press.
        """
        first = samples[0][0]
        readings = [
            Reading(signal=name, offset_ms=round((ts - first).total_seconds() * 1000), value=v)
            for ts, values in samples
            for name, v in values.items()
            if v == v  # NaN is not equal to itself
        ]
        return TelemetryBatch(
            machine_id=self.spec.machine_id,
            ts=first,
            source=self.source,
            seq=self.next_seq(),
            readings=readings,
        )


_RETAINED = frozenset({MessageKind.STATE, MessageKind.JOB})
MIN_TICK_S = 0.05  # sped up, a machine wakes at most 20 times a second and catches up
BATCH_SPAN = timedelta(seconds=60)  # of simulated time in one telemetry batch, at most


async def run_machine(
    machine: SimulatedMachine,
    broker: BrokerUrl,
    stop: asyncio.Event,
    *,
    clock: SimClock | None = None,
    telemetry_interval_s: float = 1.0,
) -> None:
    """Publish one machine's messages until `stop` is set, reconnecting with backoff.

    One telemetry batch per `telemetry_interval_s` of simulated time, whatever the speed.
    """
    clock = clock or SimClock(machine.model.now)
    status_topic = machine.topic(MessageKind.STATUS)
    tick_s = max(MIN_TICK_S, telemetry_interval_s / clock.speed)
    interval = timedelta(seconds=telemetry_interval_s)
    next_batch = machine.model.now + interval
    pending: list[AnyMessage] = machine.messages(machine.model.start())
    backoff_s = 1.0
    while not stop.is_set():
        will = aiomqtt.Will(
            status_topic, encode(machine.status(False, utc_now())), qos=1, retain=True
        )
        try:
            async with aiomqtt.Client(
                **broker.client_options(),
                identifier=machine.source,
                will=will,
            ) as client:
                log.info("machine %s connected to %s", machine.spec.machine_id, broker)
                backoff_s = 1.0
                online = machine.status(True, utc_now())
                await client.publish(status_topic, encode(online), qos=1, retain=True)
                while not stop.is_set():
                    for msg in pending:
                        # The latest state and job are retained: a new subscriber learns them
                        # at once.
                        retain = msg.kind in _RETAINED
                        topic = machine.topic(msg.kind)
                        await client.publish(topic, encode(msg), qos=1, retain=retain)
                    pending = []
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), tick_s)
                    # Sped up, one tick covers many sampling instants: each is sampled at its
                    # own simulated time, and they travel together, a minute per batch at most.
                    now = clock.now()
                    samples: list[tuple[datetime, dict[str, float]]] = []
                    while next_batch <= now:
                        pending += machine.messages(machine.model.advance(next_batch))
                        samples.append((next_batch, machine.model.sample()))
                        next_batch += interval
                        if next_batch - samples[0][0] > BATCH_SPAN:
                            pending.append(machine.telemetry(samples))
                            samples = []
                    if samples:
                        pending.append(machine.telemetry(samples))
                    pending += machine.messages(machine.model.advance(now))
                offline = machine.status(False, utc_now())
                await client.publish(status_topic, encode(offline), qos=1, retain=True)
        except aiomqtt.MqttError as exc:
            delay = backoff_s * random.uniform(0.5, 1.5)
            log.warning(
                "machine %s lost the broker (%s); %d messages dropped; retrying in %.1f s",
                machine.spec.machine_id,
                exc,
                len(pending),
                delay,
            )
            pending = []
            backoff_s = min(backoff_s * 2, 30.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    log.info("machine %s stopped", machine.spec.machine_id)


async def run_simulation(
    specs: list[MachineSpec],
    broker: BrokerUrl,
    stop: asyncio.Event,
    *,
    seed: int = 1,
    speed: float = 1.0,
    start: datetime | None = None,
    telemetry_interval_s: float = 1.0,
) -> None:
    """Run every machine in one TaskGroup until `stop` is set.

    From `start` (default: now) at `speed`; a `start` in the past is a backfill that runs at
    `speed` until it reaches the wall clock and then keeps pace with it.
    """
    now = utc_now()
    clock = SimClock(start or now, speed, catch_up=start is not None and start < now)
    async with asyncio.TaskGroup() as tg:
        for i, spec in enumerate(specs):
            machine = SimulatedMachine(spec, random.Random(seed * 1000 + i), clock.start)
            tg.create_task(
                run_machine(
                    machine,
                    broker,
                    stop,
                    clock=clock,
                    telemetry_interval_s=telemetry_interval_s,
                ),
                name=f"sim-{spec.machine_id}",
            )
