"""A database of a test's own on the test server: created, migrated, dropped afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from moldlab.servers import create_database, drop_database
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
