"""A site's time cut into slices: each shift, and the time between shifts split at local midnight.

Slices are the unit of OEE: figures are computed (and rolled up in the store) per machine and
slice, and buckets (shift, day, week, month, a range) add slices. A slice belongs to the local
day its shift starts on (a night shift to the evening it begins); time between shifts to the
local day it lies in. The days the clocks change have 23 and 25 hours, and so do their slices.
When the plant file's calendar changes, the slices follow the version in force.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from plant import Shift, ShiftCalendar

# A site the plant file does not know: one planned "day" from local midnight, all day.
ALL_DAY = Shift("day", time(0), time(0))


@dataclass(frozen=True, slots=True)
class Slice:
    """[start, end) in epoch seconds: a shift (less its breaks: `planned`) or time without one."""

    start: float
    end: float
    day: date  # the local date it belongs to
    shift: str | None  # None: no shift planned
    planned: tuple[tuple[float, float], ...]  # the shift's windows less breaks
    break_s: float
    whole: bool = True  # False: clipped by the range asked for

    @property
    def shift_s(self) -> float:
        return self.end - self.start if self.shift is not None else 0.0

    def clipped(self, lo: float, hi: float) -> Slice:
        start, end = max(self.start, lo), min(self.end, hi)
        planned = tuple(
            (max(a, start), min(b, end)) for a, b in self.planned if b > start and a < end
        )
        shift_planned = sum(b - a for a, b in planned)
        return Slice(
            start,
            end,
            self.day,
            self.shift,
            planned,
            (end - start) - shift_planned if self.shift is not None else 0.0,
            self.whole and (start, end) == (self.start, self.end),
        )


def site_calendar(calendar: ShiftCalendar | None) -> ShiftCalendar:
    """The calendar to slice by: a site without one is planned all day, every day, in UTC."""
    return calendar if calendar is not None else ShiftCalendar("UTC", (ALL_DAY,))


def _local_midnights(cal: ShiftCalendar, lo: float, hi: float) -> list[float]:
    zone = cal.zone
    day = datetime.fromtimestamp(lo, zone).date() + timedelta(days=1)
    out = []
    while (t := datetime.combine(day, time(0), zone).timestamp()) < hi:
        out.append(t)
        day += timedelta(days=1)
    return out


def _gap(cal: ShiftCalendar, lo: float, hi: float) -> list[Slice]:
    cuts = [lo, *_local_midnights(cal, lo, hi), hi]
    zone = cal.zone
    return [
        Slice(a, b, datetime.fromtimestamp(a, zone).date(), None, (), 0.0)
        for a, b in itertools.pairwise(cuts)
        if b > a
    ]


def natural_slices(cal: ShiftCalendar, start: datetime, end: datetime) -> list[Slice]:
    """The slices of `cal` that overlap [start, end), whole: shifts and the gaps between them.

    The first and last may reach outside [start, end); gaps are cut at local midnight only.
    """
    lo, hi = start.timestamp(), end.timestamp()
    out: list[Slice] = []
    # Gaps need a fixed origin, so that a slice is the same whatever range asks for it: the
    # local midnight before `start` (no gap crosses one).
    cursor = datetime.combine(start.astimezone(cal.zone).date(), time(0), cal.zone).timestamp()
    for inst in cal.shifts_between(datetime.fromtimestamp(cursor, UTC), end):
        s, e = inst.start.timestamp(), inst.end.timestamp()
        if e <= cursor:  # a night shift from the day before that ended before our origin
            continue
        if s > cursor:
            out += _gap(cal, cursor, s)
        breaks = sorted((b0.timestamp(), b1.timestamp()) for b0, b1 in inst.breaks)
        planned: list[tuple[float, float]] = []
        at = s
        for b0, b1 in breaks:
            if b0 > at:
                planned.append((at, b0))
            at = max(at, b1)
        if e > at:
            planned.append((at, e))
        out.append(Slice(s, e, inst.day, inst.name, tuple(planned), sum(b - a for a, b in breaks)))
        cursor = max(cursor, e)
    if cursor < hi:
        tail_end = datetime.combine(
            end.astimezone(cal.zone).date() + timedelta(days=1), time(0), cal.zone
        ).timestamp()
        out += _gap(cal, cursor, tail_end)
    return [s for s in out if s.end > lo and s.start < hi]


@dataclass(frozen=True, slots=True)
class CalendarVersion:
    """A calendar in force over [valid_from, valid_to) (epoch s; None: still in force)."""

    valid_from: float
    valid_to: float | None
    calendar: ShiftCalendar


def slices(versions: Sequence[CalendarVersion], start: datetime, end: datetime) -> list[Slice]:
    """[start, end) cut into slices by the calendar versions in force, in order.

    Time no version covers is sliced by `site_calendar(None)`. Slices cut by [start, end)
    have `whole` False; a slice cut where a calendar version begins or ends is whole (that is
    where it ends, whatever the range asked).
    """
    lo, hi = start.timestamp(), end.timestamp()
    inf = float("inf")
    spans: list[tuple[float, float, ShiftCalendar]] = []  # natural bounds of each calendar
    cursor = -inf
    for v in sorted(versions, key=lambda v: v.valid_from):
        v_end = v.valid_to if v.valid_to is not None else inf
        if v.valid_from > cursor:
            spans.append((cursor, v.valid_from, site_calendar(None)))
        spans.append((v.valid_from, v_end, v.calendar))
        cursor = max(cursor, v_end)
    if cursor < inf:
        spans.append((cursor, inf, site_calendar(None)))
    out: list[Slice] = []
    for a, b, cal in spans:
        if min(b, hi) <= max(a, lo):
            continue
        for s in natural_slices(cal, _dt(max(a, lo)), _dt(min(b, hi))):
            natural = replace(s.clipped(a, b), whole=True)
            out.append(natural.clipped(lo, hi))
    return out


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)
