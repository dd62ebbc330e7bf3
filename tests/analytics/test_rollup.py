"""The rollup of production performance: stale marks from triggers, passes, merging, races."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import AsyncConnection

from analytics.oee import ratios, total
from analytics.performance import machine_slices
from analytics.rollup import refresh
from ingest.retention import compact_performance_marks
from plant.plantfile import parse_plant
from store.plant import write_plant
from tests.support.databases import migrated_database

pytestmark = pytest.mark.infra

MICRO = 300.0
# Monday 2 March 2026; Europe/Rome is UTC+1 then: the 06:00-14:00 shift is 05:00-13:00 UTC.
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
NOW = datetime(2026, 3, 6, 12, tzinfo=UTC)


def _plant(site: str) -> str:
    return f"""
sites:
  - id: {site}
    timezone: Europe/Rome
    calendar:
      shifts:
        - {{name: morning, start: "06:00", end: "14:00", weekdays: [mon, tue, wed, thu, fri]}}
moulds:
  - {{id: cap-{site}, cavities: 2, ideal_cycle_s: 10, part_weight_g: 5, material: PP}}
"""


@pytest.fixture
def database_url(database_server_url: str) -> Iterator[str]:
    """A database of the test's own: a plant load replaces the whole plant of its database."""
    with migrated_database(database_server_url) as url:
        yield url


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConnection]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as c:
        yield c


async def _machine(conn: AsyncConnection, site: str) -> int:
    await write_plant(conn, parse_plant(_plant(site)), datetime(2026, 1, 1, tzinfo=UTC), "test")
    cur = await conn.execute(
        "INSERT INTO machine (machine_key, site, area, line) VALUES ('imm', %s, 'a', 'l')"
        " RETURNING id",
        (site,),
    )
    row = await cur.fetchone()
    assert row
    mid: int = row[0]
    await conn.execute(
        "INSERT INTO machine_job (time, machine_id, job_name, mould_id, job_status,"
        " active_cavities, nominal_parts, source, seq)"
        " VALUES (%s, %s, 'j', %s, 'job_in_production', 2, 0, 's', 0)",
        (MONDAY, mid, f"cap-{site}"),
    )
    await conn.execute(
        "INSERT INTO machine_state (time, machine_id, state, source, seq)"
        " VALUES (%s, %s, 'running', 's', 1)",
        (MONDAY, mid),
    )
    return mid


async def _cycles(conn: AsyncConnection, mid: int, start: datetime, n: int, seq: int) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s,"
            " parameters, source, seq, job_name)"
            " VALUES (%s, %s, %s, 'good', 2, 12, '{\"CycleTime\": 12}', 's', %s, 'j')",
            [(start + timedelta(seconds=12 * i), mid, seq + i, seq + i) for i in range(n)],
        )


async def _marks_of(conn: AsyncConnection, mid: int) -> int:
    cur = await conn.execute("SELECT count(*) FROM performance_dirty WHERE machine_id = %s", (mid,))
    row = await cur.fetchone()
    return row[0] if row else 0


async def _marks(conn: AsyncConnection, mid: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM performance_dirty WHERE machine_id = %s OR machine_id IS NULL",
        (mid,),
    )
    row = await cur.fetchone()
    return row[0] if row else 0


async def test_every_write_marks_its_machine_and_a_pass_clears_what_it_read(
    conn: AsyncConnection,
) -> None:
    site = f"r{uuid.uuid4().hex[:8]}"
    mid = await _machine(conn, site)
    assert await _marks(conn, mid) >= 3  # the plant load, the job, the state
    await _cycles(conn, mid, MONDAY + timedelta(hours=6), 10, 10)
    result = await refresh(conn, micro_stop_s=MICRO, now=NOW)
    assert result.ran
    assert result.slices > 0
    assert await _marks(conn, mid) == 0
    rows = await machine_slices(conn, site, MONDAY, NOW, micro_stop_s=MICRO, now=NOW)
    assert rows
    assert all(r.from_rollup for r in rows if r.slice.whole)
    # Tuesday's shift (06:00-14:00 Rome = 05:00-13:00 UTC), a late cycle at 06:00 UTC:
    # the mark makes the slice stale, so the answer includes the cycle at once.
    await _cycles(conn, mid, MONDAY + timedelta(days=1, hours=6), 1, 100)
    assert await _marks(conn, mid) == 1
    again = await machine_slices(conn, site, MONDAY, NOW, micro_stop_s=MICRO, now=NOW)
    assert total(r.figures for r in again).cycles == total(r.figures for r in rows).cycles + 1
    tuesday = next(r for r in again if r.slice.day.isoformat() == "2026-03-03" and r.slice.shift)
    assert not tuesday.from_rollup
    assert tuesday.figures.cycles == 1


