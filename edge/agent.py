"""The edge agent: poll every machine, turn what it says into messages, store, forward.

    ModbusPoller (one per machine) -> Batcher ─┐
    MqttSource (one per MQTT-native machine) ──┴-> Outbox (SQLite) -> MqttPublisher -> broker

Each machine is a source of its own, `<gateway_id>:<machine_id>`, numbering its messages
1, 2, 3 ... across restarts (the counters live in the outbox with the messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping

from contracts import Topic
from contracts.codec import AnyMessage
from edge.batcher import Batcher
from edge.config import GatewayConfig, MachineConfig, ModbusConfig, load_register_map
from edge.errors import EdgeError
from edge.metrics import GaugeReading, Metrics, serve_metrics
from edge.modbus import ModbusPoller
from edge.mqtt import MqttPublisher
from edge.mqtt_source import MqttSource
from edge.outbox import Outbox

_log = logging.getLogger(__name__)

_GOODBYE_S = 2.0  # after the publisher's grace: its death message and disconnection
_RECANCEL_S = 0.5  # a task still running this long after its cancellation is cancelled again


def source_of(config: GatewayConfig, machine_id: str) -> str:
    """The source id of one machine's messages: `<gateway_id>:<machine_id>`."""
    return f"{config.gateway_id}:{machine_id}"


def open_outbox(config: GatewayConfig) -> Outbox:
    """The gateway's outbox file, made if missing; EdgeError if it cannot be opened."""

    def topic_of(message: AnyMessage) -> str:
        return str(Topic(config.site, config.area, config.line, message.machine_id, message.kind))

    try:
        return Outbox(
            config.outbox.path,
            topic_of,
            max_bytes=int(config.outbox.max_mb * 1_000_000),
            synchronous=config.outbox.synchronous,
            keep_until=config.outbox.keep_until,
        )
    except (OSError, sqlite3.Error) as exc:
        raise EdgeError(f"outbox {config.outbox.path}: cannot open: {exc}") from exc


async def run_edge(config: GatewayConfig, stop: asyncio.Event) -> None:
    """Run the gateway until `stop` is set; then store what was polled and say goodbye."""
    outbox = open_outbox(config)
    try:
        await _run(config, outbox, stop)
    finally:
        outbox.close()


async def _run(config: GatewayConfig, outbox: Outbox, stop: asyncio.Event) -> None:
    pollers: dict[str, ModbusPoller] = {}
    mqtt_sources: dict[str, MqttSource] = {}

    async def poll(machine: MachineConfig, modbus: ModbusConfig) -> None:
        source = source_of(config, machine.machine_id)
        poller = pollers[machine.machine_id] = ModbusPoller(
            machine.machine_id,
            modbus,
            load_register_map(modbus.register_map),
            last_shot=outbox.last_shot(machine.machine_id),
        )
        batcher = Batcher(
            machine.machine_id,
            source,
            functools.partial(outbox.next_seq, source),
            outbox.put,
            interval_s=config.telemetry_interval_s,
            poll_interval_s=min(poller.intervals_s.values()),
        )
        try:
            await poller.run(batcher.add)
        finally:
            batcher.flush()

    for machine in config.machines:
        if machine.mqtt is not None:
            mqtt_sources[machine.machine_id] = MqttSource(
                machine, config.gateway_id, outbox.put, outbox.flush, outbox.next_seq
            )

    pymodbus_log = logging.getLogger("pymodbus")
    # pymodbus warns of every failed attempt to reconnect; the pollers log each machine's
    # outage once. Its lines are kept only for someone debugging it.
    if not pymodbus_log.isEnabledFor(logging.DEBUG):
        pymodbus_log.setLevel(logging.CRITICAL)
    _log.info(
        "edge gateway %s starting: %d machines, outbox %s",
        config.gateway_id,
        len(config.machines),
        config.outbox.path,
    )
    publisher = MqttPublisher(config, outbox)
    metrics = _metrics(outbox, publisher, pollers, mqtt_sources)
    stop_publishing = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        if config.metrics.enabled:
            server = await serve_metrics(metrics, config.metrics.host, config.metrics.port)
            await stack.enter_async_context(server)
        async with asyncio.TaskGroup() as tasks:
            publishing = tasks.create_task(publisher.run(stop_publishing), name="mqtt publisher")
            sources = [
                tasks.create_task(poll(m, m.modbus), name=f"poll {m.machine_id}")
                for m in config.machines
                if m.modbus is not None
            ] + [
                tasks.create_task(s.run(), name=f"mqtt source {machine_id}")
                for machine_id, s in mqtt_sources.items()
            ]
            await stop.wait()
            await _cancel(sources)
            outbox.flush()
            stop_publishing.set()  # the publisher sends what it can in time, says goodbye...
            grace_s = publisher.shutdown_timeout_s + _GOODBYE_S
            _, late = await asyncio.wait([publishing], timeout=grace_s)
            if late:  # ...unless the broker stopped answering, or never answered the connect
                _log.warning(
                    "broker %s did not answer in %g s: stopping without a goodbye",
                    publisher.broker,
                    grace_s,
                )
                await _cancel([publishing])
    _log.info("edge gateway %s stopped", config.gateway_id)


