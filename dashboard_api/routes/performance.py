"""Production performance of a place (ISO 22400-2): OEE by bucket, the loss tree, downtime."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query

from analytics import NotFound
from analytics.oee import MicroStops
from analytics.performance import EARLIEST, LATEST, MachineSlice
from analytics.report import (
    Bucket,
    Level,
    LossNode,
    OeeRow,
    ParetoRow,
    ReliabilityRow,
    group,
    loss_tree,
    oee_row,
    pareto_rows,
    read_slices,
    reliability_rows,
    summed,
)
from contracts import ID_PATTERN
from dashboard_api.auth import ENGINEER_ONLY
from dashboard_api.deps import Pool, Settings
from dashboard_api.problems import UNAVAILABLE, Problem, Unprocessable
from store import SchemaNotReady

router = APIRouter(tags=["performance"], **ENGINEER_ONLY)

MAX_RANGE = timedelta(days=400)
# Times outside analytics' EARLIEST..LATEST (1970..2200) are refused, as by `moldlab report`.

_PREFIX = "/performance/{place:path}"
_SEGMENT = ID_PATTERN.removeprefix("^").removesuffix("$")
PLACE_PREFIX_PATTERN = f"^{_SEGMENT}(/{_SEGMENT}){{0,3}}$"
_LEVELS = (Level.SITE, Level.AREA, Level.LINE, Level.MACHINE)  # by depth of a place

DEFINITIONS = (
    "Definitions (ISO 22400-2): times are time-weighted from the machines' state intervals, "
    "never counted from samples, and clipped to the shifts of the site's calendar in the "
    "site's own time zone (from the plant file; a site it does not name is planned 24 h a "
    "day in UTC): a night shift runs across midnight and belongs to the day it starts, and "
    "the days the clocks change have 23 and 25 hours. Planned busy time (PBT) = shift time "
    "less breaks, holidays, planned stops the machine reported (planned maintenance, no "
    "order) and unknown time (no data: the machine or its gateway offline, counted neither "
    "as running nor as stopped). Setup and mould changes are not planned stops: they are an "
    "availability loss. Availability = actual production time (APT, running inside PBT) / "
    "PBT; effectiveness = ideal cycle time / active cavities x parts made / APT, with the "
    "mould version and job in force for each cycle; quality = good parts / parts made; OEE = "
    "availability x effectiveness x quality. Micro-stops are idle or unplanned stops shorter "
    "than `MOLDLAB_MICRO_STOP_S` (default 300 s) as a whole; `micro_stops=iso` (ISO 22400, "
    "the default of `MOLDLAB_MICRO_STOP_CONVENTION`) counts them as availability loss, "
    "`micro_stops=tpm` (Nakajima's TPM) as production time, so that they show as speed "
    "loss. Roll-ups (line, area, site; shift, day, week, month, range) sum times and counts "
    "and only then take ratios: they never average ratios. A stop is counted once, in the "
    "slice where its planned busy time began."
)
_RANGE = (
    "The range [from, to) is at most 400 days; a bucket at its edges covers only the part "
    "inside it, and time after now is not counted."
)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no machine under that place has sent data"},
    422: {"model": Unprocessable, "description": "invalid parameters or range"},
    **UNAVAILABLE,
}

PlacePath = Annotated[
    str,
    Path(
        pattern=PLACE_PREFIX_PATTERN,
        description="site, site/area, site/area/line or a machine's site/area/line/machine, "
        "each segment 1-64 letters, digits, _ . or -, starting with a letter or digit",
    ),
]
FromQuery = Annotated[
    datetime,
    Query(
        alias="from",
        description="start of the range, included: ISO 8601 with a UTC offset, e.g. "
        "2026-11-02T06:00+01:00 or 2026-11-02T05:00Z (a time without one is refused)",
    ),
]
ToQuery = Annotated[
    datetime,
    Query(alias="to", description="end of the range, excluded: ISO 8601 with a UTC offset"),
]
MicroStopsQuery = Annotated[
    MicroStops | None,
    Query(
        description="where micro-stops go: iso (availability loss) or tpm (speed loss); "
        "default `MOLDLAB_MICRO_STOP_CONVENTION` (iso)"
    ),
]


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise HTTPException(
            422,
            f"{name}={value.isoformat()} has no UTC offset: add one, e.g. "
            f"{value.isoformat()}+01:00, or Z for UTC",
        )
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = EARLIEST - timedelta(days=1)  # refused below
    if not EARLIEST <= utc <= LATEST:
        raise HTTPException(
            422, f"{name}={value.isoformat()} is not between {EARLIEST:%Y} and {LATEST:%Y}"
        )
    return utc


def _range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    first, last = _utc(start, "from"), _utc(end, "to")
    if last <= first:
        raise HTTPException(422, "the range is empty: `to` must be after `from`")
    if last - first > MAX_RANGE:
        raise HTTPException(
            422, f"the range is longer than {MAX_RANGE.days} days: ask for a shorter one"
        )
    return first, last


async def _slices(
    pool: Pool, settings: Settings, place: str, span: tuple[datetime, datetime]
) -> list[MachineSlice]:
    """The machine slices under `place` in the range `span` (from `_range`)."""
    first, last = span
    async with pool.connection() as conn:
        try:
            return await read_slices(conn, place, first, last, settings.performance())
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except psycopg.errors.UndefinedTable as exc:
            raise SchemaNotReady("no performance tables: run moldlab db upgrade") from exc


def a_level(level: str) -> str:
    """'a line', 'an area': the level of a place with its article."""
    return f"{'an' if level[0] in 'aeiou' else 'a'} {level}"


def _level(place: str, level: Level | None) -> Level:
    depth = place.count("/") + 1
    if level is None:
        return _LEVELS[depth - 1]
    if _LEVELS.index(level) + 1 < depth:
        raise HTTPException(
            422,
            f"level={level} is above the place {place} ({a_level(_LEVELS[depth - 1])}): "
            f"give level={_LEVELS[depth - 1]} or a finer one, or a wider place",
        )
    return level


@router.get(
    _PREFIX + "/oee",
    summary="OEE, its factors and the time elements of a machine, line, area or site",
    description=(
        "One row per place at `level` and per `bucket` of [from, to), ordered by place and "
        "time: the ISO 22400-2 time elements (`times`), the counts (`counts`) and the ratios "
        "(`kpis`: availability, effectiveness, quality, OEE, NEE, TEEP, technical efficiency, "
        "setup and scrap ratios, kWh per good part). `level` defaults to the place's own (a "
        "site's one row per bucket; `level=machine` a row per machine). Buckets are the "
        "site's own: a shift ('YYYY-MM-DD name', by the local day it starts; time between "
        "shifts is '(no shift)'), a local day, an ISO week from Monday, a calendar month, or "
        "the whole range. " + _RANGE + " " + DEFINITIONS
    ),
    responses=_RESPONSES,
)
async def oee(
    pool: Pool,
    settings: Settings,
    place: PlacePath,
    start: FromQuery,
    end: ToQuery,
    bucket: Annotated[Bucket, Query(description="the time each row sums")] = Bucket.SHIFT,
    level: Annotated[
        Level | None,
        Query(description="the places each row sums; default the place's own level"),
    ] = None,
    micro_stops: MicroStopsQuery = None,
) -> list[OeeRow]:
    span = _range(start, end)
    by = _level(place, level)
    rows = await _slices(pool, settings, place, span)
    convention = micro_stops or settings.micro_stop_convention
    return [oee_row(g, convention) for g in group(rows, bucket, by)]


@router.get(
    _PREFIX + "/losses",
    summary="The loss tree of a place over a range: where the planned busy time went",
    description=(
        "Planned busy time of every machine under the place over [from, to), summed, split "
        "into availability loss (by `state/reason`: setup, unplanned stops, faults, idle; "
        "micro-stops with `micro_stops=iso`), speed loss (APT - ideal time; with "
        "`micro_stops=tpm` split into micro-stops and slow cycles), quality loss (the ideal "
        "time of the parts not good: scrap by defect, test samples) and valuable time (the "
        "ideal time of the good parts, OEE x PBT). Each node has its seconds, its share of "
        "PBT and, where it applies, a count of stops or parts. " + _RANGE + " " + DEFINITIONS
    ),
    responses=_RESPONSES,
)
async def losses(
    pool: Pool,
    settings: Settings,
    place: PlacePath,
    start: FromQuery,
    end: ToQuery,
    micro_stops: MicroStopsQuery = None,
) -> LossNode:
    rows = await _slices(pool, settings, place, _range(start, end))
    return loss_tree(summed(rows), micro_stops or settings.micro_stop_convention)


@router.get(
    _PREFIX + "/downtime",
    summary="The downtime Pareto of a place over a range: reasons by time lost",
    description=(
        "Every downtime reason (`state/reason`, e.g. fault/heater_burnout, "
        "setup/mould_change) of the machines under the place over [from, to), summed, "
        "longest first: stops that began in the range, their time inside planned busy time, "
        "their share and cumulative share of all downtime, MTBF (APT / stops) and MTTR "
        "(downtime / stops). Micro-stops are listed under their reason in both conventions; "
        "`micro_stops` flags the reasons whose stops were all micro-stops. "
        + _RANGE
        + " "
        + DEFINITIONS
    ),
    responses=_RESPONSES,
)
async def downtime(
    pool: Pool,
    settings: Settings,
    place: PlacePath,
    start: FromQuery,
    end: ToQuery,
    micro_stops: MicroStopsQuery = None,
) -> list[ParetoRow]:
    rows = await _slices(pool, settings, place, _range(start, end))
    return pareto_rows(summed(rows), micro_stops or settings.micro_stop_convention)


@router.get(
    _PREFIX + "/reliability",
    summary="MTBF and MTTR per machine under a place, overall and per downtime reason",
    description=(
        "One row per machine under the place over [from, to), by place: breakdowns (state "
        "`fault`) that began in the range, their time, MTBF = APT / breakdowns and MTTR = "
        "fault time / breakdowns, and the machine's own downtime Pareto (MTBF and MTTR per "
        "reason). " + _RANGE + " " + DEFINITIONS
    ),
    responses=_RESPONSES,
)
async def reliability(
    pool: Pool,
    settings: Settings,
    place: PlacePath,
    start: FromQuery,
    end: ToQuery,
    micro_stops: MicroStopsQuery = None,
) -> list[ReliabilityRow]:
    rows: Sequence[MachineSlice] = await _slices(pool, settings, place, _range(start, end))
    return reliability_rows(rows, micro_stops or settings.micro_stop_convention)