async def test_a_row_committed_during_a_pass_keeps_its_mark_for_the_next(
    conn: AsyncConnection, database_url: str
) -> None:
    site = f"r{uuid.uuid4().hex[:8]}"
    mid = await _machine(conn, site)
    await refresh(conn, micro_stop_s=MICRO, now=NOW)
    written = False

    def late_write(done: int, machines: int) -> None:
        # Inside the pass (its snapshot taken): a late cycle on Wednesday, committed now.
        nonlocal written
        if not written:
            with psycopg.connect(database_url, autocommit=True) as other:
                other.execute(
                    "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s,"
                    " parameters, source, seq) VALUES (%s, %s, 1, 'good', 2, 12,"
                    " '{\"CycleTime\": 12}', 's', 1000)",
                    (MONDAY + timedelta(days=2, hours=7), mid),
                )
            written = True

    await _cycles(conn, mid, MONDAY + timedelta(hours=6), 1, 500)  # something to do
    await refresh(conn, micro_stop_s=MICRO, now=NOW, progress=late_write)
    assert written
    # The pass did not see the late row (REPEATABLE READ), and left its mark.
    assert await _marks(conn, mid) == 1
    rows = await machine_slices(conn, site, MONDAY, NOW, micro_stop_s=MICRO, now=NOW)
    wednesday = next(r for r in rows if r.slice.day.isoformat() == "2026-03-04" and r.slice.shift)
    assert not wednesday.from_rollup
    assert wednesday.figures.cycles == 1
    await refresh(conn, micro_stop_s=MICRO, now=NOW)
    rows = await machine_slices(conn, site, MONDAY, NOW, micro_stop_s=MICRO, now=NOW)
    wednesday = next(r for r in rows if r.slice.day.isoformat() == "2026-03-04" and r.slice.shift)
    assert wednesday.from_rollup
    assert wednesday.figures.cycles == 1


async def test_marks_no_pass_took_are_merged_into_one_per_machine(conn: AsyncConnection) -> None:
    site = f"r{uuid.uuid4().hex[:8]}"
    mid = await _machine(conn, site)
    await refresh(conn, micro_stop_s=MICRO, now=NOW)
    for i in range(50):  # 50 transactions, as 50 ingest batches would be
        await _cycles(conn, mid, MONDAY + timedelta(hours=6, seconds=12 * i), 1, 10 + i)
    assert await _marks_of(conn, mid) == 50
    await compact_performance_marks(conn)
    cur = await conn.execute(
        "SELECT count(*), min(start_at), max(end_at) FROM performance_dirty WHERE machine_id = %s",
        (mid,),
    )
    row = await cur.fetchone()
    assert row == (1, MONDAY + timedelta(hours=6), MONDAY + timedelta(hours=6, seconds=12 * 49))
    # And the merged mark still makes the slice stale: its answer comes from the raw rows.
    rows = await machine_slices(conn, site, MONDAY, NOW, micro_stop_s=MICRO, now=NOW)
    monday = next(r for r in rows if r.slice.day.isoformat() == "2026-03-02" and r.slice.shift)
    assert not monday.from_rollup
    assert monday.figures.cycles == 50


async def test_a_transaction_leaves_one_mark_a_machine_however_many_rows_it_writes(
    conn: AsyncConnection,
) -> None:
    site = f"r{uuid.uuid4().hex[:8]}"
    mid = await _machine(conn, site)
    await refresh(conn, micro_stop_s=MICRO, now=NOW)
    async with conn.transaction():  # one ingest batch: a statement a row, late rows among them
        for i in range(200):
            await _cycles(conn, mid, MONDAY + timedelta(hours=8, seconds=-12 * i), 1, 10 + i)
    cur = await conn.execute(
        "SELECT count(*), min(start_at), max(end_at) FROM performance_dirty WHERE machine_id = %s",
        (mid,),
    )
    # The mark spans every row: from the earliest (200 cycles back from 08:00) to the latest.
    assert await cur.fetchone() == (
        1,
        MONDAY + timedelta(hours=8, seconds=-12 * 199),
        MONDAY + timedelta(hours=8),
    )


