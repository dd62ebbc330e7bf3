"""`python -m moldlab ingest` as a child process that a test starts, kills and reads."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path


async def wait_until(
    condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str, poll_s: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout_s:.0f} s")
        await asyncio.sleep(poll_s)


class IngestChild:
    """One ingest process with `env`, logging to `log_path`; the test may kill it any time."""

    def __init__(self, env: dict[str, str], log_path: Path, name: str = "ingest") -> None:
        self.env = env
        self.log_path = log_path
        self.name = name
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def start(self, timeout_s: float = 20.0) -> None:
        """Start ingest and return once it has subscribed (its persistent session exists)."""
        assert self._proc is None or self._proc.returncode is not None
        with self.log_path.open("ab") as log:
            offset = log.tell()
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "moldlab", "ingest",
                env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip

        async def subscribed() -> bool:
            assert self._proc is not None
            if self._proc.returncode is not None:
                raise AssertionError(f"ingest exited with {self._proc.returncode}:\n{self.tail()}")
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return b"subscribed to" in log.read()

        await wait_until(subscribed, timeout_s, f"{self.name} subscribed", poll_s=0.05)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def kill(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGKILL)
        assert await self._proc.wait() == -signal.SIGKILL

    async def stop(self) -> None:
        if self._proc is None or self._proc.returncode is not None:
            return
        self._proc.terminate()
        try:
            await asyncio.wait_for(self._proc.wait(), 10)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
