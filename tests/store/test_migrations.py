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
