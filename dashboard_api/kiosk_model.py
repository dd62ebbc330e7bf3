"""What the public kiosk shows, and only that: the visitor API's own response models.

A whitelist: every field here is built on purpose from the engineers' figures, never copied
from them. No signal values, fault or stop reasons, operators, gateway or broker addresses,
database ids or raw payloads reach a visitor: a machine's state is one of eight plain words,
the losses are grouped into what a visitor can picture (setting up, breakdowns, ...).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from analytics.oee import Figures, MicroStops, ratios
from contracts import MachineState


class Shown(StrEnum):
    """A machine's state as a visitor sees it."""

    MOULDING = "moulding"
    WAITING = "waiting"  # idle: ready, starved of material or blocked
    SETTING_UP = "setting_up"  # mould change, warm-up
    PLANNED_STOP = "planned_stop"  # breaks, no shift, planned maintenance, no order
    STOPPED = "stopped"  # an unplanned stop
    BREAKDOWN = "breakdown"  # a component failed
    NO_DATA = "no_data"  # offline, or never heard from


SHOWN: dict[MachineState | None, Shown] = {
    MachineState.RUNNING: Shown.MOULDING,
    MachineState.IDLE: Shown.WAITING,
    MachineState.SETUP: Shown.SETTING_UP,
    MachineState.PLANNED_STOP: Shown.PLANNED_STOP,
    MachineState.UNPLANNED_STOP: Shown.STOPPED,
    MachineState.FAULT: Shown.BREAKDOWN,
    MachineState.OFFLINE: Shown.NO_DATA,
    None: Shown.NO_DATA,
}


class Where(StrEnum):
    """Where the planned production time went, in words a visitor pictures."""

    GOOD_PARTS = "good_parts"  # valuable time: the ideal time of the good parts
    SCRAP = "scrap"  # quality loss: moulding parts that were thrown away (or tested)
    SLOW_CYCLES = "slow_cycles"  # speed loss
    SHORT_STOPS = "short_stops"  # micro-stops (ISO convention)
    WAITING = "waiting"  # idle
    SETTING_UP = "setting_up"
    STOPS = "stops"  # unplanned stops
    BREAKDOWNS = "breakdowns"  # faults


_BY_STATE = {
    MachineState.IDLE.value: Where.WAITING,
    MachineState.SETUP.value: Where.SETTING_UP,
    MachineState.UNPLANNED_STOP.value: Where.STOPS,
    MachineState.FAULT.value: Where.BREAKDOWNS,
}


class Factors(BaseModel):
    """OEE and its three factors (0..1; null when there is nothing to divide by yet)."""

    oee: float | None = Field(description="availability x performance x quality")
    availability: float | None = Field(
        description="of the time planned for production, the share spent moulding"
    )
    performance: float | None = Field(
        description="while moulding, how close to the ideal cycle time (may pass 1)"
    )
    quality: float | None = Field(description="of the parts moulded, the share that were good")


class Output(Factors):
    good_parts: int = Field(description="good parts moulded")
    scrap_parts: int = Field(description="parts thrown away (and test samples taken)")
    energy_kwh: float = Field(description="energy of the moulding cycles, kWh")
    kwh_per_good_part: float | None = Field(description="energy_kwh / good parts")


class KioskMachine(Output):
    name: str = Field(description="the machine's name on the floor, e.g. imm-01")
    line: str = Field(description="its site and line, e.g. 'plant-a · line-1'")
    state: Shown = Field(description="what it is doing now, in plain words")
    state_since: datetime | None = Field(description="since when (UTC); null: unknown")


class TimeShare(BaseModel):
    where: Where = Field(description="what the planned production time went to")
    seconds: float = Field(description="machine-seconds of today's planned production time")
    share: float | None = Field(description="of all planned production time (0..1)")


class PartCount(BaseModel):
    what: str = Field(
        description="good, test_sample, other_defects, or the scrap's defect as the plant "
        "reports it (short_shot, sink_marks, flash, startup_scrap, ...; the 6 commonest)"
    )
    parts: int


