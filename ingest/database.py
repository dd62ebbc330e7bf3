"""Ingest's connections to the database, each with its Writer, reconnected through outages."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import psycopg

from ingest.dimensions import Dimensions
from ingest.latest import LatestValues
from ingest.metrics import IngestMetrics
from ingest.rejects import RejectLog, printable
from ingest.validation import Inbound, Limits
from ingest.writer import BatchResult, Prepared, Writer, prepare
from store.backoff import Backoff

log = logging.getLogger(__name__)

_RECONNECT_MAX_S = 4.0  # a database back from an outage is written to within seconds


class Database:
    """`connections` connections, each with its Writer, reconnected with backoff when they
    break. As many batches can be written at once, one per connection (ingest uses two, so
    that PostgreSQL has one to work on while another's commit waits). The writers share the
    ids of machines and signals.

    Each connection backs off on its own (0.5 s doubling to 4 s), and one that reconnects
    wakes the others: a batch waiting on a sleeping connection would hold up every ack
    behind it.
    """

    def __init__(
        self,
        url: str,
        limits: Limits,
        metrics: IngestMetrics | None = None,
        latest: LatestValues | None = None,
        *,
        connections: int = 1,
    ) -> None:
        """`latest`: where committed batches hand their newest values; without it, each batch
        upserts latest_value in its own transaction."""
        self._url = url
        self._limits = limits
        self._metrics = metrics or IngestMetrics()
        self._latest = latest
        self.connections = connections
        self.dimensions = Dimensions()
        self._reject_log = RejectLog()  # one for all connections: 20 lines a minute in all
        self._free: asyncio.Queue[_Slot] = asyncio.Queue()
        self._slots = [_Slot() for _ in range(connections)]
        for slot in self._slots:
            self._free.put_nowait(slot)
        self._back = asyncio.Event()  # set when a connection is made: the others try at once
        self._connected_once = False
        self._down_since: float | None = None  # monotonic; logged once per outage

    def prepare(self, batch: list[Inbound], into: Prepared) -> None:
        """Validate `batch` into `into`; with the ids the writers know, pack its telemetry too."""
        prepare(batch, self._limits, self.dimensions, into)

    async def write(
        self, batch: list[Inbound], stop: asyncio.Event, prepared: Prepared | None = None
    ) -> BatchResult | None:
        """Write `batch` (validated already if `prepared`) on a free connection, retrying
        through outages; None if `stop` came first."""
        slot = await self._free.get()
        try:
            return await self._write(slot, batch, stop, prepared)
        finally:
            self._free.put_nowait(slot)

    async def _write(
        self, slot: _Slot, batch: list[Inbound], stop: asyncio.Event, prepared: Prepared | None
    ) -> BatchResult | None:
        while not stop.is_set():
            try:
                writer = await self._connect(slot)
                started = time.perf_counter()
                try:
                    result = await writer.write(prepared or batch)
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    log.error(
                        "the database refused a batch (%s); writing it message by message", exc
                    )
                    result = await _write_singly(writer, batch)
                self._metrics.commit_seconds.observe(time.perf_counter() - started)
            except psycopg.OperationalError as exc:
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning("database unavailable (%s); retrying", str(exc).strip())
                else:
                    log.debug("database still unavailable (%s)", str(exc).strip())
                await slot.close()
                self._metrics.database_connected.set(0)
                self._back.clear()
                await slot.backoff.wait(stop, self._back)
                continue
            slot.backoff.reset()
            return result
        return None

    async def _connect(self, slot: _Slot) -> Writer:
        if slot.writer is None or not slot.writer.usable:
            await slot.close()
            conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
            hand = None if self._latest is None else self._latest.offer
            slot.writer = Writer(conn, self._limits, hand, self.dimensions, self._reject_log)
            self._metrics.database_connected.set(1)
            self._back.set()
            if self._down_since is not None:
                away_s = time.monotonic() - self._down_since
                log.info("connected to the database again after %.0f s", away_s)
                self._down_since = None
            elif not self._connected_once:
                log.info("connected to the database (%d connections for batches)",
                         self.connections)  # fmt: skip
            self._connected_once = True
        return slot.writer

    async def close(self) -> None:
        self._metrics.database_connected.set(0)
        for slot in self._slots:
            await slot.close()


@dataclass(slots=True)
class _Slot:
    """One connection's writer, or None while it is to be (re)connected."""

    writer: Writer | None = None
    backoff: Backoff = field(default_factory=lambda: Backoff(max_s=_RECONNECT_MAX_S))

    async def close(self) -> None:
        if self.writer is not None:
            await self.writer.close()
        self.writer = None


async def _write_singly(writer: Writer, batch: list[Inbound]) -> BatchResult:
    """Write each message alone, so one the database refuses takes no other down with it."""
    total = BatchResult()
    for inbound in batch:
        try:
            total += await writer.write([inbound])
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            reason = f"database refused it: {str(exc).strip()[:300]}"
            try:
                total += await writer.reject(inbound, reason)
            except psycopg.OperationalError:
                raise
            except psycopg.Error as again:  # so long as one message cannot stop the rest
                log.error(
                    "a message on %s was refused and could not be recorded either (%s); it is "
                    "acknowledged unrecorded",
                    printable(inbound.topic, 160), printable(str(again).strip(), 300),
                )  # fmt: skip
                total += BatchResult(rejected=1)
    return total
