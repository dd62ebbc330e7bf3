"""Planned stops from shifts and breaks, in the site's local time zone."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from simulators.shifts import Shift, ShiftCalendar

ROME = ZoneInfo("Europe/Rome")


def _at(*args: int) -> float:
    return datetime(*args, tzinfo=ROME).timestamp()  # type: ignore[misc]  # y, m, d, h, min


def _local(t: float) -> tuple[int, int, int]:
    d = datetime.fromtimestamp(t, ROME)
    return d.day, d.hour, d.minute


def test_the_night_and_the_weekend_are_one_stop_each_and_breaks_fall_in_the_shift() -> None:
    cal = ShiftCalendar.two_shifts_weekdays("Europe/Rome")
    stop = cal.next_stop(_at(2026, 11, 18, 8, 0))  # Wednesday morning
    assert stop is not None
    assert (stop.reason, _local(stop.start), _local(stop.end)) == (
        "break",
        (18, 10, 0),
        (18, 10, 30),
    )
    night = cal.next_stop(_at(2026, 11, 18, 21, 0))
    assert night is not None
    assert (night.reason, _local(night.start), _local(night.end)) == (
        "no_shift",
        (18, 22, 0),
        (19, 0, 0),
    )
    weekend = cal.next_stop(_at(2026, 11, 21, 12, 0))  # Saturday
    assert weekend is not None
    assert weekend.reason == "no_shift"


def test_a_night_shift_runs_past_midnight() -> None:
    cal = ShiftCalendar.around_the_clock("Europe/Rome")
    stop = cal.next_stop(_at(2026, 11, 18, 23, 0))
    assert stop is not None
    # the 22:00 shift's break, 4 h in, is at 02:00 the next day
    assert (stop.reason, _local(stop.start)) == ("break", (19, 2, 0))


def test_shift_times_stay_local_across_the_clock_change() -> None:
    cal = ShiftCalendar("Europe/Rome", (Shift(time(6), 8.0, breaks=()),))
    before = cal.next_stop(_at(2026, 3, 28, 15, 0))  # Saturday, the day before DST begins
    after = cal.next_stop(_at(2026, 3, 29, 15, 0))
    assert before is not None
    assert after is not None
    assert _local(before.start)[1:] == _local(after.start)[1:] == (14, 0)
    assert _local(before.end)[1:] == _local(after.end)[1:] == (0, 0)


def test_breaks_can_be_staggered_per_machine() -> None:
    cal = ShiftCalendar.around_the_clock("Europe/Rome")
    stop = cal.next_stop(_at(2026, 11, 18, 9, 0), break_offset_min=40)
    assert stop is not None
    assert _local(stop.start)[1:] == (10, 40)


def test_a_calendar_without_shifts_never_stops() -> None:
    assert ShiftCalendar(shifts=()).next_stop(_at(2026, 11, 18, 9, 0)) is None


def test_around_the_clock_has_no_false_stop_when_the_clocks_go_back_or_forward() -> None:
    cal = ShiftCalendar("Europe/Rome", ShiftCalendar.around_the_clock().shifts)
    # The nights the clocks go back and forward: the 22:00 shift's break, 4 wall-clock hours
    # in, is at 02:00 (at 03:00 when 02:00 does not exist), and no "no_shift" gap follows.
    for night, break_at in (((2026, 10, 24), (2, 0)), ((2026, 3, 28), (3, 0))):
        stop = cal.next_stop(_at(*night, 20, 0))
        assert stop is not None
        assert (stop.reason, _local(stop.start)[1:]) == ("break", break_at)
        after = cal.next_stop(stop.end)
        assert after is not None
        assert after.reason == "break"
        assert _local(after.start)[1:] == (10, 0)
