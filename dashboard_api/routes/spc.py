"""SPC of a machine's cycle parameter per mould: the control chart and the process capability."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import AwareDatetime

from analytics import (
    CapabilityReport,
    NotFound,
    SpcError,
    SpcSeries,
    spc_capability,
    spc_series,
)
from analytics.spc_query import (
    DEFAULT_BASELINE_POINTS,
    DEFAULT_L,
    DEFAULT_LAMBDA,
    MAX_POINTS,
    Chart,
)
from contracts import CYCLE_PARAMETERS, Place
from contracts.messages import NAME_MAX, NAME_PATTERN
from dashboard_api.auth import ENGINEER_ONLY
from dashboard_api.deps import Pool
from dashboard_api.names import AreaPath, LinePath, MachineIdPath, SitePath
from dashboard_api.problems import UNAVAILABLE, Problem, Unprocessable

router = APIRouter(tags=["spc"], **ENGINEER_ONLY)

DEFAULT_RANGE = timedelta(days=1)

_PREFIX = "/machines/{site}/{area}/{line}/{machine}"

_DEFINITIONS = (
    "Limits come from a baseline period: the centre line is the baseline's mean, MR-bar the "
    "mean of its moving ranges |x_i - x_(i-1)|, sigma (within) = MR-bar / d2 with d2 = 1.128 "
    "(moving ranges of 2 points); individuals limits centre +- 3 sigma; moving-range chart "
    "UCL = D4 x MR-bar with D4 = 3.267, LCL 0. EWMA (`chart=ewma`): z_i = lambda x_i + "
    "(1 - lambda) z_(i-1) with z_0 = the centre line, limits centre +- L sigma "
    "sqrt(lambda / (2 - lambda) (1 - (1 - lambda)^(2i))), i = 1 for the first point (exact, "
    "not the asymptotic width); a point breaks rule 1 when z_i lies beyond them. Western "
    "Electric rules on the individuals chart (`chart=imr`), flagged on the point that "
    "completes the pattern, which is itself part of it: 1 one point beyond 3 sigma; 2 two of "
    "three consecutive points beyond 2 sigma on the same side; 3 four of five beyond 1 sigma "
    "on the same side; 4 eight consecutive points on the same side of the centre line. "
    "Beyond is strict: a point on a limit is inside."
)
_SCOPE = (
    "A cycle's mould is that of the machine's job in force when it was made (its own job "
    "when the cycle names one); a cycle before any job is in no mould's series. All parts "
    "made count, test samples and scrap too: they are measured parts of the process. "
    f"At most {MAX_POINTS:,} points a request: a longer range answers 422 asking for a "
    "narrower one."
)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {
        "model": Problem,
        "description": "no such machine, no values of the mould in the range, or (capability) "
        "a mould not in the plant file then",
    },
    422: {"model": Unprocessable, "description": "invalid parameters, or figures undefined"},
    **UNAVAILABLE,
}

ParameterPath = Annotated[
    str,
    Path(
        pattern="^(" + "|".join(CYCLE_PARAMETERS) + ")$",
        description="the EUROMAP 77 cycle parameter (CycleTime is the cycle's own time): "
        + ", ".join(f"{name} ({unit})" for name, unit in CYCLE_PARAMETERS.items()),
    ),
]
MouldQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=NAME_MAX,
        pattern=NAME_PATTERN,
        description="the mould (EUROMAP 77 MouldId, the plant file's mould id)",
    ),
]
FromQuery = Annotated[
    AwareDatetime | None,
    Query(
        alias="from",
        description="start of the range, included (ISO 8601 with an offset); default `to` "
        "minus one day",
    ),
]
ToQuery = Annotated[
    AwareDatetime | None,
    Query(
        alias="to", description="end of the range, excluded (ISO 8601 with an offset); default now"
    ),
]


def _utc(value: datetime, name: str) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise HTTPException(422, f"{name} {value.isoformat()} is out of range") from exc


def _range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = _utc(end, "to") if end is not None else datetime.now(UTC)
    if start is not None:
        return _utc(start, "from"), end
    try:
        return end - DEFAULT_RANGE, end
    except OverflowError as exc:
        raise HTTPException(
            422, f"to {end.isoformat()} leaves no room for the default from"
        ) from exc


@contextlib.asynccontextmanager
async def _connection(pool: AsyncConnectionPool) -> AsyncIterator[AsyncConnection[Any]]:
    """A pooled connection; what the analytics refuse answers 404 (not found) or 422."""
    async with pool.connection() as conn:
        try:
            yield conn
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except SpcError as exc:
            raise HTTPException(422, str(exc)) from exc


@router.get(
    _PREFIX + "/spc/{parameter}",
    summary="A control chart (I-MR or EWMA) of one cycle parameter of one machine and mould",
    description=(
        "The mould's cycles in [from, to), oldest first, each with its value, moving range, "
        "EWMA (with `chart=ewma`), the control limits at that point and the rules it violates. "
        "The baseline is the period [baseline_from, baseline_to) (both or neither; it may lie "
        "outside the range, and is echoed in `baseline`); without one, the first "
        f"{DEFAULT_BASELINE_POINTS} points of the range (all, if fewer). A baseline with fewer "
        "than 2 values, or whose values do not vary (sigma 0), answers 422. "
        + _DEFINITIONS
        + " "
        + _SCOPE
    ),
    responses=_RESPONSES,
)
async def chart(
    pool: Pool,
    site: SitePath,
    area: AreaPath,
    line: LinePath,
    machine: MachineIdPath,
    parameter: ParameterPath,
    mould: MouldQuery,
    start: FromQuery = None,
    end: ToQuery = None,
    baseline_from: Annotated[
        AwareDatetime | None,
        Query(description="start of the baseline period, included (with baseline_to)"),
    ] = None,
    baseline_to: Annotated[
        AwareDatetime | None,
        Query(description="end of the baseline period, excluded (with baseline_from)"),
    ] = None,
    chart: Annotated[
        Chart, Query(description="imr: individuals and moving range; ewma: EWMA")
    ] = "imr",
    lam: Annotated[
        float,
        Query(alias="lambda", gt=0, le=1, description="EWMA weight lambda of the newest point"),
    ] = DEFAULT_LAMBDA,
    width: Annotated[
        float, Query(alias="L", gt=0, le=10, description="EWMA limits' width L, in sigmas")
    ] = DEFAULT_L,
) -> SpcSeries:
    first, last = _range(start, end)
    if (baseline_from is None) != (baseline_to is None):
        raise HTTPException(422, "give both baseline_from and baseline_to, or neither")
    baseline = None
    if baseline_from is not None and baseline_to is not None:
        baseline = (_utc(baseline_from, "baseline_from"), _utc(baseline_to, "baseline_to"))
    place = Place(site, area, line, machine)
    async with _connection(pool) as conn:
        return await spc_series(
            conn, place, parameter, mould, first, last,
            baseline=baseline, chart=chart, lam=lam, width=width,
        )  # fmt: skip


@router.get(
    _PREFIX + "/capability/{parameter}",
    summary="Process capability (Cp, Cpk, Pp, Ppk) of one cycle parameter of one machine and mould",
    description=(
        "Against the mould's specification limits in the plant file, for the mould's cycles in "
        "[from, to). Cp = (USL - LSL) / 6 sigma_within and Cpk = min(USL - mean, mean - LSL) / "
        "3 sigma_within, with sigma_within = MR-bar / d2 (d2 = 1.128, moving ranges of "
        "consecutive cycles); Pp and Ppk the same with sigma_overall, the sample standard "
        "deviation (n - 1). The range is split where the plant file changed the parameter's "
        "limits: each period is judged against the limits in force then, from its own cycles, "
        "and names their source (`limits_valid_from`, the mould version's valid_from). A period "
        "without limits, with fewer than 2 values or without spread has null figures and says "
        "why in `undefined`. " + _SCOPE
    ),
    responses=_RESPONSES,
)
async def process_capability(
    pool: Pool,
    site: SitePath,
    area: AreaPath,
    line: LinePath,
    machine: MachineIdPath,
    parameter: ParameterPath,
    mould: MouldQuery,
    start: FromQuery = None,
    end: ToQuery = None,
) -> CapabilityReport:
    first, last = _range(start, end)
    place = Place(site, area, line, machine)
    async with _connection(pool) as conn:
        return await spc_capability(conn, place, parameter, mould, first, last)
