"""The in-memory pending messages: oldest first, acked after publishing, closable."""

from __future__ import annotations

import asyncio

from edge.pending import PendingMessages


async def test_peek_ack_and_close() -> None:
    pending = PendingMessages(max_messages=2)
    waiter = asyncio.create_task(pending.peek())
    await asyncio.sleep(0)
    pending.put("a", b"1")
    first = await waiter
    assert first is not None
    assert first.payload == b"1"
    pending.put("b", b"2")
    pending.put("c", b"3")  # full: "a" goes
    pending.ack(first)  # already dropped: nothing else is lost
    assert len(pending) == 2
    item = await pending.peek()
    assert item is not None
    assert item.topic == "b"
    pending.ack(item)
    pending.close()
    item = await pending.peek()
    assert item is not None
    assert item.topic == "c"
    pending.ack(item)
    assert await pending.peek() is None
