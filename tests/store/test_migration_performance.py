"""Migration 0008: the performance rollup and its stale marks, added and removed, rows kept."""

from __future__ import annotations

import psycopg
import pytest

from store import downgrade, upgrade
from tests.store.test_migrations import _counts, _database_of_main, empty_database

pytestmark = pytest.mark.infra

__all__ = ["empty_database"]  # the fixture, used by name


def _marks(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT m.place, d.start_at = (SELECT min(time) FROM machine_state"
            " WHERE machine_id = m.id), d.end_at = 'infinity'"
            " FROM performance_dirty d JOIN machine m ON m.id = d.machine_id ORDER BY m.place"
        ).fetchall()


def test_0008_marks_what_is_stored_stale_and_removes_its_tables_and_triggers(
    empty_database: str,
) -> None:
    _database_of_main(empty_database)
    upgrade(empty_database, "0007")
    before = _counts(empty_database)
    upgrade(empty_database, "0008")
    assert _counts(empty_database) == before
    # Every machine with states is stale from its first state: nothing was ever rolled up.
    with psycopg.connect(empty_database) as conn:
        with_states = conn.execute(
            "SELECT count(DISTINCT machine_id) FROM machine_state"
        ).fetchone()
    assert with_states
    assert len(_marks(empty_database)) == with_states[0] > 0
    assert all(row[1] and row[2] for row in _marks(empty_database))
    # A cycle written now marks its machine at its time.
    insert = (
        "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s, parameters,"
        " source, seq) SELECT '2026-11-30T09:00Z', min(id), 1, 'good', 1, 15,"
        " '{\"CycleTime\": 15}', 'm', 99 FROM machine"
    )
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(insert)
        marked = conn.execute(
            "SELECT count(*) FROM performance_dirty WHERE start_at = '2026-11-30T09:00Z'"
            " AND end_at = '2026-11-30T09:00Z'"
        ).fetchone()
    assert marked == (1,)
    after = _counts(empty_database)
    downgrade(empty_database, "0007")
    assert _counts(empty_database) == after
    with psycopg.connect(empty_database, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'performance%'"
        ).fetchone()
        triggers = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%marks_performance'"
        ).fetchone()
        conn.execute(insert.replace("99", "100"))  # no trigger, no table: still written
    assert tables == (0,)
    assert triggers == (0,)
    upgrade(empty_database)
    assert _counts(empty_database)["cycle"] == after["cycle"] + 1
