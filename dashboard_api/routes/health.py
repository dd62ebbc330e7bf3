"""GET /api/v1/health: is the API up, and can it reach its database?

A visitor learns only that: the version, the storage backend and why the database cannot be
reached are for engineers and admins (a session), and the reason goes to the log.
"""

from __future__ import annotations

import logging
from importlib.metadata import version

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from dashboard_api.auth import session_of
from dashboard_api.deps import Pool

log = logging.getLogger("moldlab.api.health")
router = APIRouter(tags=["health"])


class _Outage:
    """Whether the last check found the database unreachable: one log line per outage."""

    down = False


class Health(BaseModel):
    status: str = Field(description="ok, or degraded when the database cannot be reached")
    database: str = Field(description="ok or unreachable (the reason is in the API's log)")
    storage_backend: str | None = Field(
        description="timescaledb or postgresql; engineers and admins only (null for a visitor "
        "or when the database cannot be reached)"
    )
    version: str | None = Field(
        description="moldlab's version; engineers and admins only (null for a visitor)"
    )


@router.get(
    "/health",
    summary="Liveness and database reachability",
    responses={503: {"model": Health, "description": "the database cannot be reached"}},
)
async def health(request: Request, pool: Pool, response: Response) -> Health:
    try:
        async with pool.connection(timeout=2.0) as conn:
            cur = await conn.execute("SELECT value FROM storage_info WHERE key = 'backend'")
            row = await cur.fetchone()
            engineer = await session_of(request, conn) is not None
    except Exception as exc:  # any failure here is the answer, not an error of the API
        if not _Outage.down:
            _Outage.down = True
            log.warning("health: database unreachable: %s", " ".join(str(exc).split())[:300])
        response.status_code = 503
        return Health(status="degraded", database="unreachable", storage_backend=None,
                      version=None)  # fmt: skip
    if _Outage.down:
        _Outage.down = False
        log.info("health: database reachable again")
    if not engineer:
        return Health(status="ok", database="ok", storage_backend=None, version=None)
    return Health(
        status="ok", database="ok", storage_backend=row[0] if row else None,
        version=version("moldlab"),
    )  # fmt: skip
