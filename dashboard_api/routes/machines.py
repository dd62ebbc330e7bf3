"""GET /api/v1/machines and a machine's signal history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from analytics import HistoryPoint, MachineOverview, machine_overview, signal_history
from dashboard_api.deps import Pool

router = APIRouter(tags=["machines"])


class MachineList(BaseModel):
    machines: list[MachineOverview]


class SignalHistory(BaseModel):
    machine_id: str
    signal: str
    points: list[HistoryPoint]


@router.get("/machines", summary="Every machine with its state, last-seen time and latest values")
async def list_machines(pool: Pool) -> MachineList:
    async with pool.connection() as conn:
        return MachineList(machines=await machine_overview(conn))


@router.get(
    "/machines/{machine_id}/signals/{signal}/history",
    summary="One signal of one machine in 1-minute buckets (avg, min, max)",
    responses={404: {"description": "no such machine or signal, or no data in the window"}},
)
async def history(
    pool: Pool,
    machine_id: str,
    signal: str,
    minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60, description="how far back")] = 60,
) -> SignalHistory:
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    async with pool.connection() as conn:
        points = await signal_history(conn, machine_id, signal, since)
    if not points:
        raise HTTPException(404, f"no {signal} data for machine {machine_id} in {minutes} min")
    return SignalHistory(machine_id=machine_id, signal=signal, points=points)
