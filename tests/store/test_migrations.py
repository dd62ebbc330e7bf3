"""Migrations on the test server: plain PostgreSQL here, TimescaleDB when pointed at one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from moldlab.servers import create_database, drop_database
from store import database_backend as storage_backend
from store import downgrade, upgrade

pytestmark = pytest.mark.infra

TABLES = {
    "machine", "signal", "telemetry", "latest_value", "cycle", "machine_state",
    "edge_status", "message_log", "rejected_message", "storage_info", "machine_signal",
    "gateway_machine", "machine_job", "plant_site", "plant_mould", "plant_machine", "plant_load",
    "app_user",
}  # fmt: skip


@pytest.fixture
def empty_database(database_server_url: str) -> Iterator[str]:
    name = f"moldlab_mig_{uuid.uuid4().hex[:8]}"
    yield create_database(database_server_url, name)
    drop_database(database_server_url, name)


def _server_has_timescaledb(url: str) -> bool:
    """Installed and preloaded: a server with the files but without the preload (this
    machine's own, once TimescaleDB was built into it) gets plain tables."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
            " AND 'timescaledb' = ANY(string_to_array("
            "replace(current_setting('shared_preload_libraries'), ' ', ''), ','))"
        ).fetchone()
    return row is not None


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_upgrade_creates_the_schema_and_picks_the_backend_by_asking(empty_database: str) -> None:
    backend = upgrade(empty_database)
    assert _tables(empty_database) >= TABLES
    expected = "timescaledb" if _server_has_timescaledb(empty_database) else "postgresql"
    assert backend == expected == storage_backend(empty_database)
    with psycopg.connect(empty_database) as conn:
        if backend == "timescaledb":
            hypertables = conn.execute(
                "SELECT hypertable_name FROM timescaledb_information.hypertables"
            ).fetchall()
            assert ("telemetry",) in hypertables
            jobs = {
                r[0] for r in conn.execute("SELECT proc_name FROM timescaledb_information.jobs")
            }
            assert {
                "policy_compression",
                "policy_retention",
                "policy_refresh_continuous_aggregate",
            } <= jobs
            caggs = conn.execute(
                "SELECT view_name FROM timescaledb_information.continuous_aggregates"
            ).fetchall()
            assert ("telemetry_1m",) in caggs
        else:
            kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'telemetry_1m'")
            assert kind.fetchone() == ("v",)
        # The 1-minute rollup answers the same query on either backend.
        conn.execute(
            "SELECT bucket, machine_id, signal_id, avg, min, max, samples FROM telemetry_1m"
        )


def test_upgrade_is_idempotent_and_downgrade_removes_everything(empty_database: str) -> None:
    upgrade(empty_database)
    upgrade(empty_database)
    downgrade(empty_database, "base")
    assert _tables(empty_database) & TABLES == set()
    upgrade(empty_database)
    assert _tables(empty_database) >= TABLES


def test_0003_keeps_rejections_as_excerpts_and_the_signals_machines_have(
    empty_database: str,
) -> None:
    upgrade(empty_database, "0002")
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO rejected_message (topic, payload, reason, digest)"
            " VALUES (%s, %s, 'too big', '\\x01'), ('t', 'small', 'bad', '\\x02')",
            ("x" * 2000, b"A" * 100_000),
        )
        conn.execute(
            "INSERT INTO machine (machine_key, site, area, line) VALUES ('m', 's', 'a', 'l')"
        )
        conn.execute("INSERT INTO signal (name) VALUES ('TempZone2'), ('TempOil'), ('Unused')")
        conn.execute(
            "INSERT INTO latest_value SELECT m.id, s.id, now(), 1.0 FROM machine m, signal s"
            " WHERE s.name <> 'Unused'"
        )
    upgrade(empty_database)
    with psycopg.connect(empty_database) as conn:
        rows = conn.execute(
            "SELECT length(topic), length(payload), payload_bytes FROM rejected_message ORDER BY id"
        ).fetchall()
        pairs = conn.execute(
            "SELECT s.name FROM machine_signal ms JOIN signal s ON s.id = ms.signal_id ORDER BY 1"
        ).fetchall()
    assert rows == [(512, 4096, 100_000), (1, 5, 5)]
    assert pairs == [("TempOil",), ("TempZone2",)]


