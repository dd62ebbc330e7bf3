"""A signal's history reads the rows of its window, not the machine's or the plant's history."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from psycopg import AsyncConnection, AsyncCursor

from analytics import HistoryPoint, NotFound, first_bucket, signal_history
from contracts import Place
from store import Backend, storage_backend

pytestmark = pytest.mark.infra

WINDOW = timedelta(hours=3)  # past analytics.history.RAW_WINDOW: the aggregate on TimescaleDB
PER_MINUTE = 10  # samples of the signal per minute
OTHER_MACHINES = 25  # with the same signal, in the same window
OLD_ROWS = 15_000  # of the same machine and signal, before the window


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConnection]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as c:
        yield c


@dataclass(frozen=True)
class Floor:
    machine: str
    signal: str
    since: datetime
    rows: list[tuple[datetime, float]]  # the machine's rows of the signal in the window

    def expected(self) -> list[HistoryPoint]:
        buckets: dict[datetime, list[float]] = defaultdict(list)
        start = first_bucket(self.since)
        for ts, value in self.rows:
            if ts >= start:
                buckets[ts.replace(second=0, microsecond=0)].append(value)
        return [
            HistoryPoint(bucket=b, avg=sum(v) / len(v), min=min(v), max=max(v), samples=len(v))
            for b, v in sorted(buckets.items())
        ]


def _place(machine: str, line: str = "line-1") -> Place:
    """Where this module's machines are (site test, area hall)."""
    return Place("test", "hall", line, machine)


async def _floor(conn: AsyncConnection) -> Floor:
    """One machine's signal in the window, beside 30 times as many rows it must not read."""
    tag = uuid.uuid4().hex[:8]
    # "zz-..." sorts after the machines of other tests: theirs stay on the API's first page.
    machine, signal = f"zz-h-{tag}", f"Hist{tag}"
    cur = await conn.execute(
        "INSERT INTO machine (machine_key, site, area, line)"
        " SELECT %s || '-' || g, 'test', 'hall', 'line-1' FROM generate_series(0, %s) g"
        " RETURNING id",
        (machine, OTHER_MACHINES),
    )
    ids = [row[0] for row in await cur.fetchall()]
    await conn.execute("UPDATE machine SET machine_key = %s WHERE id = %s", (machine, ids[0]))
    cur = await conn.execute(
        "INSERT INTO signal (name, unit) VALUES (%s, 'degC') RETURNING id", (signal,)
    )
    row = await cur.fetchone()
    assert row is not None
    signal_id = row[0]
    now = datetime.now(UTC)
    step = timedelta(minutes=1) / PER_MINUTE
    count = int(WINDOW / step)
    rows = [(now - i * step, 200.0 + (i % 37)) for i in range(count)]
    await conn.execute(
        "INSERT INTO telemetry (time, machine_id, signal_id, value)"
        " SELECT t, %s, %s, v FROM unnest(%s::timestamptz[], %s::float8[]) AS r(t, v)",
        (ids[0], signal_id, [t for t, _ in rows], [v for _, v in rows]),
    )
    # The other machines, same signal, same window: 25 x 1,800 rows.
    await conn.execute(
        "INSERT INTO telemetry (time, machine_id, signal_id, value)"
        " SELECT %s - g * %s, m, %s, g FROM generate_series(0, %s) g, unnest(%s::int[]) m",
        (now, step, signal_id, count - 1, ids[1:]),
    )
    # The machine's older rows: half earlier today, half one to four days ago (other chunks
    # on TimescaleDB).
    half = OLD_ROWS // 2
    await conn.execute(
        "INSERT INTO telemetry (time, machine_id, signal_id, value)"
        " SELECT %s - g * interval '5 s', %s, %s, g FROM generate_series(0, %s) g"
        " UNION ALL"
        " SELECT %s - interval '1 day' - g * interval '25 s', %s, %s, g"
        " FROM generate_series(0, %s) g",
        (now - WINDOW - step, ids[0], signal_id, half - 1, now, ids[0], signal_id, half - 1),
    )
    await conn.execute("ANALYZE telemetry")
    return Floor(machine, signal, now - WINDOW, rows)


