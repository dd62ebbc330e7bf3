"""SPC of one cycle parameter of one machine and mould, read from the cycles: chart and capability.

A cycle's mould is that of the machine's job in force when the cycle was made: the newest
`machine_job` row of the machine at or before the cycle's time, of the cycle's own job when
the cycle names it (`cycle.job_name`). A cycle with no job before it has no mould and is
left out. Every part made counts, test samples too: they are measured parts of the same
process (scrap is what SPC is there to catch, so bad parts count as well).

Work is bounded: the cycles of one machine in the range are read through the
cycle (machine_id, time DESC) index, at most `max_points` of the mould (an SpcError asks the
caller to narrow the range beyond that). The baseline is read the same way when it lies
outside the charted range.

Capability is split by the mould's master data: each stretch of the range over which the
plant file gave the parameter the same specification limits gets its own Cp, Cpk, Pp and Ppk,
from the cycles made then, against the limits in force then (a limit changed mid-range never
judges earlier parts by the new limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field

from analytics.errors import NotFound, SpcError
from analytics.spc import capability, ewma, imr_limits, moving_ranges, western_electric
from contracts import CYCLE_PARAMETERS, Place
from plant import SpecLimits
from store.plant import mould_versions

MAX_POINTS = 20_000  # of one request, chart or baseline
DEFAULT_BASELINE_POINTS = 25  # the first this-many points of the range, when none is stated
DEFAULT_LAMBDA = 0.2
DEFAULT_L = 3.0

Chart = Literal["imr", "ewma"]

_MACHINE = "SELECT id FROM machine WHERE place = %s"

# One index range scan of the machine's cycles; for each, the newest job row before it, one
# row of the machine_job (machine_id, time DESC, ...) index. Only a cycle that names a job
# other than that row's (made after the next job's message) looks further back, for its own.
# cycle_time_s is CycleTime's own column.
_VALUES = """
SELECT c.time, v.value, c.quality
FROM cycle c
CROSS JOIN LATERAL (
    SELECT CASE WHEN %(parameter)s = 'CycleTime' THEN c.cycle_time_s
                ELSE (c.parameters ->> %(parameter)s)::float8 END AS value
) v
CROSS JOIN LATERAL (
    SELECT j.job_name, j.mould_id FROM machine_job j
    WHERE j.machine_id = c.machine_id AND j.time <= c.time
    ORDER BY j.time DESC
    LIMIT 1
) newest
WHERE c.machine_id = %(machine)s AND c.time >= %(start)s AND c.time < %(end)s
  AND v.value IS NOT NULL
  AND CASE WHEN c.job_name IS NULL OR c.job_name = newest.job_name THEN newest.mould_id
           ELSE (SELECT j.mould_id FROM machine_job j
                 WHERE j.machine_id = c.machine_id AND j.time <= c.time
                   AND j.job_name = c.job_name
                 ORDER BY j.time DESC
                 LIMIT 1)
      END = %(mould)s
