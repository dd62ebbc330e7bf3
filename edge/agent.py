"""The edge agent: poll every machine, turn what it says into messages, publish them.

    ModbusPoller (one per machine) -> Batcher -> PendingMessages -> MqttPublisher -> broker

Messages get their sequence numbers when they are made, so the durable outbox that
replaces PendingMessages (and brings a persisted counter) slots in between without
changing either side. The agent sends telemetry batches and state changes; cycle records
come with the realistic simulator, whose register map carries the per-cycle values.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time

from contracts import Topic, encode
from contracts.codec import AnyMessage
from edge.batcher import Batcher
from edge.config import GatewayConfig, MachineConfig, load_register_map
from edge.modbus import ModbusPoller
from edge.mqtt import MqttPublisher
from edge.pending import PendingMessages

_log = logging.getLogger(__name__)


async def run_edge(config: GatewayConfig, stop: asyncio.Event) -> None:
    """Run the gateway until `stop` is set; then publish what was polled and say goodbye."""
    maps = {m.machine_id: load_register_map(m.modbus.register_map) for m in config.machines}
    # Started from the wall clock in ms, a restart never reuses a number as long as the
    # gateway sends fewer than 1000 messages a second.
    next_seq = functools.partial(next, itertools.count(time.time_ns() // 1_000_000))
    pending = PendingMessages()

    def emit(message: AnyMessage) -> None:
        topic = Topic(config.site, config.area, config.line, message.machine_id, message.kind)
        pending.put(str(topic), encode(message))

    async def poll(machine: MachineConfig) -> None:
        batcher = Batcher(
            machine.machine_id,
            config.gateway_id,
            next_seq,
            emit,
            interval_s=config.telemetry_interval_s,
            poll_interval_s=machine.modbus.poll_interval_s,
        )
        poller = ModbusPoller(machine.machine_id, machine.modbus, maps[machine.machine_id])
        try:
            await poller.run(batcher.add)
        finally:
            batcher.flush()

    pymodbus_log = logging.getLogger("pymodbus")
    if pymodbus_log.level == logging.NOTSET:  # unless configured: it logs every failed attempt,
        pymodbus_log.setLevel(logging.CRITICAL)  # the pollers log each machine's outage once
    _log.info("edge gateway %s starting: %d machines", config.gateway_id, len(config.machines))
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(MqttPublisher(config, pending, next_seq).run(), name="mqtt publisher")
        pollers = [tasks.create_task(poll(m), name=f"poll {m.machine_id}") for m in config.machines]
        await stop.wait()
        for task in pollers:
            task.cancel()
        await asyncio.wait(pollers)
        pending.close()  # the publisher sends what is left, says goodbye and returns
    _log.info("edge gateway %s stopped", config.gateway_id)
