"""GET /api/v1/machines, a page at a time, and a machine's signal history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from analytics import HistoryPoint, MachinePage, NotFound, machine_page, signal_history
from analytics.jobs import JobChange, job_history
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
from dashboard_api.problems import UNAVAILABLE, Problem, Unprocessable

# Every signal of every machine: the engineers' view (the kiosk has its own, GET /api/v1/kiosk).
router = APIRouter(tags=["machines"], **ENGINEER_ONLY)

MAX_PAGE = 200


class JobHistory(BaseModel):
    place: str = Field(description="the machine's place, site/area/line/machine, as asked")
    jobs: list[JobChange] = Field(description="the job messages in the range, newest first")
    more: bool = Field(description="true when the range holds more than `limit` of them")


MAX_JOBS = 1000


class SignalHistory(BaseModel):
    place: str = Field(description="the machine's place, site/area/line/machine, as asked")
    machine_id: str = Field(description="the machine id, as asked")
    signal: str = Field(description="the signal name, as asked")
    bucket_minutes: int = Field(description="the buckets' width, in minutes")
    points: list[HistoryPoint] = Field(description="whole buckets, oldest first")


# Bucket widths, minutes; without one asked, the narrowest that gives at most MAX_POINTS.
BUCKET_MINUTES = (1, 5, 15, 60, 360, 1440)
MAX_POINTS = 2100
MAX_MINUTES = 400 * 24 * 60


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
    summary="One signal of one machine in buckets (avg, min, max), from an hour to months",
    description=(
        "The whole buckets of the last `minutes` (up to 400 days), oldest first, of the "
        "machine at site/area/line/machine. `bucket` is their width in minutes (1, 5, 15, 60, "
        f"360 or 1440); without it, the narrowest that gives at most {MAX_POINTS} points (a "
        "day: 1-minute buckets; 30 days: 60-minute ones). On TimescaleDB, buckets of 5 "
        "minutes and more are summed from the 1-minute continuous aggregate (the newest hour "
        "from the raw rows): months cost what their buckets hold. On plain PostgreSQL they "
        "are computed from the raw rows of the window, which a window of months may not do "
        "within the statement timeout (503). Rows written late for minutes the aggregate has "
        "already materialized (an edge gateway's backlog) show once its refresh policy has "
        "next run (every minute, over the last 7 days)."
    ),
    responses={
        404: {
            "model": Problem,
            "description": "no such machine or signal, or no data in the window",
        },
        422: {
            "model": Unprocessable,
            "description": "invalid parameters, a bucket width not offered, or too many points",
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
    minutes: Annotated[int, Query(ge=1, le=MAX_MINUTES, description="how far back")] = 60,
    bucket: Annotated[
        int | None,
        Query(
            ge=1,
            le=1440,
            description="the buckets' width in minutes: 1, 5, 15, 60, 360 or "
            "1440; default: see above",
        ),
    ] = None,
) -> SignalHistory:
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    if bucket is not None and bucket not in BUCKET_MINUTES:
        raise HTTPException(422, f"bucket={bucket}: give 1, 5, 15, 60, 360 or 1440 (minutes)")
    width = bucket or next((b for b in BUCKET_MINUTES if minutes / b <= MAX_POINTS), 1440)
    if minutes / width > 50 * MAX_POINTS:
        raise HTTPException(
            422, f"{minutes} minutes in {width}-minute buckets is too many points: widen them"
        )
    place = Place(site, area, line, machine)
    async with pool.connection() as conn:
        backend = await storage.get(conn)
        try:
            points = await signal_history(
                conn, backend, place, signal, since, width=timedelta(minutes=width)
            )
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
    if not points:
        raise HTTPException(404, f"no {signal} data for machine {place} in {minutes} min")
    return SignalHistory(
        place=str(place), machine_id=machine, signal=signal, bucket_minutes=width, points=points
    )


@router.get(
    "/machines/{site}/{area}/{line}/{machine}/jobs",
    summary="A machine's job and mould history",
    description=(
        "The job messages (EUROMAP 77: JobName, MouldId, JobStatus, active cavities, the "
        "order's parts, material) the machine at site/area/line/machine sent in the last "
        "`days` days, newest first, at most `limit` (`more` says when there were more)."
    ),
    responses={404: {"model": Problem, "description": "no such machine"}, **UNAVAILABLE},
)
async def jobs(
    pool: Pool,
    site: SitePath,
    area: AreaPath,
    line: LinePath,
    machine: MachineIdPath,
    days: Annotated[float, Query(gt=0, le=400, description="how far back")] = 30.0,
    limit: Annotated[int, Query(ge=1, le=MAX_JOBS, description="at most this many")] = 200,
) -> JobHistory:
    end = datetime.now(UTC)
    place = Place(site, area, line, machine)
    async with pool.connection() as conn:
        try:
            found, more = await job_history(conn, place, end - timedelta(days=days), end, limit)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
    return JobHistory(place=str(place), jobs=found, more=more)