def _recording(statements: list[tuple[str, Any]]) -> type[AsyncCursor[Any]]:
    """A cursor class that notes every statement run through it, with its parameters."""

    class Recording(AsyncCursor[Any]):
        async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Recording:
            statements.append((str(query), params))
            await super().execute(query, params, **kwargs)
            return self

    return Recording


async def _relations(conn: AsyncConnection, backend: Backend) -> tuple[set[str], set[str]]:
    """Names of the telemetry table and its chunks; of the aggregate's materialized chunks."""
    if backend is Backend.POSTGRESQL:
        return {"telemetry"}, set()
    cur = await conn.execute(
        "SELECT chunk_name FROM timescaledb_information.chunks WHERE hypertable_name = 'telemetry'"
    )
    raw = {"telemetry"} | {r[0] for r in await cur.fetchall()}
    cur = await conn.execute(
        "SELECT c.chunk_name FROM timescaledb_information.continuous_aggregates a"
        " JOIN timescaledb_information.chunks c"
        " ON c.hypertable_name = a.materialization_hypertable_name"
        " WHERE a.view_name = 'telemetry_1m'"
    )
    return raw, {r[0] for r in await cur.fetchall()}


def _rows_read(plan: dict[str, Any], relations: set[str]) -> int:
    """Rows the scans of `relations` read: returned plus removed by a filter, over all loops."""
    total = 0
    if plan.get("Relation Name") in relations:
        per_loop = (
            plan["Actual Rows"]
            + plan.get("Rows Removed by Filter", 0)
            + plan.get("Rows Removed by Index Recheck", 0)
        )
        total += round(per_loop * plan["Actual Loops"])
    for child in plan.get("Plans", []):
        total += _rows_read(child, relations)
    return total


async def _history_and_rows_read(
    conn: AsyncConnection, backend: Backend, floor: Floor, width: timedelta = timedelta(minutes=1)
) -> tuple[list[HistoryPoint], int, int]:
    """The history, and the raw and materialized rows its statements read (EXPLAIN ANALYZE)."""
    statements: list[tuple[str, Any]] = []
    plain = conn.cursor_factory
    conn.cursor_factory = _recording(statements)
    try:
        points = await signal_history(
            conn, backend, _place(floor.machine), floor.signal, floor.since, width=width
        )
    finally:
        conn.cursor_factory = plain
    raw, materialized = await _relations(conn, backend)
    raw_rows = materialized_rows = 0
    for query, params in statements:
        cur = await conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query, params, prepare=False)
        row = await cur.fetchone()
        assert row is not None
        plan = row[0][0]["Plan"]
        raw_rows += _rows_read(plan, raw)
        materialized_rows += _rows_read(plan, materialized)
    return points, raw_rows, materialized_rows


async def _settle(conn: AsyncConnection, backend: Backend, floor: Floor) -> None:
    """On TimescaleDB, materialize the rows just written below the aggregate's watermark.

    Rows written below the watermark show in the real-time aggregate only once refreshed
    (the policy does it within a minute); the refresh reaches the window's middle at least,
    so that the window is read half from materialized buckets, half from raw rows (or, when
    the policy has already moved the watermark further, its newest minutes from raw rows).
    """
    if backend is not Backend.TIMESCALEDB:
        return
    middle = first_bucket(floor.since) + WINDOW / 2
    cur = await conn.execute(
        "SELECT greatest(%s, _timescaledb_functions.to_timestamp("
        "_timescaledb_functions.cagg_watermark(mat_hypertable_id)))"
        " FROM _timescaledb_catalog.continuous_agg WHERE user_view_name = 'telemetry_1m'",
        (middle,),
    )
    row = await cur.fetchone()
    assert row is not None
    await conn.execute(
        "CALL refresh_continuous_aggregate('telemetry_1m', %s, %s)",
        (floor.since - timedelta(days=5), row[0]),
    )


