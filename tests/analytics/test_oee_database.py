"""OEE through the database: rows a machine sent, the plant file, figures worked out by hand.

Each test writes the rows of a machine of its own (its own site) and checks the figures of
`analytics.performance.machine_slices` against the arithmetic in its comments, to 1e-9; then
the same figures read from the rollup (`analytics.rollup.refresh`) are checked to equal the
ones computed from the raw rows. Run on plain PostgreSQL and, with
MOLDLAB_TEST_DATABASE_URL, on TimescaleDB.

Calendar of the sites (Europe/Rome; October 2026 is CEST, UTC+2, until Sunday the 25th):
morning 06:00-14:00 with a break 10:00-10:30 (27000 s planned), afternoon 14:00-22:00 (28800 s).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from databases import migrated_database
from performance import Floor, every, figures_equal
from psycopg import AsyncConnection

from analytics.oee import Figures, MicroStops, ratios
from analytics.performance import MachineSlice, machine_slices
from analytics.report import Bucket, Level, group, oee_row, reliability_rows
from analytics.rollup import refresh
from plant import parse_plant
from store.plant import write_plant

pytestmark = pytest.mark.infra

ROME = ZoneInfo("Europe/Rome")
NOW = datetime(2026, 10, 28, tzinfo=UTC)  # every test's "now": all its rows are before
MICRO_S = 300.0
T0 = datetime(2026, 10, 1, tzinfo=UTC)  # the plant file's first version
# The second: mould oee-mid's ideal cycle time from 30 s to 24 s, Wednesday 12:00 local.
MID_WEEK = datetime(2026, 10, 21, 12, tzinfo=ROME)

_CALENDAR = """
    timezone: Europe/Rome
    calendar:
      shifts:
        - {name: morning, start: "06:00", end: "14:00", breaks: [{start: "10:00", end: "10:30"}]}
        - {name: afternoon, start: "14:00", end: "22:00"}"""
_SITES = ("oee-off", "oee-mid", "oee-mc", "oee-q", "oee-pm", "oee-span", "oee-late")
_PLANT = """
sites:
{sites}
  - id: oee-all
    timezone: Europe/Rome
    calendar:
      holidays: [2026-10-23]
      shifts:
        - name: morning
          start: "06:00"
          end: "14:00"
          weekdays: [mon, tue, wed, thu, fri, sat]
          breaks: [{start: "10:00", end: "10:30"}]
        - name: afternoon
          start: "14:00"
          end: "22:00"
          weekdays: [mon, tue, wed, thu, fri, sat]
          breaks: [{start: "18:00", end: "18:20"}]
        - name: night
          start: "22:00"
          end: "06:00"
          weekdays: [mon, tue, wed, thu, fri, sat]
          breaks: [{start: "02:00", end: "02:30"}]
moulds:
  - {id: oee-m20, cavities: 2, ideal_cycle_s: 20.0, part_weight_g: 10.0, material: PP}
  - {id: oee-m36, cavities: 8, ideal_cycle_s: 36.0, part_weight_g: 5.0, material: PP}
  - {id: oee-mid, cavities: 1, ideal_cycle_s: {mid}, part_weight_g: 30.0, material: ABS}
"""


def plant_text(mid_ideal_s: float) -> str:
    """The plant file, with oee-mid's ideal cycle time."""
    sites = "\n".join(f"  - id: {s}{_CALENDAR}" for s in _SITES)
    return _PLANT.replace("{sites}", sites).replace("{mid}", str(mid_ideal_s))


