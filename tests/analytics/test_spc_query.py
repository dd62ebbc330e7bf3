"""SPC read from the cycles: the mould's own cycles, the baseline's limits, the plant file's."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from databases import migrated_database
from performance import Floor
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from analytics import NotFound, SpcError, spc_capability, spc_series
from contracts import Place
from plant import parse_plant
from store.plant import write_plant

pytestmark = pytest.mark.infra

T0 = datetime(2026, 10, 1, tzinfo=UTC)  # the plant file's first version
T1 = datetime(2026, 11, 2, 8, tzinfo=UTC)  # its second: m-a's PartWeight limits widen
MINUTE = timedelta(minutes=1)

_PLANT = """
sites:
  - id: spc
    name: SPC test site
    timezone: Europe/Rome
    calendar:
      shifts: [{{name: day, start: "06:00", end: "14:00"}}]
moulds:
  - id: m-a
    cavities: 1
    ideal_cycle_s: 15.0
    part_weight_g: 12.0
    material: PP
    limits:
      PartWeight: {{lower: {a_lower}, upper: {a_upper}, target: 12.0}}
  - id: m-b
    cavities: 2
    ideal_cycle_s: {b_cycle}
    part_weight_g: 18.0
    material: PP
    limits:
      PartWeight: {{lower: 17.85, upper: 18.15}}
"""
V1 = _PLANT.format(a_lower=11.9, a_upper=12.1, b_cycle=16.4)
# m-a's limits change; m-b's ideal cycle time changes, its limits do not.
V2 = _PLANT.format(a_lower=11.8, a_upper=12.2, b_cycle=17.0)


@pytest.fixture(scope="module")
def spc_url(database_server_url: str) -> Iterator[str]:
    """A database of this module's own: loading a plant file retires what it does not name,
    which in the suite's shared database would be other tests' moulds."""
    with migrated_database(database_server_url, "moldlab_spc") as url:
        yield url


@pytest.fixture(scope="module")
async def plant_loaded(spc_url: str) -> None:
    async with await AsyncConnection.connect(spc_url) as conn:
        await write_plant(conn, parse_plant(V1), T0, "v1")
        await write_plant(conn, parse_plant(V2), T1, "v2")
        await conn.commit()


@pytest.fixture
async def conn(spc_url: str, plant_loaded: None) -> AsyncIterator[AsyncConnection]:
    async with await AsyncConnection.connect(spc_url, autocommit=True) as c:
        yield c


async def machine(conn: AsyncConnection) -> tuple[Place, int]:
    """A new machine of this test's own: its place and id."""
    floor = await Floor.machine(conn, "spc", line="l1", area="hall")
    return Place.parse(floor.place), floor.id


async def job(conn: AsyncConnection, machine_id: int, at: datetime, name: str, mould: str) -> None:
    await conn.execute(
        "INSERT INTO machine_job (time, machine_id, job_name, mould_id, job_status,"
        " active_cavities, nominal_parts, source, seq)"
        " VALUES (%s, %s, %s, %s, 'job_in_production', 1, 0, 'test', 1)",
        (at, machine_id, name, mould),
    )


async def cycles(
    conn: AsyncConnection,
    machine_id: int,
    rows: list[tuple[datetime, float]],
    *,
    job_name: str | None = None,
    quality: str = "good",
    parameter: str = "PartWeight",
) -> None:
    """One cycle a row, with `parameter` = the row's value; its cycle time (in its own column
    only) is 15 s, 15.5 s, 15 s, ..."""
    for shot, (at, value) in enumerate(rows):
        await conn.execute(
            "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s,"
            " parameters, source, seq, job_name)"
            " VALUES (%s, %s, %s, %s, 1, %s, %s, 'test', %s, %s)",
            (
                at, machine_id, shot, quality, 15.0 + 0.5 * (shot % 2), Jsonb({parameter: value}),
                shot, job_name,
            ),
        )  # fmt: skip