# Rows of every table a database made by main (at 0003) holds; the counts must survive 0004.
_ROWS_AT_0003 = """
INSERT INTO machine (machine_key, site, area, line, last_seen)
    VALUES ('imm-01', 'demo-a', 'hall', 'line-1', now()), ('imm-02', 'demo-b', 'hall', 'l1', now());
INSERT INTO signal (name, unit) VALUES ('TempNozzle', 'degC');
INSERT INTO telemetry SELECT now() - g * interval '1 s', m.id, s.id, 230 + g
    FROM machine m, signal s, generate_series(1, 5) g;
INSERT INTO latest_value SELECT m.id, s.id, now(), 230 FROM machine m, signal s;
INSERT INTO machine_signal SELECT m.id, s.id FROM machine m, signal s;
INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s, parameters, source, seq)
    SELECT now(), id, 1, 'good', 4, 15.0, '{}', 'pi-1:' || machine_key, 1 FROM machine;
INSERT INTO machine_state (time, machine_id, state, reason, source, seq)
    SELECT now(), id, 'running', NULL, 'pi-1:' || machine_key, 2 FROM machine;
INSERT INTO edge_status (time, edge_key, online, detail, source, seq)
    VALUES (now(), 'imm-01', false, 'gone', 'sim-1', 1), (now(), 'pi-1', true, NULL, 'pi-1', 1);
INSERT INTO message_log (source, seq) VALUES ('pi-1', 1), ('pi-1:imm-01', 1);
INSERT INTO rejected_message (topic, payload, reason, digest, payload_bytes)
    VALUES ('t', 'x', 'bad', '\\x01', 1)
"""
_COUNTED = [
    "cycle", "edge_status", "latest_value", "machine", "machine_signal", "machine_state",
    "message_log", "rejected_message", "signal", "telemetry",
]  # fmt: skip


def _database_of_main(url: str) -> None:
    """A database as main made it before the plant model: at 0003, a row in every table."""
    upgrade(url, "0003")
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in _ROWS_AT_0003.split(";\n"):
            conn.execute(statement)


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = [conn.execute(f"SELECT count(*) FROM {t}").fetchone() for t in _COUNTED]
    return {t: row[0] for t, row in zip(_COUNTED, rows, strict=True) if row is not None}


def test_0004_keeps_every_row_and_makes_machines_unique_by_place(empty_database: str) -> None:
    _database_of_main(empty_database)
    before = _counts(empty_database)
    assert all(before.values()), before
    upgrade(empty_database, "0004")
    assert _counts(empty_database) == before
    with psycopg.connect(empty_database, autocommit=True) as conn:
        places = conn.execute("SELECT place FROM machine ORDER BY place").fetchall()
        assert places == [("demo-a/hall/line-1/imm-01",), ("demo-b/hall/l1/imm-02",)]
        # A machine's own status takes its place; a gateway's keeps its id (its place unknown).
        keys = conn.execute("SELECT edge_key FROM edge_status ORDER BY edge_key").fetchall()
        assert keys == [("demo-a/hall/line-1/imm-01",), ("pi-1",)]
        # The same id on another site is another machine now; at the same place it is not.
        add = "INSERT INTO machine (machine_key, site, area, line) VALUES ('imm-01', %s, 'a', %s)"
        conn.execute(add, ("demo-b", "line-1"))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(add, ("demo-b", "line-1"))
    # Back below 0004 an id is unique again: refused while two places share one.
    with pytest.raises(RuntimeError, match=r"imm-01 \(2 places\)"):
        downgrade(empty_database, "0003")
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("DELETE FROM machine WHERE place = 'demo-b/a/line-1/imm-01'")
    downgrade(empty_database, "0003")
    assert _counts(empty_database) == before
    with psycopg.connect(empty_database) as conn:
        keys = conn.execute("SELECT edge_key FROM edge_status ORDER BY edge_key").fetchall()
    assert keys == [("imm-01",), ("pi-1",)]
    upgrade(empty_database)
    assert _counts(empty_database) == before


_JOB = (
    "INSERT INTO machine_job (time, machine_id, job_name, mould_id, job_status,"
    " active_cavities, nominal_parts, material, source, seq)"
    " SELECT '2026-11-30T08:00Z', min(id), %s, 'bracket-pp-4#1', %s, 4, 40000, 'PP', 's', %s"
    " FROM machine"
)


