"""Watching a real broker from a test: what arrives on a topic filter, and waiting for it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable

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