def exactly(value: float) -> object:
    return pytest.approx(value, abs=1e-9, rel=0)


async def test_the_series_holds_the_moulds_cycles_only(conn: AsyncConnection) -> None:
    place, mid = await machine(conn)
    start = T1 + timedelta(hours=1)
    # m-a from start, m-b from +10 min, m-a again from +20 min.
    await job(conn, mid, start, "job-a", "m-a")
    await job(conn, mid, start + 10 * MINUTE, "job-b", "m-b")
    await job(conn, mid, start + 20 * MINUTE, "job-a2", "m-a")
    a1 = [(start + i * MINUTE, 12.0 + 0.01 * (i % 3)) for i in range(10)]
    b = [(start + (10 + i) * MINUTE, 18.0 + 0.01 * (i % 2)) for i in range(10)]
    a2 = [(start + (20 + i) * MINUTE, 12.0 - 0.01 * (i % 2)) for i in range(5)]
    await cycles(conn, mid, a1[:-1])
    # The last cycle of job-a is stamped after job-b's message; it names its job: m-a's.
    late = (start + 10 * MINUTE + timedelta(seconds=5), a1[-1][1])
    await cycles(conn, mid, [late], job_name="job-a")
    await cycles(conn, mid, b, job_name="job-b")
    await cycles(conn, mid, a2[:2])
    await cycles(conn, mid, a2[2:], quality="test")  # measured parts: they are charted too
    # Before any job: no mould, never charted.
    await cycles(conn, mid, [(start - MINUTE, 12.0)])

    series = await spc_series(
        conn, place, "PartWeight", "m-a", start - timedelta(hours=1), start + timedelta(hours=1)
    )
    expected = [*a1[:-1], late, *a2]
    assert [(p.ts, p.value) for p in series.points] == expected
    assert [p.quality for p in series.points][-3:] == ["test"] * 3
    other = await spc_series(
        conn, place, "PartWeight", "m-b", start - timedelta(hours=1), start + timedelta(hours=1)
    )
    assert [(p.ts, p.value) for p in other.points] == b
    assert (series.mould, series.unit, series.place) == ("m-a", "g", str(place))
    # CycleTime is read from the cycle's own column.
    cycle_time = await spc_series(conn, place, "CycleTime", "m-b", start, start + 30 * MINUTE)
    assert [p.value for p in cycle_time.points] == [15.0, 15.5] * 5


