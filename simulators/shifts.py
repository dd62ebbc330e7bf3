"""Shifts and breaks in the site's local time zone: when a machine is planned to stand still."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_WEEK = (0, 1, 2, 3, 4, 5, 6)  # Monday = 0


@dataclass(frozen=True, slots=True)
class Shift:
    """A shift starting at `start` local time on each of `weekdays`, with its breaks."""

    start: time
    hours: float
    weekdays: tuple[int, ...] = _WEEK
    breaks: tuple[tuple[float, float], ...] = ((4.0, 30.0),)  # (hours into the shift, minutes)


@dataclass(frozen=True, slots=True)
class PlannedStop:
    start: float  # epoch seconds
    end: float
    reason: str  # "break" or "no_shift"


@dataclass(frozen=True, slots=True)
class ShiftCalendar:
    """The site's shift pattern; outside shifts and during breaks machines are planned off."""

    timezone: str = "Europe/Rome"
    shifts: tuple[Shift, ...] = ()

    @classmethod
    def around_the_clock(cls, timezone: str = "Europe/Rome") -> ShiftCalendar:
        """Three 8-hour shifts every day, each with one 30-minute break."""
        return cls(timezone, tuple(Shift(time(h), 8.0) for h in (6, 14, 22)))

    @classmethod
    def two_shifts_weekdays(cls, timezone: str = "Europe/Rome") -> ShiftCalendar:
        """06:00-22:00 Monday to Friday, a 30-minute break in each shift."""
        days = (0, 1, 2, 3, 4)
        return cls(timezone, tuple(Shift(time(h), 8.0, days) for h in (6, 14)))

    def next_stop(self, t: float, break_offset_min: float = 0.0) -> PlannedStop | None:
        """The first planned stop that has not ended by `t`; None if the calendar has none."""
        if not self.shifts:
            return None
        day = datetime.fromtimestamp(t, ZoneInfo(self.timezone)).date()
        for n in range(9):
            for stop in _stops_of_day(self, day + timedelta(days=n), break_offset_min):
                if stop.end > t:
                    return stop
        return None


@functools.lru_cache(maxsize=256)
def _stops_of_day(cal: ShiftCalendar, day: date, break_offset_min: float) -> list[PlannedStop]:
    """Planned stops within the local day `day`, in order, adjoining ones merged."""
    tz = ZoneInfo(cal.timezone)
    day_start = datetime.combine(day, time(0), tz).timestamp()
    day_end = datetime.combine(day + timedelta(days=1), time(0), tz).timestamp()
    working: list[tuple[float, float]] = []
    breaks: list[tuple[float, float]] = []
    for shift in cal.shifts:
        for start_day in (day - timedelta(days=1), day):  # a night shift runs past midnight
            if start_day.weekday() not in shift.weekdays:
                continue
            # Wall-clock arithmetic: an 8-hour shift from 22:00 ends at 06:00 local time, also
            # on the night the clocks change.
            begin = datetime.combine(start_day, shift.start, tz)
            finish = begin + timedelta(hours=shift.hours)
            working.append((begin.timestamp(), finish.timestamp()))
            for into_h, minutes in shift.breaks:
                b = begin + timedelta(hours=into_h, minutes=break_offset_min)
                breaks.append((b.timestamp(), (b + timedelta(minutes=minutes)).timestamp()))
    stops: list[PlannedStop] = []
    cursor = day_start
    for start, end in sorted(working):
        if start > cursor:
            stops.append(PlannedStop(cursor, min(start, day_end), "no_shift"))
        cursor = max(cursor, end)
        if cursor >= day_end:
            break
    if cursor < day_end:
        stops.append(PlannedStop(cursor, day_end, "no_shift"))
    stops += [
        PlannedStop(max(s, day_start), min(e, day_end), "break")
        for s, e in breaks
        if e > day_start and s < day_end
    ]
    stops = [s for s in stops if s.end > s.start]
    stops.sort(key=lambda s: s.start)
    merged: list[PlannedStop] = []
    for stop in stops:
        if merged and stop.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = PlannedStop(last.start, max(last.end, stop.end), last.reason)
        else:
            merged.append(stop)
    return merged
