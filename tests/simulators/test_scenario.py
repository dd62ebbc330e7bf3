"""Scenario files: the packaged ones load, bad ones are refused with file, line and field."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from contracts import STANDSTILL_REASONS, MachineState
from plant import Break
from simulators import Component, MachineSpec
from simulators.scenario import ScenarioError, load_scenario, parse_scenario


@pytest.mark.parametrize("name", ["demo", "faults"])
def test_the_packaged_scenarios_load(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.machines
    assert all(isinstance(m, MachineSpec) for m in scenario.machines)
    # Unless a machine says otherwise: a QC sample each 2 running hours, orders always waiting.
    assert {(m.test_sample_interval_h, m.order_gap_median_h) for m in scenario.machines} == {
        (2.0, 0.0)
    }


def test_the_pdm_scenarios_keep_training_and_hold_out_apart() -> None:
    names = ("pdm-train", "pdm-train-varied", "pdm-holdout-a", "pdm-holdout-b")
    train, varied, _, b = scenarios = [load_scenario(n) for n in names]
    # One stated time factor for all, so a model trained on some is scored on the others at
    # the same wear rates (hold-out B and pdm-train-varied: other lives on top of it).
    assert {s.wear_time_factor for s in scenarios} == {3.0}
    assert all(m.wear_time_factor == 3.0 for s in scenarios for m in s.machines)
    assert len(train.machines) >= 10
    assert len(varied.machines) >= 10
    ids = [{m.machine_id for m in s.machines} for s in scenarios]
    moulds = [{mould.name for m in s.machines for mould in m.moulds} for s in scenarios]
    # Lives of their own (scale, shape): the training floor's are not hold-out B's.
    lives = [
        {
            (life.component, life.scale_h, life.shape)
            for m in s.machines
            for life in m.lives
            if life.scale_h is not None
        }
        for s in scenarios
    ]
    for x in range(4):
        for y in range(x + 1, 4):
            assert not ids[x] & ids[y]
            assert not moulds[x] & moulds[y]
    assert lives[1]
    assert not lives[1] & lives[3]
    assert len({s.seed for s in scenarios}) == 4
    for s in (train, varied):
        materials = {mould.material.name for m in s.machines for mould in m.moulds}
        assert materials == {"PP", "ABS", "HDPE"}
        assert all(len(m.moulds) > 1 for m in s.machines)
    assert all(m.lives for m in b.machines)  # other wear rates on every hold-out B press
    assert all(any(life.scale_h is not None for life in m.lives) for m in varied.machines)


def test_a_scenario_builds_machines_with_its_moulds_shifts_and_faults(tmp_path: Path) -> None:
    path = tmp_path / "floor.yaml"
    path.write_text(
        """
site: plant-7
timezone: America/Chicago
calendar:
  shifts:
    - {start: "07:00", hours: 10, weekdays: [0, 1, 2, 3], breaks: [{after_h: 5, minutes: 45}]}
moulds:
  - {name: spoon-ps-16, material: PP, cavities: 16, part_weight_g: 2.1, cool_s: 3.0}
machines:
  - id: press-1
    line: cell-a
    moulds: [spoon-ps-16, bracket-pp-4]
    lot_mean_h: 12
    components:
      - {component: ejector, scale_h: 900, shape: 1.5, sudden_share: 0.5, initial_health: 0.9}
      - {component: check_ring, initial_age_h: 300}
    maintenance:
      - {at_h: 100, components: [ejector], duration_h: 1.5}
    screw_diameter_mm: 30
    setup_median_min: 25
    job_parts: [1000, 2000]
    test_sample_interval_h: 4
    order_gap_median_h: 1.5
    stops:
      - {state: unplanned_stop, reason: robot_fault, mtbf_h: 4, repair_median_min: 6}
      - {state: idle, reason: blocked, mtbf_h: 9, repair_median_min: 2, repair_sigma: 0.3}