async def test_the_baselines_limits_judge_the_later_points(conn: AsyncConnection) -> None:
    place, mid = await machine(conn)
    base = T1 + timedelta(days=1)
    await job(conn, mid, base - MINUTE, "job-a", "m-a")
    # Baseline: 10, 12, 11, 13, 12 -> mean 11.6, MR-bar 1.5, sigma 1.5 / 1.128 = 1.329787...,
    # UCL 11.6 + 3.989361702 = 15.589361702, LCL 7.610638298 (tests/analytics/test_spc.py).
    baseline = [10.0, 12.0, 11.0, 13.0, 12.0]
    await cycles(conn, mid, [(base + i * MINUTE, v) for i, v in enumerate(baseline)])
    # An hour later, the charted range: 12.5 is inside; 16.0 is 3.31 sigma above (rule 1);
    # 14.5 and 14.8 are 2.18 and 2.41 sigma above, two of three beyond 2 sigma (rule 2 at
    # the second); 16.0 is four points before them.
    later = base + timedelta(hours=1)
    charted = [12.5, 16.0, 11.0, 11.0, 14.5, 14.8]
    await cycles(conn, mid, [(later + i * MINUTE, v) for i, v in enumerate(charted)])
    stated = (base, base + 5 * MINUTE)

    series = await spc_series(
        conn, place, "PartWeight", "m-a", later, later + timedelta(hours=1), baseline=stated
    )

    assert (series.baseline.start, series.baseline.end) == stated  # echoed
    assert (series.baseline.stated, series.baseline.points) == (True, 5)
    assert series.limits.centre == exactly(11.6)
    assert series.limits.mr_bar == exactly(1.5)
    assert series.limits.sigma == exactly(1.5 / 1.128)
    assert series.limits.ucl == exactly(15.589361702127659)
    assert series.limits.lcl == exactly(7.610638297872341)
    assert series.limits.mr_ucl == exactly(4.9005)
    assert [p.value for p in series.points] == charted
    assert [p.rules for p in series.points] == [[], [1], [], [], [], [2]]
    # Moving ranges of the charted points: none for the first, then |16 - 12.5| = 3.5, ...
    assert [p.mr for p in series.points] == [None, 3.5, 5.0, 0.0, 3.5, exactly(0.3)]
    assert series.violations == 2
    assert {(p.lcl, p.ucl) for p in series.points} == {(series.limits.lcl, series.limits.ucl)}

    # The same baseline inside the range: the same limits, and its points charted too.
    whole = await spc_series(
        conn, place, "PartWeight", "m-a", base, later + timedelta(hours=1), baseline=stated
    )
    assert whole.limits == series.limits
    assert len(whole.points) == 11

    # EWMA, lambda 0.5, L 3: z_1 = 0.5 x 12.5 + 0.5 x 11.6 = 12.05; half width
    # 3 sigma sqrt(1/3 x (1 - 0.25)) = 3 x 1.329787 x 0.5 = 1.994680851: 9.605319 .. 13.594681.
    # z_2 = 0.5 x 16 + 0.5 x 12.05 = 14.025 is beyond 11.6 + 3 sigma sqrt(1/3 x 0.9375)
    # = 11.6 + 2.229845 = 13.829845: rule 1 on the EWMA chart.
    smooth = await spc_series(
        conn, place, "PartWeight", "m-a", later, later + timedelta(hours=1),
        baseline=stated, chart="ewma", lam=0.5, width=3.0,
    )  # fmt: skip
    first, second = smooth.points[:2]
    sigma = 1.5 / 1.128
    assert first.ewma == exactly(12.05)
    assert (first.lcl, first.ucl) == (exactly(11.6 - 1.5 * sigma), exactly(11.6 + 1.5 * sigma))
    assert second.ewma == exactly(14.025)
    assert second.ucl == exactly(11.6 + 3 * sigma * math.sqrt(0.9375 / 3))
    assert [first.rules, second.rules] == [[], [1]]
    assert (smooth.chart, smooth.ewma_lambda, smooth.ewma_l) == ("ewma", 0.5, 3.0)


async def test_without_a_stated_baseline_the_first_25_points_are_the_baseline(
    conn: AsyncConnection,
) -> None:
    place, mid = await machine(conn)
    start = T1 + timedelta(days=2)
    await job(conn, mid, start, "job-a", "m-a")
    # 25 points alternating 10, 12 (13 tens, 12 twelves): mean 274 / 25 = 10.96, every moving
    # range 2, sigma 2 / 1.128; then five points of 20, far beyond UCL 10.96 + 5.319149 = 16.28.
    first = [10.0 if i % 2 == 0 else 12.0 for i in range(25)]
    rows = [(start + i * MINUTE, v) for i, v in enumerate([*first, *[20.0] * 5])]
    await cycles(conn, mid, rows)

    series = await spc_series(conn, place, "PartWeight", "m-a", start, start + timedelta(hours=1))

    assert series.baseline.stated is False
    assert series.baseline.points == 25
    assert (series.baseline.start, series.baseline.end) == (rows[0][0], rows[25][0])
    assert series.limits.centre == exactly(10.96)
    assert series.limits.sigma == exactly(2 / 1.128)
    assert [i for i, p in enumerate(series.points) if 1 in p.rules] == [25, 26, 27, 28, 29]

    # Fewer than 25 points: all of them, up to the range's end.
    short = await spc_series(conn, place, "PartWeight", "m-a", start, start + 3 * MINUTE)
    assert (short.baseline.points, short.baseline.end) == (3, start + 3 * MINUTE)


