"""A site's shift calendar in its local time zone: shifts, breaks, holidays and planned stops.

Wall-clock arithmetic throughout: a shift from 22:00 to 06:00 ends at 06:00 local time also on
the nights the clocks change (7 or 9 hours then), and a 02:00 break on the night 02:00 does not
exist starts at 03:00. A shift belongs to the local day it starts on: a holiday cancels the
shifts that start on it (a night shift begun the evening before runs to its end).

The simulators ask `next_stop` when a machine may run; analytics asks `shifts_between` and
`planned_stops_between` for OEE per shift.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEK = (0, 1, 2, 3, 4, 5, 6)  # Monday = 0
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Break:
    """A break starting at `start` local time, inside its shift."""

    start: time
    minutes: float


@dataclass(frozen=True, slots=True)
class Shift:
    """A shift from `start` to `end` local time on each of `weekdays` (the day it starts).

    An `end` at or before `start` is on the next day (a night shift); equal: 24 hours.
    """

    name: str
    start: time
    end: time
    weekdays: tuple[int, ...] = WEEK
    breaks: tuple[Break, ...] = ()

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    @property
    def nominal_minutes(self) -> int:
        """Its length on a day without a clock change."""
        minutes = (_minute_of_day(self.end) - _minute_of_day(self.start)) % 1440
        return minutes or 1440

    def break_offset_minutes(self, brk: Break) -> int:
        """How far into the shift (wall clock, no clock change) a break starts."""
        return (_minute_of_day(brk.start) - _minute_of_day(self.start)) % 1440


@dataclass(frozen=True, slots=True)
class PlannedStop:
    """A time no shift is planned ("no_shift") or a break ("break"), in epoch seconds."""

    start: float
    end: float
    reason: str  # "break" or "no_shift"

    @property
    def start_at(self) -> datetime:
        return datetime.fromtimestamp(self.start, UTC)

    @property
    def end_at(self) -> datetime:
        return datetime.fromtimestamp(self.end, UTC)


@dataclass(frozen=True, slots=True)
class ShiftInstance:
    """One shift on one day: UTC start and end, its breaks as UTC intervals."""

    name: str
    day: date  # the local date it starts on
    start: datetime  # UTC
    end: datetime
    breaks: tuple[tuple[datetime, datetime], ...] = ()

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def planned_s(self) -> float:
        """Its length less its breaks: the planned busy time before other planned stops."""
        return self.duration_s - sum((e - s).total_seconds() for s, e in self.breaks)


@dataclass(frozen=True, slots=True)
class ShiftCalendar:
    """The site's shift pattern; outside shifts, during breaks and on holidays, machines are off.

    No shifts at all means no planned stops (a floor that runs around the clock, unbroken).
    """

    timezone: str = "Europe/Rome"
    shifts: tuple[Shift, ...] = ()
    holidays: frozenset[date] = frozenset()

    @classmethod
    def around_the_clock(cls, timezone: str = "Europe/Rome") -> ShiftCalendar:
        """Three 8-hour shifts every day from 06:00, each with a 30-minute break 4 hours in."""
        names = ("morning", "afternoon", "night")
        return cls(
            timezone,
            tuple(_eight_hours(n, h, WEEK) for n, h in zip(names, (6, 14, 22), strict=True)),
        )

    @classmethod
    def two_shifts_weekdays(cls, timezone: str = "Europe/Rome") -> ShiftCalendar:
        """06:00-22:00 Monday to Friday, a 30-minute break in each shift."""
        days = (0, 1, 2, 3, 4)
        return cls(
            timezone, (_eight_hours("morning", 6, days), _eight_hours("afternoon", 14, days))
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_stop(self, t: float, break_offset_min: float = 0.0) -> PlannedStop | None:
        """The first planned stop that has not ended by `t`; None if the calendar has none.

        `break_offset_min` moves every break later (a machine whose crew breaks in turn).
        """
        if not self.shifts:
            return None
        day = datetime.fromtimestamp(t, self.zone).date()
        for n in range(9 + len(self.holidays)):
            for stop in _stops_of_day(self, day + timedelta(days=n), break_offset_min):
                if stop.end > t:
                    return stop
        return None

    def shifts_on(self, day: date) -> tuple[ShiftInstance, ...]:
        """The shifts starting on the local date `day`, in order."""
        return _instances(self, day, 0.0)

    def shifts_between(self, start: datetime, end: datetime) -> list[ShiftInstance]:
        """The shifts that overlap [start, end), whole (not clipped), in order."""
        out: list[ShiftInstance] = []
        for day in self._days(start, end):
            out += [s for s in _instances(self, day, 0.0) if s.end > start and s.start < end]
        return sorted(out, key=lambda s: s.start)

    def shift_at(self, t: datetime) -> ShiftInstance | None:
        """The shift in progress at `t` (breaks included), if any."""
        return next((s for s in self.shifts_between(t, t + _EPSILON) if s.start <= t), None)

    def planned_stops_between(self, start: datetime, end: datetime) -> list[PlannedStop]:
        """Breaks and times without a shift within [start, end), clipped to it, in order."""
        if not self.shifts:
            return []
        lo, hi = start.timestamp(), end.timestamp()
        stops: list[PlannedStop] = []
        for day in self._days(start, end):
            for stop in _stops_of_day(self, day, 0.0):
                if stop.end > lo and stop.start < hi:
                    stops.append(PlannedStop(max(stop.start, lo), min(stop.end, hi), stop.reason))
        return _merged(stops)

    def _days(self, start: datetime, end: datetime) -> Iterator[date]:
        """Local dates whose shifts may overlap [start, end): from the day before `start`."""
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date()
        while day <= last:
            yield day
            day += timedelta(days=1)


_EPSILON = timedelta(microseconds=1)


def _minute_of_day(t: time) -> int:
    return t.hour * 60 + t.minute


def _eight_hours(name: str, hour: int, days: tuple[int, ...]) -> Shift:
    return Shift(name, time(hour), time((hour + 8) % 24), days, (Break(time((hour + 4) % 24), 30),))


def _utc(local: datetime) -> datetime:
    # A wall-clock time that does not exist (the hour the clocks skip) maps with the offset
    # before the change: 02:30 becomes 03:30 of the new offset.
    return local.astimezone(UTC)


@functools.lru_cache(maxsize=1024)
def _instances(cal: ShiftCalendar, day: date, break_offset_min: float) -> tuple[ShiftInstance, ...]:
    if day in cal.holidays:
        return ()
    tz = cal.zone
    out: list[ShiftInstance] = []
    for shift in cal.shifts:
        if day.weekday() not in shift.weekdays:
            continue
        begin = datetime.combine(day, shift.start, tz)
        finish = datetime.combine(day + timedelta(days=shift.crosses_midnight), shift.end, tz)
        breaks = []
        for brk in shift.breaks:
            on = day + timedelta(days=brk.start < shift.start)  # after midnight, the next day
            # Aware + timedelta is wall-clock arithmetic: 4 hours after 22:00 is 02:00 local.
            b = datetime.combine(on, brk.start, tz) + timedelta(minutes=break_offset_min)
            breaks.append((_utc(b), _utc(b + timedelta(minutes=brk.minutes))))
        out.append(ShiftInstance(shift.name, day, _utc(begin), _utc(finish), tuple(breaks)))
    return tuple(sorted(out, key=lambda s: s.start))


@functools.lru_cache(maxsize=1024)
def _stops_of_day(cal: ShiftCalendar, day: date, break_offset_min: float) -> list[PlannedStop]:
    """Planned stops within the local day `day`, in order, adjoining ones merged."""
    tz = cal.zone
    day_start = datetime.combine(day, time(0), tz).timestamp()
    day_end = datetime.combine(day + timedelta(days=1), time(0), tz).timestamp()
    working: list[tuple[float, float]] = []
    breaks: list[tuple[float, float]] = []
    for start_day in (day - timedelta(days=1), day):  # a night shift runs past midnight
        for inst in _instances(cal, start_day, break_offset_min):
            working.append((inst.start.timestamp(), inst.end.timestamp()))
            breaks += [(s.timestamp(), e.timestamp()) for s, e in inst.breaks]
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
    return _merged([s for s in stops if s.end > s.start])


def _merged(stops: list[PlannedStop]) -> list[PlannedStop]:
    """Sorted, with overlapping or adjoining stops joined (the first one's reason kept)."""
    merged: list[PlannedStop] = []
    for stop in sorted(stops, key=lambda s: s.start):
        if merged and stop.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = PlannedStop(last.start, max(last.end, stop.end), last.reason)
        else:
            merged.append(stop)
    return merged
