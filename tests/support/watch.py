"""Watching real servers from a test: what a topic filter brings, and waiting for a condition."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiomqtt

from contracts import BrokerUrl, decode
from contracts.codec import AnyMessage


@contextlib.asynccontextmanager
async def watch(mqtt_url: str, topic: str) -> AsyncIterator[list[tuple[str, AnyMessage]]]:
    """Every message on `topic` (a filter) while the block runs, decoded, retained ones first."""
    options = BrokerUrl.parse(mqtt_url).client_options()
    messages: list[tuple[str, AnyMessage]] = []
    async with aiomqtt.Client(**options, identifier=f"t-{uuid.uuid4().hex}") as client:
        await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                messages.append((str(message.topic), decode(message.payload)))

        task = asyncio.create_task(collect())
        try:
            yield messages
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Return once `condition()` holds; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def eventually(
    condition: Callable[[], Awaitable[bool]],
    what: str = "condition",
    timeout_s: float = 30.0,
    poll_s: float = 0.1,
) -> None:
    """Return once `await condition()` holds (a query, a request); fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s:g} s"
        await asyncio.sleep(poll_s)
