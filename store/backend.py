"""Which storage backend the database runs on, as its first migration recorded it.

The migration asks the server (is the timescaledb extension available and preloaded?) and
writes the answer to `storage_info`; every part reads it from there, never assumes it.
"""

from __future__ import annotations

from enum import StrEnum

import psycopg
from psycopg import AsyncConnection

from store.errors import SchemaNotReady

_QUERY = "SELECT value FROM storage_info WHERE key = 'backend'"


class Backend(StrEnum):
    POSTGRESQL = "postgresql"
    TIMESCALEDB = "timescaledb"


def _backend(row: tuple[object, ...] | None) -> Backend:
    if row is None:
        raise SchemaNotReady("storage_info has no backend: run moldlab db upgrade")
    return Backend(str(row[0]))


async def storage_backend(conn: AsyncConnection) -> Backend:
    """Ask the database: plain PostgreSQL, or TimescaleDB with hypertables and aggregates."""
    try:
        cur = await conn.execute(_QUERY)
    except psycopg.errors.UndefinedTable as exc:
        raise SchemaNotReady("the database has no moldlab schema: run moldlab db upgrade") from exc
    return _backend(await cur.fetchone())


def database_backend(database_url: str) -> Backend:
    """The same, for a command that has a URL and no event loop (`moldlab db upgrade`)."""
    with psycopg.connect(database_url) as conn:
        try:
            row = conn.execute(_QUERY).fetchone()
        except psycopg.errors.UndefinedTable as exc:
            raise SchemaNotReady(
                "the database has no moldlab schema: run moldlab db upgrade"
            ) from exc
    return _backend(row)