ORDER BY c.time, c.shot
LIMIT %(limit)s
"""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChartLimits(_Model):
    centre: float = Field(description="centre line: the mean of the baseline's values")
    sigma: float = Field(
        description="sigma within, MR-bar / d2 with d2 = 1.128 (moving ranges of 2)"
    )
    lcl: float = Field(description="individuals lower control limit: centre - 3 sigma")
    ucl: float = Field(description="individuals upper control limit: centre + 3 sigma")
    mr_bar: float = Field(description="mean moving range |x_i - x_(i-1)| of the baseline")
    mr_lcl: float = Field(description="moving-range chart lower limit: 0")
    mr_ucl: float = Field(description="moving-range chart upper limit: D4 x MR-bar, D4 = 3.267")


class BaselinePeriod(_Model):
    start: datetime = Field(description="start of the baseline period (included)")
    end: datetime = Field(description="end of the baseline period (excluded)")
    stated: bool = Field(
        description="true: the period asked for (baseline_from, baseline_to), echoed; false: "
        f"the first {DEFAULT_BASELINE_POINTS} points of the range (all, if fewer), from the "
        "first one's time to the next point's (or the range's end)"
    )
    points: int = Field(description="the cycles of the mould in the period, the limits' basis")


class SpcPoint(_Model):
    ts: datetime = Field(description="when the cycle was made (UTC)")
    value: float = Field(description="the parameter's value in this cycle, in `unit`")
    quality: str = Field(description="the part quality of the cycle: good, bad or test")
    mr: float | None = Field(
        description="moving range |value - previous value| (null for the first point)"
    )
    ewma: float | None = Field(
        description="EWMA z_i = lambda x_i + (1 - lambda) z_(i-1), z_0 = centre (EWMA chart only)"
    )
    lcl: float = Field(
        description="lower control limit of the charted statistic at this point: the "
        "individuals LCL, or on the EWMA chart centre - L sigma sqrt(lambda / (2 - lambda) "
        "(1 - (1 - lambda)^(2i)))"
    )
    ucl: float = Field(description="upper control limit of the charted statistic at this point")
    rules: list[int] = Field(
        description="the rules this point violates: Western Electric 1-4 on the individuals "
        "chart; on the EWMA chart 1 when the EWMA lies beyond its limits"
    )


class SpcSeries(_Model):
    place: str = Field(description="the machine's place, site/area/line/machine")
    parameter: str = Field(description="the EUROMAP 77 cycle parameter charted")
    unit: str = Field(description="the parameter's unit")
    mould: str = Field(description="the mould whose cycles are charted")
    start: datetime = Field(description="start of the charted range (included)")
    end: datetime = Field(description="end of the charted range (excluded)")
    chart: Chart = Field(description="imr (individuals/moving range) or ewma")
    ewma_lambda: float = Field(description="the EWMA weight lambda, 0 < lambda <= 1")
    ewma_l: float = Field(description="the EWMA limits' width L in sigmas")
    baseline: BaselinePeriod = Field(description="where the limits come from")
    limits: ChartLimits = Field(description="the I-MR limits from the baseline")
    points: list[SpcPoint] = Field(description="the mould's cycles in the range, oldest first")
    violations: int = Field(description="how many points violate at least one rule")


class CapabilityPeriod(_Model):
    start: datetime = Field(description="start of the stretch these limits held (included)")
    end: datetime = Field(description="end of the stretch (excluded)")
    limits_valid_from: datetime = Field(
        description="source of the limits: valid_from of the mould's plant-file version that "
        "set them"
    )
    limits_valid_to: datetime | None = Field(
        description="when the plant file changed them (null: still in force)"
    )
    lower: float | None = Field(description="lower specification limit LSL (null: none given)")
    upper: float | None = Field(description="upper specification limit USL (null: none given)")
    target: float | None = Field(description="target value, if the plant file gives one")
    points: int = Field(description="the mould's cycles in the stretch")
    mean: float | None = Field(description="mean of the stretch's values")
    sigma_within: float | None = Field(description="MR-bar / d2 (d2 = 1.128): for Cp, Cpk")
    sigma_overall: float | None = Field(
        description="sample standard deviation (n - 1): for Pp, Ppk"
    )
    cp: float | None = Field(description="(USL - LSL) / 6 sigma_within")
    cpk: float | None = Field(description="min(USL - mean, mean - LSL) / 3 sigma_within")
    pp: float | None = Field(description="(USL - LSL) / 6 sigma_overall")
    ppk: float | None = Field(description="min(USL - mean, mean - LSL) / 3 sigma_overall")
    out_of_spec: int | None = Field(description="values below LSL or above USL")
    out_of_spec_fraction: float | None = Field(description="out_of_spec / points")
    undefined: str | None = Field(
        description="why the figures are null (no limits, fewer than 2 points, no spread)"
    )


class CapabilityReport(_Model):
    place: str = Field(description="the machine's place, site/area/line/machine")
    parameter: str = Field(description="the EUROMAP 77 cycle parameter")
    unit: str = Field(description="the parameter's unit")
    mould: str = Field(description="the mould")
    start: datetime = Field(description="start of the range (included)")
    end: datetime = Field(description="end of the range (excluded)")
    points: int = Field(description="the mould's cycles in the range")
    points_without_limits: int = Field(
        description="cycles made while the mould was not in the plant file (in no period)"
    )
    periods: list[CapabilityPeriod] = Field(
        description="one per stretch of the range with the same limits, oldest first"
    )


@dataclass(frozen=True, slots=True)
class _Row:
    ts: datetime
    value: float
    quality: str


def _check(parameter: str, start: datetime, end: datetime) -> None:
    if parameter not in CYCLE_PARAMETERS:
        raise SpcError(
            f"unknown cycle parameter {parameter!r}; known: {', '.join(CYCLE_PARAMETERS)}"
        )
    if start.tzinfo is None or end.tzinfo is None:
        raise SpcError("from and to need a time zone")
    if not start < end:
        raise SpcError(f"from {start.isoformat()} is not before to {end.isoformat()}")


async def _machine_id(conn: AsyncConnection[Any], machine: Place) -> int:
    cur = await conn.execute(_MACHINE, (str(machine),))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no machine {machine}")
    return int(row[0])


async def _rows(
    conn: AsyncConnection[Any],
    machine_id: int,
    place: Place,
    parameter: str,
    mould: str,
    start: datetime,
    end: datetime,
    max_points: int,
) -> list[_Row]:
    params = {
        "machine": machine_id, "parameter": parameter, "mould": mould,
        "start": start, "end": end, "limit": max_points + 1,
    }  # fmt: skip
    cur = await conn.execute(_VALUES, params)
    rows = [_Row(t, float(v), q) for t, v, q in await cur.fetchall()]
    if len(rows) > max_points:
        raise SpcError(
            f"more than {max_points:,} {parameter} values of mould {mould} on {place} from "
            f"{start.isoformat()} to {end.isoformat()}: narrow the range (at most "
            f"{max_points:,} points a request)"
        )
    return rows


async def _machine_rows(
    conn: AsyncConnection[Any],
    machine: Place,
    parameter: str,
    mould: str,
    start: datetime,
    end: datetime,
    max_points: int,
) -> tuple[int, list[_Row]]:
    """The machine's id and the mould's values in [start, end): NotFound when there are none."""
    machine_id = await _machine_id(conn, machine)
    rows = await _rows(conn, machine_id, machine, parameter, mould, start, end, max_points)
    if not rows:
        raise NotFound(
            f"no {parameter} values of mould {mould} on machine {machine} from "
            f"{start.isoformat()} to {end.isoformat()}"
        )
    return machine_id, rows


async def spc_series(
    conn: AsyncConnection[Any],
    machine: Place,
    parameter: str,
    mould: str,
    start: datetime,
    end: datetime,
    *,
    baseline: tuple[datetime, datetime] | None = None,
    chart: Chart = "imr",
    lam: float = DEFAULT_LAMBDA,
    width: float = DEFAULT_L,
    max_points: int = MAX_POINTS,
) -> SpcSeries:
    """The chart of `parameter` for the mould's cycles in [start, end), limits from `baseline`.

    `baseline` is a period [from, to) (it may lie outside the range); None: the first
    DEFAULT_BASELINE_POINTS points of the range. NotFound: no such machine, or no values in
    the range; SpcError: an unknown parameter, a bad range, too many points, a baseline with
    fewer than 2 values or without spread.
    """
    _check(parameter, start, end)
    if baseline is not None and (baseline[0].tzinfo is None or baseline[1].tzinfo is None):
        raise SpcError("baseline_from and baseline_to need a time zone")
    if baseline is not None and not baseline[0] < baseline[1]:
        raise SpcError(
            f"baseline_from {baseline[0].isoformat()} is not before baseline_to "
            f"{baseline[1].isoformat()}"
        )
    if not 0 < lam <= 1:
        raise SpcError(f"lambda must be in (0, 1], not {lam}")
    if not width > 0:
        raise SpcError(f"L must be above 0, not {width}")
    machine_id, rows = await _machine_rows(conn, machine, parameter, mould, start, end, max_points)
    if baseline is None:
        basis = rows[:DEFAULT_BASELINE_POINTS]
        after = rows[len(basis)].ts if len(rows) > len(basis) else end
        period = BaselinePeriod(start=basis[0].ts, end=after, stated=False, points=len(basis))
    else:
        b_start, b_end = baseline
        if start <= b_start and b_end <= end:
            basis = [r for r in rows if b_start <= r.ts < b_end]
        else:
            basis = await _rows(
                conn, machine_id, machine, parameter, mould, b_start, b_end, max_points
            )
        period = BaselinePeriod(start=b_start, end=b_end, stated=True, points=len(basis))
    try:
        limits = imr_limits([r.value for r in basis])
    except SpcError as exc:
        raise SpcError(
            f"baseline {period.start.isoformat()} to {period.end.isoformat()}: {exc}"
        ) from exc
    values = [r.value for r in rows]
    ranges: list[float | None] = [None, *moving_ranges(values)]
    bands: list[tuple[float, float, float | None]]
    if chart == "imr":
        rules = western_electric(values, limits.mean, limits.sigma)
        bands = [(limits.lcl, limits.ucl, None)] * len(values)
    else:
        smoothed = ewma(values, limits.mean, limits.sigma, lam, width)
        rules = [(1,) if p.beyond else () for p in smoothed]
        bands = [(p.lcl, p.ucl, p.z) for p in smoothed]
    points = [
        SpcPoint(
            ts=r.ts,
            value=r.value,
            quality=r.quality,
            mr=mr,
            ewma=z,
            lcl=lcl,
            ucl=ucl,
            rules=list(flags),
        )
        for r, mr, (lcl, ucl, z), flags in zip(rows, ranges, bands, rules, strict=True)
    ]
    return SpcSeries(
        place=str(machine),
        parameter=parameter,
        unit=CYCLE_PARAMETERS[parameter],
        mould=mould,
        start=start,
        end=end,
        chart=chart,
        ewma_lambda=lam,
        ewma_l=width,
        baseline=period,
        limits=ChartLimits(
            centre=limits.mean,
            sigma=limits.sigma,
            lcl=limits.lcl,
            ucl=limits.ucl,
            mr_bar=limits.mr_bar,
            mr_lcl=limits.mr_lcl,
            mr_ucl=limits.mr_ucl,
        ),
        points=points,
        violations=sum(1 for flags in rules if flags),
    )


@dataclass(slots=True)
class _Stretch:
    start: datetime
    end: datetime
    valid_from: datetime
    valid_to: datetime | None
    limits: SpecLimits | None


async def _stretches(
    conn: AsyncConnection[Any], mould: str, parameter: str, start: datetime, end: datetime
) -> list[_Stretch]:
    """The stretches of [start, end) over which the plant file gave the same limits."""
    stretches: list[_Stretch] = []
    for version in await mould_versions(conn, mould, start, end):
        limits = version.item.limits.get(parameter)
        last = stretches[-1] if stretches else None
        if last is not None and last.valid_to == version.valid_from and last.limits == limits:
            last.valid_to = version.valid_to
            last.end = min(end, version.valid_to) if version.valid_to else end
            continue
        stretches.append(
            _Stretch(
                start=max(start, version.valid_from),
                end=min(end, version.valid_to) if version.valid_to else end,
                valid_from=version.valid_from,
                valid_to=version.valid_to,
                limits=limits,
            )
        )
    return stretches


def _period(stretch: _Stretch, values: list[float]) -> CapabilityPeriod:
    spec = stretch.limits
    base: dict[str, Any] = {
        "start": stretch.start, "end": stretch.end,
        "limits_valid_from": stretch.valid_from, "limits_valid_to": stretch.valid_to,
        "lower": spec.lower if spec else None, "upper": spec.upper if spec else None,
        "target": spec.target if spec else None, "points": len(values),
    }  # fmt: skip
    figures = dict.fromkeys(
        ("mean", "sigma_within", "sigma_overall", "cp", "cpk", "pp", "ppk", "out_of_spec",
         "out_of_spec_fraction"),
    )  # fmt: skip
    if spec is None:
        return CapabilityPeriod(
            **base, **figures, undefined="the plant file gives no limits for it then"
        )
    try:
        found = capability(values, spec.lower, spec.upper)
    except SpcError as exc:
        return CapabilityPeriod(**base, **figures, undefined=str(exc))
    return CapabilityPeriod(
        **base,
        mean=found.mean,
        sigma_within=found.sigma_within,
        sigma_overall=found.sigma_overall,
        cp=found.cp,
        cpk=found.cpk,
        pp=found.pp,
        ppk=found.ppk,
        out_of_spec=found.out_of_spec,
        out_of_spec_fraction=found.out_of_spec_fraction,
        undefined=None,
    )


async def spc_capability(
    conn: AsyncConnection[Any],
    machine: Place,
    parameter: str,
    mould: str,
    start: datetime,
    end: datetime,
    *,
    max_points: int = MAX_POINTS,
) -> CapabilityReport:
    """Cp, Cpk, Pp, Ppk of the mould's cycles in [start, end), per stretch of the same limits.

    NotFound: no such machine, no values in the range, or the mould is not in the plant file
    during it; SpcError: an unknown parameter, a bad range, too many points. A stretch with
    no limits, fewer than 2 values or no spread has null figures and says why (`undefined`).
    """
    _check(parameter, start, end)
    _, rows = await _machine_rows(conn, machine, parameter, mould, start, end, max_points)
    stretches = await _stretches(conn, mould, parameter, start, end)
    if not stretches:
        raise NotFound(
            f"mould {mould} is not in the plant file from {start.isoformat()} to "
            f"{end.isoformat()}: no specification limits"
        )
    periods = [_period(s, [r.value for r in rows if s.start <= r.ts < s.end]) for s in stretches]
    return CapabilityReport(
        place=str(machine),
        parameter=parameter,
        unit=CYCLE_PARAMETERS[parameter],
        mould=mould,
        start=start,
        end=end,
        points=len(rows),
        points_without_limits=len(rows) - sum(p.points for p in periods),
        periods=periods,
    )
