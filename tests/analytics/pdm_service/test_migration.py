"""Migration 0009: the maintenance tables, one active alert per machine and component, and
back down again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from moldlab.servers import create_database, drop_database
from store import downgrade, upgrade

pytestmark = pytest.mark.infra

_TABLES = ("pdm_model", "pdm_prediction", "pdm_prediction_latest", "pdm_alert")


@pytest.fixture
def empty_database(database_server_url: str) -> Iterator[str]:
    name = f"moldlab_mig_{uuid.uuid4().hex[:8]}"
    yield create_database(database_server_url, name)
    drop_database(database_server_url, name)


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'pdm%%'"
        ).fetchall()
    return {str(r[0]) for r in rows}


def test_one_active_alert_per_machine_and_component_and_down_again(empty_database: str) -> None:
    upgrade(empty_database, "0009")
    assert _tables(empty_database) == set(_TABLES)
    alert = (
        "INSERT INTO pdm_alert (machine_id, component, opened_at, last_alarm_at, p_8h, p_24h,"
        " rul_h, evidence, model, status, closed_at, close_reason)"
        " VALUES (%s, 'check_ring', now(), now(), 0.5, 0.9, 10, '[]', 'm', %s, %s, %s)"
    )
    with psycopg.connect(empty_database, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO machine (machine_key, site, area, line) VALUES ('m', 's', 'a', 'l')"
            " RETURNING id"
        ).fetchone()
        assert row is not None
        m = row[0]
        conn.execute(alert, (m, "closed", "2026-11-02T06:00Z", "failed"))
        conn.execute(alert, (m, "closed", "2026-11-03T06:00Z", "cleared"))
        conn.execute(alert, (m, "open", None, None))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(alert, (m, "acknowledged", None, None))
        with pytest.raises(psycopg.errors.CheckViolation):  # closed needs its time and reason
            conn.execute(alert, (m, "closed", None, None))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(alert, (m, "closed", "2026-11-02T06:00Z", "forgotten"))
    downgrade(empty_database, "0008")
    assert _tables(empty_database) == set()
    upgrade(empty_database)
    assert _tables(empty_database) == set(_TABLES)
