"""The plant file: a good one reads as written; a bad one is refused with file:line: field."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from plant import Break, PlantFileError, load_plant, parse_plant
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
