"""Writes validated batches to PostgreSQL in one transaction each, exactly once per message."""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from contracts import (
    CycleRecord,
    EdgeStatus,
    StateChange,
    TelemetryBatch,
    Topic,
    signal_spec,
)
from contracts.codec import AnyMessage, Sample
from ingest.validation import Inbound, Limits, RejectedMessage, validate

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BatchResult:
    messages: int = 0
    readings: int = 0
    duplicates: int = 0
    rejected: int = 0

    def __iadd__(self, other: BatchResult) -> BatchResult:
        self.messages += other.messages
        self.readings += other.readings
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        return self


@dataclass(slots=True)
class Prepared:
    """A validated batch, ready to write: its good messages by (source, seq), its rejects."""

    valid: dict[tuple[str, int], tuple[Topic, AnyMessage, list[Sample] | None]] = field(
        default_factory=dict
    )
    rejected: list[tuple[str, bytes, str]] = field(default_factory=list)
    duplicates: int = 0


def prepare(batch: list[Inbound], limits: Limits) -> Prepared:
    """Validate `batch`: CPU only, no database, so ingest does it for the next batch while
    the previous one is being written."""
    prepared = Prepared()
    for inbound in batch:
        try:
            topic, message, samples = validate(inbound, limits)
        except RejectedMessage as exc:
            prepared.rejected.append((inbound.topic, inbound.payload, str(exc)))
            continue
        key = (message.source, message.seq)
        if key in prepared.valid:
            prepared.duplicates += 1
        prepared.valid[key] = (topic, message, samples)
    return prepared


@dataclass(slots=True)
class _Rows:
    """The rows one batch adds, table by table."""

    telemetry: bytearray = field(default_factory=bytearray)  # binary COPY tuples
    readings: int = 0
    latest: dict[tuple[int, int], tuple[int, float]] = field(default_factory=dict)  # pg us
    cycles: list[tuple[object, ...]] = field(default_factory=list)
    states: list[tuple[object, ...]] = field(default_factory=list)
    statuses: list[tuple[object, ...]] = field(default_factory=list)
    last_seen: dict[int, datetime] = field(default_factory=dict)