async def test_capability_is_split_where_the_plant_file_changed_the_limits(
    conn: AsyncConnection,
) -> None:
    place, mid = await machine(conn)
    await job(conn, mid, T1 - timedelta(hours=1), "job-a", "m-a")
    # Under v1 (LSL 11.9, USL 12.1): 11.95, 12.05, 12.00 -> mean 12.0, moving ranges 0.1 and
    # 0.05, MR-bar 0.075, sigma_within 0.075 / 1.128; Cp = 0.2 / (6 x 0.075 / 1.128) =
    # 0.2256 / 0.45 = 0.501333...; Cpk = min(0.1, 0.1) / (3 x 0.075 / 1.128) = same.
    # sigma_overall = sqrt((0.0025 + 0.0025 + 0) / 2) = 0.05: Pp = 0.2 / 0.3 = 0.6667.
    before = [(T1 - (3 - i) * MINUTE, v) for i, v in enumerate([11.95, 12.05, 12.00])]
    # Under v2 (LSL 11.8, USL 12.2): 11.9, 12.1 -> mean 12.0, MR-bar 0.2; Cp = 0.4 /
    # (6 x 0.2 / 1.128) = 0.4512 / 1.2 = 0.376 = Cpk; sigma_overall = sqrt(0.02 / 1):
    # Pp = 0.4 / (6 sqrt 0.02) = 0.471404...; nothing out of spec (11.9 was out under v1).
    after = [(T1 + i * MINUTE, v) for i, v in enumerate([11.9, 12.1])]
    await cycles(conn, mid, [*before, *after])
    start, end = T1 - timedelta(minutes=30), T1 + timedelta(minutes=30)

    report = await spc_capability(conn, place, "PartWeight", "m-a", start, end)

    assert (report.points, report.points_without_limits) == (5, 0)
    old, new = report.periods
    assert (old.start, old.end, old.limits_valid_from, old.limits_valid_to) == (start, T1, T0, T1)
    assert (new.start, new.end, new.limits_valid_from, new.limits_valid_to) == (T1, end, T1, None)
    assert (old.lower, old.upper, new.lower, new.upper) == (11.9, 12.1, 11.8, 12.2)
    assert (old.points, new.points) == (3, 2)
    assert old.mean == exactly(12.0)
    assert old.sigma_within == exactly(0.075 / 1.128)
    assert old.cp == exactly(0.2256 / 0.45)
    assert old.cpk == exactly(0.2256 / 0.45)
    assert old.sigma_overall == exactly(0.05)
    assert old.pp == exactly(0.2 / 0.3)
    assert new.cp == exactly(0.376)
    assert new.cpk == exactly(0.376)
    assert new.pp == exactly(0.4 / (6 * math.sqrt(0.02)))
    assert new.ppk == exactly(0.2 / (3 * math.sqrt(0.02)))
    assert (old.out_of_spec, new.out_of_spec, new.undefined) == (0, 0, None)


async def test_capability_keeps_one_period_when_the_limits_did_not_change(
    conn: AsyncConnection,
) -> None:
    # m-b got a new version at T1 (its ideal cycle time), with the same PartWeight limits.
    place, mid = await machine(conn)
    await job(conn, mid, T1 - timedelta(hours=1), "job-b", "m-b")
    # 17.8, 18.0, 18.1 around T1: mean 17.966..., one below LSL 17.85.
    await cycles(conn, mid, [(T1 - MINUTE, 17.8), (T1, 18.0), (T1 + MINUTE, 18.1)])
    start, end = T1 - timedelta(hours=1), T1 + timedelta(hours=1)
    report = await spc_capability(conn, place, "PartWeight", "m-b", start, end)
    (period,) = report.periods
    assert (period.limits_valid_from, period.limits_valid_to) == (T0, None)
    assert (period.start, period.end, period.points) == (start, end, 3)
    assert (period.out_of_spec, period.out_of_spec_fraction) == (1, exactly(1 / 3))
    # No limits for CycleTime in the plant file: the period says so, with no figures.
    cycle_time = await spc_capability(conn, place, "CycleTime", "m-b", start, end)
    (period,) = cycle_time.periods
    assert period.cp is None
    assert period.undefined == "the plant file gives no limits for it then"


