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

from contracts import MachineState
from contracts.registers import STANDSTILL_REASON, STATE, RegisterMap


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
        self._words: dict[int, int] = {}
        self._server: ModbusTcpServer | None = None

    @property
    def port(self) -> int:
        """The port served on; the one the OS chose once started with port 0."""
        return self._port

    def update(
        self, sample: Mapping[str, float], state: MachineState, reason: str | None = None
    ) -> None:
        """Put the model's signals, counters, state and standstill reason into the registers."""
        codes = {
            STATE: self.register_map.state_code(state),
            STANDSTILL_REASON: self.register_map.reason_code(reason),
        }
        for address, words in self.register_map.encode({**sample, **codes}).items():
            for offset, word in enumerate(words):
                self._words[address + offset] = word

    async def start(self) -> None:
        """Listen; after `stop()` this serves again on the same port (a machine power-cycled)."""
        # SimDevice is pymodbus 3.16's datastore (ModbusDeviceContext is deprecated); its
        # action hook fills each read from the latest update().
        device = SimDevice(
            id=self.unit_id,
            simdata=[
                SimData(r.address, count=r.width, datatype=DataType.REGISTERS, readonly=True)
                for r in self.register_map.registers
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
        # pymodbus answers from `registers`; fill the requested range from the latest update.
        for at in range(address, address + count):
            registers[at - start_address] = self._words.get(at, 0)
        return None
