"""GET /api/v1/machines, a page at a time, and a machine's signal history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from analytics import HistoryPoint, MachinePage, NotFound, machine_page, signal_history
from dashboard_api.deps import Pool, Settings, Storage
from dashboard_api.names import AfterQuery, MachineIdPath, SignalPath

router = APIRouter(tags=["machines"])

MAX_PAGE = 200


class Problem(BaseModel):
    detail: str = Field(description="what went wrong")


_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": Problem,
        "description": "the database is down, not migrated, or did not answer in time",
    }
}


class SignalHistory(BaseModel):
    machine_id: str = Field(description="the machine id, as asked")
    signal: str = Field(description="the signal name, as asked")
    points: list[HistoryPoint] = Field(description="whole 1-minute buckets, oldest first")


@router.get(
    "/machines",
    summary="A page of machines with their state, last-seen time and latest values",
    description=(
        "Machines ordered by machine id, `limit` at a time; pass the response's `next` as "
        "`after` to get the following page (`next` is null on the last page). Each machine "
        "carries at most `MOLDLAB_API_MAX_SIGNALS_PER_MACHINE` signals (default 256), the "
        "first ones by signal name; `signals_truncated` says when it has more."
    ),
    responses=_UNAVAILABLE,
)
async def list_machines(
    pool: Pool,
    settings: Settings,
    after: AfterQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="machines per page")] = 50,
) -> MachinePage:
    async with pool.connection() as conn:
        return await machine_page(
            conn, limit=limit, after=after, max_signals=settings.api_max_signals_per_machine
        )


@router.get(
    "/machines/{machine_id}/signals/{signal}/history",
    summary="One signal of one machine in 1-minute buckets (avg, min, max)",
    description=(
        "The whole minutes of the last `minutes`, oldest first. On TimescaleDB, rows written "
        "late for minutes its 1-minute aggregate has already materialized (an edge gateway's "
        "backlog) show once the aggregate's refresh policy has next run (every minute, over "
        "the last 7 days)."
    ),
    responses={
        404: {
            "model": Problem,
            "description": "no such machine or signal, or no data in the window",
        },
        **_UNAVAILABLE,
    },
)
async def history(
    pool: Pool,
    storage: Storage,
    machine_id: MachineIdPath,
    signal: SignalPath,
    minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60, description="how far back")] = 60,
) -> SignalHistory:
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    async with pool.connection() as conn:
        backend = await storage.get(conn)
        try:
            points = await signal_history(conn, backend, machine_id, signal, since)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
    if not points:
        raise HTTPException(404, f"no {signal} data for machine {machine_id} in {minutes} min")
    return SignalHistory(machine_id=machine_id, signal=signal, points=points)
