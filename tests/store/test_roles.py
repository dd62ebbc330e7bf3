"""The services' database roles (`moldlab db roles`): each does its job, and no more."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from databases import migrated_database
from logins import login_headers
from places import serve_api

from analytics.rollup import refresh
from contracts import MachineState, Reading, StateChange, TelemetryBatch, encode
from dashboard_api import ApiSettings
from dashboard_api.auth import CSRF_HEADER
from ingest.database import Database
from ingest.retention import compact_performance_marks, prune_message_log
from ingest.validation import Inbound, Limits

pytestmark = pytest.mark.infra


def _as(database_url: str, role: str, password: str) -> str:
    url = urlsplit(database_url)
    host = url.hostname if ":" not in (url.hostname or "") else f"[{url.hostname}]"
    netloc = f"{role}:{password}@{host}" + (f":{url.port}" if url.port else "")
    return url._replace(netloc=netloc).geturl()


@pytest.fixture
def own_database(database_server_url: str) -> Iterator[str]:
    """A database of this test's own: the session's holds other tests' hostile rows (a state
    at -infinity, say), which are not what these tests are about."""
    with migrated_database(database_server_url, "moldlab_roles") as url:
        yield url


@pytest.fixture
def roles(own_database: str, tmp_path: Path) -> dict[str, str]:
    """`moldlab db roles` run on the test's database: each role's URL."""
    database_url = own_database
    done = subprocess.run(
        [sys.executable, "-m", "moldlab", "db", "roles", "--database-url", database_url,
         "--passwords", str(tmp_path / "roles")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "granted moldlab_ingest, moldlab_api, moldlab_workspace, moldlab_scorer" in done.stdout
    assert oct((tmp_path / "roles" / "moldlab_api").stat().st_mode & 0o777) == "0o600"
    return {
        role: _as(database_url, role, (tmp_path / "roles" / role).read_text().strip())
        for role in ("moldlab_ingest", "moldlab_api", "moldlab_workspace", "moldlab_scorer")
    }


def _denied(url: str, statement: str) -> None:
    with (
        psycopg.connect(url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


async def _write_as_ingest(url: str) -> None:
    now = datetime.now(UTC) - timedelta(minutes=10)
    source = f"pi-{uuid.uuid4().hex[:8]}:imm-01"  # the database is the session's
    topic = "moldlab/v1/roles/hall/l1/imm-01/"
    batch = [
        Inbound(topic + "telemetry", encode(TelemetryBatch(
            machine_id="imm-01", ts=now, source=source, seq=1,
            readings=[Reading(signal="TempZone1", offset_ms=0, value=200.0)],
        )), now),
        Inbound(topic + "state", encode(StateChange(
            machine_id="imm-01", ts=now, source=source, seq=2, state=MachineState.RUNNING,
        )), now),
        Inbound(topic + "state", b"not json", now),
    ]  # fmt: skip
    database = Database(url, Limits())
    try:
        result = await database.write(batch, asyncio.Event())
    finally:
        await database.close()
    assert result is not None
    assert (result.messages, result.readings, result.rejected) == (2, 1, 1)


async def test_ingest_writes_what_arrives_and_nothing_of_the_workspace(
    roles: dict[str, str],
) -> None:
    url = roles["moldlab_ingest"]
    await _write_as_ingest(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        assert await prune_message_log(conn, timedelta(days=7)) == 0
        assert await compact_performance_marks(conn) >= 0
    _denied(url, "DELETE FROM app_user")
    _denied(url, "INSERT INTO pdm_alert DEFAULT VALUES")
    _denied(url, "CREATE TABLE intruder (x int)")


async def test_the_api_reads_with_a_role_that_only_reads_and_writes_the_workspace_apart(
    own_database: str, roles: dict[str, str]
) -> None:
    await _write_as_ingest(roles["moldlab_ingest"])
    reader, writer = roles["moldlab_api"], roles["moldlab_workspace"]
    async with await psycopg.AsyncConnection.connect(writer, autocommit=True) as conn:
        done = await refresh(conn, micro_stop_s=300)  # the pass the API runs every 30 s
    assert done.ran
    assert done.marks > 0  # it took the stale marks ingest left
    headers = login_headers(own_database, csrf=True)  # a user made by the schema's owner
    settings = ApiSettings(
        database_url=reader, api_writer_database_url=writer, api_performance_refresh_s=0
    )
    day = datetime.now(UTC).date()
    oee = f"/api/v1/performance/roles/oee?from={day}T00:00Z&to={day + timedelta(days=1)}T00:00Z"
    async with (
        serve_api(settings) as base,
        httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as http,
    ):
        for path in ("/api/v1/kiosk", "/api/v1/machines", oee):
            answer = await http.get(path)
            assert answer.status_code == 200, (path, answer.text)
        out = await http.post("/api/v1/auth/logout", headers={CSRF_HEADER: headers[CSRF_HEADER]})
        assert out.status_code in (200, 204), out.text  # its session deleted, as the writer
    for statement in (
        "INSERT INTO app_session (token_hash, user_id, csrf_token, expires_at)"
        " VALUES ('x', 1, 'x', now())",
        "UPDATE pdm_alert SET status = 'closed'",
        "DELETE FROM performance_slice",
        "INSERT INTO telemetry (time, machine_id, signal_id, value) VALUES (now(), 1, 1, 0)",
    ):
        _denied(reader, statement)  # the API's reading role writes nothing at all
    for statement in (
        "INSERT INTO telemetry (time, machine_id, signal_id, value) VALUES (now(), 1, 1, 0)",
        "DELETE FROM message_log",
        "UPDATE machine SET last_seen = now()",
        "DELETE FROM plant_site",
    ):
        _denied(writer, statement)  # nor the workspace's anything but its own
    _denied(roles["moldlab_scorer"], "DELETE FROM cycle")


def test_a_database_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "moldlab", "db", "roles", "--passwords", str(tmp_path / "r"),
         "--database-url", "postgresql://x:Strong-Passw0rd-123@127.0.0.1:1/x"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("moldlab db roles: connection failed")
