"""The plant file: a good one reads as written; a bad one is refused with file:line: field."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from contracts import CYCLE_PARAMETERS
from plant import Break, Plant, PlantFileError, load_plant, parse_plant
from plant.plantfile import (
    MAX_BREAKS,
    MAX_FILE_BYTES,
    MAX_HOLIDAYS,
    MAX_MACHINES,
    MAX_MOULDS,
    MAX_PROBLEMS,
    MAX_SHIFTS,
    MAX_SITES,
    PlantCalendar,
    effective_problem,
)
from simulators.scenario import PACKAGED

GOOD = """\
effective_from: 2026-12-01T06:00:00+01:00
sites:
  - id: north
    name: North plant
    timezone: Europe/Rome
    calendar:
      shifts:
        - name: early
          start: 06:00
          end: 14:00
          weekdays: [mon, tue, wed, thu, fri]
          breaks:
            - {start: 10:00, end: "10:30"}
        - name: night
          start: "22:00"
          end: "06:00"
          weekdays: [Monday, tue]
          breaks: [{start: "23:45", end: "00:15"}]
      holidays: [2026-12-25]
moulds:
  - id: cap-pp-8
    cavities: 8
    ideal_cycle_s: 9.0
    part_weight_g: 2.9
    material: PP
    limits:
      CycleTime: {lower: 8.5, upper: 10.5, target: 9.0}
      PartWeight: {lower: 2.87, upper: 2.93}
machines:
  - {site: north, area: hall-a, line: line-1, id: imm-01, clamp_force_kn: 800}
  - {site: north, area: hall-a, line: line-2, id: imm-01}
