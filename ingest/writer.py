"""Writes validated batches to PostgreSQL in one transaction each, exactly once per message."""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import AsyncConnection, pq
from psycopg.types.json import Jsonb

from contracts import (
    CycleRecord,
    EdgeStatus,
    JobRecord,
    Place,
    StateChange,
    TelemetryBatch,
    Topic,
)
from contracts.codec import AnyMessage, Sample
from ingest.dimensions import Dimensions, resolve
from ingest.gateways import log_lost, record_statuses
from ingest.latest import Latest, update_last_seen, upsert_latest
from ingest.rejects import INSERT_REJECTED, RejectLog, printable, rejected_row
from ingest.validation import Inbound, Limits, RejectedMessage, newest_time, validate

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
    """A validated batch, ready to write: its good messages by (source, seq), its rejects.

    Telemetry of known machines and signals is already packed as binary COPY tuples, one
    segment per message, so that the write only joins the segments of the messages the
    database has not seen; the rest is packed during the write.
    """

    valid: dict[tuple[str, int], tuple[Topic, AnyMessage, list[Sample] | None]] = field(
        default_factory=dict
    )
    rejected: list[tuple[str, bytes, str]] = field(default_factory=list)
    duplicates: int = 0
    segments: dict[tuple[str, int], tuple[bytes, int, int]] = field(default_factory=dict)
    payloads: dict[tuple[str, int], tuple[str, bytes]] = field(default_factory=dict)  # as came
    latest: Latest = field(default_factory=dict)  # pg us
    # By publisher (a source's part before ":"): the largest newest reading - arrival, in s.
    ahead_s: dict[str, float] = field(default_factory=dict)


def prepare(
    batch: list[Inbound],
    limits: Limits,
    known: Dimensions | None = None,
    into: Prepared | None = None,
) -> Prepared:
    """Validate `batch` and pack what it can: CPU only, no database, so ingest does it for the
    next batch while the previous one is being written. `known`: the writer's dimensions;
    `into`: a batch prepared so far, which `batch` joins (and which is returned)."""
    prepared = Prepared() if into is None else into
    for inbound in batch:
        try:
            topic, message, samples = validate(inbound, limits)
        except RejectedMessage as exc:
            prepared.rejected.append((inbound.topic, inbound.payload, str(exc)))
            continue
        except Exception as exc:  # a fault of the checks: this message is refused, not ingest
            log.exception("checking a message on %s failed", printable(inbound.topic, 200))
            reason = f"ingest could not check it ({type(exc).__name__}); kept for a look"
            prepared.rejected.append((inbound.topic, inbound.payload, reason))
            continue
        ahead = (newest_time(message, samples) - inbound.received_at).total_seconds()
        publisher = message.source.split(":", 1)[0]
        if ahead > prepared.ahead_s.get(publisher, -math.inf):
            prepared.ahead_s[publisher] = ahead
        key = (message.source, message.seq)
        if key in prepared.valid:
            prepared.duplicates += 1
        prepared.valid[key] = (topic, message, samples)
        prepared.payloads[key] = (inbound.topic, inbound.payload)
        if known is not None and samples is not None and isinstance(message, TelemetryBatch):
            machine_id = known.machines.get(topic.place)
            signals = None if machine_id is None else known.machine_signals.get(machine_id)
            if machine_id is not None and signals is not None:
                packed = _pack(samples, machine_id, _pg_us(message.ts), signals, prepared.latest)
                if packed is not None:
                    prepared.segments[key] = (packed[0], len(samples), packed[1])
    return prepared


def _pack(
    samples: list[Sample],
    machine_id: int,
    base_us: int,
    signals: Mapping[str, int],
    latest: Latest,
) -> tuple[bytes, int] | None:
    """`samples` as binary COPY tuples and the newest reading's pg time, the newest value of
    each signal kept in `latest`; None if a signal is not yet one of the machine's
    (`signals`: the machine's, by name). The hot loop of ingest.

    (A message given up on half-way has left true values in `latest`: harmless.)
    """
    out = bytearray()
    pack = _TUPLE.pack
    newest_us = base_us
    for name, offset_ms, value in samples:
        signal_id = signals.get(name)
        if signal_id is None:
            return None
        ts_us = base_us + offset_ms * 1000
        out += pack(4, 8, ts_us, 4, machine_id, 4, signal_id, 8, value)
        key = (machine_id, signal_id)
        last = latest.get(key)
        if last is None or last[0] <= ts_us:
            latest[key] = (ts_us, value)
        if ts_us > newest_us:
            newest_us = ts_us
    return bytes(out), newest_us