class TrendPoint(BaseModel):
    start: datetime = Field(description="the hour's first instant (UTC)")
    end: datetime = Field(description="its end: now, for the hour still running")
    factors: Factors


class WarnedBreakdown(BaseModel):
    machine: str = Field(description="the machine's name on the floor")
    failed_at: datetime = Field(description="when the breakdown came (UTC)")
    lead_h: float = Field(description="how many hours before it the system warned")


class MaintenanceStory(BaseModel):
    days: int = Field(description="the days looked back")
    breakdowns: int = Field(description="breakdowns (a component failed) in those days")
    warned: int = Field(description="of them, those the system warned of beforehand")
    median_lead_h: float | None = Field(description="median hours of warning; null: none")
    recent: list[WarnedBreakdown] = Field(description="the newest warned breakdowns, newest first")


class Floor(BaseModel):
    """The kiosk's whole picture of the floor, refreshed every MOLDLAB_KIOSK_REFRESH_S."""

    as_of: datetime = Field(description="when this picture was taken (UTC)")
    day: str | None = Field(description="the production day shown, YYYY-MM-DD (site time)")
    floor: Output = Field(description="today's figures of all the machines together")
    time: list[TimeShare] = Field(description="where today's planned time went, largest first")
    parts: list[PartCount] = Field(description="where today's parts went, good first")
    trend: list[TrendPoint] = Field(description="the floor's OEE hour by hour, oldest first")
    maintenance: MaintenanceStory
    machines: list[KioskMachine] = Field(description="the machines, by site, line and name")
    more_machines: int = Field(description="machines not shown (beyond the kiosk's limit)")


def factors(f: Figures, convention: MicroStops) -> Factors:
    r = ratios(f, convention)
    return Factors(
        oee=r.oee, availability=r.availability, performance=r.effectiveness, quality=r.quality
    )


def output(f: Figures, convention: MicroStops) -> Output:
    r = ratios(f, convention)
    return Output(
        oee=r.oee,
        availability=r.availability,
        performance=r.effectiveness,
        quality=r.quality,
        good_parts=f.good,
        scrap_parts=f.parts - f.good,
        energy_kwh=f.energy_kwh,
        kwh_per_good_part=r.kwh_per_good_part,
    )


def time_shares(f: Figures, convention: MicroStops) -> list[TimeShare]:
    """Planned busy time split into what a visitor pictures; the parts sum to it."""
    r = ratios(f, convention)
    pbt = r.planned_busy_s
    seconds = dict.fromkeys(Where, 0.0)
    for key, s in f.losses_s.items():
        seconds[_BY_STATE.get(key.split("/", 1)[0], Where.STOPS)] += s
    micro_s = sum(f.micro_s.values())
    if convention is MicroStops.ISO:
        seconds[Where.SHORT_STOPS] += micro_s
    good_share = f.good / f.parts if f.parts else 0.0
    seconds[Where.SLOW_CYCLES] = max(r.speed_loss_s, 0.0)
    seconds[Where.GOOD_PARTS] = f.ideal_s * good_share
    seconds[Where.SCRAP] = f.ideal_s * (1 - good_share)
    shares = [
        TimeShare(where=w, seconds=s, share=s / pbt if pbt > 0 else None)
        for w, s in seconds.items()
        if s > 0
    ]
    return sorted(shares, key=lambda t: -t.seconds)


MAX_DEFECTS = 6  # named on the kiosk; the rest are "other_defects"


def part_counts(f: Figures) -> list[PartCount]:
    counts = [PartCount(what="good", parts=f.good)] if f.good else []
    defects = sorted(((d, n) for d, n in f.scrap.items() if n > 0), key=lambda kv: (-kv[1], kv[0]))
    counts += [PartCount(what=d, parts=n) for d, n in defects[:MAX_DEFECTS]]
    if rest := sum(n for _, n in defects[MAX_DEFECTS:]):
        counts.append(PartCount(what="other_defects", parts=rest))
    if f.test:
        counts.append(PartCount(what="test_sample", parts=f.test))
    return counts
