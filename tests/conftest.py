"""Session fixtures: a real PostgreSQL server and a real mosquitto broker.

Set MOLDLAB_TEST_DATABASE_URL (a server URL; the suite creates and drops a database of its
own there) and MOLDLAB_TEST_MQTT_URL to run against external servers, e.g. TimescaleDB.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import migrated_database

from moldlab.servers import LocalMosquitto, LocalPostgres

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def scratch_dir() -> Iterator[Path]:
    """A temp dir other users can traverse (PostgreSQL runs as `postgres` when we are root)."""
    path = Path(tempfile.mkdtemp(prefix="moldlab-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def database_server_url(scratch_dir: Path) -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database."""
    external = os.environ.get("MOLDLAB_TEST_DATABASE_URL")
    if external:
        yield external
        return
    with LocalPostgres(scratch_dir / "postgres", durable=False) as server:
        yield server.url


@pytest.fixture(scope="session")
def database_url(database_server_url: str) -> Iterator[str]:
    """A fresh database of this run, migrated to the newest schema, dropped afterwards."""
    with migrated_database(database_server_url) as url:
        yield url


@pytest.fixture
def engineer_headers(database_url: str) -> dict[str, str]:
    """The Cookie header of an engineer logged in to the API on `database_url`."""
    from logins import login_headers

    return login_headers(database_url)


@pytest.fixture(scope="session")
def mqtt_url(scratch_dir: Path) -> Iterator[str]:
    external = os.environ.get("MOLDLAB_TEST_MQTT_URL")
    if external:
        yield external
        return
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        pytest.fail("mosquitto is not installed: apt-get install -y mosquitto")
    with LocalMosquitto(scratch_dir / "mosquitto") as broker:
        yield broker.url