"""


def test_a_good_plant_file_reads_as_written() -> None:
    plant = parse_plant(GOOD, "p.yaml")
    assert plant.effective_from == datetime(2026, 12, 1, 5, tzinfo=UTC)
    (site,) = plant.sites
    cal = site.shift_calendar()
    assert cal.timezone == "Europe/Rome"
    assert cal.holidays == frozenset({date(2026, 12, 25)})
    early, night = cal.shifts
    assert (early.start, early.end, early.weekdays) == (time(6), time(14), (0, 1, 2, 3, 4))
    assert early.breaks == (Break(time(10), 30),)
    assert (night.start, night.end, night.weekdays, night.crosses_midnight) == (
        time(22), time(6), (0, 1), True,
    )  # fmt: skip
    assert night.breaks == (Break(time(23, 45), 30),)
    mould = plant.mould("cap-pp-8")
    assert mould is not None
    assert (mould.cavities, mould.ideal_cycle_s, mould.limits["PartWeight"].target) == (
        8,
        9.0,
        None,
    )
    # Two machines imm-01 on two lines are two machines.
    assert [m.place for m in plant.machines] == [
        ("north", "hall-a", "line-1", "imm-01"),
        ("north", "hall-a", "line-2", "imm-01"),
    ]
    assert plant.machines[0].clamp_force_kn == 800


@pytest.mark.parametrize("name", ["demo-plant.yaml", "faults-plant.yaml"])
def test_the_packaged_plant_files_are_valid(name: str) -> None:
    plant = load_plant(PACKAGED / name)
    assert plant.sites
    assert plant.moulds
    assert plant.machines


def _bad(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


BAD = [
    pytest.param(
        _bad("    name: North plant\n", "    name: North plant\n    colour: red\n"),
        "p.yaml:5: sites[0].colour: Extra inputs are not permitted",
        id="unknown-key",
    ),
    pytest.param(
        _bad("timezone: Europe/Rome", "timezone: Europe/Atlantis"),
        "p.yaml:5: sites[0].timezone: unknown time zone 'Europe/Atlantis'",
        id="unknown-time-zone",
    ),
    pytest.param(
        _bad("start: 06:00", "start: 6 o'clock"),
        "p.yaml:9: sites[0].calendar.shifts[0].start: a time of day is HH:MM",
        id="bad-time-of-day",
    ),
    pytest.param(
        _bad("weekdays: [Monday, tue]", "weekdays: [Monday, funday]"),
        "p.yaml:17: sites[0].calendar.shifts[1].weekdays[1]: a weekday is one of mon",
        id="bad-weekday",
    ),
    pytest.param(
        _bad('{start: 10:00, end: "10:30"}', '{start: "13:45", end: "14:15"}'),
        "p.yaml:13: sites[0].calendar.shifts[0].breaks[0].end: the break 13:45-14:15 is not "
        "inside the shift 06:00-14:00",
        id="break-outside-its-shift",
    ),
    pytest.param(
        _bad('end: "06:00"', 'end: "07:00"'),
        "p.yaml:14: sites[0].calendar.shifts[1]: shift 'night' overlaps shift 'early'",
        id="overlapping-shifts",
    ),
    pytest.param(
        _bad("name: night", "name: early"),
        "p.yaml:14: sites[0].calendar.shifts[1].name: shift name 'early' used more than once",
        id="duplicate-shift-name",
    ),
    pytest.param(
        _bad("CycleTime: {lower: 8.5, upper: 10.5", "CycleTime: {lower: 10.5, upper: 8.5"),
        "p.yaml:27: moulds[0].limits.CycleTime.upper: upper 8.5 is not above lower 10.5",
        id="lower-not-below-upper",
    ),
    pytest.param(
        _bad("target: 9.0}", "target: 12}"),
        "p.yaml:27: moulds[0].limits.CycleTime.target: target 12 is outside 8.5..10.5",
        id="target-outside-limits",
    ),
    pytest.param(
        _bad("PartWeight: {", "PartWieght: {"),
        "p.yaml:28: moulds[0].limits.PartWieght: unknown cycle parameter",
        id="unknown-cycle-parameter",
    ),
    pytest.param(
        _bad("cavities: 8", "cavities: 0"),
        "p.yaml:22: moulds[0].cavities: Input should be greater than or equal to 1",
        id="no-cavities",
    ),
    pytest.param(
        _bad("    ideal_cycle_s: 9.0\n", ""),
        "p.yaml:21: moulds[0].ideal_cycle_s: Field required",
        id="missing-ideal-cycle",
    ),
    pytest.param(
        _bad(
            "{site: north, area: hall-a, line: line-2", "{site: south, area: hall-a, line: line-2"
        ),
        "p.yaml:31: machines[1].site: no site 'south' in this file; sites: north",
        id="machine-at-an-unknown-site",
    ),
    pytest.param(
        _bad("line: line-2, id: imm-01", "line: line-1, id: imm-01"),
        "p.yaml:31: machines[1].id: machine north/hall-a/line-1/imm-01 is listed twice",
        id="duplicate-machine",
    ),
    pytest.param(
        _bad("id: imm-01, clamp", "id: imm 01, clamp"),
        "p.yaml:30: machines[0].id: id 'imm 01' is not a valid topic segment",
        id="machine-id-not-a-topic-segment",
    ),
    pytest.param(
        _bad("effective_from: 2026-12-01T06:00:00+01:00", "effective_from: 2026-12-01T06:00:00"),
        "p.yaml:1: effective_from: Input should have timezone info",
        id="effective-from-without-zone",
    ),
    pytest.param(
        _bad("    cavities: 8\n", "    cavities: 8\n    cavities: 4\n"),
        "p.yaml:23: not valid YAML: duplicate key 'cavities'",
        id="duplicate-key",
    ),
    pytest.param(
        _bad("material: PP", "material: [PP"),
        "p.yaml:26: not valid YAML",
        id="yaml-syntax",
    ),
    pytest.param("moulds: []\n", "p.yaml:1: sites: Field required", id="no-sites"),
    pytest.param(
        GOOD + "gateways:\n  - {id: pi-1, site: south, area: hall-a, line: line-1}\n",
        "p.yaml:33: gateways[0].site: no site 'south' in this file",
        id="gateway-at-an-unknown-site",
    ),
    pytest.param(
        GOOD
        + "gateways:\n  - {id: pi-1, site: north, area: hall-a, line: line-1}\n"
        + "  - {id: pi-1, site: north, area: hall-a, line: line-2}\n",
        "p.yaml:34: gateways[1].id: gateway 'pi-1' is listed twice",
        id="duplicate-gateway",
    ),
    pytest.param(
        GOOD + "gateways:\n  - {id: pi/1, site: north, area: hall-a, line: line-1}\n",
        "p.yaml:33: gateways[0].id: id 'pi/1' is not a valid topic segment",
        id="gateway-id-not-a-topic-segment",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_a_bad_plant_file_is_refused_with_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(PlantFileError) as caught:
        parse_plant(text, "p.yaml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_every_problem_is_reported_not_only_the_first() -> None:
    text = _bad("timezone: Europe/Rome", "timezone: Nowhere")
    text = text.replace("cavities: 8", "cavities: -1")
    with pytest.raises(PlantFileError) as caught:
        parse_plant(text, "p.yaml")
    assert str(caught.value).splitlines() == [
        "p.yaml:5: sites[0].timezone: unknown time zone 'Nowhere' (an IANA name: Europe/Rome)",
        "p.yaml:22: moulds[0].cavities: Input should be greater than or equal to 1",
    ]


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PlantFileError, match=r"nope\.yaml: no such file"):
        load_plant(tmp_path / "nope.yaml")


def _site(i: int, shifts: int = 1, breaks: int = 0, holidays: int = 0) -> str:
    """A site; with more than one shift, each one weekday for 3 hours (8 a day), none overlap."""
    lines = [f"  - id: s{i}", "    timezone: Europe/Rome", "    calendar:", "      shifts:"]
    for j in range(shifts):
        day, start = divmod(j, 8)
        brk = ", ".join(
            f"{{start: '{_clock(180 * start + 15 * k + 5)}', "
            f"end: '{_clock(180 * start + 15 * k + 10)}'}}"
            for k in range(breaks)
        )
        lines.append(
            f"        - {{name: x{j}, start: '{_clock(180 * start)}', "
            f"end: '{_clock((180 * start + 180) % 1440)}', "
            f"weekdays: [{WEEKDAYS[day % 7]}], breaks: [{brk}]}}"
        )
    if holidays:
        days = ", ".join(str(date(2026, 1, 1) + timedelta(days=d)) for d in range(holidays))
        lines.append(f"      holidays: [{days}]")
    return "\n".join(lines) + "\n"


def _clock(minute: int) -> str:
    return "{:02d}:{:02d}".format(*divmod(minute, 60))


WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _plant(
    sites: int = 1,
    shifts: int = 1,
    breaks: int = 0,
    holidays: int = 0,
    moulds: int = 0,
    machines: int = 0,
) -> str:
    """A valid plant file with lists of the given lengths (site s0 has the shifts and holidays)."""
    parts = ["sites:\n", _site(0, shifts, breaks, holidays)]
    parts += [_site(i) for i in range(1, sites)]
    limits = ", ".join(f"{name}: {{lower: 1, upper: 2}}" for name in CYCLE_PARAMETERS)
    parts.append("moulds:\n" if moulds else "")
    parts += [
        f"  - {{id: m{i}, cavities: 1, ideal_cycle_s: 1, part_weight_g: 1, material: P"
        + (f", limits: {{{limits}}}}}\n" if i == 0 else "}\n")
        for i in range(moulds)
    ]
    parts.append("machines:\n" if machines else "")
    parts += [f"  - {{site: s0, area: a, line: l, id: m{i}}}\n" for i in range(machines)]
    return "".join(parts)


AT_THE_BOUNDS = {
    "sites": MAX_SITES,
    "shifts": MAX_SHIFTS,
    "breaks": MAX_BREAKS,
    "holidays": MAX_HOLIDAYS,
    "moulds": MAX_MOULDS,
    "machines": MAX_MACHINES,
}


def test_a_plant_file_at_every_bound_at_once_is_valid() -> None:
    # Checks in about a second; before, 10,000 moulds alone took minutes (quadratic checks).
    text = _plant(**AT_THE_BOUNDS)
    assert len(text.encode()) <= MAX_FILE_BYTES
    plant = parse_plant(text, "p.yaml")
    site = plant.sites[0]
    assert (len(plant.sites), len(site.calendar.shifts), len(site.calendar.holidays)) == (
        MAX_SITES, MAX_SHIFTS, MAX_HOLIDAYS,
    )  # fmt: skip
    assert {len(s.breaks) for s in site.calendar.shifts} == {MAX_BREAKS}
    assert (len(plant.moulds), len(plant.machines)) == (MAX_MOULDS, MAX_MACHINES)
    assert len(plant.moulds[0].limits) == len(CYCLE_PARAMETERS)


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("sites", "sites"),
        ("shifts", "sites[0].calendar.shifts"),
        ("breaks", "sites[0].calendar.shifts[0].breaks"),
        ("holidays", "sites[0].calendar.holidays"),
        ("moulds", "moulds"),
        ("machines", "machines"),
    ],
)
def test_one_more_than_a_bound_is_refused_with_its_field(kind: str, field: str) -> None:
    bound = AT_THE_BOUNDS[kind]
    with pytest.raises(PlantFileError) as caught:
        parse_plant(_plant(**{kind: bound + 1}), "p.yaml")
    (line,) = str(caught.value).splitlines()
    assert line.startswith("p.yaml:"), line
    assert line.split(": ", 1)[1] == (
        f"{field}: List should have at most {bound} items after validation, not {bound + 1}"
    )


def test_the_bounds_are_in_the_help_text_of_the_models() -> None:
    assert f"{MAX_HOLIDAYS:,}" in (PlantCalendar.model_fields["holidays"].description or "")
    assert "366 days" in (Plant.model_fields["effective_from"].description or "")


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(PlantFileError) as caught:
        load_plant(big)
    assert str(caught.value) == (
        f"{big}: the file is 1,048,577 bytes, more than 1,048,576 bytes (1 MiB), the most a "
        "plant file may be"
    )
    with pytest.raises(PlantFileError, match=r"^p\.yaml: the file is 1,048,577 bytes, more"):
        parse_plant("#" * (MAX_FILE_BYTES + 1), "p.yaml")
    # An endless stream: only the first MAX_FILE_BYTES + 1 bytes are read.
    with pytest.raises(PlantFileError) as endless:
        load_plant("/dev/zero")
    assert str(endless.value) == (
        "/dev/zero: the file is more than 1,048,576 bytes (1 MiB), the most a plant file may be"
    )
    exactly = tmp_path / "exactly.yaml"
    exactly.write_bytes(GOOD.encode() + b"#" * (MAX_FILE_BYTES - len(GOOD.encode())))
    assert load_plant(exactly).sites[0].id == "north"


def test_identical_shifts_give_one_line_each_and_at_most_twenty_problems() -> None:
    shift = "        - {name: same, start: '06:00', end: '14:00'}\n"
    head = "sites:\n  - id: s\n    timezone: UTC\n    calendar:\n      shifts:\n"
    three = parse_error(head + shift * 3)
    assert three == [
        "p.yaml:7: sites[0].calendar.shifts[1].name: shift name 'same' used more than once",
        "p.yaml:8: sites[0].calendar.shifts[2].name: shift name 'same' used more than once",
        "p.yaml:7: sites[0].calendar.shifts[1]: shift 'same' overlaps shift 'same'",
        "p.yaml:8: sites[0].calendar.shifts[2]: shift 'same' overlaps shift 'same'",
    ]
    many = parse_error(head + shift * MAX_SHIFTS)
    assert len(many) == MAX_PROBLEMS + 1
    assert many[-1] == f"... and {2 * (MAX_SHIFTS - 1) - MAX_PROBLEMS} more problems"
    assert many[0] == three[0]
    # Field errors are capped the same way.
    machines = "".join(f"  - {{site: s, area: a, line: l, id: 'bad {i}'}}\n" for i in range(21))
    bad = parse_error(head + shift + "machines:\n" + machines)
    assert len(bad) == MAX_PROBLEMS + 1
    assert bad[-1] == "... and 1 more problem"


def parse_error(text: str) -> list[str]:
    with pytest.raises(PlantFileError) as caught:
        parse_plant(text, "p.yaml")
    return str(caught.value).splitlines()


def test_a_shift_past_sunday_midnight_overlaps_monday_morning() -> None:
    text = _bad("weekdays: [Monday, tue]", "weekdays: [sun]").replace(
        'end: "06:00"', 'end: "06:30"'
    )
    assert parse_error(text) == [
        "p.yaml:14: sites[0].calendar.shifts[1]: shift 'night' overlaps shift 'early'"
    ]
    # Ending as Monday's shift starts is no overlap.
    assert parse_plant(_bad("weekdays: [Monday, tue]", "weekdays: [sun]"))


IMPOSSIBLE = [
    pytest.param(
        _bad("holidays: [2026-12-25]", "holidays: [2026-02-30]"),
        "p.yaml:19: sites[0].calendar.holidays[0]: 2026-02-30 is not a date: day is out of "
        "range for month",
        id="holiday-february-30",
    ),
    pytest.param(
        _bad("holidays: [2026-12-25]", "holidays: [2026-12-25, '2026-13-01']"),
        "p.yaml:19: sites[0].calendar.holidays[1]: 2026-13-01 is not a date: month must be in "
        "1..12",
        id="holiday-month-13",
    ),
    pytest.param(
        _bad("holidays: [2026-12-25]", "holidays: [christmas]"),
        "p.yaml:19: sites[0].calendar.holidays[0]: a date is YYYY-MM-DD (e.g. 2026-12-25), "
        "not 'christmas'",
        id="holiday-not-a-date",
    ),
    pytest.param(
        _bad("effective_from: 2026-12-01T06:00:00+01:00", "effective_from: 2026-02-30T06:00:00Z"),
        "p.yaml:1: effective_from: 2026-02-30T06:00:00Z is not a real time: day is out of range "
        "for month",
        id="effective-from-february-30",
    ),
    pytest.param(
        _bad("effective_from: 2026-12-01T06:00:00+01:00", "effective_from: 2026-12-01 25:00:00"),
        "p.yaml:1: effective_from: 2026-12-01 25:00:00 is not a real time: hour must be in 0..23",
        id="effective-from-hour-25",
    ),
    pytest.param(
        _bad("effective_from: 2026-12-01T06:00:00+01:00", "effective_from: next monday"),
        "p.yaml:1: effective_from: a time is ISO 8601 with a zone (2026-12-01T06:00:00+01:00), "
        "not 'next monday'",
        id="effective-from-not-a-time",
    ),
    pytest.param(
        _bad("effective_from: 2026-12-01T06:00:00+01:00", "effective_from: 1969-12-31T23:59Z"),
        "p.yaml:1: effective_from: 1969-12-31T23:59:00+00:00 is before 1970",
        id="effective-from-before-1970",
    ),
]


@pytest.mark.parametrize(("text", "expected"), IMPOSSIBLE)
def test_an_impossible_date_is_a_field_error_with_its_line(text: str, expected: str) -> None:
    assert parse_error(text) == [expected]


@pytest.mark.parametrize(
    "written",
    [
        "2026-12-01T05:00:00Z",
        "2026-12-01T05:00Z",
        "'2026-12-01T06:00:00+01:00'",
        "2026-12-01 06:00:00+01:00",
        "2026-12-01 06:00:00 +1",  # YAML's own form
        "2026-12-01t05:00:00.000Z",
    ],
)
def test_a_valid_effective_time_reads_quoted_or_not(written: str) -> None:
    text = _bad("effective_from: 2026-12-01T06:00:00+01:00", f"effective_from: {written}")
    text = text.replace("holidays: [2026-12-25]", "holidays: [2026-12-25, '2026-12-26']")
    plant = parse_plant(text)
    assert plant.effective_from == datetime(2026, 12, 1, 5, tzinfo=UTC)
    assert plant.sites[0].calendar.holidays == [date(2026, 12, 25), date(2026, 12, 26)]


def test_an_effective_time_far_ahead_of_now_is_refused_when_now_is_given() -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    far = _bad("effective_from: 2026-12-01T06:00:00+01:00", "effective_from: 9999-12-31T23:59Z")
    assert parse_error_at(far, now) == [
        "p.yaml:1: effective_from: 9999-12-31T23:59:00+00:00 is more than 366 days ahead of now "
        "(2026-11-30T12:00Z): nothing it holds could be changed before then; load it nearer "
        "the time"
    ]
    # A year ahead is still fine; without `now` (a scenario's own file) nothing is refused.
    near = _bad("effective_from: 2026-12-01T06:00:00+01:00", "effective_from: 2027-11-30T12:00Z")
    assert parse_plant(near, now=now).effective_from == datetime(2027, 11, 30, 12, tzinfo=UTC)
    assert parse_plant(far).effective_from == datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    assert effective_problem(now + timedelta(days=367), now) is not None
    assert effective_problem(now + timedelta(days=366), now) is None


def parse_error_at(text: str, now: datetime) -> list[str]:
    with pytest.raises(PlantFileError) as caught:
        parse_plant(text, "p.yaml", now=now)
    return str(caught.value).splitlines()
