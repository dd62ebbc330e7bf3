"""OEE, its slices and downtime as pure maths: reference cases computed by hand, to 1e-9.

Each case states its arithmetic in a comment; times are seconds, instants epoch seconds. The
definitions are analytics/oee.py's (ISO 22400-2): PBT = shift time - breaks - planned stops
- unknown; availability = APT / PBT; effectiveness = ideal time / APT, ideal time = ideal
cycle time / active cavities * parts made; quality = good / parts made; OEE the product.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from analytics.downtime import pareto, reliability
from analytics.oee import Episode, Figures, MicroStops, Parts, Ratios, ratios, slice_figures, total
from analytics.report import loss_tree
from analytics.slices import ALL_DAY, CalendarVersion, Slice, slices
from contracts import MachineState, PartQuality
from plant import Break, Shift, ShiftCalendar

H = 3600.0
M = 60.0
ROME = ZoneInfo("Europe/Rome")
DAY0 = datetime(2026, 1, 12, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
_H = timedelta(hours=1)

RUN = MachineState.RUNNING
SETUP = MachineState.SETUP
IDLE = MachineState.IDLE
STOP = MachineState.UNPLANNED_STOP
FAULT = MachineState.FAULT
PLANNED = MachineState.PLANNED_STOP
OFFLINE = MachineState.OFFLINE
GOOD = PartQuality.GOOD
BAD = PartQuality.BAD
TEST = PartQuality.TEST


def exactly(expected: float) -> Any:
    return pytest.approx(expected, abs=1e-9, rel=0)


def at(hours: float) -> float:
    """DAY0 + `hours`."""
    return DAY0 + hours * H


def ep(
    start_h: float, end_h: float, state: MachineState | None, reason: str | None = None
) -> Episode:
    return Episode(at(start_h), at(end_h), state, reason)


def made(
    quality: PartQuality,
    cycles: int,
    cavities: int,
    ideal_cycle_s: float,
    *,
    kwh: float = 0.0,
    defect: str | None = None,
) -> Parts:
    """`cycles` cycles of `cavities` active cavities, rated ideal_cycle_s / cavities a part."""
    parts = cycles * cavities
    return Parts(quality, cycles, parts, ideal_cycle_s / cavities * parts, kwh, defect)


def morning(
    episodes: list[Episode],
    parts: list[Parts],
    *,
    breaks: tuple[tuple[float, float], ...] = (),
    micro_stop_s: float = 300.0,
    earlier: tuple[tuple[float, float], ...] = (),
) -> Figures:
    """A 06:00-14:00 UTC shift (less `breaks`, in hours) of DAY0."""
    edges = [6.0, *(h for b in breaks for h in b), 14.0]
    planned = [(at(a), at(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return slice_figures(
        (at(6), at(14)),
        planned,
        episodes,
        parts,
        shift_s=8 * H,
        break_s=sum(b - a for a, b in breaks) * H,
        micro_stop_s=micro_stop_s,
        earlier_planned=[(at(a), at(b)) for a, b in earlier],
    )


def balanced(f: Figures) -> None:
    """Every second of planned busy time is production or a loss (episodes cover the shift)."""
    accounted = f.production_s + sum(f.losses_s.values()) + sum(f.micro_s.values())
    assert accounted == exactly(f.planned_busy_s)


# Plain shift, break, across midnight, clock changes


def test_a_plain_shift() -> None:
    f = morning(
        [ep(5, 13, RUN), ep(13, 13.5, FAULT, "heater_burnout"), ep(13.5, 15, RUN)],
        [
            # mould of ideal 20 s with 2 active cavities: 10 s a part
            made(GOOD, 1150, 2, 20.0, kwh=57.5),  # 2300 parts, 23000 s ideal
            made(BAD, 50, 2, 20.0, kwh=2.5, defect="short_shot"),  # 100 parts, 1000 s ideal
        ],
    )
    balanced(f)
    # running 06:00-13:00 (the hour before the shift is not in it) + 13:30-14:00 = 7.5 h
    assert f.production_s == exactly(7.5 * H)
    assert f.losses_s == {"fault/heater_burnout": exactly(0.5 * H)}
    assert f.stops == {"fault/heater_burnout": 1}
    assert (f.cycles, f.parts, f.good, f.bad, f.test) == (1200, 2400, 2300, 100, 0)
    r = ratios(f)
    assert r.planned_busy_s == exactly(28800.0)  # 8 h, no break, no planned stop
    assert r.availability == exactly(27000 / 28800)  # 0.9375
    assert r.effectiveness == exactly(24000 / 27000)  # ideal (23000 + 1000) / APT
    assert r.quality == exactly(2300 / 2400)
    # A * E * Q = 27000/28800 * 24000/27000 * 2300/2400 = 23000/28800 (ideal time of good parts)
    assert r.oee == exactly(23000 / 28800)
    assert r.nee == exactly(23000 / 28800)  # no setup: NEE = OEE
    assert r.teep == exactly(23000 / 28800)  # calendar time = the shift
    assert r.technical_efficiency == exactly(27000 / (27000 + 1800))
    assert r.setup_ratio == exactly(0.0)
    assert r.scrap_ratio == exactly(100 / 2400)
    assert r.speed_loss_s == exactly(27000 - 24000)
    assert r.kwh_per_good_part == exactly(60.0 / 2300)


def test_a_break_is_out_of_planned_busy_time_and_a_stop_across_it_is_one_stop() -> None:
    f = morning(
        [ep(6, 9 + 50 / 60, RUN), ep(9 + 50 / 60, 10 + 40 / 60, STOP, "no_operator"),
         ep(10 + 40 / 60, 14, RUN)],
        [made(GOOD, 1000, 1, 24.0)],  # 24000 s ideal
        breaks=((10.0, 10.5),),
    )  # fmt: skip
    balanced(f)
    assert (f.shift_s, f.break_s) == (exactly(28800.0), exactly(1800.0))
    # the stop 09:50-10:40 has 10 min before the break and 10 min after: 1200 s, one stop
    assert f.losses_s == {"unplanned_stop/no_operator": exactly(1200.0)}
    assert f.stops == {"unplanned_stop/no_operator": 1}
    # running 06:00-09:50 (13800 s) + 10:40-14:00 (12000 s)
    assert f.production_s == exactly(25800.0)
    r = ratios(f)
    assert r.planned_busy_s == exactly(28800 - 1800)
    assert r.availability == exactly(25800 / 27000)
    assert r.effectiveness == exactly(24000 / 25800)
    assert r.oee == exactly(24000 / 27000)


def test_running_through_a_break_is_not_production() -> None:
    f = morning([ep(6, 14, RUN)], [], breaks=((10.0, 10.5),))
    # 8 h less the 30-minute break; availability 27000 / 27000
    assert f.production_s == exactly(27000.0)
    assert ratios(f).availability == exactly(1.0)
    assert ratios(f).oee is None  # no parts made: no effectiveness, no quality


def test_a_night_shift_across_midnight_in_the_site_time_zone() -> None:
    cal = ShiftCalendar.around_the_clock("Europe/Rome")  # night 22:00-06:00, break 02:00-02:30
    evening = datetime(2026, 1, 14, 18, tzinfo=ROME)
    night = next(s for s in slices([CalendarVersion(0, None, cal)], evening, evening + 12 * _H)
                 if s.shift == "night")  # fmt: skip
    # January is CET (UTC+1): 22:00 local is 21:00 UTC; it ends at 06:00 local, 05:00 UTC
    start = datetime(2026, 1, 14, 21, tzinfo=UTC).timestamp()
    assert (night.start, night.end) == (start, start + 8 * H)
    assert night.day == date(2026, 1, 14)  # the evening it begins
    # the break 02:00-02:30 local = 01:00-01:30 UTC, 4 h in
    assert night.planned == ((start, start + 4 * H), (start + 4.5 * H, start + 8 * H))
    assert night.break_s == exactly(1800.0)
    u = start - 21 * H  # 2026-01-14 00:00 UTC
    f = slice_figures(
        (night.start, night.end),
        night.planned,
        [
            Episode(u + 20 * H, u + 23.5 * H, RUN),
            Episode(u + 23.5 * H, u + 24.5 * H, FAULT, "heater_burnout"),  # over both midnights
            Episode(u + 24.5 * H, u + 30 * H, RUN),
        ],
        [made(GOOD, 700, 2, 30.0)],  # 1400 parts at 30 s / 2 cavities = 21000 s ideal
        shift_s=night.shift_s,
        break_s=night.break_s,
        micro_stop_s=300.0,
    )
    balanced(f)
    # running 21:00-23:30 (2.5 h) + 00:30-01:00 (0.5 h) + 01:30-05:00 (3.5 h) = 6.5 h
    assert f.production_s == exactly(6.5 * H)
    assert f.losses_s == {"fault/heater_burnout": exactly(H)}
    r = ratios(f)
    assert r.planned_busy_s == exactly(7.5 * H)  # 8 h - the 30-minute break
    assert r.availability == exactly(23400 / 27000)
    assert r.effectiveness == exactly(21000 / 23400)
    assert r.oee == exactly(21000 / 27000)


def _night_of(day: date) -> Slice:
    cal = ShiftCalendar.around_the_clock("Europe/Rome")
    evening = datetime.combine(day, time(18), ROME)
    return next(s for s in slices([CalendarVersion(0, None, cal)], evening, evening + 14 * _H)
                if s.shift == "night")  # fmt: skip


def _running_all_night(night: Slice, cycles: int) -> Figures:
    return slice_figures(
        (night.start, night.end),
        night.planned,
        [Episode(night.start - H, night.end + H, RUN)],
        [made(GOOD, cycles, 1, 30.0)],
        shift_s=night.shift_s,
        break_s=night.break_s,
        micro_stop_s=300.0,
    )


def test_the_night_the_clocks_go_forward_has_a_seven_hour_night_shift() -> None:
    night = _night_of(date(2026, 3, 28))  # Saturday; clocks go 02:00 CET -> 03:00 CEST Sunday
    # 22:00 CET = 21:00 UTC to 06:00 CEST = 04:00 UTC: 7 h
    start = datetime(2026, 3, 28, 21, tzinfo=UTC).timestamp()
    assert (night.start, night.end, night.day) == (start, start + 7 * H, date(2026, 3, 28))
    # the 02:00 break does not exist that night: it starts at 03:00 CEST = 01:00 UTC
    assert night.planned == ((start, start + 4 * H), (start + 4.5 * H, start + 7 * H))
    # 702 cycles * 30 s = 21060 s ideal = 0.9 * PBT (7 h - 0.5 h = 23400 s)
    f = _running_all_night(night, 702)
    r = ratios(f)
    assert f.calendar_s == exactly(25200.0)
    assert r.planned_busy_s == exactly(23400.0)
    assert r.availability == exactly(1.0)
    assert r.oee == exactly(0.9)
    assert r.teep == exactly(0.9 * 23400 / 25200)  # OEE * PBT / calendar time


def test_the_night_the_clocks_go_back_has_a_nine_hour_night_shift() -> None:
    night = _night_of(date(2026, 10, 24))  # Saturday; clocks go 03:00 CEST -> 02:00 CET Sunday
    # 22:00 CEST = 20:00 UTC to 06:00 CET = 05:00 UTC: 9 h
    start = datetime(2026, 10, 24, 20, tzinfo=UTC).timestamp()
    assert (night.start, night.end, night.day) == (start, start + 9 * H, date(2026, 10, 24))
    # the break at the first 02:00 (CEST) = 00:00 UTC, 4 h in
    assert night.planned == ((start, start + 4 * H), (start + 4.5 * H, start + 9 * H))
    # 918 cycles * 30 s = 27540 s ideal = 0.9 * PBT (9 h - 0.5 h = 30600 s)
    f = _running_all_night(night, 918)
    r = ratios(f)
    assert f.calendar_s == exactly(32400.0)
    assert r.planned_busy_s == exactly(30600.0)
    assert r.oee == exactly(0.9)
    assert r.teep == exactly(0.9 * 30600 / 32400)


@pytest.mark.parametrize(
    ("day", "hours"), [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 5, 4), 24)]
)
def test_an_all_day_calendar_in_rome_has_days_of_23_24_and_25_hours(day: date, hours: int) -> None:
    cal = ShiftCalendar("Europe/Rome", (ALL_DAY,))
    lo = datetime.combine(day, time(0), ROME)
    hi = datetime.combine(day + timedelta(days=1), time(0), ROME)
    (s,) = slices([CalendarVersion(0, None, cal)], lo, hi)
    assert (s.start, s.end, s.day, s.shift) == (lo.timestamp(), hi.timestamp(), day, "day")
    assert s.shift_s == exactly(hours * H)
    assert s.planned == ((lo.timestamp(), hi.timestamp()),)


def test_a_site_without_a_calendar_is_planned_24_hours_a_day_in_utc() -> None:
    lo = datetime(2026, 3, 28, tzinfo=UTC)
    cut = slices([], lo, lo + timedelta(days=3))  # across Rome's clock change: UTC has none
    assert [(s.start - lo.timestamp(), s.end - s.start, s.shift) for s in cut] == [
        (0.0, 24 * H, "day"), (24 * H, 24 * H, "day"), (48 * H, 24 * H, "day"),
    ]  # fmt: skip
    assert [s.day for s in cut] == [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)]
    assert all(s.planned == ((s.start, s.end),) and s.whole for s in cut)


def test_a_holiday_has_no_shift_and_no_planned_busy_time() -> None:
    # day 06:00-14:00 and night 22:00-06:00 every day; Christmas (a Friday) is a holiday
    cal = ShiftCalendar(
        "Europe/Rome",
        (Shift("day", time(6), time(14)), Shift("night", time(22), time(6))),
        frozenset({date(2026, 12, 25)}),
    )
    lo = datetime(2026, 12, 25, tzinfo=ROME)
    cut = slices([CalendarVersion(0, None, cal)], lo, lo + timedelta(days=1))
    # the night shift begun on the 24th runs to its end at 06:00 (cut by the range: not
    # whole); then nothing is planned until midnight
    assert [(s.shift, s.day, s.whole, (s.end - s.start) / H) for s in cut] == [
        ("night", date(2026, 12, 24), False, 6.0),
        (None, date(2026, 12, 25), True, 18.0),
    ]
    holiday = cut[1]
    assert holiday.planned == ()
    f = slice_figures(
        (holiday.start, holiday.end),
        holiday.planned,
        [Episode(holiday.start, holiday.end, RUN)],  # it ran anyway
        [],
        shift_s=holiday.shift_s,
        break_s=holiday.break_s,
        micro_stop_s=300.0,
    )
    r = ratios(f)
    assert (f.calendar_s, f.shift_s, f.production_s) == (18 * H, 0.0, 0.0)
    assert r.planned_busy_s == 0.0
    assert (r.availability, r.oee, r.teep) == (None, None, None)


def test_a_shift_with_breaks_and_weekdays_is_cut_in_local_time() -> None:
    cal = ShiftCalendar(
        "Europe/Rome",
        (Shift("early", time(6), time(14), (0, 1, 2, 3, 4), (Break(time(10), 30),)),),
    )
    lo = datetime(2026, 7, 3, tzinfo=ROME)  # a Friday, CEST (UTC+2)
    cut = slices([CalendarVersion(0, None, cal)], lo, lo + timedelta(days=2))
    # Friday: 00:00-06:00 gap, the shift 06:00-14:00, 14:00-24:00 gap; Saturday: one gap
    assert [(s.shift, s.day, (s.end - s.start) / H) for s in cut] == [
        (None, date(2026, 7, 3), 6.0),
        ("early", date(2026, 7, 3), 8.0),
        (None, date(2026, 7, 3), 10.0),
        (None, date(2026, 7, 4), 24.0),
    ]
    shift = cut[1]
    start = datetime(2026, 7, 3, 4, tzinfo=UTC).timestamp()  # 06:00 CEST
    assert shift.planned == ((start, start + 4 * H), (start + 4.5 * H, start + 8 * H))
    assert shift.break_s == exactly(1800.0)


# Stops, setup, planned stops, unknown time


def test_a_stop_spanning_two_shifts_is_counted_once_and_its_time_split() -> None:
    # morning 06:00-14:00 and afternoon 14:00-22:00; a fault 13:00-15:30
    episodes = [ep(6, 13, RUN), ep(13, 15.5, FAULT, "hydraulic_leak"), ep(15.5, 22, RUN)]
    first = slice_figures(
        (at(6), at(14)), [(at(6), at(14))], episodes[:2], [],
        shift_s=8 * H, break_s=0.0, micro_stop_s=300.0,
    )  # fmt: skip
    second = slice_figures(
        (at(14), at(22)), [(at(14), at(22))], episodes[1:], [],
        shift_s=8 * H, break_s=0.0, micro_stop_s=300.0,
        earlier_planned=[(at(6), at(14))],
    )  # fmt: skip
    assert first.losses_s == {"fault/hydraulic_leak": exactly(3600.0)}  # 13:00-14:00
    assert first.stops == {"fault/hydraulic_leak": 1}  # it began here
    assert second.losses_s == {"fault/hydraulic_leak": exactly(5400.0)}  # 14:00-15:30
    assert second.stops == {}  # already counted
    both = total([first, second])
    assert both.losses_s == {"fault/hydraulic_leak": exactly(9000.0)}
    assert both.stops == {"fault/hydraulic_leak": 1}
    rel = reliability(both)
    # APT 7 h + 6.5 h = 48600 s; one failure of 9000 s
    assert (rel.failures, rel.fault_s) == (1, exactly(9000.0))
    assert (rel.mtbf_s, rel.mttr_s) == (exactly(48600.0), exactly(9000.0))


def test_a_stop_begun_before_the_shift_counts_where_its_planned_time_begins() -> None:
    # a fault 05:00-06:30 begun when no shift was planned; yesterday's shift ended 14:00
    f = morning([ep(5, 6.5, FAULT, "pump"), ep(6.5, 14, RUN)], [], earlier=((-18.0, -10.0),))
    assert f.losses_s == {"fault/pump": exactly(1800.0)}  # only 06:00-06:30 is planned
    assert f.stops == {"fault/pump": 1}


def test_a_mould_change_is_setup_an_availability_loss_and_each_job_has_its_own_ideal() -> None:
    f = morning(
        [ep(6, 9, RUN), ep(9, 10, SETUP, "mould_change"), ep(10, 14, RUN)],
        [
            # job A, mould of 4 cavities, ideal 24 s, 4 active: 420 cycles, 1680 parts, 6 s each
            made(GOOD, 420, 4, 24.0),  # 10080 s
            # job B, mould of 8 cavities, ideal 36 s, 6 active: 380 cycles, 2280 parts, 6 s each
            made(GOOD, 380, 6, 36.0),  # 13680 s
        ],
    )
    balanced(f)
    assert f.planned_stop_s == {}  # a mould change is not a planned stop
    assert f.losses_s == {"setup/mould_change": exactly(3600.0)}
    assert f.ideal_s == exactly(10080.0 + 13680.0)
    r = ratios(f)
    assert r.planned_busy_s == exactly(28800.0)
    assert r.availability == exactly(25200 / 28800)  # APT 3 h + 4 h
    assert r.effectiveness == exactly(23760 / 25200)
    assert r.oee == exactly(23760 / 28800)  # 0.825
    # NEE: setup out of PBT: 25200 / (28800 - 3600) * 23760/25200 * 1
    assert r.nee == exactly(23760 / 25200)
    assert r.setup_ratio == exactly(3600 / 25200)
    assert r.technical_efficiency == exactly(1.0)  # setup is no disturbance
    tree = loss_tree(f, MicroStops.ISO)
    availability = tree.children[0]
    assert availability.seconds == exactly(3600.0)
    assert [(c.name, c.count) for c in availability.children] == [("setup/mould_change", 1)]


def test_planned_maintenance_is_out_of_planned_busy_time() -> None:
    f = morning(
        [ep(6, 10, RUN), ep(10, 12, PLANNED, "planned_maintenance"), ep(12, 14, RUN)],
        [made(GOOD, 1000, 1, 20.0)],  # 20000 s ideal
    )
    balanced(f)
    assert f.planned_stop_s == {"planned_maintenance": exactly(7200.0)}
    assert f.losses_s == {}
    assert f.stops == {}
    r = ratios(f)
    assert r.planned_busy_s == exactly(28800 - 7200)
    assert r.availability == exactly(1.0)
    assert r.oee == exactly(20000 / 21600)
    assert r.teep == exactly(20000 / 21600 * 21600 / 28800)  # 20000 / 28800


def test_time_without_data_is_unknown_not_running_nor_stopped() -> None:
    f = morning(
        # offline 10:00-11:30, and no episode at all after 13:30
        [ep(6, 10, RUN), ep(10, 11.5, OFFLINE), ep(11.5, 13.5, RUN)],
        [made(GOOD, 540, 1, 40.0)],  # 21600 s ideal
    )
    balanced(f)
    assert f.unknown_s == exactly(1.5 * H + 0.5 * H)
    assert f.production_s == exactly(6 * H)
    assert f.losses_s == {}
    assert f.stops == {}
    r = ratios(f)
    assert r.planned_busy_s == exactly(28800 - 7200)
    assert r.availability == exactly(1.0)
    assert r.oee == exactly(1.0)
    # an episode of unknown state (None) is unknown time too
    g = morning([ep(6, 12, None), ep(12, 14, STOP, "no_operator")], [])
    assert (g.unknown_s, g.losses_s) == (exactly(6 * H), {"unplanned_stop/no_operator": 2 * H})
    assert ratios(g).availability == exactly(0.0)


def test_a_stop_cut_by_unknown_time_is_one_stop_as_long_as_the_whole() -> None:
    # a 10-minute stop 08:00-08:10 with no data 08:02-08:05: two pieces of the whole
    whole = (at(8), at(8 + 10 / 60))
    f = morning(
        [
            ep(6, 8, RUN),
            Episode(at(8), at(8 + 2 / 60), STOP, "no_operator", whole),
            Episode(at(8 + 5 / 60), at(8 + 10 / 60), STOP, "no_operator", whole),
            ep(8 + 10 / 60, 14, RUN),
        ],
        [],
    )
    # 120 s + 300 s of a 600 s stop: neither piece is a micro-stop, and it is one stop
    assert f.losses_s == {"unplanned_stop/no_operator": exactly(420.0)}
    assert f.micro_s == {}
    assert f.stops == {"unplanned_stop/no_operator": 1}
    assert f.unknown_s == exactly(180.0)
    # cut across the end of the shift, its second piece is not counted again
    after = slice_figures(
        (at(14), at(22)), [(at(14), at(22))],
        [Episode(at(14.25), at(15), FAULT, "pump", (at(13.5), at(15)))], [],
        shift_s=8 * H, break_s=0.0, micro_stop_s=300.0, earlier_planned=[(at(6), at(14))],
    )  # fmt: skip
    assert after.stops == {}
    assert after.losses_s == {"fault/pump": exactly(2700.0)}


# Micro-stops on both conventions


def _micro_case(micro_stop_s: float = 300.0) -> Figures:
    episodes: list[Episode] = []
    cursor = 6.0

    def then(minutes: float, state: MachineState, reason: str | None = None) -> None:
        nonlocal cursor
        episodes.append(ep(cursor, cursor + minutes / 60, state, reason))
        cursor += minutes / 60

    then(60, RUN)
    for _ in range(6):  # six 2-minute idle stops (material starved), 28 minutes apart
        then(2, IDLE, "material_starved")
        then(28, RUN)
    then(1, STOP, "jam")  # 60 s
    then(59, RUN)
    then(10, STOP, "no_operator")  # 600 s: longer than the threshold
    then(50, RUN)
    then(200 / 60, FAULT, "nozzle")  # 200 s, but a breakdown is never a micro-stop
    then((14 - cursor) * 60, RUN)
    assert cursor == pytest.approx(14.0)
    return morning(episodes, [made(GOOD, 980, 1, 25.0), made(BAD, 20, 1, 25.0)],
                   micro_stop_s=micro_stop_s)  # fmt: skip


def test_micro_stops_iso_into_availability_tpm_into_speed_and_oee_is_the_same() -> None:
    f = _micro_case()
    balanced(f)
    # micro: 6 * 120 s idle + 60 s jam = 780 s; losses: 600 s + 200 s
    assert f.micro_s == {"idle/material_starved": exactly(720.0), "unplanned_stop/jam": 60.0}
    assert f.losses_s == {"unplanned_stop/no_operator": exactly(600.0), "fault/nozzle": 200.0}
    assert f.micro_stops == 7
    assert f.stops == {
        "idle/material_starved": 6, "unplanned_stop/jam": 1,
        "unplanned_stop/no_operator": 1, "fault/nozzle": 1,
    }  # fmt: skip
    # running = 28800 - 780 - 600 - 200 = 27220 s; ideal 1000 * 25 s = 25000 s; Q = 0.98
    iso, tpm = ratios(f, MicroStops.ISO), ratios(f, MicroStops.TPM)
    assert iso.production_s == exactly(27220.0)
    assert tpm.production_s == exactly(28000.0)  # + the 780 s of micro-stops
    assert iso.availability == exactly(27220 / 28800)
    assert tpm.availability == exactly(28000 / 28800)
    assert iso.effectiveness == exactly(25000 / 27220)
    assert tpm.effectiveness == exactly(25000 / 28000)
    assert iso.speed_loss_s == exactly(2220.0)
    assert tpm.speed_loss_s == exactly(3000.0)
    # A * E = ideal / PBT either way: OEE = 25000 / 28800 * 0.98
    assert iso.oee == exactly(25000 / 28800 * 0.98)
    assert tpm.oee == exactly(25000 / 28800 * 0.98)
    # disturbances: ISO counts the micro jam (60 s) with the 600 s stop and 200 s fault
    assert iso.technical_efficiency == exactly(27220 / (27220 + 860))
    assert tpm.technical_efficiency == exactly(28000 / (28000 + 800))
    # the loss tree puts them where the convention says
    iso_tree, tpm_tree = loss_tree(f, MicroStops.ISO), loss_tree(f, MicroStops.TPM)
    assert [c.name for c in iso_tree.children[0].children][-1] == "micro-stops"
    assert iso_tree.children[0].seconds == exactly(28800 - 27220)
    assert tpm_tree.children[0].seconds == exactly(800.0)
    speed = {c.name: c.seconds for c in tpm_tree.children[1].children}
    assert speed == {"micro-stops": exactly(780.0), "slow cycles": exactly(2220.0)}


def test_the_micro_stop_threshold_is_a_setting() -> None:
    f = _micro_case(micro_stop_s=100.0)
    # only the 60 s jam is shorter than 100 s; the 120 s idle stops are losses now
    assert f.micro_s == {"unplanned_stop/jam": exactly(60.0)}
    assert f.losses_s["idle/material_starved"] == exactly(720.0)
    assert f.micro_stops == 1
    assert ratios(f, MicroStops.TPM).production_s == exactly(27220.0 + 60.0)
    # the threshold compares the whole stop, not its part inside the shift: a 4-minute idle
    # stop 05:58-06:02 has 2 minutes (120 s) in the shift, but is no micro-stop below 240 s
    g = morning([ep(5 + 58 / 60, 6 + 2 / 60, IDLE, "blocked"), ep(6 + 2 / 60, 14, RUN)], [],
                micro_stop_s=200.0)  # fmt: skip
    assert g.losses_s == {"idle/blocked": exactly(120.0)}
    assert g.micro_s == {}


# Quality


def test_scrap_by_defect_and_test_samples() -> None:
    f = morning(
        [ep(6, 14, RUN)],
        [
            # one mould of ideal 20 s, 2 active cavities: 10 s a part
            made(GOOD, 1000, 2, 20.0),  # 2000 parts
            made(BAD, 30, 2, 20.0, defect="short_shot"),  # 60
            made(BAD, 10, 2, 20.0, defect="flash"),  # 20
            made(BAD, 5, 2, 20.0),  # 10, no cause told
            made(TEST, 5, 2, 20.0),  # 10 taken out for inspection
        ],
    )
    assert (f.parts, f.good, f.bad, f.test) == (2100, 2000, 90, 10)
    assert f.scrap == {"short_shot": 60, "flash": 20, "unspecified": 10}
    r = ratios(f)
    assert r.quality == exactly(2000 / 2100)  # test samples are not good parts
    assert r.scrap_ratio == exactly(90 / 2100)
    assert r.effectiveness == exactly(21000 / 28800)  # all 2100 parts at 10 s
    assert r.oee == exactly(20000 / 28800)
    quality = loss_tree(f, MicroStops.ISO).children[2]
    # quality loss: the ideal time of the 100 parts not good, 10 s each
    assert (quality.seconds, quality.count) == (exactly(1000.0), 100)
    assert {c.name: c.seconds for c in quality.children} == {
        "scrap/short_shot": exactly(600.0), "scrap/flash": exactly(200.0),
        "scrap/unspecified": exactly(100.0), "test samples": exactly(100.0),
    }  # fmt: skip
    assert loss_tree(f, MicroStops.ISO).children[3].seconds == exactly(20000.0)  # valuable


# Roll-ups


def test_roll_ups_add_times_and_counts_and_never_average_ratios() -> None:
    # Monday at the old ideal cycle time (20 s), Thursday at the new one (18 s) after a plant
    # file change: each cycle is rated with the version in force when it was made
    monday = morning([ep(6, 14, RUN)], [made(GOOD, 1200, 1, 20.0)])  # 24000 s ideal
    thursday = morning(  # 4 h of planned maintenance, 2 h of fault
        [ep(6, 8, RUN), ep(8, 12, PLANNED, "planned_maintenance"), ep(12, 14, FAULT, "pump")],
        [made(GOOD, 350, 1, 18.0)],  # 6300 s ideal
    )
    assert ratios(monday).availability == exactly(1.0)
    assert ratios(thursday).availability == exactly(0.5)  # 2 h / 4 h
    week = total([monday, thursday])
    r = ratios(week)
    # (28800 + 7200) / (28800 + 14400), not (1.0 + 0.5) / 2
    assert r.availability == exactly(36000 / 43200)
    assert r.effectiveness == exactly((24000 + 6300) / 36000)
    assert r.oee == exactly(30300 / 43200)
    assert week.calendar_s == exactly(57600.0)
    assert r.teep == exactly(30300 / 57600)
    assert Figures.from_json(week.to_json()) == week


def _ratios_equal(a: Ratios, b: Ratios) -> None:
    for name in Ratios.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        assert x == (y if y is None or isinstance(y, str) else exactly(y)), name


def test_a_slice_cut_into_two_adds_up_to_the_whole() -> None:
    episodes = [ep(6, 9, RUN), ep(9, 9.5, SETUP, "mould_change"), ep(9.5, 14, RUN)]
    whole = morning(episodes, [made(GOOD, 1000, 1, 20.0)])
    a = slice_figures(
        (at(6), at(9.25)), [(at(6), at(9.25))], episodes[:2], [made(GOOD, 600, 1, 20.0)],
        shift_s=3.25 * H, break_s=0.0, micro_stop_s=300.0,
    )  # fmt: skip
    b = slice_figures(
        (at(9.25), at(14)), [(at(9.25), at(14))], episodes[1:], [made(GOOD, 400, 1, 20.0)],
        shift_s=4.75 * H, break_s=0.0, micro_stop_s=300.0, earlier_planned=[(at(6), at(9.25))],
    )  # fmt: skip
    _ratios_equal(ratios(total([a, b])), ratios(whole))
    assert total([a, b]).stops == whole.stops == {"setup/mould_change": 1}


# Downtime


def _downtime() -> Figures:
    return Figures(
        calendar_s=28800.0,
        shift_s=28800.0,
        production_s=18000.0,
        losses_s={
            "fault/heater": 5400.0,
            "setup/mould_change": 3600.0,
            "unplanned_stop/no_operator": 900.0,
            "idle/blocked": 600.0,
        },
        micro_s={"idle/material_starved": 600.0, "unplanned_stop/no_operator": 300.0},
        stops={
            "fault/heater": 2,
            "setup/mould_change": 1,
            "unplanned_stop/no_operator": 4,
            "idle/blocked": 1,
            "idle/material_starved": 6,
        },
        micro_stops=9,
    )


def test_the_pareto_orders_reasons_by_downtime_with_their_cumulative_share() -> None:
    rows = pareto(_downtime(), MicroStops.ISO)
    # all downtime: 5400 + 3600 + (900 + 300) + 600 + 600 = 11400 s; ties by name
    assert [(p.reason, p.stops, p.downtime_s) for p in rows] == [
        ("fault/heater", 2, 5400.0),
        ("setup/mould_change", 1, 3600.0),
        ("unplanned_stop/no_operator", 4, 1200.0),
        ("idle/blocked", 1, 600.0),
        ("idle/material_starved", 6, 600.0),
    ]
    assert [p.share for p in rows] == [
        exactly(5400 / 11400), exactly(3600 / 11400), exactly(1200 / 11400),
        exactly(600 / 11400), exactly(600 / 11400),
    ]  # fmt: skip
    assert [p.cumulative_share for p in rows] == [
        exactly(5400 / 11400), exactly(9000 / 11400), exactly(10200 / 11400),
        exactly(10800 / 11400), exactly(1.0),
    ]  # fmt: skip
    # MTBF = APT / stops, MTTR = downtime / stops; APT (ISO) = 18000 s
    assert [(p.mtbf_s, p.mttr_s) for p in rows[:3]] == [
        (exactly(9000.0), exactly(2700.0)),
        (exactly(18000.0), exactly(3600.0)),
        (exactly(4500.0), exactly(300.0)),
    ]
    assert [p.micro_stops for p in rows] == [False, False, False, False, True]


def test_mtbf_and_mttr_of_breakdowns_follow_the_convention() -> None:
    f = _downtime()
    iso, tpm = reliability(f, MicroStops.ISO), reliability(f, MicroStops.TPM)
    # two failures (state fault) of 5400 s in all
    assert (iso.failures, iso.fault_s, iso.mttr_s) == (2, exactly(5400.0), exactly(2700.0))
    assert iso.mtbf_s == exactly(18000 / 2)
    assert tpm.mtbf_s == exactly((18000 + 900) / 2)  # micro-stops are production time in TPM
    assert pareto(f, MicroStops.TPM)[0].mtbf_s == exactly(18900 / 2)
    nothing = reliability(Figures(production_s=100.0))
    assert (nothing.failures, nothing.mtbf_s, nothing.mttr_s) == (0, None, None)
