"""Dependencies the routers share: what the lifespan opened, and the settings."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from dashboard_api.settings import ApiSettings
from store import Backend, storage_backend


class StorageBackend:
    """The database's storage backend, asked once per app (the first time it answers)."""

    def __init__(self) -> None:
        self._backend: Backend | None = None

    async def get(self, conn: AsyncConnection) -> Backend:
        if self._backend is None:
            self._backend = await storage_backend(conn)
        return self._backend


def _pool(request: Request) -> AsyncConnectionPool:
    return cast(AsyncConnectionPool, request.state.pool)


def _writer(request: Request) -> AsyncConnectionPool:
    return cast(AsyncConnectionPool, request.state.writer)


def _storage(request: Request) -> StorageBackend:
    return cast(StorageBackend, request.state.storage)


def _settings(request: Request) -> ApiSettings:
    return cast(ApiSettings, request.state.settings)


Pool = Annotated[AsyncConnectionPool, Depends(_pool)]
# The workspace's own writes: logins and sessions, alert acknowledgements (ApiSettings).
Writer = Annotated[AsyncConnectionPool, Depends(_writer)]
Storage = Annotated[StorageBackend, Depends(_storage)]
Settings = Annotated[ApiSettings, Depends(_settings)]
