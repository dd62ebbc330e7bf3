"""The packaged scenarios and their plant files agree: the floor follows the plant's calendar."""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulators import CycleDone, MachineModel
from simulators.scenario import PACKAGED, ScenarioError, load_scenario

START = datetime(2026, 11, 16, tzinfo=UTC)
SLACK = timedelta(seconds=1)


@pytest.mark.parametrize("name", ["demo", "faults"])
def test_a_packaged_scenario_takes_site_calendar_lines_and_moulds_from_its_plant_file(
    name: str,
) -> None:
    scenario = load_scenario(name)
    plant = scenario.plant
    assert plant is not None
    assert scenario.plant_path is not None
    assert scenario.plant_path.parent == PACKAGED
    for spec in scenario.machines:
        site = plant.site(spec.site)
        assert site is not None
        assert spec.calendar == site.shift_calendar()
        (placed,) = [m for m in plant.machines if m.site == spec.site and m.id == spec.machine_id]
        assert (spec.area, spec.line) == (placed.area, placed.line)
        for mould in spec.moulds:
            master = plant.mould(mould.name)
            assert master is not None, f"{mould.name} is not in {scenario.plant_path}"
            assert (mould.cavities, mould.part_weight_g, mould.material.name) == (
                master.cavities,
                master.part_weight_g,
                master.material,
            )
            assert mould.ideal_cycle_s >= master.ideal_cycle_s - 1e-9


def test_the_simulated_demo_cycles_slower_than_the_plant_files_ideal_and_stops_on_its_breaks() -> (
    None
):
    scenario = load_scenario("demo")
    assert scenario.plant is not None
    cycle_times: dict[str, list[float]] = defaultdict(list)
    for i, spec in enumerate(scenario.machines):
        model = MachineModel(spec, random.Random(i), START)
        events = model.advance(START + timedelta(days=2))
        cycles = [e for e in events if isinstance(e, CycleDone)]
        for c in cycles:
            cycle_times[c.mould].append(c.parameters["CycleTime"])
        # No cycle starts in a break of the plant calendar.
        breaks = [
            b
            for s in spec.calendar.shifts_between(START, START + timedelta(days=2))
            for b in s.breaks
        ]
        assert breaks
        for c in cycles:
            started = c.ts - timedelta(seconds=c.parameters["CycleTime"])
            # (CycleTime is rounded to the millisecond: a second of slack on either side)
            assert not any(b0 + SLACK <= started < b1 - SLACK for b0, b1 in breaks)
    assert cycle_times
    for mould, times in cycle_times.items():
        master = scenario.plant.mould(mould)
        assert master is not None
        assert statistics.mean(times) > master.ideal_cycle_s, mould


PLANT = """
sites:
  - id: p1
    timezone: Europe/Rome
    calendar:
      shifts: [{name: day, start: 06:00, end: 14:00}]
moulds:
  - {id: bracket-pp-4, cavities: 4, ideal_cycle_s: 14.8, part_weight_g: 12.0, material: PP}
  - {id: cap-pp-8, cavities: 8, ideal_cycle_s: 12.0, part_weight_g: 2.9, material: PP}
  - {id: gear-pa-1, cavities: 1, ideal_cycle_s: 20, part_weight_g: 5, material: PA66}
machines:
  - {site: p1, area: hall, line: l1, id: m1}
"""


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("site: p2\nmachines: [{id: m1}]\n", "s.yaml:2: site: no site 'p2' in the plant file"),
        (
            "site: p1\ntimezone: UTC\nmachines: [{id: m1}]\n",
            "s.yaml:3: timezone: comes from the plant file",
        ),
        ("site: p1\nmachines:\n  - id: m2\n", "s.yaml:4: machines[0].id: the plant file lists 0"),
        (
            "site: p1\nmachines:\n  - id: m1\n    line: l9\n",
            "s.yaml:5: machines[0].line: the plant file says l1",
        ),
        (
            "site: p1\nmachines:\n  - id: m1\n    moulds: [lid-hdpe-1]\n",
            "s.yaml:5: machines[0].moulds[0]: no mould 'lid-hdpe-1' in the plant file",
        ),
        (
            "site: p1\nmachines:\n  - id: m1\n    moulds: [cap-pp-8]\n",
            "machines[0].moulds[0]: mould cap-pp-8 cycles in 9 s here, faster than its ideal 12 s",
        ),
        (
            "site: p1\nmachines:\n  - id: m1\n    break_offset_min: 20\n",
            "s.yaml:5: machines[0].break_offset_min: breaks are the plant calendar's",
        ),
        (
            "site: p1\nmoulds:\n  - {name: gear-pa-1, material: PP, cavities: 1, "
            "part_weight_g: 5}\nmachines:\n  - id: m1\n    moulds: [gear-pa-1]\n",
            "machines[0].moulds[0]: mould gear-pa-1: the simulators know no material 'PA66'",
        ),
    ],
)
def test_a_scenario_that_contradicts_its_plant_file_is_refused(
    tmp_path: Path, scenario: str, expected: str
) -> None:
    (tmp_path / "p.yaml").write_text(PLANT)
    (tmp_path / "s.yaml").write_text("plant: p.yaml\n" + scenario)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "s.yaml")
    assert expected in str(caught.value)


def test_a_bad_plant_file_named_by_a_scenario_is_reported_with_its_own_lines(
    tmp_path: Path,
) -> None:
    (tmp_path / "p.yaml").write_text(PLANT.replace("timezone: Europe/Rome", "timezone: Nowhere"))
    (tmp_path / "s.yaml").write_text("plant: p.yaml\nsite: p1\nmachines: [{id: m1}]\n")
    with pytest.raises(ScenarioError, match=r"p\.yaml:4: sites\[0\]\.timezone: unknown time zone"):
        load_scenario(tmp_path / "s.yaml")


def test_the_built_in_demo_floor_follows_the_demo_plant_calendar() -> None:
    from simulators import demo_floor

    plant = load_scenario("demo").plant
    assert plant is not None
    site = plant.site("demo")
    assert site is not None
    for spec in demo_floor(5):
        assert spec.calendar == site.shift_calendar()
        assert spec.break_offset_min == 0
