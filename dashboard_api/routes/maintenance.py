"""Predictive maintenance: the newest predictions, the alerts and the model card in force.

Engineers and admins only (dashboard_api.auth): reading needs a session, acknowledging also
its CSRF token.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from dashboard_api.auth import ENGINEER_ONLY, NO_CSRF, UNAUTHORISED, Engineer
from dashboard_api.deps import Pool, Writer
from dashboard_api.problems import UNAVAILABLE, Problem
from dashboard_api.routes.performance import PLACE_PREFIX_PATTERN
from store.maintenance import (
    STATUSES,
    AckError,
    AlertRow,
    AlertStatus,
    acknowledge,
    alerts,
    latest_predictions,
    model_in_force,
)  # fmt: skip

log = logging.getLogger("moldlab.api.maintenance")
router = APIRouter(tags=["maintenance"])

MAX_ALERTS = 500
MAX_PREDICTIONS = 10_000
PLACE_MAX_CHARS = 4 * 64 + 3  # site/area/line/machine, 64 characters each at most

PlaceQuery = Annotated[
    str | None,
    Query(
        pattern=PLACE_PREFIX_PATTERN,
        max_length=PLACE_MAX_CHARS,
        description="only machines under this place: site, site/area, site/area/line or a "
        "machine's site/area/line/machine; default every machine",
    ),
]


class Evidence(BaseModel):
    feature: str = Field(description="the model's feature, e.g. `iqr:CushionStroke|dev8h`")
    value: float | None = Field(description="its value at the time scored (null: unknown)")
    baseline: float | None = Field(
        description="what it is on this machine and mould normally (null: no baseline yet)"
    )
    text: str = Field(
        description="one line an engineer can check, e.g. 'cushion stroke spread 0.41 mm, "
        "3.2x its baseline'"
    )


class Prediction(BaseModel):
    place: str = Field(description="the machine's place, site/area/line/machine")
    component: str = Field(description="the component predicted, e.g. check_ring, hydraulic_pump")
    time: datetime = Field(description="the time scored: the data up to then was used (UTC)")
    p_8h: float = Field(
        ge=0, le=1, description="probability that it fails within 8 hours of running"
    )
    p_24h: float = Field(
        ge=0, le=1, description="probability that it fails within 24 hours of running"
    )
    rul_h: float = Field(
        description="remaining useful life, running hours (hours the press runs; standstills "
        "longer than 4 h do not count)"
    )
    rul_low_h: float = Field(description="low end of the remaining useful life's interval, hours")
    rul_high_h: float = Field(description="high end of the remaining useful life's interval, hours")
    alarm: bool = Field(description="the model's alarm rule (its validated threshold) warns")
    evidence: list[Evidence] = Field(description="what drove the prediction, strongest first")
    model: str = Field(description="the name of the model that made it")
    written_at: datetime = Field(description="when the scorer wrote it (UTC)")


class Predictions(BaseModel):
    predictions: list[Prediction] = Field(
        description="the newest prediction per machine and component, by place and component"
    )


class Alert(BaseModel):
    id: int = Field(description="the alert's number (for `moldlab pdm ack ALERT_ID`)")
    place: str = Field(description="the machine's place, site/area/line/machine")
    component: str = Field(description="the component the alert is about")
    status: AlertStatus = Field(
        description="open; acknowledged (someone took it); closed (see close_reason)"
    )
    opened_at: datetime = Field(description="the time scored when the model's alarm rose (UTC)")
    acknowledged_by: str | None = Field(description="who acknowledged it; null: nobody yet")
    acknowledged_at: datetime | None = Field(description="when it was acknowledged (UTC)")
    closed_at: datetime | None = Field(
        description="when it closed (UTC): the failure's or maintenance's start, or the time "
        "scored when the alarm was found cleared"
    )
    close_reason: Literal["failed", "serviced", "cleared"] | None = Field(
        description="failed: the component broke down; serviced: a planned maintenance started; "
        "cleared: the alarm stayed off for the scorer's clear-after time (default 6 h)"
    )
    last_alarm_at: datetime = Field(description="the newest time scored with the alarm on (UTC)")
    p_8h: float = Field(description="probability of failure within 8 h when it opened")
    p_24h: float = Field(description="probability of failure within 24 h when it opened")
    rul_h: float = Field(description="remaining useful life when it opened, hours")
    evidence: list[Evidence] = Field(description="what drove the alarm when it opened")
    model: str = Field(description="the model that raised it")


class Alerts(BaseModel):
    alerts: list[Alert] = Field(description="newest first")


class ModelCard(BaseModel):
    name: str = Field(description="the model's name (its directory in the models directory)")
    in_force_since: datetime = Field(description="when a scorer last started with it (UTC)")
    card: dict[str, Any] = Field(
        description="the model card as `moldlab pdm train` wrote it: created, data "
        "fingerprint, features, metrics beside the threshold baseline, library versions, "
        "components, horizons and alarm thresholds"
    )


@router.get(
    "/maintenance/predictions",
    summary="The newest prediction per machine and component",
    description="What the scorer (`moldlab pdm score`) last predicted for each machine and "
    "component under `place`: failure probabilities within 8 h and 24 h, the remaining "
    "useful life with its interval, the alarm and its evidence. Machines not scored lately "
    "(no recent cycles) keep their last prediction: compare `time` with now.",
    responses={**ENGINEER_ONLY["responses"], **UNAVAILABLE},
    dependencies=ENGINEER_ONLY["dependencies"],
)
async def get_predictions(
    pool: Pool,
    place: PlaceQuery = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_PREDICTIONS,
            description="at most this many, by place and component (narrow `place` for more)",
        ),
    ] = MAX_PREDICTIONS,
) -> Predictions:
    async with pool.connection() as conn:
        rows = await latest_predictions(conn, place, limit)
    return Predictions(
        predictions=[
            Prediction(
                place=machine,
                component=r.component,
                time=r.time,
                p_8h=r.p_8h,
                p_24h=r.p_24h,
                rul_h=r.rul_h,
                rul_low_h=r.rul_low_h,
                rul_high_h=r.rul_high_h,
                alarm=r.alarm,
                evidence=[Evidence(**e) for e in r.evidence],
                model=r.model,
                written_at=written,
            )
            for machine, r, written in rows
        ]
    )


@router.get(
    "/maintenance/alerts",
    summary="Predictive-maintenance alerts, newest first",
    description="Alerts of machines under `place`, with `status` one of open, acknowledged, "
    "closed (repeat it for several; default open and acknowledged). At most one alert per "
    "machine and component is open or acknowledged at a time.",
    responses={**ENGINEER_ONLY["responses"], **UNAVAILABLE},
    dependencies=ENGINEER_ONLY["dependencies"],
)
async def get_alerts(
    pool: Pool,
    place: PlaceQuery = None,
    status: Annotated[
        list[AlertStatus] | None,
        Query(description="only alerts with these statuses; default open and acknowledged"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ALERTS, description="at most this many")] = 100,
) -> Alerts:
    statuses = tuple(s for s in STATUSES if s in (status or ("open", "acknowledged")))
    async with pool.connection() as conn:
        rows = await alerts(conn, place=place, statuses=statuses, limit=limit)
    return Alerts(alerts=[_alert(a) for a in rows])


def _alert(a: AlertRow) -> Alert:
    return Alert(
        id=a.id, place=a.place, component=a.component, status=a.status, opened_at=a.opened_at,
        acknowledged_by=a.acknowledged_by, acknowledged_at=a.acknowledged_at,
        closed_at=a.closed_at, close_reason=a.close_reason, last_alarm_at=a.last_alarm_at,
        p_8h=a.p_8h, p_24h=a.p_24h, rul_h=a.rul_h,
        evidence=[Evidence(**e) for e in a.evidence], model=a.model,
    )  # fmt: skip


@router.post(
    "/maintenance/alerts/{alert_id}/acknowledge",
    summary="Acknowledge an open alert (engineers)",
    description="Takes an open alert in the logged-in engineer's name: `acknowledged_by` is "
    "their user name, `acknowledged_at` now. Needs a session (POST /api/v1/auth/login) and "
    "its X-CSRF-Token header. The same as `moldlab pdm ack ALERT_ID --by NAME`.",
    responses={
        **UNAUTHORISED,
        **NO_CSRF,
        404: {"model": Problem, "description": "no such alert"},
        409: {"model": Problem, "description": "the alert is acknowledged already, or closed"},
        **UNAVAILABLE,
    },
)
async def acknowledge_alert(
    alert_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="the alert's id")],
    user: Engineer,
    writer: Writer,
) -> Alert:
    async with writer.connection() as conn:
        try:
            alert = await acknowledge(conn, alert_id, user.name)
        except AckError as exc:
            await conn.rollback()
            raise HTTPException(404 if str(exc).startswith("no alert") else 409, str(exc)) from None
    log.info(
        "alert %d acknowledged by %s: %s %s", alert.id, user.name, alert.place, alert.component
    )
    return _alert(alert)


@router.get(
    "/maintenance/model",
    summary="The model card of the model in force",
    description="The card of the model the scorer started with last.",
    responses={
        **ENGINEER_ONLY["responses"],
        404: {"model": Problem, "description": "no scorer has run yet"},
        **UNAVAILABLE,
    },
    dependencies=ENGINEER_ONLY["dependencies"],
)
async def get_model(pool: Pool) -> ModelCard:
    async with pool.connection() as conn:
        found = await model_in_force(conn)
    if found is None:
        raise HTTPException(404, "no model in force: no scorer (moldlab pdm score) has run yet")
    name, since, card = found
    return ModelCard(name=name, in_force_since=since, card=card)