def test_0005_adds_job_history_and_the_cycles_job_keeping_every_row(empty_database: str) -> None:
    _database_of_main(empty_database)
    before = _counts(empty_database)
    upgrade(empty_database, "0005")
    assert _counts(empty_database) == before
    with psycopg.connect(empty_database, autocommit=True) as conn:
        # The cycles of before name no job: their messages did not.
        assert conn.execute("SELECT DISTINCT job_name FROM cycle").fetchall() == [(None,)]
        conn.execute(_JOB, ("PO-1", "set_up_active", 1))
        conn.execute(_JOB, ("PO-1", "job_in_production", 2))  # at the same time: kept
        conn.execute(_JOB, ("PO-2", "set_up_active", 3))
        with pytest.raises(psycopg.errors.UniqueViolation):  # the same message again
            conn.execute(_JOB, ("PO-1", "set_up_active", 4))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(_JOB, ("PO-3", "running", 5))
        assert conn.execute("SELECT count(*) FROM machine_job").fetchone() == (3,)
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'machine_job_machine_time'"
        ).fetchone()
        assert index is not None
        assert '(machine_id, "time" DESC' in index[0]
    downgrade(empty_database, "0004")
    assert "machine_job" not in _tables(empty_database)
    assert _counts(empty_database) == before
    with psycopg.connect(empty_database) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'cycle'"
        ).fetchall()
    assert ("job_name",) not in columns
    upgrade(empty_database)
    assert "machine_job" in _tables(empty_database)


def test_0006_adds_the_plant_tables_with_one_open_version_each_and_removes_them(
    empty_database: str,
) -> None:
    plant_tables = {"plant_site", "plant_mould", "plant_machine", "plant_load"}
    upgrade(empty_database, "0005")
    assert _tables(empty_database) & plant_tables == set()
    upgrade(empty_database, "0006")
    assert _tables(empty_database) >= plant_tables
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO plant_mould (mould, cavities, ideal_cycle_s, part_weight_g, material,"
            " valid_from) VALUES ('m', 4, 14.8, 12, 'PP', '2026-01-01Z')"
        )
        # A second open version of the same mould is refused; a closed earlier one is not.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO plant_mould (mould, cavities, ideal_cycle_s, part_weight_g,"
                " material, valid_from) VALUES ('m', 4, 16, 12, 'PP', '2026-02-01Z')"
            )
        conn.execute(
            "INSERT INTO plant_mould (mould, cavities, ideal_cycle_s, part_weight_g, material,"
            " valid_from, valid_to) VALUES ('m', 4, 13, 12, 'PP', '2025-01-01Z', '2026-01-01Z')"
        )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO plant_site (site, name, timezone, calendar, valid_from, valid_to)"
                " VALUES ('s', 's', 'UTC', '{}', '2026-01-01Z', '2025-01-01Z')"
            )
    downgrade(empty_database, "0005")
    assert _tables(empty_database) & plant_tables == set()
    upgrade(empty_database)
    assert _tables(empty_database) >= plant_tables


_CYCLE = (
    "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s, parameters,"
    " source, seq, job_name, defect) SELECT now(), min(id), %s, %s, 4, 15.0, '{}', 's', %s,"
    " 'PO-1', %s FROM machine"
)


def test_0007_adds_the_cycles_defect_cause_keeping_every_row(empty_database: str) -> None:
    _database_of_main(empty_database)
    upgrade(empty_database, "0006")
    before = _counts(empty_database)
    upgrade(empty_database, "0007")
    assert _counts(empty_database) == before
    with psycopg.connect(empty_database, autocommit=True) as conn:
        # The cycles of before tell no cause: their messages could not.
        assert conn.execute("SELECT DISTINCT defect FROM cycle").fetchall() == [(None,)]
        conn.execute(_CYCLE, (2, "bad", 2, "short_shot"))
        conn.execute(_CYCLE, (3, "bad", 3, None))  # bad, its cause untold
        with pytest.raises(psycopg.errors.CheckViolation):  # only bad parts have a cause
            conn.execute(_CYCLE, (4, "good", 4, "short_shot"))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(_CYCLE, (5, "test", 5, "flash"))
        comment = conn.execute(
            "SELECT col_description('cycle'::regclass, attnum) FROM pg_attribute"
            " WHERE attrelid = 'cycle'::regclass AND attname = 'defect'"
        ).fetchone()
        assert comment is not None
        assert "short_shot" in comment[0]
        stored = conn.execute("SELECT shot, defect FROM cycle WHERE shot > 1 ORDER BY shot")
        assert stored.fetchall() == [(2, "short_shot"), (3, None)]
    after = _counts(empty_database)
    assert after["cycle"] == before["cycle"] + 2
    downgrade(empty_database, "0006")
    assert _counts(empty_database) == after  # the column goes, its rows stay
    with psycopg.connect(empty_database) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'cycle'"
        ).fetchall()
    assert ("defect",) not in columns
    assert ("job_name",) in columns
    upgrade(empty_database)
    assert _counts(empty_database) == after
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT count(defect) FROM cycle").fetchone() == (0,)