async def _cancel(tasks: Collection[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait for them, cancelling again those that carry on.

    pymodbus and aiomqtt await their answers with asyncio.wait_for, which on Python 3.11
    returns an answer that came in the loop turn of a cancellation and drops the
    cancellation (CPython gh-86296): a task cancelled once may carry on for ever.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=_RECANCEL_S)


def _metrics(
    outbox: Outbox,
    publisher: MqttPublisher,
    pollers: dict[str, ModbusPoller],
    mqtt_sources: dict[str, MqttSource],
) -> Metrics:
    """The gateway's health and counters, read from their owners at each scrape."""

    def per_machine(owners: Mapping[str, object], attribute: str) -> Callable[[], GaugeReading]:
        return lambda: {(m,): getattr(o, attribute) for m, o in owners.items()}

    def backlog_age_s() -> float:
        oldest = outbox.oldest_made()
        return max(time.time() - oldest, 0.0) if oldest is not None else 0.0

    m = Metrics()
    for name, help, owners, attribute in (
        ("moldlab_edge_polls", "Modbus reads tried", pollers, "polls"),
        ("moldlab_edge_poll_errors",
         "Modbus reads that failed (no answer, exception response, nonsense)", pollers, "errors"),
        ("moldlab_edge_cycles_missed",
         "cycles that happened between two reads and so were not recorded", pollers,
         "cycles_missed"),
        ("moldlab_edge_mqtt_received", "messages received from MQTT-native machines",
         mqtt_sources, "received"),
        ("moldlab_edge_mqtt_rejected",
         "messages from MQTT-native machines that were not contract messages", mqtt_sources,
         "rejected"),
        ("moldlab_edge_mqtt_duplicates",
         "messages from MQTT-native machines dropped as redeliveries or the gateway's own",
         mqtt_sources, "duplicates"),
    ):  # fmt: skip
        m.counter_fn(name, help, per_machine(owners, attribute), ("machine",))
    m.gauge_fn(
        "moldlab_edge_mqtt_source_connected",
        "1 while the machine's broker is connected",
        per_machine(mqtt_sources, "connected"),
        ("machine",),
    )
    m.counter_fn(
        "moldlab_edge_messages_queued", "messages made and put in the outbox", lambda: outbox.queued
    )
    m.counter_fn(
        "moldlab_edge_messages_sent",
        "messages the broker acknowledged (one sent again counts again)",
        lambda: outbox.sent,
    )
    m.counter_fn(
        "moldlab_edge_messages_resent",
        "messages sent again because the database had not confirmed them",
        lambda: publisher.resent,
    )
    m.counter_fn(
        "moldlab_edge_messages_confirmed",
        "messages ingest confirmed the database has, and the outbox let go",
        lambda: outbox.confirmed,
    )
    m.counter_fn(
        "moldlab_edge_messages_dropped",
        "oldest messages dropped because the outbox was full (since the file was made)",
        lambda: outbox.dropped,
    )
    m.gauge_fn("moldlab_edge_outbox_messages", "messages waiting in the outbox", outbox.__len__)
    m.gauge_fn(
        "moldlab_edge_outbox_bytes", "bytes of messages in the outbox", lambda: outbox.size_bytes
    )
    m.gauge_fn(
        "moldlab_edge_backlog_age_seconds", "age of the oldest unsent message", backlog_age_s
    )
    m.gauge_fn(
        "moldlab_edge_broker_connected",
        "1 while the plant broker is connected",
        lambda: float(publisher.connected),
    )
    return m
