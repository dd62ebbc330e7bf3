"""GET /api/v1/health: is the API up, and can it reach its database?"""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from dashboard_api.deps import Pool

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str = Field(description="ok, or degraded when the database cannot be reached")
    database: str = Field(description="ok, or why the database cannot be reached")
    storage_backend: str | None = Field(description="timescaledb or postgresql")
    version: str


@router.get(
    "/health",
    summary="Liveness and database reachability",
    responses={503: {"model": Health, "description": "the database cannot be reached"}},
)
async def health(pool: Pool, response: Response) -> Health:
    try:
        async with pool.connection(timeout=2.0) as conn:
            cur = await conn.execute("SELECT value FROM storage_info WHERE key = 'backend'")
            row = await cur.fetchone()
    except Exception as exc:  # any failure here is the answer, not an error of the API
        response.status_code = 503
        return Health(
            status="degraded", database=f"unreachable: {exc}", storage_backend=None,
            version=version("moldlab"),
        )  # fmt: skip
    return Health(
        status="ok", database="ok", storage_backend=row[0] if row else None,
        version=version("moldlab"),
    )  # fmt: skip