async def test_a_request_past_the_point_cap_asks_for_a_narrower_range(
    conn: AsyncConnection,
) -> None:
    place, mid = await machine(conn)
    start = T1 + timedelta(days=3)
    await job(conn, mid, start, "job-a", "m-a")
    await cycles(conn, mid, [(start + i * MINUTE, 12.0 + i % 2) for i in range(6)])
    end = start + timedelta(hours=1)
    with pytest.raises(SpcError, match=r"more than 5 PartWeight values .* narrow the range"):
        await spc_series(conn, place, "PartWeight", "m-a", start, end, max_points=5)
    with pytest.raises(SpcError, match="narrow the range"):
        await spc_capability(conn, place, "PartWeight", "m-a", start, end, max_points=5)
    assert len((await spc_series(conn, place, "PartWeight", "m-a", start, end)).points) == 6


async def test_unknown_machines_parameters_and_empty_ranges(conn: AsyncConnection) -> None:
    place, mid = await machine(conn)
    start = T1 + timedelta(days=4)
    end = start + timedelta(hours=1)
    nobody = Place("spc", "hall", "l1", "imm-nobody")
    with pytest.raises(NotFound, match="no machine spc/hall/l1/imm-nobody"):
        await spc_series(conn, nobody, "PartWeight", "m-a", start, end)
    with pytest.raises(NotFound, match="no machine"):
        await spc_capability(conn, nobody, "PartWeight", "m-a", start, end)
    with pytest.raises(SpcError, match="unknown cycle parameter 'Colour'; known: CycleTime"):
        await spc_series(conn, place, "Colour", "m-a", start, end)
    with pytest.raises(NotFound, match="no PartWeight values of mould m-a"):
        await spc_series(conn, place, "PartWeight", "m-a", start, end)
    with pytest.raises(SpcError, match="is not before"):
        await spc_series(conn, place, "PartWeight", "m-a", end, start)
    # A mould the plant file does not know: no limits for its capability.
    await job(conn, mid, start, "job-x", "m-unknown")
    await cycles(conn, mid, [(start + MINUTE, 1.0), (start + 2 * MINUTE, 2.0)])
    with pytest.raises(NotFound, match="mould m-unknown is not in the plant file"):
        await spc_capability(conn, place, "PartWeight", "m-unknown", start, end)


async def test_a_baseline_too_small_or_flat_is_refused_with_its_period(
    conn: AsyncConnection,
) -> None:
    place, mid = await machine(conn)
    start = T1 + timedelta(days=5)
    await job(conn, mid, start, "job-a", "m-a")
    await cycles(conn, mid, [(start + i * MINUTE, 12.0) for i in range(3)])
    await cycles(conn, mid, [(start + (3 + i) * MINUTE, 12.0 + i) for i in range(3)])
    end = start + timedelta(hours=1)
    one = (start, start + MINUTE)
    with pytest.raises(SpcError, match=r"baseline .* the baseline has 1 point; at least 2"):
        await spc_series(conn, place, "PartWeight", "m-a", start, end, baseline=one)
    flat = (start, start + 3 * MINUTE)
    with pytest.raises(SpcError, match=r"do not vary .* control limits are undefined"):
        await spc_series(conn, place, "PartWeight", "m-a", start, end, baseline=flat)