async def test_a_rollup_made_with_another_micro_stop_threshold_is_not_used(
    conn: AsyncConnection,
) -> None:
    site = f"r{uuid.uuid4().hex[:8]}"
    await _machine(conn, site)
    await refresh(conn, micro_stop_s=MICRO, now=NOW)
    rows = await machine_slices(conn, site, MONDAY, NOW, micro_stop_s=60.0, now=NOW)
    assert not any(r.from_rollup for r in rows)


async def test_only_one_pass_runs_at_a_time(conn: AsyncConnection, database_url: str) -> None:
    site = f"r{uuid.uuid4().hex[:8]}"
    await _machine(conn, site)
    async with await AsyncConnection.connect(database_url, autocommit=True) as other:
        ran = []

        def inner(done: int, machines: int) -> None:
            ran.append(done)

        async with other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock(%s)", (0x6D6F6C64_6F656501,))
            skipped = await refresh(conn, micro_stop_s=MICRO, now=NOW, progress=inner)
        assert not skipped.ran
        assert not ran


async def test_a_short_stop_still_running_is_not_rolled_up_until_it_can_no_longer_change(
    conn: AsyncConnection,
) -> None:
    site = f"r{uuid.uuid4().hex[:8]}"
    mid = await _machine(conn, site)
    # Monday's shift is 05:00-13:00 UTC; the press jams at 12:58 and says nothing more.
    await conn.execute(
        "INSERT INTO machine_state (time, machine_id, state, reason, source, seq)"
        " VALUES (%s, %s, 'unplanned_stop', 'jam', 's', 2)",
        (MONDAY + timedelta(hours=12, minutes=58), mid),
    )
    early = MONDAY + timedelta(hours=13, minutes=1)  # the jam is 3 min old: a micro-stop yet
    await refresh(conn, micro_stop_s=MICRO, now=early)
    rows = await machine_slices(conn, site, MONDAY, early, micro_stop_s=MICRO, now=early)
    monday = next(r for r in rows if r.slice.shift)
    assert not monday.from_rollup  # it may outgrow the threshold: not stored
    assert monday.figures.micro_s == {"unplanned_stop/jam": 120.0}
    late = MONDAY + timedelta(hours=13, minutes=10)  # 12 min: a stop, whatever comes next
    await refresh(conn, micro_stop_s=MICRO, now=late)
    rows = await machine_slices(conn, site, MONDAY, late, micro_stop_s=MICRO, now=late)
    monday = next(r for r in rows if r.slice.shift)
    assert monday.from_rollup
    assert monday.figures.micro_s == {}
    assert monday.figures.losses_s == {"unplanned_stop/jam": 120.0}


async def test_time_without_data_is_exactly_unknown_even_cut_at_odd_microseconds(
    conn: AsyncConnection,
) -> None:
    site = f"r{uuid.uuid4().hex[:8]}"
    await _machine(conn, site)  # its first state: Monday 00:00 UTC
    # Friday 27 February, before any data: its 05:00-13:00 UTC shift is all unknown. Cut at
    # odd microseconds, the shift's time and the unknown time are still equal: PBT exactly 0.
    friday = MONDAY - timedelta(days=3)
    start = friday + timedelta(hours=6, microseconds=123_457)
    end = friday + timedelta(hours=11, minutes=59, seconds=58, microseconds=281_622)
    rows = await machine_slices(conn, site, start, end, micro_stop_s=MICRO, now=NOW)
    (shift,) = rows
    assert shift.slice.shift == "morning"
    assert shift.figures.unknown_s == shift.figures.shift_s > 0
    assert shift.figures.planned_busy_s == 0.0
    assert ratios(shift.figures).availability is None


async def test_a_range_not_begun_yet_has_no_slices_and_one_out_of_range_is_refused(
    conn: AsyncConnection,
) -> None:
    site = f"r{uuid.uuid4().hex[:8]}"
    await _machine(conn, site)
    later = NOW + timedelta(days=1)
    assert (
        await machine_slices(
            conn, site, later, later + timedelta(days=1), micro_stop_s=MICRO, now=NOW
        )
        == []
    )
    for start, end in (
        (datetime(1, 1, 2, tzinfo=UTC), datetime(1, 1, 3, tzinfo=UTC)),
        (datetime(1900, 1, 1, tzinfo=UTC), datetime(1900, 2, 1, tzinfo=UTC)),
        (datetime(9999, 12, 30, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)),
    ):
        with pytest.raises(ValueError, match="between 1970-01-01 and 2200-01-01"):
            await machine_slices(conn, site, start, end, micro_stop_s=MICRO, now=NOW)
