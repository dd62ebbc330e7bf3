"""OEE, the loss tree and downtime for a site, grouped by place and bucketed by time.

Groups add the figures of their machines' slices (times and counts) and only then take ratios:
a line's availability is its machines' production time over their planned busy time, never
the mean of their availabilities. Buckets are the site's own: a shift, a local day (the day a
shift starts), an ISO week from Monday, a calendar month, or the whole range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from analytics.downtime import pareto, reliability
from analytics.oee import Figures, MicroStops, ratios, total
from analytics.performance import MachineSlice, machine_slices


class Bucket(StrEnum):
    SHIFT = "shift"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    RANGE = "range"


class Level(StrEnum):
    MACHINE = "machine"
    LINE = "line"
    AREA = "area"
    SITE = "site"


_DEPTH = {Level.SITE: 1, Level.AREA: 2, Level.LINE: 3, Level.MACHINE: 4}


def _label(s: MachineSlice, bucket: Bucket) -> str:
    """The bucket a slice falls in, by the local day it belongs to."""
    day = s.slice.day
    if bucket is Bucket.SHIFT:
        return f"{day.isoformat()} {s.slice.shift or '(no shift)'}"
    if bucket is Bucket.DAY:
        return day.isoformat()
    if bucket is Bucket.WEEK:
        year, week, _ = day.isocalendar()  # ISO weeks run from Monday
        return f"{year}-W{week:02d}"
    if bucket is Bucket.MONTH:
        return f"{day:%Y-%m}"
    return "range"


@dataclass(slots=True)
class Group:
    """One place (machine, line, area or site) over one bucket."""

    place: str
    bucket: str
    start: float
    end: float
    figures: Figures
    slices: int
    from_rollup: int


def group(rows: Sequence[MachineSlice], bucket: Bucket, level: Level) -> list[Group]:
    """The figures of `rows` summed by place at `level` and by `bucket`, in order.

    With the shift bucket, a place's time between shifts is its own bucket ("(no shift)").
    """
    out: dict[tuple[str, str], Group] = {}
    for r in rows:
        place = "/".join(r.place.split("/")[: _DEPTH[level]])
        label = _label(r, bucket)
        g = out.get((place, label))
        if g is None:
            g = out[(place, label)] = Group(
                place, label, r.slice.start, r.slice.end, Figures(), 0, 0
            )
        g.figures += r.figures
        g.start, g.end = min(g.start, r.slice.start), max(g.end, r.slice.end)
        g.slices += 1
        g.from_rollup += r.from_rollup
    return sorted(out.values(), key=lambda g: (g.place, g.start, g.bucket))


# The API's and the report's view of a group.


class Times(BaseModel):
    """Where the calendar time went, in seconds (ISO 22400-2 time elements).

    A row above machine level (line, area, site) sums the times of its machines: every time
    of it is in machine-seconds (3 machines over one day: calendar_s 259,200, not 86,400).
    """

    calendar_s: float = Field(
        description="the bucket's length of time (23 or 25 h on the days the clocks change) "
        "for one machine; for a line, area or site the sum over its machines, as every time "
        "here is (machine-seconds: 3 machines over a day, 259,200 s)"
    )
    shift_s: float = Field(description="time inside shifts, breaks included")
    break_s: float = Field(description="the shifts' breaks (planned, not planned busy time)")
    planned_stop_s: float = Field(
        description="planned stops the machine reported inside shifts (planned maintenance, "
        "no order, ...): not planned busy time"
    )
    unknown_s: float = Field(
        description="time inside shifts with no data (the machine reported offline, its "
        "source or gateway was dead, or it had not sent its first state yet): neither "
        "running nor stopped, and not planned busy time"
    )
    planned_busy_s: float = Field(
        description="PBT: shift time less breaks, planned stops and unknown"
    )
    production_s: float = Field(
        description="APT: time running inside PBT (plus micro-stops in the TPM convention)"
    )
    availability_loss_s: float = Field(description="PBT - APT: setup, stops, faults, idle")
    speed_loss_s: float = Field(description="APT - ideal time: cycles slower than ideal")
    quality_loss_s: float = Field(description="ideal time of parts not good (scrap, test samples)")
    valuable_s: float = Field(description="ideal time of the good parts: OEE * PBT")


class Counts(BaseModel):
    cycles: int = Field(description="cycles that ended inside planned windows")
    parts: int = Field(description="parts made (all cavities), good + bad + test")
    good: int = Field(description="good parts")
    bad: int = Field(description="scrap")
    test: int = Field(description="test samples taken out for inspection")
    unrated_cycles: int = Field(
        description="cycles of a mould the plant file does not know: rated at their own cycle "
        "time (no speed loss is claimed for them)"
    )
    stops: int = Field(description="stops that began in the bucket (micro-stops included)")
    micro_stops: int = Field(description="of the stops, those shorter than the threshold")


class Kpis(BaseModel):
    """ISO 22400-2 ratios (0..1; effectiveness may pass 1 when cycles beat the ideal); null where
    the denominator is zero."""

    availability: float | None = Field(description="APT / PBT")
    effectiveness: float | None = Field(
        description="ideal time / APT; ideal time = ideal cycle time / active cavities * parts "
        "made, with the mould version and job in force for each cycle"
    )
    quality: float | None = Field(description="good parts / parts made")
    oee: float | None = Field(description="availability * effectiveness * quality")
    nee: float | None = Field(
        description="net equipment effectiveness: OEE with setup time taken out of PBT, "
        "APT / (PBT - setup) * effectiveness * quality"
    )
    teep: float | None = Field(description="OEE * PBT / calendar time")
    technical_efficiency: float | None = Field(
        description="APT / (APT + faults + unplanned stops), micro-stops among the stops in "
        "the ISO convention"
    )
    setup_ratio: float | None = Field(description="setup time / APT")
    scrap_ratio: float | None = Field(description="bad parts / parts made")
    energy_kwh: float = Field(description="energy of the cycles (EUROMAP 77 CycleEnergy)")
    kwh_per_good_part: float | None = Field(description="energy_kwh / good parts")


class OeeRow(BaseModel):
    place: str = Field(description="the machine, line, area or site: site[/area[/line[/machine]]]")
    bucket: str = Field(
        description="shift: 'YYYY-MM-DD name' (the local day it starts); day: 'YYYY-MM-DD'; "
        "week: 'YYYY-Www' (ISO); month: 'YYYY-MM'; range: 'range'"
    )
    start: datetime = Field(description="the bucket's first instant (UTC)")
    end: datetime = Field(description="the bucket's end (UTC): now, for a bucket still running")
    times: Times = Field(description="where the bucket's time went (seconds)")
    counts: Counts = Field(description="cycles, parts and stops")
    kpis: Kpis = Field(description="the ratios of the summed times and counts")
    slices: int = Field(description="machine slices (shifts, time between shifts) summed")
    from_rollup: int = Field(description="of which read from the rollup (the rest: raw rows)")


def oee_row(g: Group, convention: MicroStops) -> OeeRow:
    f = g.figures
    r = ratios(f, convention)
    valuable = (r.oee or 0.0) * r.planned_busy_s + 0.0  # + 0.0: never -0.0
    return OeeRow(
        place=g.place,
        bucket=g.bucket,
        start=datetime.fromtimestamp(g.start, UTC),
        end=datetime.fromtimestamp(g.end, UTC),
        times=Times(
            calendar_s=f.calendar_s,
            shift_s=f.shift_s,
            break_s=f.break_s,
            planned_stop_s=sum(f.planned_stop_s.values()),
            unknown_s=f.unknown_s,
            planned_busy_s=r.planned_busy_s,
            production_s=r.production_s,
            availability_loss_s=r.planned_busy_s - r.production_s,
            speed_loss_s=r.speed_loss_s,
            quality_loss_s=f.ideal_s - valuable if r.quality is not None else 0.0,
            valuable_s=valuable,
        ),
        counts=Counts(
            cycles=f.cycles,
            parts=f.parts,
            good=f.good,
            bad=f.bad,
            test=f.test,
            unrated_cycles=f.unrated_cycles,
            stops=sum(f.stops.values()),
            micro_stops=f.micro_stops,
        ),
        kpis=Kpis(
            availability=r.availability,
            effectiveness=r.effectiveness,
            quality=r.quality,
            oee=r.oee,
            nee=r.nee,
            teep=r.teep,
            technical_efficiency=r.technical_efficiency,
            setup_ratio=r.setup_ratio,
            scrap_ratio=r.scrap_ratio,
            energy_kwh=f.energy_kwh,
            kwh_per_good_part=r.kwh_per_good_part,
        ),
        slices=g.slices,
        from_rollup=g.from_rollup,
    )


class LossNode(BaseModel):
    name: str = Field(description="what the time went to")
    seconds: float = Field(description="its time inside planned busy time")
    share_of_pbt: float | None = Field(description="seconds / planned busy time")
    count: int | None = Field(default=None, description="stops, or parts, where it applies")
    children: list[LossNode] = Field(
        default=[], description="what it is made of (availability losses longest first)"
    )


def _node(
    name: str,
    s: float,
    pbt: float,
    count: int | None = None,
    children: list[LossNode] | None = None,
) -> LossNode:
    return LossNode(
        name=name,
        seconds=s,
        share_of_pbt=s / pbt if pbt > 0 else None,
        count=count,
        children=children or [],
    )


def loss_tree(f: Figures, convention: MicroStops) -> LossNode:
    """Planned busy time split into availability, speed and quality losses and valuable time."""
    r = ratios(f, convention)
    pbt = r.planned_busy_s
    availability: list[LossNode] = []
    # Ties by name: the maps' order differs between the rollup (jsonb) and the raw rows.
    for key in sorted(f.losses_s, key=lambda k: (-f.losses_s[k], k)):
        availability.append(_node(key, f.losses_s[key], pbt, f.stops.get(key, 0)))
    micro_s = sum(f.micro_s.values())
    if convention is MicroStops.ISO and micro_s:
        availability.append(_node("micro-stops", micro_s, pbt, f.micro_stops))
    speed: list[LossNode] = []
    if convention is MicroStops.TPM and micro_s:
        speed.append(_node("micro-stops", micro_s, pbt, f.micro_stops))
        speed.append(_node("slow cycles", r.speed_loss_s - micro_s, pbt))
    per_part = f.ideal_s / f.parts if f.parts else 0.0
    quality = [
        _node(f"scrap/{defect}", n * per_part, pbt, n)
        for defect, n in sorted(f.scrap.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    if f.test:
        quality.append(_node("test samples", f.test * per_part, pbt, f.test))
    quality_s = (f.parts - f.good) * per_part
    return _node(
        "planned busy time",
        pbt,
        pbt,
        children=[
            _node("availability loss", pbt - r.production_s, pbt, children=availability),
            _node("speed loss", r.speed_loss_s, pbt, children=speed),
            _node("quality loss", quality_s, pbt, f.parts - f.good, children=quality),
            _node("valuable time", f.ideal_s - quality_s, pbt, f.good),
        ],
    )


class ParetoRow(BaseModel):
    reason: str = Field(description="state/reason, e.g. fault/heater_burnout, setup/mould_change")
    stops: int = Field(description="stops that began in the range")
    downtime_s: float = Field(description="their time inside planned busy time")
    share: float = Field(description="of all downtime")
    cumulative_share: float = Field(description="this reason and the ones above it")
    mtbf_s: float | None = Field(description="mean time between: production time / stops")
    mttr_s: float | None = Field(description="mean time to restore: downtime / stops")
    micro_stops: bool = Field(description="whether all its stops were micro-stops")


class ReliabilityRow(BaseModel):
    place: str = Field(description="the machine, site/area/line/machine")
    failures: int = Field(description="breakdowns (state fault) that began in the range")
    fault_s: float = Field(description="their time inside planned busy time")
    mtbf_s: float | None = Field(description="production time / failures")
    mttr_s: float | None = Field(description="fault time / failures")
    reasons: list[ParetoRow] = Field(description="every downtime reason of the machine")


def pareto_rows(f: Figures, convention: MicroStops) -> list[ParetoRow]:
    return [
        ParetoRow(
            reason=p.reason,
            stops=p.stops,
            downtime_s=p.downtime_s,
            share=p.share,
            cumulative_share=p.cumulative_share,
            mtbf_s=p.mtbf_s,
            mttr_s=p.mttr_s,
            micro_stops=p.micro_stops,
        )
        for p in pareto(f, convention)
    ]


def reliability_rows(rows: Sequence[MachineSlice], convention: MicroStops) -> list[ReliabilityRow]:
    """MTBF and MTTR per machine, overall (faults) and per downtime reason."""
    out = []
    for g in group(rows, Bucket.RANGE, Level.MACHINE):
        rel = reliability(g.figures, convention)
        out.append(
            ReliabilityRow(
                place=g.place,
                failures=rel.failures,
                fault_s=rel.fault_s,
                mtbf_s=rel.mtbf_s,
                mttr_s=rel.mttr_s,
                reasons=pareto_rows(g.figures, convention),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class PerformanceSettings:
    micro_stop_s: float = 300.0
    convention: MicroStops = MicroStops.ISO


async def read_slices(
    conn: Any,
    place: str,
    start: datetime,
    end: datetime,
    settings: PerformanceSettings,
    *,
    now: datetime | None = None,
    rollup: bool = True,
) -> list[MachineSlice]:
    """The machine slices under `place` ("site[/area[/line[/machine]]]") over [start, end)."""
    site = place.split("/", 1)[0]
    return await machine_slices(
        conn,
        site,
        start,
        end,
        micro_stop_s=settings.micro_stop_s,
        place_prefix=place,
        now=now,
        rollup=rollup,
    )


def summed(rows: Sequence[MachineSlice]) -> Figures:
    return total(r.figures for r in rows)