@dataclass(slots=True)
class _Rows:
    """The rows one batch adds, table by table."""

    telemetry: bytearray = field(default_factory=bytearray)  # binary COPY tuples
    readings: int = 0
    latest: Latest = field(default_factory=dict)  # pg us
    # By publisher (a source's part before ":"): the largest newest reading - arrival, in s.
    ahead_s: dict[str, float] = field(default_factory=dict)
    cycles: list[tuple[object, ...]] = field(default_factory=list)
    jobs: list[tuple[object, ...]] = field(default_factory=list)
    states: list[tuple[object, ...]] = field(default_factory=list)
    statuses: list[tuple[Place, EdgeStatus]] = field(default_factory=list)
    lost: list[tuple[Place, int]] = field(default_factory=list)  # dead gateways' machines
    last_seen: dict[int, datetime] = field(default_factory=dict)


class Writer:
    """Holds the dimension caches for one database connection."""

    def __init__(
        self,
        conn: AsyncConnection,
        limits: Limits | None = None,
        hand_latest: Callable[[Latest, dict[int, datetime]], None] | None = None,
        dimensions: Dimensions | None = None,
        reject_log: RejectLog | None = None,
    ) -> None:
        """`hand_latest`: given each committed batch's newest values and machines' last-seen
        times (LatestValues.offer), to write later on their own; without it, latest_value and
        machine.last_seen are updated in the batch transaction. `dimensions`: ids shared with
        other writers to the same database. `reject_log`: shared with them, so that its
        limit of lines a minute holds for the process."""
        self._conn = conn
        self._limits = limits or Limits()
        self._hand_latest = hand_latest
        self.dimensions = Dimensions() if dimensions is None else dimensions
        self._machines = self.dimensions.machines
        self._reject_log = RejectLog() if reject_log is None else reject_log

    async def write(self, batch: list[Inbound] | Prepared) -> BatchResult:
        """Validate and write `batch` in one transaction; bad messages become rejected rows.

        psycopg.OperationalError: the connection failed (an outage, not the batch's fault),
        also when an error left it unusable; any other psycopg.Error: the database refused
        something in the batch.
        """
        try:
            return await self._write(batch)
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            if not self.usable:
                raise psycopg.OperationalError(str(exc)) from exc
            raise

    async def _write(self, batch: list[Inbound] | Prepared) -> BatchResult:
        prepared = (
            batch if isinstance(batch, Prepared) else prepare(batch, self._limits, self.dimensions)
        )
        valid, rejected = prepared.valid, prepared.rejected
        result = BatchResult(duplicates=prepared.duplicates)
        await self._resolve(prepared)
        async with self._conn.transaction():
            fresh = await self._claim(list(valid))
            result.duplicates += len(valid) - len(fresh)
            # The newest values of repeats are already stored: keeping them here changes
            # nothing. Values packed below join prepared's own (true values: harmless if the
            # batch is written again after an outage).
            rows = _Rows(latest=prepared.latest)
            for key in fresh:
                topic, message, samples = valid[key]
                if isinstance(message, EdgeStatus):
                    rows.statuses.append((topic.place, message))
                    result.messages += 1  # written too: the throughput line counts it
                    continue
                machine_id = self._machines[topic.place]  # _resolve gave it its id
                seen = rows.last_seen.get(machine_id)
                rows.last_seen[machine_id] = message.ts if seen is None else max(seen, message.ts)
                if isinstance(message, TelemetryBatch):
                    packed = prepared.segments.get(key) or self._segment(
                        message, samples, machine_id, rows.latest
                    )
                    segment, count, newest_us = packed
                    rows.telemetry += segment
                    rows.readings += count
                    newest = _from_pg_us(newest_us)
                    rows.last_seen[machine_id] = max(rows.last_seen[machine_id], newest)
                elif isinstance(message, CycleRecord):
                    rows.cycles.append(_cycle_row(machine_id, message))
                elif isinstance(message, JobRecord):
                    rows.jobs.append(_job_row(machine_id, message))
                elif isinstance(message, StateChange):
                    rows.states.append(_state_row(machine_id, message))
                result.messages += 1
            await self._insert(rows, rejected)
        log_lost(rows.lost)
        if self._hand_latest is not None:
            self._hand_latest(rows.latest, rows.last_seen)
        result.readings = rows.readings
        result.rejected = len(rejected)
        for topic_name, _payload, reason in rejected:
            self._reject_log.rejected(topic_name, reason)
        return result

    @property
    def usable(self) -> bool:
        """Whether the connection is open and idle outside any transaction: a write cancelled
        half-way (the broker went away) or broken leaves it otherwise."""
        return (
            not self._conn.closed
            and self._conn.info.transaction_status == pq.TransactionStatus.IDLE
        )

    async def close(self) -> None:
        await self._conn.close()

    async def reject(self, inbound: Inbound, reason: str) -> BatchResult:
        """Record `inbound` as rejected for `reason` (the database refused it)."""
        await self._conn.execute(
            INSERT_REJECTED, rejected_row(inbound.topic, inbound.payload, reason)
        )
        self._reject_log.rejected(inbound.topic, reason)
        return BatchResult(rejected=1)

    def _segment(
        self,
        message: TelemetryBatch,
        samples: list[Sample] | None,
        machine_id: int,
        latest: Latest,
    ) -> tuple[bytes, int, int]:
        """Pack a message that prepare() could not: its machine or a signal was new then."""
        if samples is None:
            samples = [(r.signal, r.offset_ms, r.value) for r in message.readings]
        signals = self.dimensions.machine_signals[machine_id]
        packed = _pack(samples, machine_id, _pg_us(message.ts), signals, latest)
        assert packed is not None  # _resolve made every signal one of the machine's
        return packed[0], len(samples), packed[1]

    async def _claim(self, keys: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Record (source, seq) of each message; returns those not written before, in order."""
        if not keys:
            return []
        # In key order: two batches in flight (or two workers) that hold the same redelivered
        # messages then wait for each other at most, and never deadlock.
        ordered = sorted(keys)
        cur = await self._conn.execute(
            "INSERT INTO message_log (source, seq) SELECT * FROM unnest(%s::text[], %s::bigint[])"
            " ON CONFLICT DO NOTHING RETURNING source, seq",
            ([k[0] for k in ordered], [k[1] for k in ordered]),
        )
        claimed = {(str(s), int(q)) for s, q in await cur.fetchall()}
        return [k for k in keys if k in claimed]

    async def _resolve(self, prepared: Prepared) -> None:
        """Give the batch's new machines and signals their ids (ingest.dimensions), before its
        transaction; a message that would pass one of the plant's limits is refused."""
        places: set[Place] = set()
        names: dict[Place, set[str]] = {}
        for key, (topic, message, samples) in prepared.valid.items():
            if isinstance(message, EdgeStatus):
                continue
            places.add(topic.place)
            if isinstance(message, TelemetryBatch) and key not in prepared.segments:
                wanted = names.setdefault(topic.place, set())
                wanted.update(_signal_names(message, samples))
        if not places:
            return
        refused = await resolve(self._conn, self.dimensions, self._limits, places, names)
        if not refused:
            return
        for key, (topic, message, samples) in list(prepared.valid.items()):
            if isinstance(message, EdgeStatus):
                continue
            place = str(topic.place)
            reason = refused.get(place)
            if reason is None and isinstance(message, TelemetryBatch):
                reason = next(
                    (
                        refused[f"{place}/{name}"]
                        for name in _signal_names(message, samples)
                        if f"{place}/{name}" in refused
                    ),
                    None,
                )
            if reason is not None:
                del prepared.valid[key]
                prepared.segments.pop(key, None)
                prepared.rejected.append((*prepared.payloads[key], reason))

    async def _insert(self, rows: _Rows, rejected: list[tuple[str, bytes, str]]) -> None:
        conn = self._conn
        async with conn.cursor() as cur:
            if rows.telemetry:
                async with cur.copy(
                    "COPY telemetry (time, machine_id, signal_id, value) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    # One buffer, built by struct in the loop above: no per-row call here.
                    await copy.write(_COPY_HEADER + rows.telemetry + _COPY_TRAILER)
            if rows.latest and self._hand_latest is None:
                await upsert_latest(cur, rows.latest)
            if rows.cycles:
                await cur.executemany(
                    "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s,"
                    " parameters, source, seq, job_name, defect)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    rows.cycles,
                )
            if rows.jobs:
                # A job message forwarded again under a new number (a retained one, after a
                # gateway's restart) is the same row: kept once.
                await cur.executemany(
                    "INSERT INTO machine_job (time, machine_id, job_name, mould_id, job_status,"
                    " active_cavities, nominal_parts, material, source, seq)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    rows.jobs,
                )
            if rows.states:
                await cur.executemany(
                    "INSERT INTO machine_state (time, machine_id, state, reason, source, seq)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    rows.states,
                )
            if rows.statuses:
                rows.lost = await record_statuses(
                    cur, rows.statuses, self._limits, self.dimensions.logged_limits
                )
            if rows.last_seen and self._hand_latest is None:
                await update_last_seen(cur, rows.last_seen)
            if rejected:
                await cur.executemany(
                    INSERT_REJECTED, [rejected_row(*reject) for reject in rejected]
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
        Jsonb(m.parameters), m.source, m.seq, m.job, m.defect,
    )  # fmt: skip


def _job_row(machine_id: int, m: JobRecord) -> tuple[object, ...]:
    return (
        m.ts, machine_id, m.job_name, m.mould_id, m.job_status.value, m.active_cavities,
        m.nominal_parts, m.material, m.source, m.seq,
    )  # fmt: skip


def _state_row(machine_id: int, m: StateChange) -> tuple[object, ...]:
    return (m.ts, machine_id, m.state.value, m.reason, m.source, m.seq)


def _signal_names(message: TelemetryBatch, samples: list[Sample] | None) -> set[str]:
    if samples is None:
        return {r.signal for r in message.readings}
    return {name for name, _, _ in samples}
