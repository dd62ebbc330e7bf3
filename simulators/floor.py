"""A floor of simulated machines served as Modbus TCP servers, one port per machine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from contracts.registers import RegisterMap
from simulators.clock import SimClock
from simulators.modbus import ModbusMachineServer
from simulators.model import CycleDone, MachineModel, log_truth
from simulators.specs import MachineSpec

log = logging.getLogger(__name__)


class ModbusFloor:
    """Machine i on base_port + i (base_port 0: ports the OS picks), fed by its model."""

    def __init__(
        self,
        specs: list[MachineSpec],
        register_map: RegisterMap,
        *,
        host: str = "127.0.0.1",
        base_port: int = 5020,
        seed: int = 1,
        speed: float = 1.0,
        start: datetime | None = None,
        update_interval_s: float = 0.5,
    ) -> None:
        # A start in the past is a backfill: sped up until it reaches the wall clock.
        now = datetime.now(UTC)
        self._clock = SimClock(start or now, speed, catch_up=start is not None and start < now)
        self._start = self._clock.start
        self._models = [
            MachineModel(spec, random.Random(seed * 1000 + i), self._start)
            for i, spec in enumerate(specs)
        ]
        self._last_cycles: list[CycleDone | None] = [None] * len(specs)
        # A sensor that dropped out is not written: its register keeps the last reading.
        self._readings: list[dict[str, float]] = [{} for _ in specs]
        self.servers = [
            ModbusMachineServer(register_map, host=host, port=base_port + i if base_port else 0)
            for i in range(len(specs))
        ]
        self._update_interval_s = update_interval_s
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            for model, server in zip(self._models, self.servers, strict=True):
                await stack.enter_async_context(server)
                log.info(
                    "machine %s serves Modbus TCP on %s:%d",
                    model.spec.machine_id, server.host, server.port,
                )  # fmt: skip
            self._stack = stack.pop_all()
        self._update(self._start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        """Advance the models in (sped-up) real time and update the registers until `stop`."""
        while not stop.is_set():
            self._update(self._clock.now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._update_interval_s)

    def _update(self, now: datetime) -> None:
        for i, (model, server) in enumerate(zip(self._models, self.servers, strict=True)):
            for event in model.advance(now):
                if isinstance(event, CycleDone):
                    self._last_cycles[i] = event
                else:  # a job change shows in the registers as model.job
                    log_truth(model.spec.machine_id, event)
            readings = self._readings[i]
            readings.update((name, v) for name, v in model.sample().items() if v == v)
            server.update(readings, model.state, model.reason, self._last_cycles[i], model.job)
