"""Which storage backend the database runs on, as its migration recorded it."""

from __future__ import annotations

from enum import StrEnum

import psycopg
from psycopg import AsyncConnection

from analytics.errors import SchemaNotReady


class Backend(StrEnum):
    POSTGRESQL = "postgresql"
    TIMESCALEDB = "timescaledb"


async def storage_backend(conn: AsyncConnection) -> Backend:
    """Ask the database: plain PostgreSQL, or TimescaleDB with hypertables and aggregates."""
    try:
        cur = await conn.execute("SELECT value FROM storage_info WHERE key = 'backend'")
    except psycopg.errors.UndefinedTable as exc:
        raise SchemaNotReady("the database has no moldlab schema: run moldlab db upgrade") from exc
    row = await cur.fetchone()
    if row is None:
        raise SchemaNotReady("storage_info has no backend: run moldlab db upgrade")
    return Backend(row[0])