def rome(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A local time in Rome, October 2026."""
    return datetime(2026, 10, day, hour, minute, second, tzinfo=ROME)


def exactly(expected: float) -> Any:
    return pytest.approx(expected, abs=1e-9, rel=0)


@pytest.fixture(scope="module")
def oee_url(database_server_url: str) -> Iterator[str]:
    """A database of this module's own: a plant load retires the sites and moulds it does not
    name (other tests' in the shared database), and a rollup pass covers every machine."""
    with migrated_database(database_server_url, "moldlab_oee") as url:
        yield url


@pytest.fixture(scope="module")
async def plant_loaded(oee_url: str) -> None:
    async with await AsyncConnection.connect(oee_url) as conn:
        await write_plant(conn, parse_plant(plant_text(30.0)), T0, "v1")
        await write_plant(conn, parse_plant(plant_text(24.0)), MID_WEEK, "v2")
        await conn.commit()


@pytest.fixture
async def conn(oee_url: str, plant_loaded: None) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(oee_url, autocommit=True) as c:
        yield c


async def day_of(m: Floor, day: int, *, rollup: bool = True) -> dict[str, MachineSlice]:
    """The shifts of machine `m` on local day `day` of October, by name."""
    site = m.place.split("/")[0]
    rows = await machine_slices(
        m.conn, site, rome(day, 0), rome(day + 1, 0),
        micro_stop_s=MICRO_S, place_prefix=m.place, now=NOW, rollup=rollup,
    )  # fmt: skip
    return {r.slice.shift: r for r in rows if r.slice.shift is not None}


def in_shift(day: int) -> list[datetime]:
    """A cycle every 40 s, 20 s into each step, over a morning's planned windows: 675."""
    before_break = every(rome(day, 6), rome(day, 10), 40, 20)  # 360
    return before_break + every(rome(day, 10, 30), rome(day, 14), 40, 20)  # + 315


async def test_a_gateway_outage_is_unknown_time_until_its_birth_and_its_backlog_fills_it(
    conn: AsyncConnection[Any],
) -> None:
    m = await Floor.machine(conn, "oee-off")
    gateway = f"gw-{uuid.uuid4().hex[:8]}"
    await m.served_by(gateway)
    await m.status(gateway, rome(20, 5), online=True)
    await m.job(rome(20, 5, 50), "J", "oee-m20", 2)
    await m.states([
        (rome(20, 6), "running", None), (rome(20, 16), "offline", None),
        (rome(20, 17), "running", None), (rome(20, 22), "planned_stop", "no_order"),
    ])  # fmt: skip
    # the gateway dies at 08:00 and is born again at 09:30; the machine ran all along
    await m.status(gateway, rome(20, 8), online=False)
    await m.status(gateway, rome(20, 9, 30), online=True)
    morning = (
        every(rome(20, 6), rome(20, 8), 60, 30)  # 120 cycles sent before the outage
        + every(rome(20, 9, 30), rome(20, 10), 60, 30)  # 30
        + every(rome(20, 10, 30), rome(20, 14), 60, 30)  # 210
    )
    await m.cycles(morning, parts=2, job="J")
    await m.cycles(every(rome(20, 10), rome(20, 10, 30), 60, 30), parts=2, job="J")  # in the break
    await m.cycles(every(rome(20, 14), rome(20, 16), 60, 30), parts=2, job="J")  # 120
    await m.cycles(every(rome(20, 17), rome(20, 22), 60, 30), parts=2, job="J")  # 300
    shifts = await day_of(m, 20)
    f = shifts["morning"].figures
    # planned 27000 s; unknown 08:00-09:30 = 5400 s; PBT = 21600 s, all of it running
    assert f.unknown_s == exactly(5400.0)
    assert f.production_s == exactly(21600.0)
    assert f.losses_s == {}
    assert f.stops == {}
    assert f.planned_busy_s == exactly(21600.0)
    # 360 cycles in planned windows (not the 30 in the break) * 2 parts * 20 s / 2 cavities
    assert (f.cycles, f.parts, f.good) == (360, 720, 720)
    assert f.ideal_s == exactly(7200.0)
    r = ratios(f)
    assert (r.availability, r.effectiveness) == (exactly(1.0), exactly(7200 / 21600))
    g = shifts["afternoon"].figures
    # the machine's own offline state 16:00-17:00: unknown too; running 14-16 and 17-22
    assert (g.unknown_s, g.production_s) == (exactly(3600.0), exactly(25200.0))
    assert g.losses_s == {}
    assert (g.cycles, g.ideal_s) == (420, exactly(8400.0))

    # The gateway's backlog arrives: cycles it made 08:00-08:30 while the link was down. The
    # machine is known to have run until its last cycle, 08:29:30; unknown from then to 09:30.
    await m.cycles(every(rome(20, 8), rome(20, 8, 30), 60, 30), parts=2, job="J")
    f = (await day_of(m, 20))["morning"].figures
    assert f.unknown_s == exactly(3630.0)
    assert f.production_s == exactly(27000.0 - 3630.0)
    assert (f.cycles, f.ideal_s) == (390, exactly(7800.0))


async def test_an_ideal_cycle_time_changed_mid_week_rates_each_cycle_with_its_version(
    conn: AsyncConnection[Any],
) -> None:
    m = await Floor.machine(conn, "oee-mid")
    await m.job(rome(19, 5), "J", "oee-mid", 1)
    await m.states([
        (rome(19, 6), "running", None), (rome(19, 14), "planned_stop", "no_order"),
        (rome(21, 6), "running", None), (rome(21, 14), "planned_stop", "no_order"),
        (rome(22, 6), "running", None), (rome(22, 14), "planned_stop", "no_order"),
    ])  # fmt: skip
    for day in (19, 21, 22):
        await m.cycles(in_shift(day), parts=1, job="J")
    monday = (await day_of(m, 19))["morning"].figures
    wednesday = (await day_of(m, 21))["morning"].figures
    thursday = (await day_of(m, 22))["morning"].figures
    assert monday.ideal_s == exactly(675 * 30.0)  # 20250 s, the old ideal all morning
    # Wednesday: 360 cycles 06-10 and 135 cycles 10:30-12:00 at 30 s, 180 after 12:00 at 24 s
    assert wednesday.ideal_s == exactly(495 * 30.0 + 180 * 24.0)  # 19170 s
    assert thursday.ideal_s == exactly(675 * 24.0)  # 16200 s
    assert ratios(wednesday).effectiveness == exactly(19170 / 27000)
    rows = await machine_slices(
        conn, "oee-mid", rome(19, 0), rome(23, 0), micro_stop_s=MICRO_S, now=NOW
    )
    (week,) = group(rows, Bucket.WEEK, Level.MACHINE)
    kpis = oee_row(week, MicroStops.ISO).kpis
    # three mornings of 27000 s running; Tuesday and the afternoons were planned stops
    assert week.figures.planned_busy_s == exactly(81000.0)
    assert kpis.availability == exactly(1.0)
    assert kpis.effectiveness == exactly((20250 + 19170 + 16200) / 81000)
    assert kpis.oee == exactly(55620 / 81000)


async def test_a_mould_change_is_setup_and_each_job_is_rated_with_its_own_mould(
    conn: AsyncConnection[Any],
) -> None:
    m = await Floor.machine(conn, "oee-mc")
    await m.job(rome(20, 5, 50), "J1", "oee-m20", 2)  # 2 of 2 cavities, ideal 20 s
    await m.job(rome(20, 9), "J2", "oee-m36", 6)  # 6 of 8 cavities active, ideal 36 s
    await m.states([(rome(20, 6), "running", None), (rome(20, 9), "setup", "mould_change"),
                    (rome(20, 9, 45), "running", None),
                    (rome(20, 14), "planned_stop", "no_order")])  # fmt: skip
    await m.cycles(every(rome(20, 6), rome(20, 9), 40, 20), parts=2, job="J1")  # 270
    j2 = every(rome(20, 9, 46), rome(20, 10), 45) + every(rome(20, 10, 30), rome(20, 14), 45, 30)
    assert len(j2) == 19 + 280
    await m.cycles(j2, parts=6, job="J2")
    f = (await day_of(m, 20))["morning"].figures
    assert f.planned_stop_s == {}  # a mould change is not a planned stop
    assert f.losses_s == {"setup/mould_change": exactly(2700.0)}  # 09:00-09:45
    assert f.stops == {"setup/mould_change": 1}
    # running 06:00-09:00 (10800) + 09:45-10:00 (900) + 10:30-14:00 (12600) = 24300 s
    assert f.production_s == exactly(24300.0)
    # J1: 270 * 2 parts * 20/2 s = 5400 s; J2: 299 * 6 parts * 36/6 s = 10764 s
    assert (f.cycles, f.parts) == (270 + 299, 540 + 1794)
    assert f.ideal_s == exactly(5400.0 + 10764.0)
    r = ratios(f)
    assert r.availability == exactly(24300 / 27000)
    assert r.effectiveness == exactly(16164 / 24300)
    assert r.oee == exactly(16164 / 27000)
    assert r.setup_ratio == exactly(2700 / 24300)
    assert r.nee == exactly(24300 / (27000 - 2700) * 16164 / 24300)


async def test_scrap_by_defect_and_test_samples(conn: AsyncConnection[Any]) -> None:
    m = await Floor.machine(conn, "oee-q")
    await m.job(rome(20, 13), "J", "oee-m20", 2)
    await m.states([(rome(20, 14), "running", None), (rome(20, 22), "planned_stop", "no_order")])
    shots = every(rome(20, 14), rome(20, 22), 40, 20)
    assert len(shots) == 720
    # every 24th cycle short shots (30), every 72nd from the 12th flash (10), every 144th
    # from the 36th a test sample (5): none of them on the same cycle
    short = [t for k, t in enumerate(shots) if k % 24 == 0]
    flash = [t for k, t in enumerate(shots) if k % 72 == 12]
    test = [t for k, t in enumerate(shots) if k % 144 == 36]
    good = [t for t in shots if t not in {*short, *flash, *test}]
    await m.cycles(good, parts=2, job="J", kwh=0.05)
    await m.cycles(short, parts=2, job="J", quality="bad", defect="short_shot", kwh=0.05)
    await m.cycles(flash, parts=2, job="J", quality="bad", defect="flash", kwh=0.05)
    await m.cycles(test, parts=2, job="J", quality="test", kwh=0.05)
    shifts = await day_of(m, 20)
    f = shifts["afternoon"].figures
    assert (f.cycles, f.parts, f.good, f.bad, f.test) == (720, 1440, 1350, 80, 10)
    assert f.scrap == {"short_shot": 60, "flash": 20}
    assert f.energy_kwh == exactly(720 * 0.05)
    r = ratios(f)
    assert r.quality == exactly(1350 / 1440)
    assert r.scrap_ratio == exactly(80 / 1440)
    assert r.effectiveness == exactly(14400 / 28800)  # 1440 parts * 10 s
    assert r.oee == exactly(13500 / 28800)
    assert r.kwh_per_good_part == exactly(36.0 / 1350)
    # no state before 14:00: the morning is unknown, not running and not stopped
    assert shifts["morning"].figures.unknown_s == exactly(27000.0)
    assert ratios(shifts["morning"].figures).availability is None


async def test_planned_maintenance_is_out_of_planned_busy_time(conn: AsyncConnection[Any]) -> None:
    m = await Floor.machine(conn, "oee-pm")
    await m.job(rome(20, 5), "J", "oee-m20", 2)
    await m.states([(rome(20, 6), "running", None),
                    (rome(20, 9), "planned_stop", "planned_maintenance"),
                    (rome(20, 11), "running", None),
                    (rome(20, 14), "planned_stop", "no_order")])  # fmt: skip
    cycles = every(rome(20, 6), rome(20, 9), 40, 20) + every(rome(20, 11), rome(20, 14), 40, 20)
    await m.cycles(cycles, parts=2, job="J")  # 270 + 270
    shifts = await day_of(m, 20)
    f = shifts["morning"].figures
    # maintenance 09:00-11:00 less the break 10:00-10:30 inside it: 5400 s
    assert f.planned_stop_s == {"planned_maintenance": exactly(5400.0)}
    assert f.losses_s == {}
    assert f.stops == {}
    r = ratios(f)
    assert r.planned_busy_s == exactly(27000.0 - 5400.0)
    assert r.availability == exactly(1.0)
    assert r.effectiveness == exactly(540 * 2 * 10.0 / 21600)  # 10800 s ideal
    assert r.teep == exactly(0.5 * 21600 / 28800)  # OEE * PBT / calendar (the 8 h shift)
    g = shifts["afternoon"].figures
    assert g.planned_stop_s == {"no_order": exactly(28800.0)}
    assert ratios(g).availability is None  # no planned busy time at all


async def test_a_stop_spanning_two_shifts_is_counted_once_its_time_split(
    conn: AsyncConnection[Any],
) -> None:
    m = await Floor.machine(conn, "oee-span")
    await m.states([(rome(20, 6), "running", None), (rome(20, 13), "fault", "hydraulic_leak"),
                    (rome(20, 15, 30), "running", None),
                    (rome(20, 22), "planned_stop", "no_order")])  # fmt: skip
    for rollup in (False, True):
        if rollup:
            await refresh(conn, micro_stop_s=MICRO_S, now=NOW)
        shifts = await day_of(m, 20, rollup=rollup)
        assert all(s.from_rollup is rollup for s in shifts.values())
        f, g = shifts["morning"].figures, shifts["afternoon"].figures
        # morning: fault 13:00-14:00; running 06:00-13:00 less the break = 6.5 h
        assert f.losses_s == {"fault/hydraulic_leak": exactly(3600.0)}
        assert f.stops == {"fault/hydraulic_leak": 1}
        assert f.production_s == exactly(23400.0)
        # afternoon: fault 14:00-15:30, not a second stop; running 15:30-22:00
        assert g.losses_s == {"fault/hydraulic_leak": exactly(5400.0)}
        assert g.stops == {}
        assert g.production_s == exactly(23400.0)
    # asked for the afternoon alone, the stop still began in the morning
    (alone,) = await machine_slices(
        conn, "oee-span", rome(20, 14), rome(20, 22), micro_stop_s=MICRO_S, now=NOW, rollup=False
    )
    assert alone.figures.stops == {}
    assert alone.figures.losses_s == {"fault/hydraulic_leak": exactly(5400.0)}
    rows = await machine_slices(
        conn, "oee-span", rome(20, 0), rome(21, 0), micro_stop_s=MICRO_S, now=NOW
    )
    (rel,) = reliability_rows(rows, MicroStops.ISO)
    # one failure of 3600 + 5400 s; APT 23400 + 23400 s
    assert (rel.failures, rel.fault_s) == (1, exactly(9000.0))
    assert (rel.mtbf_s, rel.mttr_s) == (exactly(46800.0), exactly(9000.0))


async def test_late_data_changes_a_rolled_up_shift_at_once(conn: AsyncConnection[Any]) -> None:
    m = await Floor.machine(conn, "oee-late")
    await m.job(rome(20, 5), "J", "oee-m20", 2)
    await m.states([(rome(20, 6), "running", None), (rome(20, 14), "planned_stop", "no_order")])
    await m.cycles(in_shift(20), parts=2, job="J")
    await refresh(conn, micro_stop_s=MICRO_S, now=NOW)
    first = (await day_of(m, 20))["morning"]
    assert first.from_rollup
    # 675 cycles * 2 parts * 10 s = 13500 s ideal over 27000 s running
    assert first.figures.production_s == exactly(27000.0)
    assert first.figures.ideal_s == exactly(13500.0)
    # An outage's backlog arrives: a fault 08:00-08:30 and 10 bad cycles at noon.
    await m.states([(rome(20, 8), "fault", "pump"), (rome(20, 8, 30), "running", None)])
    await m.cycles(every(rome(20, 12), rome(20, 12, 10), 60, 10), parts=2, job="J",
                   quality="bad", defect="short_shot")  # fmt: skip
    late = (await day_of(m, 20))["morning"]
    assert not late.from_rollup  # stale: computed from the raw rows at once
    f = late.figures
    assert f.losses_s == {"fault/pump": exactly(1800.0)}
    assert f.stops == {"fault/pump": 1}
    assert f.production_s == exactly(27000.0 - 1800.0)
    assert (f.cycles, f.good, f.bad, f.scrap) == (685, 1350, 20, {"short_shot": 20})
    assert f.ideal_s == exactly(13700.0)
    assert ratios(f).oee == exactly(25200 / 27000 * 13700 / 25200 * 1350 / 1370)
    result = await refresh(conn, micro_stop_s=MICRO_S, now=NOW)
    assert result.ran
    assert result.marks > 0
    again = (await day_of(m, 20))["morning"]
    assert again.from_rollup
    assert figures_equal(again.figures, f)


async def test_a_site_without_a_calendar_is_planned_all_day_in_utc(
    conn: AsyncConnection[Any],
) -> None:
    m = await Floor.machine(conn, "oee-utc")  # not in the plant file
    day = datetime(2026, 10, 20, tzinfo=UTC)
    await m.states([(day, "running", None), (day + timedelta(hours=20), "fault", "pump"),
                    (day + timedelta(hours=24), "running", None)])  # fmt: skip
    rows = await machine_slices(
        conn, "oee-utc", day, day + timedelta(days=1), micro_stop_s=MICRO_S, now=NOW
    )
    assert [(r.slice.shift, r.slice.day, r.slice.end - r.slice.start) for r in rows] == [
        ("day", date(2026, 10, 20), 86400.0)
    ]
    f = rows[0].figures
    assert f.planned_busy_s == exactly(86400.0)
    assert ratios(f).availability == exactly(72000 / 86400)  # a fault 20:00-24:00 UTC


# The same figures from the rollup and from the raw rows, over a week with every case above.


def _interruptions() -> dict[str, list[tuple[datetime, datetime, str, str | None]]]:
    """What stopped each scenario machine (it ran the rest of the time), by machine."""
    a: list[tuple[datetime, datetime, str, str | None]] = []
    b: list[tuple[datetime, datetime, str, str | None]] = []
    for day in range(19, 27):
        for hour in (7, 9, 15, 23):  # micro-stops: 2 minutes idle, material starved
            a.append((rome(day, hour), rome(day, hour, 2), "idle", "material_starved"))
        a.append((rome(day, 11), rome(day, 11, 10), "unplanned_stop", "no_operator"))
        for hour in (8, 16, 20):
            b.append((rome(day, hour, 30), rome(day, hour, 31), "unplanned_stop", "jam"))
    a += [
        (rome(20, 13), rome(20, 15, 30), "fault", "hydraulic_leak"),  # across two shifts
        (rome(21, 9), rome(21, 9, 45), "setup", "mould_change"),  # J1 (oee-m20) -> J2 (oee-mid)
        (rome(22, 9), rome(22, 11, 30), "planned_stop", "planned_maintenance"),
        (rome(22, 20), rome(22, 21), "offline", None),
        (rome(23, 5), rome(24, 5, 30), "planned_stop", "no_order"),  # to the end of the holiday
        # the night the clocks go back: 02:40 CEST to 02:20 CET
        (datetime(2026, 10, 25, 0, 40, tzinfo=UTC), datetime(2026, 10, 25, 1, 20, tzinfo=UTC),
         "fault", "heater_burnout"),
    ]  # fmt: skip
    b += [
        (rome(19, 13, 50), rome(19, 14, 30), "setup", "colour_change"),
        (rome(22, 21, 30), rome(22, 23, 10), "fault", "screw"),
        (rome(24, 1), rome(24, 3), "planned_stop", "planned_maintenance"),
    ]
    return {"a": _apart(a), "b": _apart(b)}


def _apart(
    stops: list[tuple[datetime, datetime, str, str | None]],
) -> list[tuple[datetime, datetime, str, str | None]]:
    """`stops` in order, each short one inside a longer one left out (one state at a time)."""
    out: list[tuple[datetime, datetime, str, str | None]] = []
    for stop in sorted(stops, key=lambda s: s[0] - s[1]):  # longest first
        if not any(stop[0] < o[1] and o[0] < stop[1] for o in out):
            out.append(stop)
    return sorted(out)


async def _scenario_machine(
    m: Floor,
    stops: list[tuple[datetime, datetime, str, str | None]],
    outage: tuple[datetime, datetime],
    jobs: list[tuple[datetime, str, str, int]],
    step_s: float,
) -> None:
    start, end = rome(19, 5), rome(27, 0)
    rows: list[tuple[datetime, str, str | None]] = [(start, "running", None)]
    for s0, s1, state, reason in stops:
        rows += [(s0, state, reason), (s1, "running", None)]
    await m.states(rows)
    for at, name, mould, cavities in jobs:
        await m.job(at, name, mould, cavities)
    made = [
        t
        for t in every(start, end, step_s, 15)
        if not any(s0 <= t < s1 for s0, s1, *_ in stops) and not outage[0] <= t < outage[1]
    ]
    by_job: dict[tuple[str, int, str, str | None], list[datetime]] = {}
    for k, t in enumerate(made):
        at, name, _, cavities = [j for j in jobs if j[0] <= t][-1]
        quality, defect = (
            ("bad", "short_shot")
            if k % 50 == 0
            else ("test", None)
            if k % 97 == 0
            else ("good", None)
        )
        by_job.setdefault((name, cavities, quality, defect), []).append(t)
    for (name, cavities, quality, defect), times in by_job.items():
        await m.cycles(times, parts=cavities, job=name, quality=quality, defect=defect, kwh=0.04)


def _compare(raw: list[MachineSlice], rolled: list[MachineSlice]) -> int:
    """Assert the two lists hold the same slices and figures; how many came from the rollup."""
    assert [(r.place, r.slice) for r in raw] == [(r.place, r.slice) for r in rolled]
    for x, y in zip(raw, rolled, strict=True):
        assert not x.from_rollup
        assert figures_equal(x.figures, y.figures), (x.place, x.slice, x.figures, y.figures)
    return sum(r.from_rollup for r in rolled)


async def test_rollup_and_raw_rows_give_the_same_figures_for_every_slice(
    conn: AsyncConnection[Any],
) -> None:
    stops = _interruptions()
    a = await Floor.machine(conn, "oee-all", line="l1")
    b = await Floor.machine(conn, "oee-all", line="l2")
    gateway = f"gw-{uuid.uuid4().hex[:8]}"
    await a.served_by(gateway)
    await a.status(gateway, rome(19, 4), online=True)
    await a.status(gateway, rome(21, 16), online=False)  # dead 16:00-17:30 Wednesday
    await a.status(gateway, rome(21, 17, 30), online=True)
    await b.status(b.place, rome(20, 7), online=False)  # the machine's own source
    await b.status(b.place, rome(20, 7, 45), online=True)
    await _scenario_machine(
        a,
        stops["a"],
        (rome(21, 16), rome(21, 17, 30)),
        [(rome(19, 4), "J1", "oee-m20", 2), (rome(21, 9, 10), "J2", "oee-mid", 1)],
        60.0,
    )
    await _scenario_machine(
        b, stops["b"], (rome(20, 7), rome(20, 7, 45)), [(rome(19, 4), "K", "oee-m36", 6)], 50.0
    )
    lo, hi = rome(19, 0), rome(27, 0)

    async def both() -> tuple[list[MachineSlice], list[MachineSlice]]:
        raw = await machine_slices(
            conn, "oee-all", lo, hi, micro_stop_s=MICRO_S, now=NOW, rollup=False
        )
        rolled = await machine_slices(conn, "oee-all", lo, hi, micro_stop_s=MICRO_S, now=NOW)
        return raw, rolled

    await refresh(conn, micro_stop_s=MICRO_S, now=NOW)
    raw, rolled = await both()
    # Every case is in there: a night shift of 9 h, stops, micro-stops, setup, planned
    # maintenance, unknown time, scrap, test samples, two ideal cycle times for J2.
    assert {(r.slice.end - r.slice.start) / 3600 for r in raw if r.slice.shift == "night"} >= {8, 9}
    week = Figures()
    for r in raw:
        week += r.figures
    assert week.micro_stops > 0
    assert week.unknown_s > 0
    assert {"planned_maintenance", "no_order"} <= week.planned_stop_s.keys()
    assert {"fault/hydraulic_leak", "setup/mould_change", "fault/screw"} <= week.losses_s.keys()
    assert week.bad > 0
    assert week.test > 0
    from_rollup = _compare(raw, rolled)
    # The night the clocks go back, by hand: 22:00 CEST Saturday (20:00 UTC) to 06:00 CET
    # (05:00 UTC) is 9 h; its break 00:00-00:30 UTC; the fault 00:40-01:20 UTC = 2400 s and a
    # 120 s micro-stop at 23:00 CEST: production 32400 - 1800 - 2400 - 120 = 28080 s
    (night,) = [r for r in rolled if r.place == a.place and r.slice.day == date(2026, 10, 24)
                and r.slice.shift == "night"]  # fmt: skip
    assert night.from_rollup
    assert night.figures.calendar_s == exactly(32400.0)
    assert night.figures.planned_busy_s == exactly(30600.0)
    assert night.figures.losses_s == {"fault/heater_burnout": exactly(2400.0)}
    assert night.figures.micro_s == {"idle/material_starved": exactly(120.0)}
    assert night.figures.production_s == exactly(28080.0)
    # all but the slices the range cuts: each machine's night shift of Monday the 26th
    assert from_rollup == sum(r.slice.whole for r in rolled) == len(rolled) - 2
    # by the day and the line, the sums agree too
    for level in (Level.MACHINE, Level.LINE, Level.SITE):
        for x, y in zip(
            group(raw, Bucket.DAY, level), group(rolled, Bucket.DAY, level), strict=True
        ):
            assert (x.place, x.bucket) == (y.place, y.bucket)
            assert figures_equal(x.figures, y.figures)

    # Late data on Tuesday: the rollup answers for the rest, the raw rows for what it touched,
    # and the figures still agree; after the next pass all of it comes from the rollup again.
    await a.states(
        [(rome(20, 20), "unplanned_stop", "late_stop"), (rome(20, 20, 20), "running", None)]
    )
    await a.cycles(every(rome(20, 20, 30), rome(20, 20, 35), 60), parts=2, job="J1", quality="bad")
    raw, rolled = await both()
    assert _compare(raw, rolled) < from_rollup
    assert any(r.figures.losses_s.get("unplanned_stop/late_stop") for r in raw)
    await refresh(conn, micro_stop_s=MICRO_S, now=NOW)
    raw, rolled = await both()
    assert _compare(raw, rolled) == from_rollup
    # another micro-stop threshold is not what was rolled up: computed from the raw rows
    other = await machine_slices(conn, "oee-all", lo, hi, micro_stop_s=60.0, now=NOW)
    assert not any(r.from_rollup for r in other)


async def test_a_stop_cut_by_an_outage_is_one_stop_as_long_as_the_whole(
    conn: AsyncConnection[Any],
) -> None:
    m = await Floor.machine(conn, "oee-off")
    gateway = f"gw-{uuid.uuid4().hex[:8]}"
    await m.served_by(gateway)
    await m.states([
        (rome(20, 6), "running", None), (rome(20, 8), "unplanned_stop", "no_operator"),
        (rome(20, 8, 10), "running", None), (rome(20, 14), "planned_stop", "no_order"),
    ])  # fmt: skip
    # the gateway is dead 08:02-08:05, in the middle of a 10-minute stop
    await m.status(gateway, rome(20, 8, 2), online=False)
    await m.status(gateway, rome(20, 8, 5), online=True)
    f = (await day_of(m, 20))["morning"].figures
    assert f.unknown_s == exactly(180.0)
    # 08:00-08:02 and 08:05-08:10 of one 600 s stop: not a 120 s micro-stop and a second stop
    assert f.losses_s == {"unplanned_stop/no_operator": exactly(420.0)}
    assert f.micro_s == {}
    assert f.stops == {"unplanned_stop/no_operator": 1}
    assert f.micro_stops == 0
    assert f.production_s == exactly(27000.0 - 600.0)


async def _rolled_and_raw(
    m: Floor, day: int
) -> tuple[dict[str, MachineSlice], dict[str, MachineSlice]]:
    return await day_of(m, day), await day_of(m, day, rollup=False)


async def test_a_late_row_that_shortens_a_stop_into_a_micro_stop_marks_the_shift_it_began_in(
    conn: AsyncConnection[Any],
) -> None:
    m = await Floor.machine(conn, "oee-late")
    await m.states([
        (rome(20, 6), "running", None), (rome(20, 13, 58), "unplanned_stop", "no_operator"),
        (rome(20, 14, 10), "running", None), (rome(20, 22), "planned_stop", "no_order"),
    ])  # fmt: skip
    await refresh(conn, micro_stop_s=MICRO_S, now=NOW)
    rolled, _ = await _rolled_and_raw(m, 20)
    # a 12-minute stop, 120 s of it in the morning: a loss, not a micro-stop
    assert rolled["morning"].from_rollup
    assert rolled["morning"].figures.losses_s == {"unplanned_stop/no_operator": exactly(120.0)}
    # The backlog says the machine ran again at 14:01: a 3-minute stop, a micro-stop, and the
    # morning it began in is no longer what was rolled up.
    await m.state(rome(20, 14, 1), "running")
    rolled, raw = await _rolled_and_raw(m, 20)
    assert raw["morning"].figures.micro_s == {"unplanned_stop/no_operator": exactly(120.0)}
    assert raw["morning"].figures.losses_s == {}
    assert not rolled["morning"].from_rollup
    assert figures_equal(rolled["morning"].figures, raw["morning"].figures)


async def test_a_backlog_in_an_outage_that_began_in_the_last_shift_marks_that_shift(
    conn: AsyncConnection[Any],
) -> None:
    m = await Floor.machine(conn, "oee-late")
    gateway = f"gw-{uuid.uuid4().hex[:8]}"
    await m.served_by(gateway)
    await m.states([(rome(20, 6), "running", None), (rome(20, 13, 40), "fault", "pump"),
                    (rome(20, 22), "planned_stop", "no_order")])  # fmt: skip
    await m.status(gateway, rome(20, 13, 50), online=False)
    await m.status(gateway, rome(20, 15), online=True)
    await refresh(conn, micro_stop_s=MICRO_S, now=NOW)
    rolled, _ = await _rolled_and_raw(m, 20)
    assert rolled["morning"].figures.unknown_s == exactly(600.0)  # 13:50-14:00
    # The backlog: the machine ran again at 14:20, so it is known to have been in its fault
    # until then, the last 10 minutes of the morning included.
    await m.state(rome(20, 14, 20), "running")
    rolled, raw = await _rolled_and_raw(m, 20)
    assert raw["morning"].figures.unknown_s == exactly(0.0)
    assert raw["morning"].figures.losses_s == {"fault/pump": exactly(1200.0)}
    assert not rolled["morning"].from_rollup
    assert figures_equal(rolled["morning"].figures, raw["morning"].figures)
    # the same with a cycle as the backlog's only row
    n = await Floor.machine(conn, "oee-late")
    await n.served_by(gateway)
    await n.states([(rome(21, 6), "running", None), (rome(21, 22), "planned_stop", "no_order")])
    await n.status(gateway, rome(21, 13, 50), online=False)
    await n.status(gateway, rome(21, 15), online=True)
    await refresh(conn, micro_stop_s=MICRO_S, now=NOW)
    assert (await day_of(n, 21))["morning"].figures.unknown_s == exactly(600.0)
    await n.cycles([rome(21, 14, 20)], parts=1, job=None)
    rolled, raw = await _rolled_and_raw(n, 21)
    assert raw["morning"].figures.unknown_s == exactly(0.0)
    assert not rolled["morning"].from_rollup
    assert figures_equal(rolled["morning"].figures, raw["morning"].figures)