"""
    )
    (machine,) = load_scenario(path).machines
    assert (machine.machine_id, machine.site, machine.line) == ("press-1", "plant-7", "cell-a")
    assert [m.name for m in machine.moulds] == ["spoon-ps-16", "bracket-pp-4"]
    assert machine.moulds[0].cavities == 16
    assert machine.moulds[0].cool_s == 3.0
    assert machine.calendar.timezone == "America/Chicago"
    (shift,) = machine.calendar.shifts
    assert (shift.start, shift.end, shift.weekdays) == (time(7), time(17), (0, 1, 2, 3))
    assert shift.breaks == (Break(time(12), 45.0),)
    ejector, ring = machine.lives
    assert (ejector.component, ejector.scale_h, ejector.shape) == (Component.EJECTOR, 900, 1.5)
    assert (ejector.sudden_share, ejector.initial_health) == (0.5, 0.9)
    assert (ring.component, ring.initial_age_h, ring.scale_h) == (Component.CHECK_RING, 300, None)
    assert (machine.wear_time_factor, machine.lot_mean_h) == (1.0, 12.0)
    assert machine.maintenance[0].components == (Component.EJECTOR,)
    assert (machine.screw_diameter_mm, machine.setup_median_min, machine.job_parts) == (
        30.0,
        25.0,
        (1000, 2000),
    )
    assert (machine.test_sample_interval_h, machine.order_gap_median_h) == (4.0, 1.5)
    assert [(c.state.value, c.reason, c.mtbf_h) for c in machine.stops] == [
        ("unplanned_stop", "robot_fault", 4.0),
        ("idle", "blocked", 9.0),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("machines:\n  - id: a\n    colour: red\n", "<s>:3: machines[0].colour: Extra inputs"),
        ("machines:\n  - id: a\n    moulds: [teapot]\n", "unknown moulds ['teapot']"),
        ("machines:\n  - id: a b\n", "<s>:2: machines[0].id: id 'a b' is not a valid topic"),
        ("machines:\n  - id: a\n  - id: a\n", "machine ids used more than once: ['a']"),
        ("timezone: Mars/Olympus\nmachines:\n  - id: a\n", "<s>:1: timezone: unknown time zone"),
        (
            "machines:\n  - id: a\n    components:\n"
            "      - {component: flux_capacitor, scale_h: 100}\n",
            "<s>:4: machines[0].components[0].component: Input should be 'heater_zone2'",
        ),
        (
            "machines:\n  - id: a\n    components:\n      - {component: ejector, scale_h: 0}\n",
            "machines[0].components[0].scale_h: Input should be greater than 0",
        ),
        (
            "machines:\n  - id: a\n    components:\n"
            "      - {component: ejector, initial_health: 0.1}\n",
            "machines[0].components[0].initial_health: Input should be greater than 0.15",
        ),
        (
            "machines:\n  - id: a\n    components:\n"
            "      - {component: ejector, initial_health: 0.5, initial_age_h: 10}\n",
            "give initial_health or initial_age_h, not both",
        ),
        (
            "machines:\n  - id: a\n    components:\n"
            "      - {component: ejector, onset_h: 1, rate_per_h: 0.1}\n",
            "machines[0].components[0].onset_h: Extra inputs are not permitted",
        ),
        (
            "machines:\n  - id: a\n    components:\n"
            "      - {component: ejector}\n      - {component: ejector, shape: 2}\n",
            "more than one entry for ['ejector']",
        ),
        ("wear_time_factor: 0.5\nmachines:\n  - id: a\n", "<s>:1: wear_time_factor: Input"),
        (
            "moulds:\n  - {name: m, material: unobtainium, cavities: 1, part_weight_g: 1}\n"
            "machines:\n  - id: a\n",
            "<s>:2: moulds[0].material: unknown material 'unobtainium'",
        ),
        ("machines: []\n", "machines: List should have at least 1 item"),
        (
            "machines:\n  - id: a\n    stops:\n"
            "      - {state: idle, reason: robot_fault, mtbf_h: 5, repair_median_min: 3}\n",
            "<s>:4: machines[0].stops[0]: idle reasons are starved, blocked",
        ),
        (
            "machines:\n  - id: a\n    stops:\n"
            "      - {state: fault, reason: heater_burnout, mtbf_h: 5, repair_median_min: 3}\n",
            "random stops are idle or unplanned_stop",
        ),
        (
            "machines:\n  - id: a\n    moulds: [housing-abs-2]\n    screw_diameter_mm: 20\n",
            "machine a: a shot of mould housing-abs-2 needs 326 mm of stroke, more than 4.5",
        ),
        (
            "machines:\n  - id: a\n    job_parts: [500, 100]\n",
            "job_parts is [fewest, most]",
        ),
        (
            "machines:\n  - id: a\n    test_sample_interval_h: -1\n",
            "<s>:3: machines[0].test_sample_interval_h: Input should be greater than or equal to 0",
        ),
        (
            "machines:\n  - id: a\n    order_gap_median_h: -0.5\n",
            "<s>:3: machines[0].order_gap_median_h: Input should be greater than or equal to 0",
        ),
        (
            "calendar:\n  shifts:\n"
            "    - {start: '06:00', hours: 8, breaks: [{after_h: 8, minutes: 30}]}\n"
            "machines:\n  - id: a\n",
            "a break 8.0 h into a 8.0 h shift runs past it",
        ),
        ("machines:\n  - id: [a\n", "<s>:3: not valid YAML"),
    ],
)
def test_a_bad_scenario_is_refused_with_where_and_why(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "<s>")
    assert expected in str(caught.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"no-such\.yaml: no such file"):
        load_scenario(tmp_path / "no-such.yaml")


def test_the_faults_export_breaks_every_kind_of_component_down() -> None:
    import random
    from collections import Counter
    from datetime import timedelta

    from simulators import ComponentFailed, MachineModel

    scenario = load_scenario("faults")
    assert scenario.start is not None
    assert scenario.seed is not None
    failures: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    for i, spec in enumerate(scenario.machines):
        model = MachineModel(spec, random.Random(scenario.seed * 1000 + i), scenario.start)
        for event in model.advance(scenario.start + timedelta(days=5)):
            if isinstance(event, ComponentFailed):
                failures[event.reason] += 1
                modes[event.mode] += 1
    assert set(failures) == set(STANDSTILL_REASONS[MachineState.FAULT])
    assert sum(failures.values()) >= 30
    assert modes["wear"] > modes["sudden"] > 0


def test_a_mould_is_on_one_press_at_a_time() -> None:
    text = "machines:\n  - id: a\n    moulds: [cap-pp-8]\n  - id: b\n    moulds: [cap-pp-8]\n"
    with pytest.raises(ScenarioError, match="mould cap-pp-8 is listed on a and b"):
        parse_scenario(text)
    text = (
        "moulds:\n  - {name: cap-pp-8, material: PP, cavities: 1, part_weight_g: 1}\n"
        "machines:\n  - id: a\n"
    )
    with pytest.raises(ScenarioError, match=r"moulds \['cap-pp-8'\] are built in"):
        parse_scenario(text)
