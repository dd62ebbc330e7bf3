"""A database of a test's own on the test server (created, migrated, dropped afterwards), or
on a server of the test's own, which it may stop and start."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from moldlab.servers import LocalPostgres, create_database, drop_database
from store import upgrade


@contextlib.contextmanager
def migrated_database(server_url: str, prefix: str = "moldlab_test") -> Iterator[str]:
    """The URL of a new database on `server_url`, at the newest schema; dropped at the end."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = create_database(server_url, name)
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(server_url, name)


@contextlib.contextmanager
def own_server(scratch_dir: Path) -> Iterator[tuple[LocalPostgres, str]]:
    """A PostgreSQL server of the test's own, which it may stop, and a migrated database's URL
    on it; skips the test when MOLDLAB_TEST_DATABASE_URL names the server to use."""
    if os.environ.get("MOLDLAB_TEST_DATABASE_URL"):
        pytest.skip("MOLDLAB_TEST_DATABASE_URL names an external server this test cannot restart")
    home = scratch_dir / f"own-{uuid.uuid4().hex[:8]}"
    home.mkdir(mode=0o755)
    with LocalPostgres(home / "data") as server:
        database_url = create_database(server.url, "moldlab")
        upgrade(database_url)
        yield server, database_url


def logged_seqs(database_url: str, source: str) -> list[int]:
    """The sequence numbers of `source` in message_log, in order: what was committed."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT seq FROM message_log WHERE source = %s ORDER BY seq", (source,)
        ).fetchall()
    return [int(seq) for (seq,) in rows]
