"""GET /api/v1/machines, a page at a time, and a machine's signal history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from analytics import HistoryPoint, MachinePage, NotFound, machine_page, signal_history
from contracts import Place
from dashboard_api.auth import ENGINEER_ONLY
from dashboard_api.deps import Pool, Settings, Storage
from dashboard_api.names import (
    AfterQuery,
    AreaPath,
    LinePath,
    MachineIdPath,
    SignalPath,
    SitePath,
)
from dashboard_api.problems import UNAVAILABLE, Problem

# Every signal of every machine: the engineers' view (the kiosk has its own, GET /api/v1/kiosk).
router = APIRouter(tags=["machines"], **ENGINEER_ONLY)

MAX_PAGE = 200


class SignalHistory(BaseModel):
    place: str = Field(description="the machine's place, site/area/line/machine, as asked")
    machine_id: str = Field(description="the machine id, as asked")
    signal: str = Field(description="the signal name, as asked")
    points: list[HistoryPoint] = Field(description="whole 1-minute buckets, oldest first")


@router.get(
    "/machines",
    summary="A page of machines with their state, last-seen time and latest values",
    description=(
        "Machines ordered by place (site/area/line/machine, in byte order): a machine is "
        "identified by its place, so two sites' imm-01 are two machines. `limit` at a time; "
        "pass the response's `next` (a place) as `after` to get the following page (`next` "
        "is null on the last page). A machine shows `offline` with the reason `source "
        "offline` when its own source died, or `gateway lost` when the edge gateway serving "
        "it died, until data newer than the death arrives. Each machine "
        "carries at most `MOLDLAB_API_MAX_SIGNALS_PER_MACHINE` signals (default 256), the "
        "first ones by signal name; `signals_truncated` says when it has more."
    ),
    responses=UNAVAILABLE,
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
    "/machines/{site}/{area}/{line}/{machine}/signals/{signal}/history",
    summary="One signal of one machine in 1-minute buckets (avg, min, max)",
    description=(
        "The whole minutes of the last `minutes`, oldest first, of the machine at "
        "site/area/line/machine. On TimescaleDB, rows written "
        "late for minutes its 1-minute aggregate has already materialized (an edge gateway's "
        "backlog) show once the aggregate's refresh policy has next run (every minute, over "
        "the last 7 days)."
    ),
    responses={
        404: {
            "model": Problem,
            "description": "no such machine or signal, or no data in the window",
        },
        **UNAVAILABLE,
    },
)
async def history(
    pool: Pool,
    storage: Storage,
    site: SitePath,
    area: AreaPath,
    line: LinePath,
    machine: MachineIdPath,
    signal: SignalPath,
    minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60, description="how far back")] = 60,
) -> SignalHistory:
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    place = Place(site, area, line, machine)
    async with pool.connection() as conn:
        backend = await storage.get(conn)
        try:
            points = await signal_history(conn, backend, place, signal, since)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
    if not points:
        raise HTTPException(404, f"no {signal} data for machine {place} in {minutes} min")
    return SignalHistory(place=str(place), machine_id=machine, signal=signal, points=points)