async def test_history_reads_the_window_not_the_whole_telemetry_table(
    conn: AsyncConnection,
) -> None:
    backend = await storage_backend(conn)
    floor = await _floor(conn)
    await _settle(conn, backend, floor)
    window_rows = sum(ts >= first_bucket(floor.since) for ts, _ in floor.rows)

    points, raw_rows, materialized_rows = await _history_and_rows_read(conn, backend, floor)

    assert points == floor.expected()
    # 30 times the window's rows are there (other machines, older rows of this machine).
    assert raw_rows <= 2 * window_rows, (raw_rows, window_rows)
    if backend is Backend.TIMESCALEDB:
        # Both parts of the real-time aggregate ran: raw rows past the watermark (the newest
        # minute at least: the refresh policy stops a minute short of now) and materialized
        # buckets before it, of this signal in the window only (one a machine and minute).
        assert raw_rows > 0
        assert 0 < materialized_rows <= (1 + OTHER_MACHINES) * (WINDOW // timedelta(minutes=1))


async def test_history_leaves_out_the_first_partial_minute(conn: AsyncConnection) -> None:
    backend = await storage_backend(conn)
    floor = await _floor(conn)
    await _settle(conn, backend, floor)
    since = floor.since.replace(second=30, microsecond=0)
    points = await signal_history(conn, backend, _place(floor.machine), floor.signal, since)
    assert points[0].bucket == since.replace(second=0) + timedelta(minutes=1)
    assert points[0].samples == PER_MINUTE


async def test_an_unknown_machine_or_signal_is_not_found(conn: AsyncConnection) -> None:
    backend = await storage_backend(conn)
    floor = await _floor(conn)
    with pytest.raises(NotFound, match="no machine test/hall/line-1/imm-nobody"):
        await signal_history(conn, backend, _place("imm-nobody"), floor.signal, floor.since)
    with pytest.raises(NotFound, match="no signal Nothing"):
        await signal_history(conn, backend, _place(floor.machine), "Nothing", floor.since)


async def test_coarse_buckets_are_the_minutes_summed(conn: AsyncConnection) -> None:
    """15-minute buckets over the window: on TimescaleDB summed from the aggregate's minutes
    (and the newest hour's raw rows), equal to the raw rows' own figures."""
    backend = await storage_backend(conn)
    floor = await _floor(conn)
    await _settle(conn, backend, floor)
    width = timedelta(minutes=15)
    points, raw_rows, _ = await _history_and_rows_read(conn, backend, floor, width)
    start = first_bucket(floor.since, width)
    buckets: dict[datetime, list[float]] = defaultdict(list)
    origin = datetime(2000, 1, 1, tzinfo=UTC)
    for ts, value in floor.rows:
        if ts >= start:
            buckets[ts - (ts - origin) % width].append(value)
    expected = sorted(buckets.items())
    assert [p.bucket for p in points] == [b for b, _ in expected]
    for point, (_, values) in zip(points, expected, strict=True):
        assert point.samples == len(values)
        assert (point.min, point.max) == (min(values), max(values))
        assert point.avg == pytest.approx(sum(values) / len(values), rel=1e-12)
    window_rows = sum(ts >= start for ts, _ in floor.rows)
    assert raw_rows <= 2 * window_rows, (raw_rows, window_rows)


async def test_first_bucket_is_the_next_whole_minute() -> None:
    at = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert first_bucket(at) == at
    assert first_bucket(at + timedelta(microseconds=1)) == at + timedelta(minutes=1)
    assert first_bucket(at.astimezone(timezone(timedelta(hours=2)))) == at
    quarter = timedelta(minutes=15)
    assert first_bucket(at + timedelta(minutes=7), quarter) == at + quarter
    assert first_bucket(at + quarter, quarter) == at + quarter
    assert first_bucket(at + timedelta(hours=1), timedelta(days=1)) == at.replace(
        hour=0
    ) + timedelta(days=1)


async def _machine_and_signal(
    conn: AsyncConnection, prefix: str
) -> tuple[str, str, tuple[int, int]]:
    """A new machine and signal of their own, with no rows: their names and ids."""
    tag = uuid.uuid4().hex[:8]
    machine, signal = f"zz-{prefix.lower()}-{tag}", f"{prefix}{tag}"
    cur = await conn.execute(
        "INSERT INTO machine (machine_key, site, area, line) VALUES (%s, 'test', 'hall', 'l1')"
        " RETURNING id",
        (machine,),
    )
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute("INSERT INTO signal (name) VALUES (%s) RETURNING id", (signal,))
    signal_row = await cur.fetchone()
    assert signal_row is not None
    return machine, signal, (int(row[0]), int(signal_row[0]))


async def test_a_backlog_below_the_watermark_shows_at_once_in_a_short_window(
    conn: AsyncConnection,
) -> None:
    # An edge gateway's backlog lands minutes in the past: on TimescaleDB, below the
    # aggregate's watermark once it has been refreshed. A window up to RAW_WINDOW reads the
    # raw rows, so it shows at once (the dashboard's default hour), on either backend.
    backend = await storage_backend(conn)
    machine, signal, ids = await _machine_and_signal(conn, "Late")
    now = datetime.now(UTC)
    write = "INSERT INTO telemetry (time, machine_id, signal_id, value) VALUES (%s, %s, %s, %s)"
    recent = (now - timedelta(minutes=3)).replace(second=5, microsecond=0)
    await conn.execute(write, (recent, *ids, 2.5))
    if backend is Backend.TIMESCALEDB:  # the watermark moves past the recent row
        await conn.execute(
            "CALL refresh_continuous_aggregate('telemetry_1m', %s, %s)",
            (now - timedelta(hours=2), now - timedelta(minutes=1)),
        )
    late = (now - timedelta(minutes=10)).replace(second=5, microsecond=0)
    await conn.execute(write, (late, *ids, 1.5))
    points = await signal_history(
        conn, backend, _place(machine, "l1"), signal, now - timedelta(minutes=30)
    )
    assert [(p.bucket, p.samples, p.avg) for p in points] == [
        (late.replace(second=0), 1, 1.5),
        (recent.replace(second=0), 1, 2.5),
    ]


async def test_values_stored_before_ingest_refused_them_do_not_fail_a_short_window(
    conn: AsyncConnection,
) -> None:
    # Two readings of 1e308 in one minute overflowed avg(): the request answered 500.
    backend = await storage_backend(conn)
    machine, signal, ids = await _machine_and_signal(conn, "Over")
    at = (datetime.now(UTC) - timedelta(minutes=5)).replace(second=10, microsecond=0)
    await conn.execute(
        "INSERT INTO telemetry (time, machine_id, signal_id, value)"
        " SELECT %s + g * interval '1 s', %s, %s, v"
        " FROM unnest(array[1e308, 1e308, 7.0]::float8[]) WITH ORDINALITY AS u(v, g)",
        (at, *ids),
    )
    try:
        points = await signal_history(
            conn, backend, _place(machine, "l1"), signal, at - timedelta(minutes=5)
        )
        assert [(p.samples, p.avg) for p in points] == [(1, 7.0)]
    finally:
        # On TimescaleDB they would fail every later refresh of the aggregate over this minute
        # (avg overflows), the policy's too: ingest refuses them, nothing else may hold them.
        await conn.execute("DELETE FROM telemetry WHERE machine_id = %s", (ids[0],))


async def test_recent_rows_show_in_a_long_window_whatever_the_watermark(
    conn: AsyncConnection,
) -> None:
    # What earlier writers left can put the aggregate's watermark ahead of rows arriving now
    # (a refresh over rows stamped minutes ahead): rows below it showed only after the next
    # refresh, and the end-to-end test's last ten minutes answered 404 on TimescaleDB.
    backend = await storage_backend(conn)
    machine, signal, ids = await _machine_and_signal(conn, "Mark")
    now = datetime.now(UTC)
    write = "INSERT INTO telemetry (time, machine_id, signal_id, value) VALUES (%s, %s, %s, %s)"
    ahead = (now + timedelta(minutes=4)).replace(second=5, microsecond=0)
    await conn.execute(write, (ahead, *ids, 9.0))
    if backend is Backend.TIMESCALEDB:  # the watermark moves ahead of now
        await conn.execute(
            "CALL refresh_continuous_aggregate('telemetry_1m', %s, %s)",
            (ahead - timedelta(minutes=1), ahead + timedelta(minutes=2)),
        )
    fresh = (now - timedelta(minutes=2)).replace(second=5, microsecond=0)
    backlog = (now - timedelta(minutes=50)).replace(second=5, microsecond=0)
    await conn.execute(write, (fresh, *ids, 2.0))
    await conn.execute(write, (backlog, *ids, 1.0))
    points = await signal_history(
        conn, backend, _place(machine, "l1"), signal, now - timedelta(hours=3), now=now
    )
    assert [(p.bucket, p.samples, p.avg) for p in points] == [
        (backlog.replace(second=0), 1, 1.0),
        (fresh.replace(second=0), 1, 2.0),
        (ahead.replace(second=0), 1, 9.0),
    ]
