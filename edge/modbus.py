"""Polling one Modbus TCP machine: typed snapshots; offline once, back once, backoff between."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from contracts import ContractError, MachineState, signal_spec
from contracts.registers import RegisterMap
from edge.backoff import backoff
from edge.config import ModbusConfig
from edge.errors import DeviceError

_log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one poll saw; a machine that did not answer is an offline snapshot, no values."""

    ts: datetime
    values: dict[str, float] = field(default_factory=dict)  # signal -> value in contract unit
    state: MachineState | None = None  # None: the register map has no State word
    reason: str | None = None


class ModbusPoller:
    """Polls one machine over Modbus TCP every `poll_interval_s` while `run()` runs.

    A machine that stops answering is reported once (a log line and one offline snapshot)
    and tried again after 1 s, 2 s ... 30 s (jittered); it is reported once when it is back.
    """

    def __init__(
        self,
        machine_id: str,
        config: ModbusConfig,
        register_map: RegisterMap,
        *,
        clock: Callable[[], datetime] = _utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.machine_id = machine_id
        self.config = config
        self.register_map = register_map
        self.address = f"{config.host}:{config.port} unit {config.unit_id}"
        self._clock = clock
        self._rng = rng
        self._blocks = register_map.blocks()
        # No reconnects or retries inside pymodbus: run() decides when to try again.
        self._client = AsyncModbusTcpClient(
            config.host, port=config.port, timeout=config.timeout_s, retries=0, reconnect_delay=0
        )

    async def read(self) -> Snapshot:
        """Read every register block once; DeviceError if the machine does not answer right."""
        client = self._client
        try:
            if not client.connected and not await client.connect():
                raise DeviceError(f"{self.address}: cannot connect")
            ts = self._clock()
            values: dict[str, float] = {}
            for block in self._blocks:
                response = await client.read_holding_registers(
                    block.start, count=block.count, device_id=self.config.unit_id
                )
                if response.isError():
                    raise DeviceError(
                        f"{self.address}: exception code {response.exception_code} "
                        f"reading {block.count} registers at {block.start}"
                    )
                values.update(self.register_map.decode(block.start, response.registers))
            state, reason = self.register_map.state_from(values) or (None, None)
        except ModbusException as exc:
            client.close()  # start afresh: a late answer must not pass for the next one
            raise DeviceError(f"{self.address}: {exc}") from exc
        except ContractError as exc:
            raise DeviceError(f"{self.address}: {exc}") from exc
        # Cycle parameters and CycleQuality are not telemetry: issue 4 makes them cycle records.
        signals = {k: v for k, v in values.items() if signal_spec(k) is not None}
        return Snapshot(ts, signals, state, reason)

    def close(self) -> None:
        """Close the connection (run() does so when it ends)."""
        self._client.close()

    async def run(self, on_snapshot: Callable[[Snapshot], None]) -> None:
        """Poll until cancelled, handing each snapshot on; closes the connection at the end."""
        answering: bool | None = None  # unknown before the first poll
        delays = backoff(rng=self._rng)
        due = time.monotonic()
        try:
            while True:
                try:
                    snapshot = await self.read()
                except DeviceError as exc:
                    if answering is not False:
                        _log.warning("machine %s offline: %s", self.machine_id, exc)
                        on_snapshot(Snapshot(self._clock(), state=MachineState.OFFLINE))
                        answering = False
                    await asyncio.sleep(next(delays))
                    due = time.monotonic()
                    continue
                if not answering:
                    verb = "back" if answering is False else "answering"
                    _log.info("machine %s %s at %s", self.machine_id, verb, self.address)
                    answering, delays = True, backoff(rng=self._rng)
                on_snapshot(snapshot)
                # Keep the cadence; after a stall poll at once rather than rush missed polls.
                due = max(due + self.config.poll_interval_s, time.monotonic())
                await asyncio.sleep(due - time.monotonic())
        finally:
            self.close()