class Writer:
    """Holds the dimension caches for one database connection."""

    def __init__(self, conn: AsyncConnection, limits: Limits | None = None) -> None:
        self._conn = conn
        self._limits = limits or Limits()
        self._machines: dict[str, int] = {}
        self._signals: dict[str, int] = {}

    async def write(self, batch: list[Inbound] | Prepared) -> BatchResult:
        """Validate and write `batch` in one transaction; bad messages become rejected rows."""
        prepared = batch if isinstance(batch, Prepared) else prepare(batch, self._limits)
        valid, rejected = prepared.valid, prepared.rejected
        result = BatchResult(duplicates=prepared.duplicates)
        new_machines: dict[str, int] = {}
        new_signals: dict[str, int] = {}
        async with self._conn.transaction():
            fresh = await self._claim(list(valid))
            result.duplicates += len(valid) - len(fresh)
            rows = _Rows()
            for key in fresh:
                topic, message, samples = valid[key]
                if isinstance(message, EdgeStatus):
                    rows.statuses.append(_status_row(message))
                    continue
                machine_id = await self._machine_id(topic, new_machines)
                seen = rows.last_seen.get(machine_id)
                rows.last_seen[machine_id] = message.ts if seen is None else max(seen, message.ts)
                if isinstance(message, TelemetryBatch):
                    if samples is None:
                        samples = [(r.signal, r.offset_ms, r.value) for r in message.readings]
                    await self._telemetry(rows, machine_id, message.ts, samples, new_signals)
                elif isinstance(message, CycleRecord):
                    rows.cycles.append(_cycle_row(machine_id, message))
                elif isinstance(message, StateChange):
                    rows.states.append(_state_row(machine_id, message))
                result.messages += 1
            await self._insert(rows, rejected)
        # Only a committed transaction makes the new ids real.
        self._machines.update(new_machines)
        self._signals.update(new_signals)
        result.readings = rows.readings
        result.rejected = len(rejected)
        for topic_name, _payload, reason in rejected:
            log.warning("rejected a message on %s: %s", topic_name, reason)
        return result

    async def reject(self, inbound: Inbound, reason: str) -> BatchResult:
        """Record `inbound` as rejected for `reason` (the database refused it)."""
        await self._conn.execute(
            "INSERT INTO rejected_message (topic, payload, reason) VALUES (%s, %s, %s)",
            (inbound.topic, inbound.payload, reason),
        )
        log.warning("rejected a message on %s: %s", inbound.topic, reason)
        return BatchResult(rejected=1)

    async def _telemetry(
        self,
        rows: _Rows,
        machine_id: int,
        ts: datetime,
        samples: list[Sample],
        new: dict[str, int],
    ) -> None:
        """Append a batch's samples as binary COPY tuples; the hot loop of ingest."""
        base_us = _pg_us(ts)
        latest = rows.latest
        pack = _TUPLE.pack
        out = rows.telemetry
        signals = self._signals
        newest_us = base_us
        for name, offset_ms, value in samples:
            signal_id = signals.get(name) or new.get(name) or await self._signal_id(name, new)
            ts_us = base_us + offset_ms * 1000
            out += pack(4, 8, ts_us, 4, machine_id, 4, signal_id, 8, value)
            key = (machine_id, signal_id)
            last = latest.get(key)
            if last is None or last[0] <= ts_us:
                latest[key] = (ts_us, value)
            if ts_us > newest_us:
                newest_us = ts_us
        rows.readings += len(samples)
        newest = _from_pg_us(newest_us)
        if newest > rows.last_seen[machine_id]:
            rows.last_seen[machine_id] = newest

    async def _claim(self, keys: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Record (source, seq) of each message; returns those not written before, in order."""
        if not keys:
            return []
        cur = await self._conn.execute(
            "INSERT INTO message_log (source, seq) SELECT * FROM unnest(%s::text[], %s::bigint[])"
            " ON CONFLICT DO NOTHING RETURNING source, seq",
            ([k[0] for k in keys], [k[1] for k in keys]),
        )
        claimed = {(str(s), int(q)) for s, q in await cur.fetchall()}
        return [k for k in keys if k in claimed]

    async def _machine_id(self, topic: Topic, new: dict[str, int]) -> int:
        known = self._machines.get(topic.machine) or new.get(topic.machine)
        if known is not None:
            return known
        cur = await self._conn.execute(
            "INSERT INTO machine (machine_key, site, area, line) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (machine_key) DO UPDATE"
            " SET site = EXCLUDED.site, area = EXCLUDED.area, line = EXCLUDED.line RETURNING id",
            (topic.machine, topic.site, topic.area, topic.line),
        )
        row = await cur.fetchone()
        assert row is not None  # RETURNING always yields the row
        new[topic.machine] = int(row[0])
        return new[topic.machine]

    async def _signal_id(self, name: str, new: dict[str, int]) -> int:
        known = self._signals.get(name) or new.get(name)
        if known is not None:
            return known
        spec = signal_spec(name)
        cur = await self._conn.execute(
            "INSERT INTO signal (name, unit) VALUES (%s, %s)"
            " ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            (name, spec.unit if spec else None),
        )
        row = await cur.fetchone()
        assert row is not None  # RETURNING always yields the row
        new[name] = int(row[0])
        return new[name]

    async def _insert(self, rows: _Rows, rejected: list[tuple[str, bytes, str]]) -> None:
        conn = self._conn
        async with conn.cursor() as cur:
            if rows.telemetry:
                async with cur.copy(
                    "COPY telemetry (time, machine_id, signal_id, value) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    # One buffer, built by struct in the loop above: no per-row call here.
                    await copy.write(_COPY_HEADER + rows.telemetry + _COPY_TRAILER)
            if rows.latest:
                # One statement for the whole batch, in key order so that concurrent ingest
                # workers cannot deadlock.
                ordered = sorted(rows.latest.items())
                await cur.execute(
                    "INSERT INTO latest_value (machine_id, signal_id, time, value)"
                    " SELECT m, s, timestamptz '2000-01-01Z' + t * interval '1 microsecond', v"
                    " FROM unnest(%s::int4[], %s::int4[], %s::int8[], %s::float8[])"
                    " AS u(m, s, t, v)"
                    " ON CONFLICT (machine_id, signal_id) DO UPDATE"
                    " SET time = EXCLUDED.time, value = EXCLUDED.value"
                    " WHERE latest_value.time <= EXCLUDED.time",
                    (
                        [m for (m, _), _ in ordered],
                        [sig for (_, sig), _ in ordered],
                        [t for _, (t, _) in ordered],
                        [v for _, (_, v) in ordered],
                    ),
                )
            if rows.cycles:
                await cur.executemany(
                    "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s,"
                    " parameters, source, seq) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    rows.cycles,
                )
            if rows.states:
                await cur.executemany(
                    "INSERT INTO machine_state (time, machine_id, state, reason, source, seq)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    rows.states,
                )
            if rows.statuses:
                await cur.executemany(
                    "INSERT INTO edge_status (time, edge_key, online, detail, source, seq)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    rows.statuses,
                )
            if rows.last_seen:
                await cur.executemany(
                    "UPDATE machine SET last_seen = GREATEST(last_seen, %s) WHERE id = %s",
                    [(t, m) for m, t in sorted(rows.last_seen.items())],
                )
            if rejected:
                await cur.executemany(
                    "INSERT INTO rejected_message (topic, payload, reason) VALUES (%s, %s, %s)",
                    rejected,
                )


# Binary COPY: a header, then per row the field count and each field's length and value
# (timestamptz: microseconds since 2000-01-01 UTC), then a trailer.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_TUPLE = struct.Struct(">hiqiiiiid")
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _pg_us(ts: datetime) -> int:
    delta = ts - _PG_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_pg_us(us: int) -> datetime:
    return _PG_EPOCH + timedelta(microseconds=us)


def _cycle_row(machine_id: int, m: CycleRecord) -> tuple[object, ...]:
    return (
        m.ts, machine_id, m.shot, m.quality.value, m.parts, m.parameters["CycleTime"],
        Jsonb(m.parameters), m.source, m.seq,
    )  # fmt: skip


def _state_row(machine_id: int, m: StateChange) -> tuple[object, ...]:
    return (m.ts, machine_id, m.state.value, m.reason, m.source, m.seq)


def _status_row(m: EdgeStatus) -> tuple[object, ...]:
    return (m.ts, m.machine_id, m.online, m.detail, m.source, m.seq)
