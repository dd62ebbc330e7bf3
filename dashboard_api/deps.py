"""Dependencies the routers share: the connection pool the lifespan opened."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool


def _pool(request: Request) -> AsyncConnectionPool:
    return cast(AsyncConnectionPool, request.state.pool)


Pool = Annotated[AsyncConnectionPool, Depends(_pool)]
