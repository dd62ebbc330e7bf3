"""One simulated machine served over Modbus TCP: the model's latest values in holding registers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Self, cast

import yaml
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from contracts import Job, MachineState
from contracts.registers import (
    CYCLE_QUALITY,
    DEFECT_CAUSE,
    JOB_NAME,
    STANDSTILL_REASON,
    STATE,
    RegisterMap,
)
from simulators.model import CycleDone


def load_register_map(path: Path | None = None) -> RegisterMap:
    """The register map in `path`, or the packaged contracts/registers.yaml."""
    text = (
        path.read_text() if path else (resources.files("contracts") / "registers.yaml").read_text()
    )
    return RegisterMap.model_validate(yaml.safe_load(text))


class ModbusMachineServer:
    """A pymodbus TCP server for one machine; `update()` after each model step sets its registers.

    The registers are read-only to clients, as a machine's status registers are. Until the
    first `update()` every register is 0, which the State word reads as offline.
    """

    def __init__(
        self,
        register_map: RegisterMap,
        *,
        host: str = "127.0.0.1",
        port: int = 502,
        unit_id: int = 1,
    ) -> None:
        self.register_map = register_map
        self.host = host
        self._port = port
        self.unit_id = unit_id
        self._names = frozenset(r.name for r in register_map.registers) | frozenset(
            t.name for t in register_map.texts
        )
        self._words: dict[int, int] = {}
        self._server: ModbusTcpServer | None = None

    @property
    def port(self) -> int:
        """The port served on; the one the OS chose once started with port 0."""
        return self._port

    def update(
        self,
        sample: Mapping[str, float],
        state: MachineState,
        reason: str | None = None,
        last_cycle: CycleDone | None = None,
        job: Job | None = None,
    ) -> None:
        """Show the model's sample, state and standstill reason, the last cycle's values (its
        defect cause, if bad) and the job (None: no job, an empty JobName).

        Registers not set here read 0: before the first cycle CycleQuality reads "no cycle",
        and DefectCause "none" but after a bad cycle.
        A name longer than its registers is cut short, as the machine's panel would.
        """
        rm, names = self.register_map, self._names
        values: dict[str, float] = dict(sample)
        # Codes only for the words the map has: a map without a word needs no table for it.
        if STATE in names:
            values[STATE] = rm.state_code(state)
        if STANDSTILL_REASON in names:
            values[STANDSTILL_REASON] = rm.reason_code(reason)
        if last_cycle is not None:
            values |= last_cycle.parameters
            if CYCLE_QUALITY in names:
                values[CYCLE_QUALITY] = rm.quality_code(last_cycle.quality)
            if DEFECT_CAUSE in names:
                values[DEFECT_CAUSE] = rm.defect_code(last_cycle.defect)
        encoded_values = rm.encode(values)
        if JOB_NAME in names:
            encoded_values |= rm.encode_job(job, clip=True)
        words = {
            address + offset: word
            for address, encoded in encoded_values.items()
            for offset, word in enumerate(encoded)
        }
        # One assignment: a read sees all of this update or none of it, so block 0-40 never
        # mixes the counters of one cycle with the parameters of another, nor the job block
        # one job's name with another's mould.
        self._words = words

    async def start(self) -> None:
        """Listen; after `stop()` this serves again on the same port (a machine power-cycled)."""
        # SimDevice is pymodbus 3.16's datastore (ModbusDeviceContext is deprecated); its
        # action hook fills each read from the latest update().
        device = SimDevice(
            id=self.unit_id,
            simdata=[
                SimData(r.address, count=r.width, datatype=DataType.REGISTERS, readonly=True)
                for r in self.register_map.fields
            ],
            action=self._on_request,
        )
        server = ModbusTcpServer(device, address=(self.host, self._port))
        await server.serve_forever(background=True)
        # pymodbus types its listener as a BaseTransport; it is the asyncio.Server it created.
        self._port = cast(asyncio.Server, server.transport).sockets[0].getsockname()[1]
        self._server = server

    async def stop(self) -> None:
        """Close the listener and every client connection."""
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus: unannotated
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _on_request(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        # pymodbus answers from `registers`; fill the requested range from one update.
        words = self._words
        for at in range(address, address + count):
            registers[at - start_address] = words.get(at, 0)
        return None
