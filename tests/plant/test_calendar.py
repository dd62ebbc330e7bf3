"""Shifts, breaks, holidays and planned stops in the site's local time zone, across DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from plant.calendar import Break, Shift, ShiftCalendar

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
    cal = ShiftCalendar("Europe/Rome", (Shift("day", time(6), time(14)),))
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


def _utc(d: datetime) -> tuple[int, int, int]:
    d = d.astimezone(UTC)
    return d.day, d.hour, d.minute


NIGHT = Shift("night", time(22), time(6), (0, 1, 2, 3, 4), (Break(time(2, 0), 30),))
MORNING = Shift("morning", time(6), time(14), (0, 1, 2, 3, 4), (Break(time(10), 15),))


def test_a_night_shift_belongs_to_the_day_it_starts_and_its_break_falls_after_midnight() -> None:
    cal = ShiftCalendar("Europe/Rome", (MORNING, NIGHT))
    # Friday 20 November 2026 (CET, UTC+1) 12:00 to Saturday 12:00
    found = cal.shifts_between(
        datetime(2026, 11, 20, 11, tzinfo=UTC), datetime(2026, 11, 21, 11, tzinfo=UTC)
    )
    assert [(s.name, s.day) for s in found] == [
        ("morning", date(2026, 11, 20)),
        ("night", date(2026, 11, 20)),
    ]
    night = found[1]
    assert (_utc(night.start), _utc(night.end)) == ((20, 21, 0), (21, 5, 0))
    assert [(_utc(s), _utc(e)) for s, e in night.breaks] == [((21, 1, 0), (21, 1, 30))]
    assert night.planned_s == 8 * 3600 - 30 * 60
    # No shift starts on Saturday: the night shift is Monday to Friday.
    sat = cal.shifts_on(date(2026, 11, 21))
    assert sat == ()
    assert cal.shift_at(datetime(2026, 11, 21, 2, tzinfo=UTC)) == night
    assert cal.shift_at(datetime(2026, 11, 21, 6, tzinfo=UTC)) is None


def test_a_holiday_cancels_the_shifts_starting_on_it_but_not_the_night_before() -> None:
    christmas = date(2026, 12, 25)  # a Friday
    cal = ShiftCalendar("Europe/Rome", (MORNING, NIGHT), frozenset({christmas}))
    found = cal.shifts_between(
        datetime(2026, 12, 24, 5, tzinfo=UTC), datetime(2026, 12, 27, tzinfo=UTC)
    )
    assert [(s.name, s.day) for s in found] == [
        ("morning", date(2026, 12, 24)),
        ("night", date(2026, 12, 24)),  # runs into Christmas morning, to 06:00
    ]
    stop = cal.next_stop(_at(2026, 12, 25, 7, 0))
    assert stop is not None
    assert (stop.reason, _local(stop.start), _local(stop.end)) == (
        "no_shift",
        (25, 6, 0),
        (26, 0, 0),
    )
    # Without the holiday the morning shift runs on the 25th.
    plain = ShiftCalendar("Europe/Rome", (MORNING, NIGHT))
    assert [s.name for s in plain.shifts_on(christmas)] == ["morning", "night"]


def test_the_night_shifts_of_the_clock_changes_last_seven_and_nine_hours() -> None:
    cal = ShiftCalendar(
        "Europe/Rome", (Shift("night", time(22), time(6), breaks=(Break(time(2), 30),)),)
    )
    spring = cal.shifts_on(date(2026, 3, 28))[0]  # 02:00 becomes 03:00 that night
    autumn = cal.shifts_on(date(2026, 10, 24))[0]  # 03:00 becomes 02:00
    assert spring.duration_s == 7 * 3600
    assert autumn.duration_s == 9 * 3600
    rome = ZoneInfo("Europe/Rome")
    assert spring.end.astimezone(rome).hour == autumn.end.astimezone(rome).hour == 6
    # The 02:00 break does not exist in spring: it starts at 03:00 and still lasts 30 minutes.
    ((b_start, b_end),) = spring.breaks
    assert (b_start.astimezone(rome).hour, (b_end - b_start)) == (3, timedelta(minutes=30))
    assert spring.planned_s == 7 * 3600 - 1800


def test_planned_stops_between_two_times_are_clipped_and_join_across_days() -> None:
    cal = ShiftCalendar.two_shifts_weekdays("Europe/Rome")
    # Friday 20 Nov 2026 20:00 local to Monday 23 Nov 11:00 local (CET = UTC+1).
    start, end = datetime(2026, 11, 20, 19, tzinfo=UTC), datetime(2026, 11, 23, 10, tzinfo=UTC)
    stops = cal.planned_stops_between(start, end)
    # The weekend, Friday 22:00 to Monday 06:00 local, is one stop; then Monday's 10:00 break.
    assert [(s.reason, _utc(s.start_at), _utc(s.end_at)) for s in stops] == [
        ("no_shift", (20, 21, 0), (23, 5, 0)),
        ("break", (23, 9, 0), (23, 9, 30)),
    ]
    clipped = cal.planned_stops_between(datetime(2026, 11, 22, tzinfo=UTC), end)
    assert _utc(clipped[0].start_at) == (22, 0, 0)
    worked = sum(
        min(i.end, end).timestamp() - max(i.start, start).timestamp()
        for i in cal.shifts_between(start, end)
    )
    planned = sum(s.end - s.start for s in stops)
    assert planned + worked == (end - start).total_seconds() + 30 * 60  # the break is in a shift
