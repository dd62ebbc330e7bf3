"""A TCP link that can be cut as a network is: bytes vanish, nobody is told (chaos, tests)."""

from __future__ import annotations

import asyncio


class Cable:
    """A TCP proxy on 127.0.0.1 to `port`, which can be cut and mended.

    While cut, what either side sends is dropped and new connections hang unanswered; when
    it is mended, the connections of before are dead (as after a real outage) and new ones
    go through.
    """

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.cut = False
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Cable:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.mend()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def mend(self) -> None:
        self.cut = False
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def _connect(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        self._writers.append(client_w)
        while self.cut:  # no answer to a connection attempt during the cut
            if client_w.is_closing():
                return
            await asyncio.sleep(0.1)
        try:
            target_r, target_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        self._writers.append(target_w)
        await asyncio.gather(
            self._pump(client_r, target_w), self._pump(target_r, client_w), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.cut:
                writer.write(data)
                await writer.drain()
        writer.close()
